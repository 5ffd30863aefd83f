"""``make notebooks``: nbval over every chapter, several chapters at a time, one thread each.

Most chapters train small models that gain little from a second thread, so two chapters side by
side on one thread each finish sooner than one chapter after another on two threads, and the cores
are never oversubscribed (jobs x threads = cores). Each chapter runs in its own pytest process
with the timing plugin (``-p tests.nbval_timing``: seconds, peak memory, the per-chapter limit);
the longest chapters start first (the order of ``_ext/execute_book.py``, which runs the book's
strict build the same way).

Usage::

    python -m tests.nbval_parallel [--jobs 2] DIR      # DIR holds the converted .ipynb files
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_LINE = re.compile(r"^\s*[0-9.]+ s\s+\S+ MB\s+\S+\.ipynb.*$", re.M)


def _execute_book():
    """``_ext/execute_book.py`` (not a package: loaded by path)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("execute_book", ROOT / "_ext" / "execute_book.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(nb: Path) -> tuple[Path, int, str, float]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.nbval_timing", "--nbval-lax",
                           "--nbval-current-env", "--nbval-cell-timeout=600", "-o", "testpaths=", "-q", str(nb)],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    return nb, proc.returncode, proc.stdout + proc.stderr, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be >= 1")
    notebooks = _execute_book().longest_first(sorted(args.directory.glob("*.ipynb")))
    if not notebooks:
        parser.error(f"no .ipynb files in {args.directory}")
    start = time.perf_counter()
    failed, lines = [], []
    with ThreadPoolExecutor(args.jobs) as pool:
        for nb, code, out, wall in pool.map(_run, notebooks):
            found = _LINE.findall(out)
            lines += found or [f"{wall:7.1f} s      ? MB  {nb.name}"]
            status = "ok" if code == 0 else "FAILED"
            print(f"{status:>6}  {nb.name}  ({wall:.0f} s wall)", flush=True)
            if code != 0:
                failed.append(nb.name)
                print(out[-6000:], flush=True)
    print("\nnotebook durations and peak memory (one thread each, "
          f"{args.jobs} at a time; {time.perf_counter() - start:.0f} s in all):")
    for line in sorted(lines, key=lambda ln: re.search(r"\S+\.ipynb", ln).group(0)):
        print(line)
    if failed:
        print(f"FAILED: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
