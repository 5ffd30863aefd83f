"""Headless Chromium helpers: serve the built book on localhost, dump rendered DOMs, take screenshots.

Usage for a person: ``python -m tests.build.browser screenshot notebooks/01-structural-causal-models out.png``.
"""
from __future__ import annotations

import contextlib
import functools
import http.server
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from tests.build._common import HTML

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--mute-audio"]


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@contextlib.contextmanager
def serve(directory: Path = HTML):
    """Serve ``directory`` on 127.0.0.1 at a free port; yield the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


def _run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    exe = chromium()
    if exe is None:
        raise RuntimeError("Chromium is not installed")
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([exe, *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout)


def dump_dom(url: str, budget_ms: int = 20000) -> str:
    """The DOM after scripts ran (MathJax typesets within the virtual-time budget)."""
    return _run([f"--virtual-time-budget={budget_ms}", "--dump-dom", url]).stdout


def screenshot(url: str, out: Path, width: int = 1280, height: int = 2400, budget_ms: int = 20000) -> Path:
    _run([f"--virtual-time-budget={budget_ms}", f"--window-size={width},{height}", f"--screenshot={out}", url])
    return out


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "screenshot":
        page, out = sys.argv[2], Path(sys.argv[3]).resolve()
        height = int(sys.argv[4]) if len(sys.argv) > 4 else 2400
        with serve() as base:
            print(screenshot(f"{base}/{page}.html", out, height=height))
    else:
        print(__doc__)
