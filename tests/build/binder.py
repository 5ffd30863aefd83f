"""Binder (repo2docker) files derived from the project's own: environment.yml from the lock file,
and the chapter URL that the launch button of sphinx-book-theme opens.

``python -m tests.build.binder > environment.yml`` regenerates environment.yml; a unit test checks
that the committed file is that rendering of the current requirements.lock.
"""
from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import parse_qs, urlparse

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"

#: Binder has no GPU: pip takes torch from PyTorch's CPU index. ``torch==2.13.0`` in the lock matches
#: ``2.13.0+cpu`` there (PEP 440 local versions), and pip prefers the build with the local label.
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"

HEADER = """\
# Generated from requirements.lock by `python -m tests.build.binder > environment.yml`: do not edit.
# Binder (repo2docker) installs it before it copies the repository, so it names no other file of it;
# postBuild then installs causalbook_lib itself and the JupyterLab settings (lab/overrides.json).
"""


def render_environment(lock_text: str) -> str:
    """environment.yml for Binder and conda: Python 3.11 from conda-forge, the lock's exact pins via pip."""
    pins = []
    for line in lock_text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if "==" not in line or line.startswith("-"):
            raise ValueError(f"requirements.lock line is not an exact pin: {line!r}")
        pins.append(line)
    body = [
        "name: causalbook",
        "channels:",
        "  - conda-forge",
        "dependencies:",
        "  - python=3.11",
        "  - pip",
        "  - pip:",
        f"      - --extra-index-url {TORCH_CPU_INDEX}",
        *(f"      - {pin}" for pin in pins),
    ]
    return HEADER + "\n".join(body) + "\n"


# --- the launch button --------------------------------------------------------------------------

#: sphinx-book-theme's prefix for ``launch_buttons.notebook_interface: jupyterlab``.
LAB_PREFIX = "lab/tree"


def chapter_urlpath(source: str) -> str:
    """The ``urlpath`` of a chapter's Binder link, e.g. ``lab/tree/notebooks/01-x.md`` for
    ``notebooks/01-x.md`` (the theme's rule: prefix, path of the source relative to the repository)."""
    return f"{LAB_PREFIX}/{source.strip('/')}"


def urlpath_of_binder_link(href: str) -> str:
    """The ``urlpath`` query parameter of a mybinder.org link."""
    values = parse_qs(urlparse(href).query).get("urlpath")
    if not values:
        raise ValueError(f"no urlpath in Binder link {href!r}")
    return values[0]


def binder_link_in_page(html: str) -> str | None:
    """The Binder launch link in a built page of the book, if the page has one."""
    import re

    for match in re.finditer(r'href="([^"]*?/v2/(?:gh|gl|git)/[^"]*)"', html):
        return match.group(1).replace("&amp;", "&")
    return None


if __name__ == "__main__":
    sys.stdout.write(render_environment(LOCK.read_text(encoding="utf-8")))
