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


def build_wheel(dest: Path) -> Path:
    """Build causalbook_lib's wheel into ``dest`` from a copy of the library (setuptools then writes
    nothing into the repository); return the wheel's path."""
    import shutil

    src = dest / "src"
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "causalbook_lib", src / "causalbook_lib",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(dest), f"{src}/"], check=True, capture_output=True)
    (wheel,) = dest.glob("causalbook_lib-*.whl")
    return wheel


def ext_module(name: str):
    """The module ``_ext/<name>.py`` (``_ext`` is not a package: loaded by path, once)."""
    import importlib.util

    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "_ext" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def ipynb_export():
    """The exporter module ``_ext/ipynb_export.py``."""
    return ext_module("ipynb_export")
