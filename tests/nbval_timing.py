"""pytest plugin for the nbval run: per-notebook durations, and a failure past the time limit.

Loaded with ``-p tests.nbval_timing``. Each chapter's budget is 180 s on 2 cores; a chapter that
takes longer than 1.5 times that (270 s) fails the run.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from tests.notebooks import BUDGET_SECONDS, LIMIT_SECONDS

_durations: dict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report):
    _durations[Path(report.nodeid.split("::")[0]).name] += report.duration


def _over():
    return {k: v for k, v in _durations.items() if v > LIMIT_SECONDS}


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _durations:
        return
    tr = terminalreporter
    tr.section("notebook durations")
    for name, seconds in sorted(_durations.items()):
        flag = "  OVER LIMIT" if seconds > LIMIT_SECONDS else ("  over budget" if seconds > BUDGET_SECONDS else "")
        tr.write_line(f"{seconds:7.1f} s  {name}{flag}")
    tr.write_line(f"{sum(_durations.values()):7.1f} s  total (budget {BUDGET_SECONDS:.0f} s a chapter, "
                  f"limit {LIMIT_SECONDS:.0f} s)")
    for name, seconds in _over().items():
        tr.write_line(f"FAILED: {name} took {seconds:.1f} s, over the {LIMIT_SECONDS:.0f} s limit", red=True)


def pytest_sessionfinish(session, exitstatus):
    if _over() and session.exitstatus == 0:
        session.exitstatus = 1
