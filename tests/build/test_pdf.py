"""The whole-book PDF (``make pdf``): every chapter title is in it, no raw TeX is left, and it has as
many images as the single-page HTML it was printed from has figures. Uses ``pdftotext`` and
``pdfimages`` (Debian's poppler-utils); skips without them or without a built PDF, except on CI."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.build._common import ROOT
from tests.notebooks import chapter_sources

PDF = Path(os.environ.get("CAUSALBOOK_PDF", ROOT / "_build" / "pdf" / "causalbook.pdf"))
SINGLE = Path(os.environ.get("CAUSALBOOK_SINGLEHTML", ROOT / "_build" / "singlehtml"))
#: TeX that MathJax should have typeset; a backslash before it (``\\frac`` in a docstring) is code.
RAW_TEX = re.compile(r"(?<!\\)(\\frac|\\\(|\\\)|\\\[|\$\$)")


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{tool} is missing on CI: apt-get install poppler-utils")
        pytest.skip(f"{tool} is not installed (poppler-utils)")
    return path


@pytest.fixture(scope="module")
def text() -> str:
    if not PDF.exists():
        pytest.skip(f"{PDF} is not built: run `make pdf`")
    out = subprocess.run([_need("pdftotext"), "-enc", "UTF-8", str(PDF), "-"],
                         capture_output=True, text=True, check=True).stdout
    return out


def _flat(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip()


def test_every_chapter_title_is_in_the_pdf(text):
    flat = _flat(text)
    for source in chapter_sources():
        title = next(ln[2:] for ln in source.read_text(encoding="utf-8").splitlines() if ln.startswith("# "))
        assert _flat(title) in flat, f"{source.stem}: title {title!r} is not in the PDF"


def test_no_raw_tex_remains(text):
    hits = [text[max(0, m.start() - 60):m.end() + 30] for m in RAW_TEX.finditer(text)]
    assert not hits, f"raw TeX in the PDF: {hits[:5]}"


def test_pages_are_numbered(text):
    pages = text.split("\f")
    total = len([p for p in pages if p.strip()])
    assert total > 50, f"only {total} pages"
    assert f"1 / {total}" in pages[0] and f"{total} / {total}" in pages[total - 1]


def test_figure_count_matches_the_html(text):
    """Every raster figure (PNG, JPEG) of the single-page HTML is an image in the PDF. An SVG figure
    (the instructors' chapter graph) is printed as vector paths and text, which ``pdfimages`` does not
    list: each one must show its text in the PDF instead."""
    listing = subprocess.run([_need("pdfimages"), "-list", str(PDF)],
                             capture_output=True, text=True, check=True).stdout.splitlines()
    images = [ln for ln in listing[2:] if ln.split()[2:3] == ["image"]]
    # the page that _ext/book_pdf.py printed: the single page, copied to the top (its links are
    # relative to the top, although Sphinx writes it as book/intro.html)
    page = SINGLE / "cb-print.html"
    if not page.exists():
        pytest.skip(f"{page} is not built: run `make pdf`")
    html = page.read_text(encoding="utf-8")
    sources = re.findall(r'<img[^>]+src="([^"]*_images/[^"]+)"', html)
    raster = [src for src in sources if not src.lower().endswith(".svg")]
    vector = [src for src in sources if src.lower().endswith(".svg")]
    assert len(images) == len(raster), f"{len(images)} images in the PDF, {len(raster)} raster figures in the HTML"
    flat = _flat(text)
    for src in vector:
        svg = (SINGLE / src.split("?")[0]).read_text(encoding="utf-8")
        words = [_flat(w) for w in re.findall(r"<text[^>]*>([^<]+)", svg) if len(w.strip()) > 3]
        assert words, f"{src}: an SVG figure without text cannot be found in the PDF"
        missing = [w for w in words if w not in flat]
        assert len(missing) <= len(words) // 10, f"{src}: {len(missing)} of its {len(words)} labels are not in the PDF"
