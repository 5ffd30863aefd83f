"""Unit tests of the claims machinery (cb.claims) on a temporary ledger."""
import json

import numpy as np
import pytest
import yaml

from causalbook_lib import claims


def _ledger(tmp_path, entries):
    p = tmp_path / "claims.yml"
    p.write_text(yaml.safe_dump({"claims": entries}))
    return p


BASE = dict(citation="chattopadhyay2019", where="Sec. 2", statement="s", chapter="03-x", status="reproduces")


@pytest.fixture
def ledger(tmp_path, monkeypatch):
    entries = [
        dict(BASE, id="a", paper=[3.4985, 7.4985], criterion={"op": "close", "atol": 5e-5}),
        dict(BASE, id="b", paper="at least 0.6 nats", criterion={"op": ">=", "threshold": 0.6}),
        dict(BASE, id="c", paper=True, criterion={"op": "equals", "target": True}),
        dict(BASE, id="d", paper="within [-1, 1]", status="differs", explanation="softmax",
             criterion={"op": "between", "low": 1.0, "high": 100.0}),
        dict(BASE, id="e", paper=2.0, status="beyond", criterion={"op": "close", "rtol": 0.1, "target": 1.0}),
    ]
    path = _ledger(tmp_path, entries)
    monkeypatch.setattr(claims, "LEDGER_PATH", path)
    monkeypatch.setenv("CAUSALBOOK_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("CAUSALBOOK_STRICT", "1")
    return tmp_path


def test_check_passes_and_writes_the_record(ledger):
    rec = claims.check("a", np.array([3.49851, 7.49849]), show=False)
    assert rec["passed"] is True
    saved = json.loads((ledger / "results" / "a.json").read_text())
    assert {"id", "value", "paper", "passed"} <= set(saved)
    assert saved["value"] == pytest.approx([3.49851, 7.49849])


def test_check_fails_loudly_but_records_the_failure(ledger):
    with pytest.raises(AssertionError, match="claim 'a' failed"):
        claims.check("a", [3.5, 7.5], show=False)
    assert json.loads((ledger / "results" / "a.json").read_text())["passed"] is False


@pytest.mark.parametrize("cid,good,bad", [("b", 0.63, 0.59), ("c", True, False), ("d", 5.3, 0.5),
                                           ("e", 1.05, 1.2)])
def test_each_criterion(ledger, cid, good, bad):
    assert claims.check(cid, good, show=False)["passed"]
    with pytest.raises(AssertionError):
        claims.check(cid, bad, show=False)


@pytest.mark.parametrize("value", ["", "0", "true", "yes"])
def test_reader_mode_shows_the_failure_and_goes_on(ledger, monkeypatch, capsys, value):
    monkeypatch.setenv("CAUSALBOOK_STRICT", value)
    assert not claims.strict_mode()
    rec = claims.check("a", [3.5, 7.5], show=False)
    assert rec["passed"] is False
    out = capsys.readouterr().out
    assert "CLAIM a DOES NOT HOLD IN THIS RUN" in out and "criterion |ours" in out
    assert json.loads((ledger / "results" / "a.json").read_text())["passed"] is False
    # a passing claim prints no box
    claims.check("a", [3.4985, 7.4985], show=False)
    assert "DOES NOT HOLD" not in capsys.readouterr().out


def test_reader_mode_box_in_a_real_kernel(ledger, monkeypatch):
    """Executed by a real Jupyter kernel, a failed claim shows the HTML box and later cells still run;
    with CAUSALBOOK_STRICT=1 the same notebook stops with an error."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    from tests.kernels import IpcKernelManager

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(
            "from causalbook_lib import claims; from pathlib import Path\n"
            f"claims.LEDGER_PATH = Path({str(ledger / 'claims.yml')!r})\n"
            "rec = claims.check('b', 0.1)"),
        nbformat.v4.new_code_cell("print('after', rec['passed'])"),
    ])
    monkeypatch.delenv("CAUSALBOOK_STRICT")
    NotebookClient(nb, timeout=60, kernel_name="python3", kernel_manager_class=IpcKernelManager).execute()
    html = "".join(o.get("data", {}).get("text/html", "") for o in nb.cells[0].outputs)
    assert "claim-failed" in html and "does not hold in this run" in html and "ours &gt;= 0.6" in html
    assert nb.cells[1].outputs[0]["text"] == "after False\n"
    monkeypatch.setenv("CAUSALBOOK_STRICT", "1")
    with pytest.raises(CellExecutionError, match="claim 'b' failed"):
        NotebookClient(nb, timeout=60, kernel_name="python3", kernel_manager_class=IpcKernelManager).execute()


def test_nan_never_passes(ledger):
    with pytest.raises(AssertionError):
        claims.check("b", float("nan"), show=False)


def test_unknown_id_and_wrong_shape_are_value_errors(ledger):
    with pytest.raises(ValueError, match="unknown claim id"):
        claims.check("zzz", 1.0, show=False)
    with pytest.raises(ValueError, match="shape"):
        claims.check("a", [1.0], show=False)


@pytest.mark.parametrize("bad,msg", [
    (dict(BASE, id="x", paper=1.0, criterion={"op": "close"}), "atol"),
    (dict(BASE, id="x", paper=1.0, criterion={"op": "~"}), "unknown criterion"),
    (dict(BASE, id="x", paper=1.0, criterion={"op": ">="}), "threshold"),
    (dict(BASE, id="x", paper=1.0, status="maybe", criterion={"op": ">=", "threshold": 0}), "status"),
    (dict(BASE, id="x", paper=1.0, status="differs", criterion={"op": ">=", "threshold": 0}), "explanation"),
    (dict(BASE, id="x", paper=1.0, status="demonstration", criterion={"op": ">=", "threshold": 0}), "by construction"),
    (dict(BASE, id="x", paper=1.0, status="degenerate", criterion={"op": ">=", "threshold": 0}), "degenerate regime"),
    ({"id": "x"}, "lacks"),
])
def test_ledger_validation(tmp_path, bad, msg):
    with pytest.raises(ValueError, match=msg):
        claims.load_ledger(_ledger(tmp_path, [bad]))


def test_duplicate_ids_are_rejected(tmp_path):
    e = dict(BASE, id="x", paper=1.0, criterion={"op": ">=", "threshold": 0})
    with pytest.raises(ValueError, match="twice"):
        claims.load_ledger(_ledger(tmp_path, [e, e]))


def test_describe_criterion_reads_well():
    e = dict(BASE, id="a", paper=[3.4985, 7.4985], criterion={"op": "close", "atol": 5e-5})
    assert claims.describe_criterion(e) == "|ours − [3.4985, 7.4985]| ≤ 5.0000e-05"


# ---- a ledger of one's own (instructors) -------------------------------------------------------

@pytest.fixture
def own_ledger(ledger, tmp_path, monkeypatch):
    monkeypatch.delenv(claims.LEDGER_ENV, raising=False)
    course = tmp_path / "course"
    course.mkdir()
    path = _ledger(course, [dict(BASE, id="a", paper=1.0, criterion={"op": "close", "atol": 0.1}),
                            dict(BASE, id="z", paper=5.0, criterion={"op": ">=", "threshold": 4.0})])
    yield path
    claims.use_ledger()


def test_own_ledger_replaces_or_extends_the_books(own_ledger):
    claims.use_ledger(own_ledger)
    assert claims.check("a", 1.05, show=False)["passed"]      # the course's criterion, not the book's
    with pytest.raises(ValueError, match="unknown claim id 'b'"):
        claims.check("b", 0.63, show=False)                   # the book's entries are gone
    claims.use_ledger("book", own_ledger)
    assert claims.check("b", 0.63, show=False)["passed"]      # the book's entries are back
    assert claims.check("z", 4.5, show=False)["passed"]       # and the course's added ones
    assert claims.check("a", 1.05, show=False)["passed"]      # a course entry replaces the book's
    claims.use_ledger()
    with pytest.raises(ValueError, match="shape"):
        claims.check("a", 1.05, show=False)                   # default: the book's own entry again


def test_own_ledger_from_the_environment(own_ledger, monkeypatch):
    import os

    monkeypatch.setenv(claims.LEDGER_ENV, os.pathsep.join(["book", str(own_ledger)]))
    assert claims.check("z", 4.5, show=False)["passed"]
    monkeypatch.setenv(claims.LEDGER_ENV, "none")
    assert claims.active_ledger() is None


def test_no_ledger_records_values_and_never_fails(own_ledger, tmp_path):
    claims.use_ledger(None)
    rec = claims.check("anything-at-all", [1.0, 2.0], show=False)
    assert rec["passed"] is None and rec["status"] == "unchecked"
    assert json.loads((tmp_path / "results" / "anything-at-all.json").read_text())["value"] == [1.0, 2.0]


def test_use_ledger_validates_its_sources(own_ledger, tmp_path):
    with pytest.raises(ValueError, match="no ledger at"):
        claims.use_ledger(tmp_path / "missing.yml")
    with pytest.raises(ValueError, match="takes no other source"):
        claims.use_ledger(None, own_ledger)
    bad = tmp_path / "bad.yml"
    bad.write_text("claims: [{id: x}]\n")
    with pytest.raises(ValueError):
        claims.use_ledger(bad)
