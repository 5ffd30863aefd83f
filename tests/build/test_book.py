"""A clean build of the whole book with -n -W --keep-going: zero warnings, every notebook executed."""
from __future__ import annotations

import json
import os
import re
import time

import yaml

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
    # `make build` executed every chapter beforehand (_ext/execute_book.py, two at a time); the
    # build must have found each one in the cache, or the pre-execution keyed it differently.
    log_text = log.read_text(encoding="utf-8")
    executed = re.findall(r"(\S+): Executing notebook", log_text)
    assert "Executing notebook" not in log_text, (
        f"the build executed chapters itself ({executed}): _ext/execute_book.py's cache keys do not match MyST-NB's")


def test_every_claim_was_checked_in_the_build():
    """After a clean build every ledger claim has a result, and every result passed."""
    import causalbook_lib as cb

    ledger = cb.claims.load_ledger()
    results = cb.claims.load_results()
    missing = sorted(set(ledger) - set(results))
    assert not missing, f"ledger claims no notebook checked in this build: {missing}"
    failed = sorted(k for k, r in results.items() if not r.get("passed"))
    assert not failed, f"claims that failed: {failed}: " + json.dumps([results[k] for k in failed])[:2000]


#: The repository of ``_config.yml`` (its one definition) and the ref the launch buttons open.
REPO = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))["repository"]["url"].rstrip("/")
LAUNCH_REF = (os.environ.get("CAUSALBOOK_LAUNCH_REF", "").strip()
              or yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))["repository"]["branch"])


def test_launch_and_download_buttons_offer_the_plain_notebook():
    """Binder and Colab open notebooks/NN.ipynb on the stable branch (not the moving main, not the .md
    that Colab cannot open); the download button's .ipynb is the plain notebook (install cell first)."""
    import re

    import nbformat

    for src in chapter_sources():
        page = (HTML / "notebooks" / f"{src.stem}.html").read_text(encoding="utf-8")
        binder = re.search(r'href="(https://mybinder\.org/[^"]+)"', page).group(1)
        colab = re.search(r'href="(https://colab\.research\.google\.com/[^"]+)"', page).group(1)
        assert binder.endswith(f"/{LAUNCH_REF}?urlpath=lab/tree/notebooks/{src.stem}.ipynb"), binder
        assert colab.endswith(f"/blob/{LAUNCH_REF}/notebooks/{src.stem}.ipynb"), colab
        # edits and issues go to the source .md on main, in the repository _config.yml names
        edit = re.search(r'href="([^"]+/edit/[^"]+)"', page).group(1)
        assert edit == f"{REPO}/edit/main/notebooks/{src.stem}.md", edit
        assert re.search(rf'href="{re.escape(REPO)}/issues/new\?', page), f"{src.stem}: no issues button"
        nb = nbformat.read(HTML / "_sources" / "notebooks" / f"{src.stem}.ipynb", as_version=4)
        assert "find_spec(\"causalbook_lib\")" in nb.cells[0].source, f"{src.stem}: the download is not the plain notebook"
        assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code")


def test_chapters_are_numbered_through_the_book_and_the_index_is_not_empty():
    """Parts I-V are numbered toctrees, and chapter numbers run on across parts (Sphinx alone would
    restart them in each part): chapter NN's title, sections, figures and exercises carry NN. The
    glossary's terms fill the general index."""
    for src in chapter_sources():
        n = int(src.stem[:2])
        page = (HTML / "notebooks" / f"{src.stem}.html").read_text(encoding="utf-8")
        titles = re.findall(r"<h1>(.*?)</h1>", page, re.S)  # the theme's header, then the article's
        assert any(re.match(rf'<span class="section-number">{n}\. </span>', t) for t in titles), (
            f"{src.stem}: the title is not numbered {n}: {[t[:100] for t in titles]}")
        numbers = re.findall(r'class="(?:section|caption)-number">(?:Fig\. |Exercise )?(\d+)\.\d', page)
        assert numbers and set(numbers) == {str(n)}, f"{src.stem}: numbers of another chapter {sorted(set(numbers))}"
    index = (HTML / "genindex.html").read_text(encoding="utf-8")
    entries = re.findall(r'<li><a href="[^"]*glossary\.html#term-', index)
    assert len(entries) >= 30, f"the general index has {len(entries)} glossary entries"
