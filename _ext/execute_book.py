"""Execute the book's chapters into MyST-NB's execution cache, several at a time, one thread each.

Jupyter Book executes notebooks one after another, each on all cores. The chapters train small
models that gain little from a second thread, so two chapters side by side on one thread each
finish in about half the time (jobs x threads = cores: the cores are never oversubscribed).
This script does that before ``jupyter-book build``: it reads each chapter exactly as MyST-NB
reads it, executes it as MyST-NB would (``notebooks/`` as working directory, the timeout and error
settings of ``_config.yml``), and stores the result in ``_build/.jupyter_cache``. The build then
finds every chapter in the cache ("Using cached notebook") and executes nothing. Chapters whose
code cells have not changed since the cache was filled are not run again.

A chapter that fails (in strict mode a failed claim is a failure) is reported with its traceback,
the others still run, and the exit status is 1.

Usage::

    python _ext/execute_book.py [--jobs 2] [chapter.md ...]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "_build" / ".jupyter_cache"

#: Typical one-thread seconds of each chapter (this script's run of 2026-11-28, seed 0, native path,
#: two chapters side by side), used only to start the longest chapters first; a chapter missing here
#: counts as 60 s.
TYPICAL_SECONDS = {
    "01": 8, "02": 7, "03": 9, "04": 25, "05": 74, "06": 20, "07": 11, "08": 45, "09": 25,
    "10": 59, "11": 20, "12": 34, "13": 87, "14": 10, "15": 54, "16": 33, "17": 24,
}


def longest_first(paths: list[Path]) -> list[Path]:
    """``paths`` ordered by their chapter's typical run time, longest first."""
    return sorted(paths, key=lambda p: -TYPICAL_SECONDS.get(p.name[:2], 60))


def _execute_config() -> dict:
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    execute = config.get("execute", {})
    return {"timeout": execute.get("timeout", 30), "allow_errors": execute.get("allow_errors", False),
            "extensions": set(config.get("parse", {}).get("myst_enable_extensions", []))}


def read_chapter(path: Path) -> nbformat.NotebookNode:
    """The chapter as MyST-NB's reader builds it (the cache is keyed on its code cells and kernel)."""
    from myst_nb.core.read import read_myst_markdown_notebook
    from myst_parser.config.main import MdParserConfig

    config = MdParserConfig(enable_extensions=_execute_config()["extensions"])
    return read_myst_markdown_notebook(path.read_text(encoding="utf-8"), config=config,
                                       add_source_map=True, path=path)


def _execute_one(path: Path, out: Path) -> int:
    """Worker: execute one chapter and write the executed notebook and its run time to ``out``."""
    from jupyter_cache.executors.utils import single_nb_execution

    sys.path.insert(0, str(ROOT))
    from tests.kernels import IpcKernelManager  # no TCP ports, so no port clash with the other chapters' kernels

    settings = _execute_config()
    nb = read_chapter(path)
    result = single_nb_execution(nb, cwd=str(path.parent), timeout=settings["timeout"],
                                 allow_errors=settings["allow_errors"], meta_override=True,
                                 kernel_manager_class=IpcKernelManager)
    if result.err is not None:
        sys.stderr.write(result.exc_string or repr(result.err))
        return 1
    nbformat.write(nb, out)
    out.with_suffix(".json").write_text(json.dumps({"seconds": result.time}), encoding="utf-8")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2, help="chapters at a time (default 2)")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("chapters", nargs="*", type=Path)
    args = parser.parse_args(argv)
    if args.one is not None:
        return _execute_one(args.one.resolve(), args.out)
    if args.jobs < 1:
        parser.error("--jobs must be >= 1")

    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    chapters = [p.resolve() for p in args.chapters] or sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.md"))
    cache = get_cache(str(CACHE))
    todo = []
    for path in chapters:
        try:
            cache.match_cache_notebook(read_chapter(path))
        except KeyError:
            todo.append(path)
    print(f"execute: {len(chapters) - len(todo)} chapters already in the cache, {len(todo)} to run, "
          f"{args.jobs} at a time on one thread each", flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    start = time.perf_counter()

    with tempfile.TemporaryDirectory() as tmp:
        def run(path: Path) -> tuple[Path, int, str, Path]:
            out = Path(tmp) / f"{path.stem}.ipynb"
            proc = subprocess.run([sys.executable, __file__, "--one", str(path), "--out", str(out)],
                                  cwd=ROOT, env=env, capture_output=True, text=True)
            return path, proc.returncode, proc.stdout + proc.stderr, out

        failed = []
        with ThreadPoolExecutor(args.jobs) as pool:
            for path, code, log, out in pool.map(run, longest_first(todo)):
                if code != 0:
                    failed.append(path.name)
                    print(f"FAILED  {path.name}\n{log[-6000:]}", flush=True)
                    continue
                seconds = json.loads(out.with_suffix(".json").read_text())["seconds"]
                # The cache is written from this process only (one writer for its SQLite database).
                cache.cache_notebook_bundle(CacheBundleIn(nbformat.read(out, as_version=4), str(path),
                                                          data={"execution_seconds": seconds}),
                                            check_validity=False, overwrite=True)
                print(f"    ok  {path.name}  {seconds:.0f} s", flush=True)
    print(f"execute: {len(todo) - len(failed)} chapters run in {time.perf_counter() - start:.0f} s", flush=True)
    if failed:
        print(f"FAILED: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
