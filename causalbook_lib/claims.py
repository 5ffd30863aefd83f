"""The reproduction ledger: every claim of a source paper that the book checks.

The ledger is one YAML file, ``causalbook_lib/claims.yml``. Each entry names a claim (an ``id``),
where it comes from (``citation`` and ``where``), what it says (``statement``), the paper's value
(``paper``: a number, a list, or a qualitative sentence), the ``criterion`` our measured value must
meet, the ``chapter`` (a notebook stem such as ``01-structural-causal-models``) and a ``status``:

* ``reproduces``: our value agrees with the paper within the stated criterion;
* ``differs``: the paper's value or statement does not hold here, and ``explanation`` says why
  (the criterion then states what we do measure, for example that the failure is reproduced);
* ``beyond``: a check the paper does not make (a ground truth, an exact value, a new experiment);
* ``demonstration``: a check that illustrates a statement but holds by construction, so it could
  not fail if the statement were false (``explanation`` says why). It is still run and recorded,
  but it is not evidence for the claim;
* ``degenerate``: a check that passes, but in a regime where it tests little (for example, the
  factors it compares against have collapsed, so one side of the comparison is zero whatever the
  method does); ``explanation`` names the regime and what would make the check a real test.

A notebook calls :func:`check` with a claim id and the value it measured. The call shows the
paper's value, ours and the criterion side by side and writes the result to
``results/claims/<id>.json``. What happens when the criterion fails depends on the mode:

* **strict** (``CAUSALBOOK_STRICT=1``, set by ``make`` and CI): :class:`AssertionError`, so the
  build or test run fails;
* **reader** (otherwise: Binder, Colab, a laptop, a reader who changed a number): a visible box
  says that the claim does not hold in this run, and the chapter goes on.

**Your own ledger.** An instructor who changes a chapter, or adds a check, does not edit the
installed package. :func:`use_ledger` (or the environment variable ``CAUSALBOOK_LEDGER``) chooses
the ledger that :func:`check` reads:

* ``use_ledger("course.yml")``: only your ledger;
* ``use_ledger("book", "course.yml")``: the book's ledger, with your entries added, an entry with
  the same ``id`` replacing the book's;
* ``use_ledger(None)``: no ledger: :func:`check` shows and records the value, and never fails;
* ``use_ledger()``: back to the default (``$CAUSALBOOK_LEDGER``, else the book's ledger).

``CAUSALBOOK_LEDGER`` takes the same sources separated by ``:`` (``;`` on Windows), or ``none``.

Criteria (``criterion:`` mappings in the ledger):

=====================  ==============================================================
``op: close``          ``|ours - target| <= atol + rtol*|target|`` elementwise, where
                       ``target`` defaults to the paper's value
``op: ">="`` etc.      ``ours >= threshold`` (also ``>``, ``<=``, ``<``), elementwise
``op: between``        ``low <= ours <= high`` elementwise
``op: equals``         ``ours == target`` (booleans, integers, strings, lists of them)
=====================  ==============================================================
"""
from __future__ import annotations

import json
import math
import os
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml

__all__ = ["LEDGER_PATH", "LEDGER_ENV", "STRICT_ENV", "use_ledger", "active_ledger", "ClaimRecord", "load_ledger", "get", "check", "describe_criterion",
           "results_dir", "load_results", "strict_mode", "STATUSES"]

LEDGER_PATH = Path(__file__).with_name("claims.yml")
#: ``CAUSALBOOK_STRICT=1`` makes a failed claim raise (``make`` and CI set it); otherwise reader mode.
STRICT_ENV = "CAUSALBOOK_STRICT"
#: ``CAUSALBOOK_LEDGER``: the ledger :func:`check` reads (see :func:`use_ledger`).
LEDGER_ENV = "CAUSALBOOK_LEDGER"
#: The name that stands for the book's own ledger in :func:`use_ledger` and ``CAUSALBOOK_LEDGER``.
BOOK = "book"
_UNSET = object()
_chosen: Any = _UNSET  # what use_ledger() set: _UNSET (default), None (no ledger) or a tuple of sources
STATUSES = ("reproduces", "differs", "beyond", "demonstration", "degenerate")
_REQUIRED = ("id", "citation", "where", "statement", "paper", "criterion", "chapter", "status")
_COMPARISONS = {">=": np.greater_equal, ">": np.greater, "<=": np.less_equal, "<": np.less}


def _validate_entry(entry: dict, index: int) -> None:
    if not isinstance(entry, dict):
        raise ValueError(f"ledger entry #{index} must be a mapping, got {type(entry).__name__}")
    missing = [k for k in _REQUIRED if k not in entry]
    if missing:
        raise ValueError(f"ledger entry {entry.get('id', f'#{index}')!r} lacks the key(s) {missing}")
    if entry["status"] not in STATUSES:
        raise ValueError(f"ledger entry {entry['id']!r}: status must be one of {STATUSES}, got {entry['status']!r}")
    if entry["status"] in ("differs", "demonstration", "degenerate") and not entry.get("explanation"):
        raise ValueError(f"ledger entry {entry['id']!r}: a {entry['status']!r} claim needs an 'explanation' "
                         "(why the paper's value does not hold, why the check holds by construction, "
                         "or in which degenerate regime it passes)")
    crit = entry["criterion"]
    if not isinstance(crit, dict) or "op" not in crit:
        raise ValueError(f"ledger entry {entry['id']!r}: criterion must be a mapping with an 'op'")
    op = crit["op"]
    if op == "close":
        if "atol" not in crit and "rtol" not in crit:
            raise ValueError(f"ledger entry {entry['id']!r}: 'close' needs atol and/or rtol")
        target = crit.get("target", entry["paper"])
        try:
            np.asarray(target, dtype=float)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"ledger entry {entry['id']!r}: 'close' needs a numeric target "
                             f"(the paper value or 'target'), got {target!r}") from exc
    elif op in _COMPARISONS:
        if "threshold" not in crit:
            raise ValueError(f"ledger entry {entry['id']!r}: {op!r} needs a 'threshold'")
    elif op == "between":
        if "low" not in crit or "high" not in crit or not crit["low"] <= crit["high"]:
            raise ValueError(f"ledger entry {entry['id']!r}: 'between' needs low <= high")
    elif op == "equals":
        if "target" not in crit:
            raise ValueError(f"ledger entry {entry['id']!r}: 'equals' needs a 'target'")
    else:
        raise ValueError(f"ledger entry {entry['id']!r}: unknown criterion op {op!r}; expected close, "
                         f">=, >, <=, <, between or equals")


@lru_cache(maxsize=4)
def _load(path: str, mtime: float) -> dict[str, dict]:
    with open(path, encoding="utf-8") as fh:
        doc = yaml.safe_load(fh) or {}
    entries = doc.get("claims") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise ValueError(f"{path} must hold a mapping with a 'claims' list")
    out: dict[str, dict] = {}
    for i, entry in enumerate(entries):
        _validate_entry(entry, i)
        if entry["id"] in out:
            raise ValueError(f"ledger id {entry['id']!r} appears twice in {path}")
        out[entry["id"]] = entry
    return out


def load_ledger(path: str | os.PathLike | None = None) -> dict[str, dict]:
    """Read and validate a ledger file (default: the book's own); return its entries keyed by id."""
    p = Path(path) if path is not None else LEDGER_PATH
    if not p.exists():
        raise ValueError(f"no ledger at {p}")
    return dict(_load(str(p), p.stat().st_mtime))


def use_ledger(*sources: str | os.PathLike | None) -> None:
    """Choose the ledger that :func:`check` reads, for this process.

    Each source is ``"book"`` (the ledger that ships with the library) or the path of a YAML file
    in the same format; later sources add entries and replace those with the same ``id``. A single
    ``None`` means no ledger (values are shown and recorded, nothing is checked). No argument
    restores the default: ``$CAUSALBOOK_LEDGER``, else the book's ledger.

    Raises:
        ValueError: a file does not exist or is not a valid ledger, or ``None`` is mixed with files.
    """
    global _chosen
    if not sources:
        _chosen = _UNSET
        return
    if any(s is None for s in sources):
        if len(sources) != 1:
            raise ValueError(f"use_ledger(None) takes no other source, got {sources!r}")
        _chosen = None
        return
    resolved = tuple(BOOK if str(s) == BOOK else str(Path(s).expanduser().resolve()) for s in sources)
    _merge(resolved)  # fail now, not at the first check
    _chosen = resolved


def _sources() -> tuple[str, ...] | None:
    if _chosen is not _UNSET:
        return _chosen
    env = os.environ.get(LEDGER_ENV, "").strip()
    if not env:
        return (BOOK,)
    if env.lower() == "none":
        return None
    return tuple(BOOK if part == BOOK else part for part in env.split(os.pathsep) if part)


def _merge(sources: tuple[str, ...]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for src in sources:
        out.update(load_ledger(None if src == BOOK else src))
    return out


def active_ledger() -> dict[str, dict] | None:
    """The entries :func:`check` uses now (see :func:`use_ledger`); ``None`` when there is no ledger."""
    sources = _sources()
    return None if sources is None else _merge(sources)


def get(claim_id: str) -> dict:
    """Return the entry ``claim_id`` of the active ledger; raise ``ValueError`` if there is none."""
    ledger = active_ledger()
    if ledger is None:
        raise ValueError(f"no ledger is in use (use_ledger(None) or {LEDGER_ENV}=none), so there is no "
                         f"entry {claim_id!r}")
    if claim_id not in ledger:
        where = ", ".join(_sources() or ())
        raise ValueError(f"unknown claim id {claim_id!r}: add it to the ledger first (in use: {where})")
    return ledger[claim_id]


def results_dir() -> Path:
    """Where measured values are written: ``$CAUSALBOOK_RESULTS`` or ``<repo>/results/claims``."""
    env = os.environ.get("CAUSALBOOK_RESULTS")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parent.parent
    if (repo / "_config.yml").exists():
        return repo / "results" / "claims"
    return Path.cwd() / "results" / "claims"


def _fmt(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if v == 0 or 1e-3 <= abs(v) < 1e5:
            return f"{v:.6g}"
        return f"{v:.4e}"
    if isinstance(v, (list, tuple, np.ndarray)):
        return "[" + ", ".join(_fmt(x) for x in list(np.asarray(v, dtype=object).ravel())) + "]"
    return str(v)


def describe_criterion(entry: dict) -> str:
    """A one-line human reading of a ledger entry's criterion."""
    c = entry["criterion"]
    op = c["op"]
    if op == "close":
        target = c.get("target", entry["paper"])
        parts = []
        if c.get("atol"):
            parts.append(f"{_fmt(c['atol'])}")
        if c.get("rtol"):
            parts.append(f"{_fmt(c['rtol'])}·|target|")
        return f"|ours − {_fmt(target)}| ≤ " + " + ".join(parts or ["0"])
    if op in _COMPARISONS:
        return f"ours {op} {_fmt(c['threshold'])}"
    if op == "between":
        return f"{_fmt(c['low'])} ≤ ours ≤ {_fmt(c['high'])}"
    return f"ours = {_fmt(c['target'])}"


def _to_jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _to_jsonable(x) for k, x in v.items()}
    if hasattr(v, "detach"):
        v = v.detach().cpu().numpy()
    if isinstance(v, np.ndarray):
        return _to_jsonable(v.tolist())
    if isinstance(v, (list, tuple)):
        return [_to_jsonable(x) for x in v]
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, (np.floating, float)):
        v = float(v)
        return v if math.isfinite(v) else str(v)
    return v


def _evaluate(entry: dict, value: Any) -> bool:
    c = entry["criterion"]
    op = c["op"]
    if op == "equals":
        return _to_jsonable(value) == _to_jsonable(c["target"])
    try:
        ours = np.asarray(_to_jsonable(value), dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"claim {entry['id']!r} needs a numeric value, got {value!r}") from exc
    if not np.all(np.isfinite(ours)):
        return False
    if op == "close":
        target = np.asarray(c.get("target", entry["paper"]), dtype=float)
        if ours.shape != target.shape:
            raise ValueError(f"claim {entry['id']!r}: value has shape {ours.shape}, expected {target.shape}")
        tol = float(c.get("atol", 0.0)) + float(c.get("rtol", 0.0)) * np.abs(target)
        return bool(np.all(np.abs(ours - target) <= tol))
    if op in _COMPARISONS:
        return bool(np.all(_COMPARISONS[op](ours, float(c["threshold"]))))
    return bool(np.all((ours >= float(c["low"])) & (ours <= float(c["high"]))))


class ClaimRecord(dict):
    """The record :func:`check` returns: a dict that does not echo itself as a cell's last value
    (the check already showed its table)."""

    def _ipython_display_(self):
        pass


def strict_mode() -> bool:
    """True when ``$CAUSALBOOK_STRICT`` is ``1``: a failed claim raises instead of showing a box."""
    return os.environ.get(STRICT_ENV, "").strip() == "1"


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency of the book
        return False
    return get_ipython() is not None


def _show(row: dict) -> None:
    if _in_notebook():
        from html import escape

        from IPython.display import HTML, display

        head = "".join(f"<th>{escape(k)}</th>" for k in row)
        cells = "".join(f"<td>{escape(str(v))}</td>" for v in row.values())
        display(HTML(f'<table class="claim-check"><thead><tr>{head}</tr></thead>'
                     f"<tbody><tr>{cells}</tr></tbody></table>"))
        return
    print("  ".join(f"{k}: {v}" for k, v in row.items()))


#: What a reader sees when a claim does not hold in their run (reader mode). Inline styles, so the
#: box is visible in JupyterLab, Colab and the HTML book alike.
_FAILED_BOX = (
    '<div class="claim-failed admonition warning" style="border-left:6px solid #d55e00;'
    'background:#fff4e5;color:#222;padding:0.6em 1em;margin:0.5em 0">'
    '<p class="admonition-title" style="font-weight:bold;margin:0 0 0.3em 0">'
    "Claim {claim}: does not hold in this run</p>"
    "<p style=\"margin:0\">Paper: {paper}<br>Ours: {ours}<br>Criterion: {criterion}</p>"
    '<p style="margin:0.3em 0 0 0">{why}</p></div>'
)
_WHY = ("The chapter goes on. Results can move with the seed (CAUSALBOOK_SEED), the number of "
        "threads and the CPU or GPU; the Reproduction status page of the book says in how many "
        "runs this claim held. Set CAUSALBOOK_STRICT=1 to make a failed claim stop the chapter.")


def _show_failure(claim_id: str, entry: dict, record: dict) -> None:
    fields = {"claim": claim_id, "paper": _fmt(entry["paper"]), "ours": _fmt(record["value"]),
              "criterion": record["criterion"]}
    if _in_notebook():
        from html import escape

        from IPython.display import HTML, display

        display(HTML(_FAILED_BOX.format(**{k: escape(v) for k, v in fields.items()}, why=escape(_WHY))))
        return
    print(f"CLAIM {claim_id} DOES NOT HOLD IN THIS RUN: paper {fields['paper']}, ours {fields['ours']}, "
          f"criterion {fields['criterion']}. {_WHY}")


def check(claim_id: str, value: Any, *, details: dict | None = None, show: bool = True) -> dict:
    """Check a measured value against the ledger entry ``claim_id``.

    Shows paper / ours / criterion as a one-row table, writes ``results/claims/<id>.json`` with
    the keys ``id``, ``value``, ``paper``, ``criterion``, ``status``, ``chapter``, ``passed``
    (and ``details`` when given) and returns that record.

    When the criterion fails, strict mode (``CAUSALBOOK_STRICT=1``) raises; reader mode shows a box
    that says the claim does not hold in this run and returns the record (``passed`` is False).

    Raises:
        ValueError: the id is not in the ledger, or the value has the wrong type or shape.
        AssertionError: strict mode only, the value does not meet the criterion. The record is
            written first, so the reproduction-status page shows the failure.
    """
    if _sources() is None:
        return _record_only(claim_id, value, details, show)
    entry = get(claim_id)
    passed = _evaluate(entry, value)
    record = _write_record(claim_id, value, details, paper=_to_jsonable(entry["paper"]),
                           criterion=describe_criterion(entry), status=entry["status"],
                           chapter=entry["chapter"], passed=passed)
    if show:
        _show({"claim": claim_id, "paper": _fmt(entry["paper"]), "ours": _fmt(record["value"]),
               "criterion": record["criterion"], "status": entry["status"],
               "check": "pass" if passed else "FAIL"})
    if not passed:
        if strict_mode():
            raise AssertionError(f"claim {claim_id!r} failed: ours = {_fmt(record['value'])}, "
                                 f"criterion {record['criterion']} (paper: {_fmt(entry['paper'])})")
        _show_failure(claim_id, entry, record)
    return record


def _write_record(claim_id: str, value: Any, details: dict | None, **fields) -> ClaimRecord:
    """Write ``results/claims/<id>.json`` (id, value, paper, criterion, status, chapter, passed,
    checked_at and details when given) and return the record."""
    record = ClaimRecord({"id": claim_id, "value": _to_jsonable(value), **fields,
                          "checked_at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    if details is not None:
        record["details"] = _to_jsonable(details)
    out = results_dir()
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{claim_id}.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    return record


def _record_only(claim_id: str, value: Any, details: dict | None, show: bool) -> dict:
    """No ledger in use: show and record the value; there is nothing to check it against."""
    if not isinstance(claim_id, str) or not claim_id:
        raise ValueError(f"a claim id must be a non-empty string, got {claim_id!r}")
    record = _write_record(claim_id, value, details, paper=None, criterion="none (no ledger in use)",
                           status="unchecked", chapter=None, passed=None)
    if show:
        _show({"claim": claim_id, "ours": _fmt(record["value"]), "check": "none (no ledger in use)"})
    return record


def load_results(directory: str | os.PathLike | None = None) -> dict[str, dict]:
    """Read every ``<id>.json`` written by :func:`check`, keyed by claim id."""
    d = Path(directory) if directory is not None else results_dir()
    out = {}
    if d.exists():
        for f in sorted(d.glob("*.json")):
            try:
                rec = json.loads(f.read_text(encoding="utf-8"))
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and "id" in rec:
                out[rec["id"]] = rec
    return out
