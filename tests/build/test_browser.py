"""A real browser reads every built chapter: math rendered by the local MathJax, figures present,
no error output. Without Chromium the test skips, except on CI (CI=true), where it fails."""
from __future__ import annotations

import os
import re
from html.parser import HTMLParser

import pytest

from tests.build import browser
from tests.build._common import HTML
from tests.notebooks import chapter_sources

PAGES = [f"notebooks/{p.stem}" for p in chapter_sources()] + [
    "book/intro", "book/notation", "book/reproduction-status", "book/for-instructors"]


class _Text(HTMLParser):
    """Visible text of a page (outside script, style, and MathJax's own output)."""

    SKIP = {"script", "style", "mjx-container", "noscript", "template"}

    def __init__(self):
        super().__init__()
        self.depth = 0
        self.parts: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.depth += 1

    def handle_endtag(self, tag):
        if tag in self.SKIP and self.depth:
            self.depth -= 1

    def handle_data(self, data):
        if not self.depth:
            self.parts.append(data)


@pytest.fixture(scope="module")
def base_url():
    if browser.chromium() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Chromium is missing on CI: .ci/run must install it")
        pytest.skip("Chromium is not installed")
    if not (HTML / "index.html").exists():
        pytest.fail("the book is not built: run `make build` first")
    with browser.serve() as url:
        yield url


def test_mathjax_is_served_locally():
    page = (HTML / "notebooks" / f"{chapter_sources()[0].stem}.html").read_text()
    src = re.findall(r'<script[^>]+src="([^"]*tex-chtml[^"]*)"', page)
    assert src and not any(s.startswith("http") for s in src), f"MathJax must be local, got {src}"


@pytest.mark.parametrize("page", PAGES)
def test_page_renders(base_url, page):
    source = (HTML / f"{page}.html").read_text()
    dom = browser.dump_dom(f"{base_url}/{page}.html")
    assert "</html>" in dom, f"Chromium returned no DOM for {page}"
    parser = _Text()
    parser.feed(dom)
    text = " ".join(parser.parts)
    has_math = 'class="math' in source or "\\(" in source or "\\[" in source
    if has_math:
        assert "<mjx-container" in dom, f"{page}: MathJax did not typeset the math"
        for raw in ("\\(", "\\[", "$$"):
            assert raw not in text, f"{page}: raw TeX {raw!r} remains after rendering"
    assert "Traceback (most recent call last)" not in text, f"{page} shows a Python traceback"
    assert not re.search(r'class="[^"]*\b(traceback|output error)\b', dom), f"{page} shows error output"
    if page.startswith("notebooks/"):
        imgs = re.findall(r'<img[^>]+src="([^"]+)"', dom)
        figures = [s for s in imgs if "_images/" in s or s.startswith("data:image")]
        assert figures, f"{page} shows no figure"
        for s in figures:
            if not s.startswith("data:"):
                target = (HTML / page).parent / s
                assert target.resolve().exists(), f"{page}: figure {s} is missing"
