"""Figures of the built HTML book are numbered, captioned and described (issue 16, item 6).

For every chapter page in ``_build/html/notebooks`` (``CAUSALBOOK_HTML`` points at another HTML
folder, for example a mini-book's ``_build/mini/<stem>/_build/html``): every content image (an
``<img>`` of the article whose file lies in ``_images/``, which is where cell outputs and figure
directives put theirs) sits inside a ``<figure>`` whose ``<figcaption>`` carries a figure number
("Fig. 3.2") and a caption text, and has ``alt`` text that describes it: at least
``MIN_ALT_WORDS`` words, and not a generic default (MyST-NB's default is the image's own path).

Skipped when the book is not built. The checker itself is tested on hand-written snippets, so a
broken page is known to fail.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.build._common import HTML as BUILT_HTML
from tests.notebooks import chapter_sources

HTML = Path(os.environ.get("CAUSALBOOK_HTML") or BUILT_HTML)
#: Fewer words than this is a label, not a description of what the figure shows.
MIN_ALT_WORDS = 5
#: Alt texts that say nothing about the image.
GENERIC_ALT = {"png", "jpg", "jpeg", "svg", "image", "img", "figure", "fig", "plot", "graph", "chart",
               "output", "picture", "untitled", "none", "alt"}
FIGURE_NUMBER = re.compile(r"^Fig(?:ure)?\.?\s*\d+(?:\.\d+)*\s*$")


@dataclass
class Image:
    src: str
    alt: str | None
    line: int
    figure: int | None  # index into the page's figures, None outside every figure


@dataclass
class Figure:
    line: int
    ident: str
    number: str = ""
    caption: str = ""
    images: list[int] = field(default_factory=list)


class _FigurePage(HTMLParser):
    """Collect the images of the ``<article>`` and the figures (number, caption text) they sit in.

    Only ``article``, ``figure``, ``figcaption`` and the caption-number span are tracked as open
    elements (Sphinx always closes them), so void and unclosed elements elsewhere do not matter."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.images: list[Image] = []
        self.figures: list[Figure] = []
        self._article = 0
        self._open: list[int] = []  # indices of the open <figure>s, innermost last
        self._caption = 0
        self._number = 0
        self._spans = 0  # <span> depth inside a caption (to find the end of the number span)
        self._number_depth = -1

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "article":
            self._article += 1
        elif tag == "figure":
            self.figures.append(Figure(line=self.getpos()[0], ident=a.get("id") or ""))
            self._open.append(len(self.figures) - 1)
        elif tag == "figcaption" and self._open:
            self._caption += 1
        elif tag == "span" and self._caption:
            self._spans += 1
            if "caption-number" in (a.get("class") or "").split():
                self._number_depth = self._spans
        elif tag == "img" and self._article:
            figure = self._open[-1] if self._open else None
            self.images.append(Image(src=a.get("src") or "", alt=a.get("alt"), line=self.getpos()[0], figure=figure))
            if figure is not None:
                self.figures[figure].images.append(len(self.images) - 1)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag):
        if tag == "article" and self._article:
            self._article -= 1
        elif tag == "figure" and self._open:
            self._open.pop()
        elif tag == "figcaption" and self._caption:
            self._caption -= 1
        elif tag == "span" and self._caption:
            if self._spans == self._number_depth:
                self._number_depth = -1
            self._spans -= 1

    def handle_data(self, data):
        if self._caption and self._open:
            fig = self.figures[self._open[-1]]
            if self._number_depth != -1:
                fig.number += data
            else:
                fig.caption += data


def _is_content(image: Image) -> bool:
    return "_images/" in image.src


def _alt_problem(image: Image) -> str | None:
    alt = " ".join((image.alt or "").split())
    if not alt:
        return "no alt text"
    name = image.src.rsplit("/", 1)[-1]
    if alt.lower() in GENERIC_ALT or alt in (image.src, name) or alt.endswith(name) \
            or re.fullmatch(r"[\w./-]+\.(png|jpe?g|svg|gif|webp)", alt, re.I):
        return f"generic alt text {alt[:60]!r}"
    words = re.findall(r"[A-Za-z0-9][\w'-]*", alt)
    if len(words) < MIN_ALT_WORDS:
        return f"alt text {alt!r} has {len(words)} word(s), fewer than {MIN_ALT_WORDS}: describe what the figure shows"
    return None


def figure_problems(html: str) -> list[str]:
    """Every way the content images of one HTML page miss a numbered, captioned figure or alt text."""
    page = _FigurePage()
    page.feed(html)
    page.close()
    problems = []
    for image in filter(_is_content, page.images):
        where = f"line {image.line}: <img src={image.src.rsplit('/', 1)[-1][:24]}...>"
        if image.figure is None:
            problems.append(f"{where} is not inside a <figure> (give its cell mystnb.figure caption and name)")
        else:
            fig = page.figures[image.figure]
            number = " ".join(fig.number.split())
            if not " ".join(fig.caption.split()):
                problems.append(f"{where}: its <figure> (line {fig.line}) has no caption text")
            if not FIGURE_NUMBER.match(number):
                problems.append(f"{where}: its <figure> (line {fig.line}) has no figure number in the caption"
                                f" (got {number!r})")
        alt = _alt_problem(image)
        if alt:
            problems.append(f"{where}: {alt}")
    return problems


# ---------------------------------------------------------------------------------------------
# The checker, on hand-written pages (no build needed)

_GOOD = """<html><body><img alt="Binder logo" src="../_static/images/logo_binder.svg">
<article class="bd-article"><div class="cell_output docutils container">
<figure class="align-default" id="fig-ch01-demo"><div class="output">
<img alt="Two lines of the mean of y against alpha cross at the origin." src="../_images/abc123.png" />
</div><figcaption><p><span class="caption-number">Fig. 1.2 </span><span class="caption-text">Seeing
against <span class="math">\\(do\\)</span>.</span><a class="headerlink" href="#fig-ch01-demo">#</a></p>
</figcaption></figure></div><p>Text<br>more text.</p></article></body></html>"""


def test_checker_accepts_a_numbered_captioned_described_figure():
    assert figure_problems(_GOOD) == []


@pytest.mark.parametrize("broken, expected", [
    # MyST-NB's default: a bare output image, its path as alt text
    ('<article><div class="output"><img alt="../_images/abc123.png" src="../_images/abc123.png" /></div></article>',
     ["not inside a <figure>", "generic alt text"]),
    ('<article><figure><img alt="png" src="../_images/a.png"><figcaption><p>'
     '<span class="caption-number">Fig. 2 </span><span class="caption-text">A caption.</span></p></figcaption>'
     '</figure></article>', ["generic alt text 'png'"]),
    ('<article><figure><img alt="A plot." src="../_images/a.png"><figcaption><p>'
     '<span class="caption-number">Fig. 2 </span><span class="caption-text">A caption.</span></p></figcaption>'
     '</figure></article>', ["fewer than"]),
    ('<article><figure><img src="../_images/a.png"><figcaption><p>'
     '<span class="caption-text">A caption without a number.</span></p></figcaption></figure></article>',
     ["no figure number", "no alt text"]),
    ('<article><figure><img alt="Bars of the admission rate for six departments." src="../_images/a.png">'
     '<figcaption><p><span class="caption-number">Fig. 4.1 </span></p></figcaption></figure></article>',
     ["no caption text"]),
    ('<article><figure><img alt="Bars of the admission rate for six departments." src="../_images/a.png">'
     '</figure></article>', ["no caption text", "no figure number"]),
])
def test_checker_rejects_broken_figures(broken, expected):
    problems = figure_problems(broken)
    assert len(problems) == len(expected), problems
    for problem, fragment in zip(problems, expected):
        assert fragment in problem, (fragment, problems)


def test_checker_ignores_images_outside_the_article_and_not_in_images():
    page = ('<header><img alt="logo" src="../_images/logo.png"></header>'
            '<article><img alt="icon" src="../_static/icon.svg"></article>')
    assert figure_problems(page) == []


# ---------------------------------------------------------------------------------------------
# The built book

_PAGES = HTML / "notebooks"


@pytest.mark.parametrize("source", chapter_sources(), ids=lambda p: p.stem)
def test_every_chapter_figure_is_numbered_captioned_and_described(source):
    # Checked when the test runs, not when it is collected: `make build` runs this file right after
    # test_book.py, in the same session, and test_book.py builds the book.
    if not _PAGES.is_dir():
        pytest.skip(f"no built HTML book in {HTML}")
    page = _PAGES / f"{source.stem}.html"
    assert page.exists(), f"{page} is missing from the built book"
    problems = figure_problems(page.read_text(encoding="utf-8"))
    assert not problems, f"{source.name}: {len(problems)} figure problem(s):\n" + "\n".join(problems)
