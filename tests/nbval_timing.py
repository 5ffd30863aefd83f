"""pytest plugin for the nbval run: per-notebook durations and peak memory, and a failure past the
time limit.

Loaded with ``-p tests.nbval_timing``. Each chapter's budget is 180 s on 2 cores; a chapter that
takes longer than 1.5 times that (270 s) fails the run. Peak memory is the kernel process's peak
resident set (``VmHWM`` in ``/proc/<pid>/status``, Linux only), read after every cell; the budget
is 1.5 GB (Binder gives about 2 GB).
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from tests.kernels import patch_nbval
from tests.notebooks import BUDGET_SECONDS, LIMIT_SECONDS

# nbval's kernels talk over Unix sockets: two chapters start their kernels at once (tests/kernels.py).
patch_nbval()

_durations: dict[str, float] = defaultdict(float)
_peaks: dict[str, float] = {}
MEMORY_BUDGET_MB = 1536


def _kernel_peak_mb(item) -> float | None:
    """Peak resident memory of the notebook's kernel so far, in MB (None where it cannot be read)."""
    kernel = getattr(getattr(item, "parent", None), "kernel", None)
    proc = getattr(getattr(getattr(kernel, "km", None), "provisioner", None), "process", None)
    pid = getattr(proc, "pid", None)
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def pytest_runtest_teardown(item, nextitem):
    peak = _kernel_peak_mb(item)
    if peak is not None:
        name = Path(str(item.fspath)).name
        _peaks[name] = max(_peaks.get(name, 0.0), peak)


def pytest_runtest_logreport(report):
    _durations[Path(report.nodeid.split("::")[0]).name] += report.duration


def _over():
    return {k: v for k, v in _durations.items() if v > LIMIT_SECONDS}


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _durations:
        return
    tr = terminalreporter
    tr.section("notebook durations and peak memory")
    for name, seconds in sorted(_durations.items()):
        flag = "  OVER LIMIT" if seconds > LIMIT_SECONDS else ("  over budget" if seconds > BUDGET_SECONDS else "")
        peak = _peaks.get(name)
        mem = f"{peak:6.0f} MB" if peak is not None else "     ? MB"
        if peak is not None and peak > MEMORY_BUDGET_MB:
            flag += "  over the memory budget"
        tr.write_line(f"{seconds:7.1f} s {mem}  {name}{flag}")
    tr.write_line(f"{sum(_durations.values()):7.1f} s  total (budget {BUDGET_SECONDS:.0f} s a chapter, "
                  f"limit {LIMIT_SECONDS:.0f} s)")
    for name, seconds in _over().items():
        tr.write_line(f"FAILED: {name} took {seconds:.1f} s, over the {LIMIT_SECONDS:.0f} s limit", red=True)


def pytest_sessionfinish(session, exitstatus):
    if _over() and session.exitstatus == 0:
        session.exitstatus = 1
