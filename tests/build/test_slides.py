"""The reveal.js deck of chapter 01 (``_ext/slides.py``) in headless Chromium: reveal.js starts, the
deck has its slides, figures with alt text, math typeset by the vendored MathJax, no console error,
and no request leaves localhost. The deck is written into a temporary folder (with its own copy of
the vendored reveal.js and MathJax) from chapter 01's executed notebook: the book's execution cache
after ``make build``, or ``_build/executed`` after ``python -m tests.notebooks run``. Screenshots of
the title slide and of the first figure slide go to ``_build/slides-test/``.

Skips with the reason when Chromium, Playwright, the vendored reveal.js (``make reveal``) or MathJax
(``make mathjax``), or an executed chapter 01 is missing.
"""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.build import browser
from tests.build._common import ROOT

CHAPTER = ROOT / "notebooks" / "01-structural-causal-models.md"
CHROMIUM = Path("/usr/bin/chromium")
REVEAL = ROOT / "_vendor" / "reveal.js" / "dist" / "reveal.js"
MATHJAX = ROOT / "_vendor" / "mathjax" / "tex-chtml.js"
ARTEFACTS = ROOT / "_build" / "slides-test"
#: MyST that must not reach a slide as text.
RAW_MYST = ["{cite}", "{glue", "{eq}", "{ref}", "{doc}", "{prf:", "```", ":label:", "{math}", "{exercise}"]


def _slides_module():
    if "slides" not in sys.modules:
        spec = importlib.util.spec_from_file_location("slides", ROOT / "_ext" / "slides.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["slides"] = module
        spec.loader.exec_module(module)
    return sys.modules["slides"]


def _skip_reason() -> str | None:
    if not CHROMIUM.exists():
        return f"Chromium is not installed at {CHROMIUM} (Debian package 'chromium')"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed in this environment"
    if not REVEAL.exists():
        return f"reveal.js is not vendored ({REVEAL.relative_to(ROOT)} is missing): run `make reveal`"
    if not MATHJAX.exists():
        return f"MathJax is not vendored ({MATHJAX.relative_to(ROOT)} is missing): run `make mathjax`"
    import jupytext

    where, nb, _ = _slides_module().executed_notebook(CHAPTER, jupytext.read(CHAPTER).cells)
    if nb is None:
        return (f"no executed notebook of {CHAPTER.stem}: run `make build` or "
                f"`python -m tests.notebooks run {CHAPTER.relative_to(ROOT)}`")
    return None


@pytest.fixture(scope="module")
def deck(tmp_path_factory) -> Path:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("slides")
    proc = subprocess.run([sys.executable, str(ROOT / "_ext" / "slides.py"), "--out", str(out), "01"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"slides.py failed:\n{proc.stdout}\n{proc.stderr}"
    path = out / f"{CHAPTER.stem}.html"
    assert path.exists(), f"slides.py wrote no {path.name}:\n{proc.stdout}\n{proc.stderr}"
    return path


@pytest.fixture(scope="module")
def shown(deck):
    """The deck opened in headless Chromium over http on 127.0.0.1: a dict of what the page did."""
    from playwright.sync_api import sync_playwright

    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    with browser.serve(deck.parent) as base, sync_playwright() as pw:
        chrome = pw.chromium.launch(executable_path=str(CHROMIUM),
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = chrome.new_page(viewport={"width": 1280, "height": 800})
            errors: list[str] = []
            requests: list[str] = []
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
            page.on("requestfailed", lambda req: errors.append(f"request failed: {req.url} {req.failure}"))
            page.on("request", lambda req: requests.append(req.url))
            page.on("response", lambda r: errors.append(f"HTTP {r.status}: {r.url}") if r.status >= 400
                    else None)
            page.goto(f"{base}/{deck.name}", wait_until="load")
            page.wait_for_function("() => window.Reveal && Reveal.isReady()", timeout=60_000)
            page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise",
                                   timeout=60_000)
            page.evaluate("() => MathJax.startup.promise")
            page.wait_for_load_state("networkidle")
            state = page.evaluate("""() => ({
                total: Reveal.getTotalSlides(),
                math: document.querySelectorAll('.reveal mjx-container').length,
                images: [...document.querySelectorAll('.reveal .slides img')].map(i => ({
                    alt: i.getAttribute('alt') || '', data: i.src.startsWith('data:image/'),
                    slide: [...document.querySelectorAll('.reveal .slides > section')]
                        .indexOf(i.closest('section'))})),
                text: document.querySelector('.reveal .slides').innerText,
            })""")
            shots = [ARTEFACTS / "01-title.png"]
            page.screenshot(path=str(shots[0]))
            figure_slides = [i["slide"] for i in state["images"] if i["slide"] >= 0]
            if figure_slides:
                page.evaluate(f"() => Reveal.slide({figure_slides[0]})")
                page.wait_for_timeout(500)
                shots.append(ARTEFACTS / "01-figure.png")
                page.screenshot(path=str(shots[1]))
            page.close()
        finally:
            chrome.close()
    return {**state, "errors": errors, "requests": requests, "base": base, "shots": shots}


def test_reveal_initialised_with_slides(shown):
    assert shown["total"] > 3, f"only {shown['total']} slides"


def test_figures_have_alt_text(shown):
    figures = [i for i in shown["images"] if i["data"]]
    assert figures, "no embedded figure in the deck"
    assert any(i["alt"].strip() for i in figures), "no figure has an alt text"
    assert all(i["alt"].strip() for i in figures), f"figures without alt text: {figures}"


def test_mathjax_typeset(shown):
    assert shown["math"] > 0, "MathJax typeset no formula (no mjx-container)"
    for raw in ("\\(", "\\["):
        assert raw not in shown["text"], f"raw TeX {raw!r} left on a slide"


def test_no_console_errors(shown):
    assert not shown["errors"], "console errors:\n" + "\n".join(shown["errors"])


def test_no_request_leaves_localhost(shown):
    away = [u for u in shown["requests"] if not (u.startswith(shown["base"] + "/") or u.startswith("data:"))]
    assert not away, f"requests leaving localhost: {away}"


def test_no_raw_myst_on_slides(shown):
    left = [s for s in RAW_MYST if s in shown["text"]]
    assert not left, f"MyST syntax left on the slides: {left}"
    assert not re.search(r"\{[\w:-]+\}`", shown["text"]), "a MyST role is left on the slides"


def test_screenshots_taken(shown):
    for shot in shown["shots"]:
        assert shot.stat().st_size > 10_000, f"{shot} looks empty"


# --- the generator on a small chapter of its own (no browser) ------------------------------------

SMALL_CHAPTER = '''---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
    format_version: 0.13
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# A small chapter

An introduction that cites {cite}`chattopadhyay2019`.

**Learning goals.** After this chapter you can

- state $x = 1$;
- draw a figure.

## First section

The value is {glue:text}`small-value:.2f` here. This sentence has a {glue:text}`small-missing` value. See {doc}`01-structural-causal-models` and {cite:t}`chattopadhyay2019` for more.

```{math}
:label: small-eq
a = b + c
```

```{code-cell} ipython3
:tags: [hide-input]
draw_the_figure(title="a tiny figure")
```

## Second section

Not this paragraph: the chapter tags a cell of this section.

+++ {"tags": ["slide"]}

Only this cell, with an equation $$c = d$$ and a list:

- one item

+++

After the tagged cell.

## Summary

- The summary's only point.

## References

```{bibliography}
:filter: docname in docnames
```
'''
#: A 1x1 PNG.
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def test_generator_on_a_small_chapter(tmp_path):
    import nbformat

    slides = _slides_module()
    source = tmp_path / "99-small.md"
    source.write_text(SMALL_CHAPTER, encoding="utf-8")
    executed = tmp_path / "executed"
    executed.mkdir()
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell('draw_the_figure(title="a tiny figure")')
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={"application/papermill.record/text/plain": "3.14159"},
                               metadata={"scrapbook": {"name": "small-value",
                                                       "mime_prefix": "application/papermill.record/"}}),
        nbformat.v4.new_output("display_data", data={"image/png": PIXEL, "text/plain": "<Figure>"}),
    ]
    nb.cells = [cell]
    nbformat.write(nb, executed / "99-small.ipynb")
    out = tmp_path / "out"
    out.mkdir()
    page = slides.write_deck(source, out, executed, "_vendor", slides._book()).read_text(encoding="utf-8")
    sections = re.findall(r"<section[^>]*>(.*?)</section>", page, re.S)
    text = re.sub(r"<[^>]+>", " ", page[page.index('<div class="slides">'):])
    assert len(sections) == 5, f"title, two sections, one figure, summary; got {len(sections)}"
    assert "A small chapter" in sections[0] and "Learning goals" in sections[0] and "\\(x = 1\\)" in sections[0]
    assert "The value is 3.14 here." in text, "the glued value, formatted as the book formats it"
    assert "This sentence" not in text, "a sentence whose glued value is missing is dropped"
    assert "Structural causal models" in text, "{doc} becomes the page's title"
    assert re.search(r"Chattopadhyay <em>et al\.</em> \(2019\)", page), "{cite:t} becomes 'Author (year)'"
    assert "\\[a = b + c\\]" in sections[1], "the section's equation, for MathJax"
    assert re.search(r'<img class="r-stretch" src="data:image/png;base64,[^"]+" alt="Figure: a tiny figure">',
                     sections[2]), "the figure, embedded, with its axes' title as alt text"
    assert "Only this cell" in sections[3] and "\\[c = d\\]" in sections[3] and "<li>one item</li>" in sections[3]
    assert "Not this paragraph" not in text and "After the tagged cell" not in text
    assert "The summary's only point." in sections[4]
    assert "References" not in text, "a section with nothing to show has no slide"
    assert not re.search(r"\{[\w:-]+\}`", text) and "{bibliography}" not in text
