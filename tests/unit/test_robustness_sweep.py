"""tests/robustness.py's table judges every recorded value by the ledger's current criterion."""
import json

from tests import robustness


def _record(run_dir, cid, value, passed):
    (run_dir / "claims").mkdir(parents=True)
    (run_dir / "chapters").mkdir(parents=True)
    (run_dir / "claims" / f"{cid}.json").write_text(json.dumps({"id": cid, "value": value, "passed": passed}))
    (run_dir / "chapters" / "13-generative-causal-explanations.json").write_text(json.dumps(
        {"run": run_dir.name, "chapter": "13-generative-causal-explanations", "ok": True, "seconds": 1.0,
         "peak_mb": 1.0}))


def test_summary_uses_the_current_criterion(tmp_path, capsys):
    # ch13-alg1-lambda asks for >= 0.05 today; a run recorded 0.05 as failed under an older criterion,
    # and 0.02 fails under both.
    _record(tmp_path / "runs" / "a", "ch13-alg1-lambda", 0.05, False)
    _record(tmp_path / "runs" / "b", "ch13-alg1-lambda", 0.02, True)
    summary = robustness.summarise(tmp_path)
    row = summary["claims"]["ch13-alg1-lambda"]
    assert (row["runs"], row["passed"], row["failed_in"]) == (2, 1, ["b"])
    assert json.loads((tmp_path / "summary.json").read_text())["claims"]["ch13-alg1-lambda"]["passed"] == 1
