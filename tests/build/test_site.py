"""The site folder of ``make site`` (what the publish workflow deploys), crawled offline: every
internal link and anchor resolves, every page has a title, nothing points at a local path, and the
PDF and the plain notebooks are there. ``CAUSALBOOK_SITE`` points the test at another folder."""
from __future__ import annotations

import os
import re
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from tests.build._common import ROOT
from tests.notebooks import chapter_sources

SITE = Path(os.environ.get("CAUSALBOOK_SITE", ROOT / "_build" / "site"))
BASEURL = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))["html"]["baseurl"].rstrip("/") + "/"
#: Folders of assets, not pages (MathJax's own files, the theme's, Sphinx's sources).
NOT_PAGES = ("mathjax/", "_static/", "_sources/", "_images/")
LOCAL_PATH = re.compile(r"^(file:|/(work|tmp|home|root|Users|usr)/)|^[A-Za-z]:\\")


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.title = ""
        self.redirect = False
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name") if tag != "meta" else ():
            if attrs.get(key):
                self.ids.add(attrs[key])
        if tag == "meta" and (attrs.get("http-equiv") or "").lower() == "refresh":
            self.redirect = True  # index.html: Jupyter Book's redirect to the first page
            self.links.append((attrs.get("content") or "").split("url=", 1)[-1])
        for key in ("href", "src"):
            if attrs.get(key) is not None and not (tag == "link" and attrs.get("rel") in ("preconnect", "dns-prefetch")):
                self.links.append(attrs[key])
        self._in_title = tag == "title" or self._in_title

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data


@lru_cache(maxsize=None)
def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8", errors="replace"))
    return page


def _pages() -> list[Path]:
    return sorted(p for p in SITE.rglob("*.html")
                  if not p.relative_to(SITE).as_posix().startswith(NOT_PAGES))


@pytest.fixture(scope="module")
def pages() -> list[Path]:
    if not (SITE / "index.html").exists():
        pytest.skip(f"{SITE} is not assembled: run `make site`")
    return _pages()


def test_the_site_holds_html_pdf_and_notebooks(pages):
    assert (SITE / "causalbook.pdf").stat().st_size > 100_000
    for source in chapter_sources():
        assert (SITE / "notebooks" / f"{source.stem}.html").exists(), source.stem
        assert (SITE / "ipynb" / f"{source.stem}.ipynb").exists(), source.stem
    assert (SITE / ".nojekyll").exists(), "without .nojekyll GitHub Pages drops _static and _images"


def test_every_page_has_a_title(pages):
    untitled = [p.relative_to(SITE).as_posix() for p in pages
                if not _parse(p).title.strip() and not _parse(p).redirect]
    assert not untitled, f"pages without a title: {untitled}"


def test_internal_links_and_anchors_resolve(pages):
    broken: list[str] = []
    checked = 0
    for page in pages:
        for link in _parse(page).links:
            where = f"{page.relative_to(SITE).as_posix()} -> {link}"
            if LOCAL_PATH.search(link):
                broken.append(f"{where} (a local path)")
                continue
            if link.startswith(BASEURL):
                target = SITE / link[len(BASEURL):]
                parts = urlsplit(link)
            else:
                parts = urlsplit(link)
                if parts.scheme or parts.netloc or link.startswith(("mailto:", "javascript:", "data:")):
                    continue
                if link.startswith("/"):
                    broken.append(f"{where} (absolute path: breaks under {BASEURL})")
                    continue
                target = (page.parent / unquote(parts.path)) if parts.path else page
            target = Path(os.path.normpath(target.as_posix().split("?")[0].split("#")[0]))
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{where} (missing {target.relative_to(SITE) if target.is_relative_to(SITE) else target})")
                continue
            checked += 1
            fragment = unquote(parts.fragment)
            if fragment and target.suffix == ".html" and fragment not in _parse(target).ids:
                broken.append(f"{where} (no anchor #{fragment})")
    assert checked > 1000, f"only {checked} internal links found: is the site complete?"
    assert not broken, f"{len(broken)} broken links, first ones:\n" + "\n".join(broken[:30])
