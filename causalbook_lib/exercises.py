"""Self-check for the exercises: is my answer right? The answer itself is not stored.

``cb.exercises.check("ch01-ex-3", a)`` says whether ``a`` is right, within the exercise's stated
tolerance, and shows nothing else. ``check(id, None)`` states what is expected and the tolerance,
so a notebook can carry an unanswered check cell.

**What** ``exercises.yml`` **(shipped with the library) stores, and why it does not show the answer.**

* A **numeric** answer :math:`x` with tolerance :math:`t` and resolution ``step``: the answers accepted are the
  grid points :math:`k \\cdot \\text{step}` with :math:`|k \\cdot \\text{step} - x| \\le t`. For each such integer
  :math:`k` the file holds ``PBKDF2-HMAC-SHA256(id|k, salt, iterations)``, truncated, in sorted order.
  A submitted value :math:`v` is rounded to :math:`k = \\operatorname{round}(v / \\text{step})`, hashed the same
  way and looked up. So a value is accepted when it is within :math:`t` of the answer, to the resolution
  ``step`` (a value up to ``step / 2`` beyond the tolerance can round into the interval).
* An **exact** answer (a boolean, a string, or a list of them, such as "separated? [no, yes, no]")
  is stored as one hash of its canonical JSON (strings lower-cased and stripped).
* The salt is random per exercise, so tables computed for one exercise are useless for another,
  and equal answers of two exercises do not give equal hashes.

**This is a guard against accidental spoilers, not a secret.** A hash cannot be read back, but a
student can try every candidate: a number in [0, 1] at resolution 0.0005 is 2,000 candidates, about
half a minute of PBKDF2 on a laptop; a list of three booleans is 8 candidates. The count of hashes
also tells the width of the interval (``tolerance / step``), which is stated anyway. Anyone who
wants the answer can find it; nobody sees it by accident. Instructors who grade should not rely on
it.

Works offline and in Colab: the Python standard library (``hashlib``) and PyYAML only.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import math
import numbers
import secrets
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml

__all__ = ["check", "CheckResult", "exercise_ids", "describe", "make_entry", "load"]

ITERATIONS = 20_000
DIGEST_HEX = 24  # 96 bits of each hash are kept
_FILE = "exercises.yml"


@lru_cache(maxsize=None)
def _bundled() -> dict:
    return load(resources.files("causalbook_lib").joinpath(_FILE).read_text(encoding="utf-8"))


def load(text_or_path: str | Path) -> dict:
    """The exercises of a YAML text or file, ``{id: entry}``, validated."""
    text = Path(text_or_path).read_text(encoding="utf-8") if isinstance(text_or_path, Path) else text_or_path
    data = yaml.safe_load(text) or {}
    entries = data.get("exercises") or {}
    for ex_id, e in entries.items():
        kind = e.get("kind")
        if kind not in ("numeric", "exact"):
            raise ValueError(f"{ex_id}: kind must be 'numeric' or 'exact', not {kind!r}")
        need = {"numeric": {"tolerance", "step", "salt", "iterations", "hashes", "expects"},
                "exact": {"salt", "iterations", "hashes", "expects"}}[kind]
        missing = need - set(e)
        if missing:
            raise ValueError(f"{ex_id}: missing {sorted(missing)}")
    return entries


def exercise_ids() -> list[str]:
    """The exercises that have a self-check."""
    return sorted(_bundled())


def _hash(ex_id: str, token: str, salt: str, iterations: int) -> str:
    digest = hashlib.pbkdf2_hmac("sha256", f"{ex_id}|{token}".encode(), bytes.fromhex(salt), iterations)
    return digest.hex()[:DIGEST_HEX]


def _number(ex_id: str, value) -> float:
    if isinstance(value, bool) or not (isinstance(value, numbers.Real) or hasattr(value, "item")):
        raise ValueError(f"{ex_id} expects a number, got {type(value).__name__} {value!r}")
    if hasattr(value, "item"):  # a one-element numpy array or torch tensor
        try:
            value = value.item()
        except (ValueError, RuntimeError) as exc:
            raise ValueError(f"{ex_id} expects one number, got an array or tensor with "
                             f"{getattr(value, 'size', '?')} elements") from exc
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"{ex_id} expects a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{ex_id} expects a finite number, got {value}")
    return value


def _canonical(ex_id: str, value) -> str:
    def norm(v):
        if isinstance(v, str):
            return " ".join(v.strip().lower().split())
        if isinstance(v, bool) or v is None:
            return v
        if hasattr(v, "item") and not isinstance(v, (list, tuple)):
            return norm(v.item())
        if isinstance(v, numbers.Integral):
            return int(v)
        if isinstance(v, (list, tuple)):
            return [norm(x) for x in v]
        raise ValueError(f"{ex_id} expects a boolean, a string, an integer or a list of them, "
                         f"got {type(v).__name__} {v!r}")
    return json.dumps(norm(value), separators=(",", ":"))


@dataclass(frozen=True)
class CheckResult:
    """The verdict of :func:`check`; true when the answer is right. Shows as one sentence."""

    exercise_id: str
    correct: bool | None  # None: no answer given yet
    message: str

    def __bool__(self) -> bool:
        return bool(self.correct)

    def __repr__(self) -> str:
        return self.message

    def _repr_markdown_(self) -> str:
        mark = {True: "✅", False: "❌", None: "✏️"}[self.correct]
        return f"{mark} {self.message}"


def describe(exercise_id: str) -> str:
    """What the check of an exercise expects, and its tolerance."""
    e = _entry(exercise_id)
    expects = str(e["expects"]).rstrip(".")
    if e["kind"] == "numeric":
        return f"{exercise_id} expects {expects}, accepted within ±{e['tolerance']:g}."
    return f"{exercise_id} expects {expects}" + ("" if expects.endswith("?") else ".")


def _entry(exercise_id: str) -> dict:
    if not isinstance(exercise_id, str):
        raise ValueError(f"the exercise id is a string such as 'ch01-ex-3', not {exercise_id!r}")
    entries = _bundled()
    if exercise_id not in entries:
        close = difflib.get_close_matches(exercise_id, list(entries), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; these have one: {', '.join(sorted(entries))}"
        raise ValueError(f"no self-check for exercise {exercise_id!r}{hint}")
    return entries[exercise_id]


def check(exercise_id: str, value) -> CheckResult:
    """Whether ``value`` answers the exercise, without showing the answer.

    ``None`` means "not answered yet": the result says what is expected. A numeric exercise takes
    a real number (a Python, NumPy or one-element torch value); an exact one a boolean, string,
    integer or a list of them.

    Raises:
        ValueError: unknown exercise, or a value of the wrong kind (text for a number, NaN, a
            tensor with several elements, ...).
    """
    e = _entry(exercise_id)
    if value is None:
        return CheckResult(exercise_id, None, f"No answer yet. {describe(exercise_id)}")
    if e["kind"] == "numeric":
        v = _number(exercise_id, value)
        token = str(round(v / float(e["step"])))
        shown = f"{v:.6g}"
    else:
        token = _canonical(exercise_id, value)
        shown = token
    ok = _hash(exercise_id, token, e["salt"], int(e["iterations"])) in set(e["hashes"])
    tol = f" (within ±{e['tolerance']:g})" if e["kind"] == "numeric" else ""
    if ok:
        return CheckResult(exercise_id, True, f"{exercise_id}: {shown} is right{tol}.")
    return CheckResult(exercise_id, False, f"{exercise_id}: {shown} is not right{tol}. Try again.")


def make_entry(exercise_id: str, answer, *, tolerance: float | None = None, step: float | None = None,
               expects: str = "", salt: str | None = None, iterations: int = ITERATIONS) -> dict:
    """An ``exercises.yml`` entry for the answer (for authors; the answer itself is not in it).

    A real ``answer`` with ``tolerance`` gives a numeric entry (``step`` defaults to tolerance/10);
    anything else an exact one.
    """
    salt = salt or secrets.token_hex(16)
    if tolerance is not None:
        x = _number(exercise_id, answer)
        if not tolerance > 0:
            raise ValueError("the tolerance must be positive")
        step = float(step) if step else tolerance / 10
        lo, hi = math.ceil((x - tolerance) / step - 1e-9), math.floor((x + tolerance) / step + 1e-9)
        hashes = sorted(_hash(exercise_id, str(k), salt, iterations) for k in range(lo, hi + 1))
        return {"kind": "numeric", "expects": expects or "a number", "tolerance": tolerance, "step": step,
                "salt": salt, "iterations": iterations, "hashes": hashes}
    return {"kind": "exact", "expects": expects or "an exact answer", "salt": salt, "iterations": iterations,
            "hashes": [_hash(exercise_id, _canonical(exercise_id, answer), salt, iterations)]}
