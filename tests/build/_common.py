"""Shared paths and the Jupyter Book command for the build tests."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"
#: A Sphinx warning or error line ("path:line: WARNING: ..."), not a kernel's log line.
SPHINX_PROBLEM = re.compile(r"(^|: )(WARNING|ERROR|CRITICAL|SEVERE): ")
JUPYTER_BOOK = Path(sys.executable).with_name("jupyter-book")


def run_build(*extra: str, log: Path | None = None) -> tuple[int, list[str]]:
    """Run ``jupyter-book build . -n -W --keep-going`` (plus ``extra``); return (code, warning lines)."""
    cmd = [str(JUPYTER_BOOK), "build", str(ROOT), "--nitpick", "--warningiserror", "--keep-going", *extra]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(out, encoding="utf-8")
    warnings = [ln for ln in out.splitlines() if SPHINX_PROBLEM.search(ln)]
    return proc.returncode, warnings
