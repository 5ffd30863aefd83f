"""Print the whole book to one PDF: the single-page HTML build, typeset by MathJax in headless
Chromium (the system's, through Playwright), then printed with page numbers, a contents list that
links to every chapter (the root page's own), and the PDF outline (bookmarks). Nothing is downloaded at build time.

Usage::

    python _ext/book_pdf.py --html _build/singlehtml --out _build/pdf/causalbook.pdf

``make pdf`` builds ``_build/singlehtml`` first (from the execution cache of ``make book``).
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import re
import shutil
import sys
import threading
from pathlib import Path

#: Print styles: no navigation, sidebars or buttons; every chapter starts on a new page; closed
#: dropdowns (solutions) stay closed; long code lines wrap; figures are not split across pages.
PRINT_CSS = """
@page { size: A4; margin: 16mm 14mm 18mm 14mm; }
.bd-header, .bd-sidebar-primary, .bd-sidebar-secondary, .header-article, .bd-header-article,
.prev-next-area, .bd-footer, .bd-footer-content, .footer, .skip-link, #pst-skip-link, .toc-drawer,
.sidebar-toggle, .headerlink, .copybtn, .theme-switch-button, .search-button, .article-header-buttons,
#pst-back-to-top, dialog, .bd-sidebar, .sidebar-primary-items__start { display: none !important; }
.bd-main .bd-content .bd-article-container { max-width: 100% !important; }
.bd-container, .bd-page-width { max-width: 100% !important; }
body { font-size: 11pt; }
pre, .highlight pre, .output pre { white-space: pre-wrap !important; overflow-wrap: anywhere; }
img, figure, .cell_output, mjx-container[display="true"] { break-inside: avoid; }
section.cb-chapter { break-before: page; }
h1, h2, h3 { break-after: avoid; }
#cb-pdf-contents { break-after: page; }
#cb-pdf-contents a { text-decoration: none; }
/* Chromium prints a CSS shadow (the theme gives admonitions and dropdowns one, with !important)
   through a raster mask: 399 grey images in the first PDF, none of them a figure. Paper needs no
   shadows. The repeated :root outranks the theme's selectors (up to html[data-theme] .class). */
:root:root:root *, :root:root:root *::before, :root:root:root *::after {
  box-shadow: none !important; text-shadow: none !important; }
"""

#: Mark every top-level document of the single page as a chapter, and put a contents list of their
#: titles (linked) after the title page.
MARK_CHAPTERS_AND_CONTENTS = """() => {
  const titles = new Map();
  for (const mark of document.querySelectorAll('span[id^="document-"]')) {
    const section = mark.nextElementSibling;
    if (!section || section.tagName !== 'SECTION') continue;
    section.classList.add('cb-chapter');
    const heading = section.querySelector('h1, h2');
    if (heading) titles.set(heading.textContent.replace(/#\\s*$/, '').trim(), mark.id);
  }
  // The root page's table of contents (parts and chapters) becomes links to the chapters.
  const toc = document.querySelector('article .toctree-wrapper');
  if (toc) {
    toc.id = 'cb-pdf-contents';
    for (const li of toc.querySelectorAll('li')) {
      const id = titles.get(li.textContent.trim());
      if (id && !li.querySelector('a')) {
        const a = document.createElement('a');
        a.href = '#' + id;
        a.textContent = li.textContent.trim();
        li.replaceChildren(a);
      }
    }
  }
  return titles.size;
}"""

FOOTER = ('<div style="font-size:8pt;width:100%;text-align:center;color:#555">'
          '<span class="pageNumber"></span> / <span class="totalPages"></span></div>')


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def _serve(directory: Path):
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    sys.exit("book_pdf: no Chromium found (apt-get install chromium)")


def _root_page(html: Path) -> str:
    """The single page, copied to the top of ``html``: Sphinx writes it as ``book/intro.html``
    (index.html redirects there) but with links relative to the top. Lazy typesetting is off."""
    target = re.search(r"url=([^\"]+)\"", (html / "index.html").read_text()).group(1)
    page = (html / target).read_text(encoding="utf-8")
    # The site typesets math lazily (as it scrolls into view); the PDF needs all of it at once.
    page = page.replace('"load": ["ui/lazy"]', '"load": []')
    (html / "cb-print.html").write_text(page, encoding="utf-8")
    return "cb-print.html"


def print_book(html: Path, out: Path, timeout_ms: int = 300_000) -> int:
    """Write ``out``; return the number of chapters (top-level sections) printed."""
    from playwright.sync_api import sync_playwright

    out.parent.mkdir(parents=True, exist_ok=True)
    with _serve(html) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_chromium(),
                                     args=["--no-sandbox", "--disable-gpu", "--disable-quic"])
        try:
            page = browser.new_page()
            page.set_default_timeout(timeout_ms)
            page.goto(f"{base}/{_root_page(html)}", wait_until="load")
            page.emulate_media(media="print")
            page.add_style_tag(content=PRINT_CSS)
            page.evaluate("() => MathJax.startup.promise")
            page.evaluate("() => document.fonts.ready.then(() => true)")
            page.wait_for_function(
                "() => [...document.images].every(i => i.complete && i.naturalWidth > 0)")
            chapters = page.evaluate(MARK_CHAPTERS_AND_CONTENTS)
            page.pdf(path=str(out), format="A4", print_background=True, display_header_footer=True,
                     header_template="<span></span>", footer_template=FOOTER,
                     margin={"top": "16mm", "bottom": "18mm", "left": "14mm", "right": "14mm"},
                     outline=True, tagged=True, prefer_css_page_size=True)
        finally:
            browser.close()
    return chapters


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--html", type=Path, default=Path("_build/singlehtml"))
    parser.add_argument("--out", type=Path, default=Path("_build/pdf/causalbook.pdf"))
    args = parser.parse_args(argv)
    if not (args.html / "index.html").exists():
        sys.exit(f"book_pdf: {args.html}/index.html is missing (jupyter-book build . --builder singlehtml)")
    chapters = print_book(args.html, args.out)
    print(f"{args.out}: {chapters} sections, {args.out.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
