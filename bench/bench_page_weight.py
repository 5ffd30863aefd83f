"""Benchmark of the book's first page load (issue "Publish the book": at most 40 requests, 3 MB and
math typeset within 1 s on localhost, for chapter 01).

Requests and bytes do not depend on the machine, so ``tests/build/test_browser.py`` asserts them.
The typeset time does: it is measured here and printed as a ratio to its target, never asserted.
Needs a built book (``make book``) and Chromium.

Usage::

    .venv/bin/python bench/bench_page_weight.py [--page notebooks/01-structural-causal-models] [--runs 5]
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.build import page_weight  # noqa: E402
from tests.build.test_browser import FIRST_LOAD_BYTES, FIRST_LOAD_REQUESTS  # noqa: E402

#: The issue's goal for the time from navigation start until MathJax has typeset the page.
TYPESET_TARGET_MS = 1000.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--page", default=page_weight.FIRST_CHAPTER)
    parser.add_argument("--runs", type=int, default=5, help="first loads, each in a fresh browser context")
    args = parser.parse_args(argv)
    loads = page_weight.first_loads(args.page, runs=args.runs)
    typeset = [load.typeset_ms for load in loads]
    first = loads[0]
    print(f"{args.page}: {len(loads)} first loads on localhost")
    print(f"  requests   {first.requests:6d}   target {FIRST_LOAD_REQUESTS:6d}   ratio {first.requests / FIRST_LOAD_REQUESTS:.2f}")
    print(f"  megabytes  {first.bytes / 1e6:6.2f}   target {FIRST_LOAD_BYTES / 1e6:6.2f}   "
          f"ratio {first.bytes / FIRST_LOAD_BYTES:.2f}")
    print(f"  typeset ms {statistics.median(typeset):6.0f}   target {TYPESET_TARGET_MS:6.0f}   "
          f"ratio {statistics.median(typeset) / TYPESET_TARGET_MS:.2f}   (median; min {min(typeset):.0f}, "
          f"max {max(typeset):.0f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
