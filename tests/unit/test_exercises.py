"""Self-check of exercises (``cb.exercises``): right and wrong answers, the tolerance edge, bad
inputs, and that the shipped file holds no answer."""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import causalbook_lib as cb
from causalbook_lib import exercises as X

ROOT = Path(__file__).resolve().parents[2]
A_CH01_EX3 = math.sqrt(2 * math.pi / (36 - 2 * math.pi))  # 0.4598...


@pytest.fixture
def custom(monkeypatch):
    """A file of made-up exercises: numeric 1.0 ± 0.01 (step 0.001), exact [True, 'b']."""
    entries = {"t-num": X.make_entry("t-num", 1.0, tolerance=0.01, step=0.001, expects="a number"),
               "t-neg": X.make_entry("t-neg", -2.5, tolerance=0.1),
               "t-exact": X.make_entry("t-exact", [True, "b"], expects="a list")}
    monkeypatch.setattr(X, "_bundled", lambda: X.load(yaml.safe_dump({"exercises": entries})))
    return entries


def test_right_and_wrong_answers(custom):
    assert X.check("t-num", 1.0) and X.check("t-num", 1.004)
    wrong = X.check("t-num", 1.5)
    assert not wrong and wrong.correct is False and "not right" in repr(wrong)
    assert X.check("t-neg", -2.45) and not X.check("t-neg", -2.7) and not X.check("t-neg", 2.5)
    assert X.check("t-exact", [True, "b"]) and X.check("t-exact", (True, "  B "))
    assert not X.check("t-exact", [True, "c"]) and not X.check("t-exact", [False, "b"])


def test_the_tolerance_edge(custom):
    # Accepted: within the tolerance, to the resolution step (a value up to step/2 beyond rounds in).
    for v in (0.99, 1.01, 0.9896, 1.0104):
        assert X.check("t-num", v), v
    for v in (0.9894, 1.0106, 0.989, 1.011):
        assert not X.check("t-num", v), v


def test_numpy_and_torch_scalars(custom):
    assert X.check("t-num", np.float32(1.002)) and X.check("t-num", torch.tensor(0.995))
    assert X.check("t-num", torch.tensor([1.0])) and X.check("t-num", np.array([[1.0]]))
    assert X.check("t-exact", [np.bool_(True), "b"])


@pytest.mark.parametrize("value, message", [
    ("0.46", "expects a number, got str"),
    (True, "expects a number, got bool"),
    (float("nan"), "finite"),
    (float("inf"), "finite"),
    (1 + 2j, "expects a number"),
    (torch.tensor([1.0, 2.0]), "one number"),
    (np.array([1.0, 2.0]), "one number"),
])
def test_bad_numeric_inputs(custom, value, message):
    with pytest.raises(ValueError, match=message):
        X.check("t-num", value)


def test_bad_exact_input_and_unknown_exercises(custom):
    with pytest.raises(ValueError, match="expects a boolean, a string"):
        X.check("t-exact", [1.5])
    with pytest.raises(ValueError, match="did you mean t-num"):
        X.check("t-nun", 1.0)
    with pytest.raises(ValueError, match="no self-check for exercise 'zz'"):
        X.check("zz", 1.0)
    with pytest.raises(ValueError, match="string such as 'ch01-ex-3'"):
        X.check(3, 1.0)


def test_no_answer_yet_says_what_is_expected(custom):
    r = X.check("t-num", None)
    assert r.correct is None and not r and "a number, accepted within ±0.01" in repr(r)
    assert r._repr_markdown_().startswith("✏️")


def test_the_shipped_checks():
    assert cb.exercises is X
    ids = X.exercise_ids()
    assert {"ch01-ex-1", "ch01-ex-3", "ch02-ex-1", "ch02-ex-2"} <= set(ids)
    assert X.check("ch01-ex-3", A_CH01_EX3) and X.check("ch01-ex-3", 0.46)
    assert not X.check("ch01-ex-3", 0.445)  # the answer the book used to print
    assert X.check("ch01-ex-1", 1 / 5.25) and not X.check("ch01-ex-1", 0.0)
    assert X.check("ch02-ex-1", [False, True, False]) and not X.check("ch02-ex-1", [False, True, True])
    assert X.check("ch02-ex-2", [False, True, False])
    # Every shipped exercise exists in the book.
    labels = set(re.findall(r"^:label: (ch\d\d-ex-\d+)", "\n".join(
        p.read_text(encoding="utf-8") for p in (ROOT / "notebooks").glob("[0-9][0-9]-*.md")), re.M))
    assert set(ids) <= labels


def test_the_shipped_file_holds_no_answer():
    text = (ROOT / "causalbook_lib" / "exercises.yml").read_text(encoding="utf-8")
    for answer in ("0.46", "0.459", "0.19", "false", "true", "[f"):
        assert answer not in text.lower(), answer
    data = yaml.safe_load(text)["exercises"]
    for ex_id, e in data.items():
        assert set(e) <= {"kind", "expects", "tolerance", "step", "salt", "iterations", "hashes"}, ex_id
        assert all(re.fullmatch(r"[0-9a-f]{24}", h) for h in e["hashes"]), ex_id
        assert e["hashes"] == sorted(e["hashes"]), ex_id  # order does not tell which one is the centre
    salts = [e["salt"] for e in data.values()]
    assert len(set(salts)) == len(salts)


def test_make_entry_rejects_a_bad_tolerance():
    with pytest.raises(ValueError, match="positive"):
        X.make_entry("x", 1.0, tolerance=0)
