"""A clean build of the whole book with -n -W --keep-going: zero warnings, every notebook executed."""
from __future__ import annotations

import json
import time

from tests.build._common import HTML, ROOT, run_build
from tests.notebooks import chapter_sources


def test_clean_book_build():
    log = ROOT / "_build" / "logs" / "book-build.log"
    start = time.perf_counter()
    code, warnings = run_build(log=log)
    seconds = time.perf_counter() - start
    print(f"\nbook build: {seconds:.0f} s (log: {log})")
    assert not warnings, "the book build warned:\n" + "\n".join(warnings[:60])
    assert code == 0, f"jupyter-book build exited with {code}; see {log}"
    for src in chapter_sources():
        page = HTML / "notebooks" / f"{src.stem}.html"
        assert page.exists(), f"{page} was not built"
    assert (HTML / "book" / "reproduction-status.html").exists()


def test_every_claim_was_checked_in_the_build():
    """After a clean build every ledger claim has a result, and every result passed."""
    import causalbook_lib as cb

    ledger = cb.claims.load_ledger()
    results = cb.claims.load_results()
    missing = sorted(set(ledger) - set(results))
    assert not missing, f"ledger claims no notebook checked in this build: {missing}"
    failed = sorted(k for k, r in results.items() if not r.get("passed"))
    assert not failed, f"claims that failed: {failed}: " + json.dumps([results[k] for k in failed])[:2000]
