"""Helpers to find, convert and execute the book's MyST notebooks.

Used by the test suite (nbval runs over the converted notebooks) and from the command line::

    python -m tests.notebooks run notebooks/03-gradients-and-ig.md   # execute one, print timings
    python -m tests.notebooks convert DEST                             # write every .ipynb to DEST
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
#: The per-chapter budget is 180 s on 2 cores; tests fail a chapter at 1.5 times that.
BUDGET_SECONDS = 180.0
LIMIT_SECONDS = 1.5 * BUDGET_SECONDS


def chapter_sources() -> list[Path]:
    """Every chapter notebook (``notebooks/NN-*.md``), in book order."""
    return sorted(p for p in NOTEBOOK_DIR.glob("[0-9][0-9]-*.md"))


def convert(src: Path, dest_dir: Path) -> Path:
    """Convert one MyST notebook to ``dest_dir/<stem>.ipynb`` and return the new path."""
    nb = jupytext.read(src)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    dest_dir.mkdir(parents=True, exist_ok=True)
    out = dest_dir / f"{src.stem}.ipynb"
    nbformat.write(nb, out)
    return out


#: Appended to the executed copy only: the kernel's own peak resident memory, in MB.
_PEAK_CELL = ("import resource as _r, sys as _s\n"
              "print('__peak_mb__', _r.getrusage(_r.RUSAGE_SELF).ru_maxrss / (2**20 if _s.platform == 'darwin' else 2**10))")


def execute(src: Path, out_dir: Path | None = None) -> tuple[float, float]:
    """Execute one MyST notebook in ``notebooks/`` as cwd; return (seconds, peak MB of the kernel).

    Raises on a failing cell (in strict mode a failed claim is one)."""
    from nbclient import NotebookClient

    from tests.kernels import IpcKernelManager

    nb = jupytext.read(src)
    nb.cells.append(nbformat.v4.new_code_cell(_PEAK_CELL))
    client = NotebookClient(nb, timeout=600, kernel_name="python3", kernel_manager_class=IpcKernelManager,
                            resources={"metadata": {"path": str(src.parent)}})
    start = time.perf_counter()
    peak = float("nan")
    try:
        client.execute()
    finally:
        seconds = time.perf_counter() - start
        last = nb.cells.pop()
        text = "".join(o.get("text", "") for o in last.get("outputs", []) if o.get("name") == "stdout")
        found = re.search(r"__peak_mb__\s+([0-9.eE+-]+)", text)  # the stream may arrive in pieces
        if found:
            peak = float(found.group(1))
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, out_dir / f"{src.stem}.ipynb")
    return seconds, peak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="execute notebooks and print their durations")
    run.add_argument("paths", nargs="*", type=Path)
    run.add_argument("--json", action="store_true", help="print one JSON line per chapter (seconds, peak_mb, ok)")
    conv = sub.add_parser("convert", help="convert every chapter to .ipynb in DEST")
    conv.add_argument("dest", type=Path)
    args = parser.parse_args(argv)
    if args.cmd == "convert":
        for src in chapter_sources():
            print(convert(src, args.dest))
        return 0
    failed = 0
    for src in args.paths or chapter_sources():
        try:
            seconds, peak = execute(src.resolve(), ROOT / "_build" / "executed")
            over = seconds > LIMIT_SECONDS
            if args.json:
                print(json.dumps({"chapter": src.stem, "seconds": seconds, "peak_mb": peak, "ok": True}), flush=True)
            else:
                flag = "" if not over else f"  OVER the {LIMIT_SECONDS:.0f} s limit"
                print(f"{src.name}: {seconds:.1f} s, peak {peak:.0f} MB{flag}", flush=True)
            failed += over
        except Exception as exc:  # report and go on to the next notebook
            failed += 1
            if args.json:
                print(json.dumps({"chapter": src.stem, "ok": False, "error": str(exc)[-3000:]}), flush=True)
            else:
                print(f"{src.name}: FAILED\n{exc}", flush=True)
    if not args.json:
        print(f"executed output in {ROOT / '_build' / 'executed'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
