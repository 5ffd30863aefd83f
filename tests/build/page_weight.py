"""The first load of a built page in headless Chromium (Playwright): requests, bytes, and the time
from navigation start until MathJax has typeset the page.

Usage for a person: ``python -m tests.build.page_weight [notebooks/01-structural-causal-models] [html dir]``.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from tests.build import browser
from tests.build._common import HTML

FIRST_CHAPTER = "notebooks/01-structural-causal-models"

_TYPESET = """() => (window.MathJax && MathJax.startup ? MathJax.startup.promise : Promise.resolve())
    .then(() => performance.now())"""


@dataclass
class Load:
    requests: int
    bytes: int
    typeset_ms: float
    urls: list[str]

    def __str__(self):
        return (f"{self.requests} requests, {self.bytes / 1e6:.2f} MB, "
                f"math typeset after {self.typeset_ms:.0f} ms")


def first_loads(page: str = FIRST_CHAPTER, html: Path = HTML, runs: int = 3) -> list[Load]:
    """``runs`` first loads of ``page`` (each in a fresh browser context, so nothing is cached)."""
    from playwright.sync_api import sync_playwright

    loads = []
    with browser.serve(html) as base, sync_playwright() as pw:
        chrome = pw.chromium.launch(executable_path=browser.chromium(),
                                    args=["--no-sandbox", "--disable-gpu", "--disable-quic"])
        try:
            for _ in range(runs):
                context = chrome.new_context()
                tab = context.new_page()
                done: list = []
                tab.on("requestfinished", lambda request: done.append(request))
                tab.goto(f"{base}/{page}.html", wait_until="load")
                typeset = tab.evaluate(_TYPESET)
                tab.wait_for_load_state("networkidle")
                size = 0
                for request in done:
                    sizes = request.sizes()
                    size += sizes["responseBodySize"] + sizes["responseHeadersSize"]
                loads.append(Load(len(done), size, typeset, [r.url.replace(base, "") for r in done]))
                context.close()
        finally:
            chrome.close()
    return loads


if __name__ == "__main__":
    page = sys.argv[1] if len(sys.argv) > 1 else FIRST_CHAPTER
    html = Path(sys.argv[2]) if len(sys.argv) > 2 else HTML
    for load in first_loads(page, html):
        print(load)
