"""Prose is computation: no chapter types a run-dependent number into its text.

Every decimal number and percentage in a chapter's prose (Markdown cells, inline math, exercise and
solution text; not code cells, display equations, inline code or glue roles) must be either

* glued from the cell that computed it (``{glue:text}`key:fmt```), or
* listed for that chapter in ``tests/typed_numbers.yml`` under one of
  ``paper`` (a number quoted from a source paper), ``setup`` (a parameter the chapter chooses:
  a noise level, a learning rate, a threshold) or ``exact`` (a closed-form or exact value that
  no run can change, such as 1/2 or 2 - 12a/sqrt(2 pi (1 + a^2))).

A typed number that a run produced fails this test, because a reader on another machine or seed
would see a page that contradicts its own output.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = ROOT / "tests" / "typed_numbers.yml"
CATEGORIES = ("paper", "setup", "exact")

_CODE_CELL = re.compile(r"^```\{code-cell\}.*?^```[ \t]*$", re.S | re.M)
_DISPLAY_MATH = re.compile(r"^```\{math\}.*?^```[ \t]*$|\$\$.*?\$\$", re.S | re.M)
_FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.S)
_ROLES = re.compile(r"\{(glue:[a-z]+|glue|cite[a-z:]*|doc|ref|numref|eq|prf:ref|download|label)\}`[^`]*`")
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_DIRECTIVE_OPTIONS = re.compile(r"^:[a-z-]+:.*$", re.M)
_URL = re.compile(r"https?://\S+")
#: A decimal (0.5, .25, 1e-3 is not prose style) or a percentage; not a version such as 2.13.0.
_NUMBER = re.compile(r"(?<![\w.])-?(?:\d+\.\d+|\.\d+)(?:%)?(?![\w.]*\d)|(?<![\w.])\d+(?:\.\d+)?%")


def _prose(text: str) -> str:
    for pattern in (_FRONT_MATTER, _CODE_CELL, _DISPLAY_MATH, _ROLES, _INLINE_CODE, _DIRECTIVE_OPTIONS, _URL):
        text = pattern.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    return text


def typed_numbers(path: Path) -> list[tuple[int, str]]:
    """Every decimal or percentage typed in the prose of ``path``, with its line number."""
    out = []
    for lineno, line in enumerate(_prose(path.read_text(encoding="utf-8")).splitlines(), start=1):
        out.extend((lineno, m.group(0)) for m in _NUMBER.finditer(line))
    return out


def _allowed() -> dict[str, set[str]]:
    doc = yaml.safe_load(ALLOWED.read_text(encoding="utf-8")) or {}
    out = {}
    for chapter, cats in doc.items():
        cats = cats or {}
        unknown = set(cats) - set(CATEGORIES)
        assert not unknown, f"{ALLOWED.name}: {chapter} has unknown categories {unknown}; use {CATEGORIES}"
        out[chapter] = {str(n) for cat in CATEGORIES for n in (cats.get(cat) or [])}
    return out


CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.md"))


def test_the_scanner_sees_what_it_should():
    sample = ("---\njupytext: 1.0\n---\nWe measured 0.73 and 81%, {glue:text}`acc:.3f` and `x = 0.5` in code.\n"
              "Version 2.13.0 and $\\sigma = 0.2$.\n```{code-cell} ipython3\ny = 0.9\n```\n$$a = 0.4$$\n")
    tmp = ROOT / "_build" / "prose-sample.md"
    tmp.parent.mkdir(exist_ok=True)
    tmp.write_text(sample)
    assert [n for _, n in typed_numbers(tmp)] == ["0.73", "81%", "0.2"]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_no_unglued_run_dependent_number_in_prose(path):
    allowed = _allowed().get(path.stem, set())
    bad = [(line, n) for line, n in typed_numbers(path) if n.lstrip("-") not in allowed and n not in allowed]
    assert not bad, (
        f"{path.name}: typed numbers that are neither glued nor listed in tests/typed_numbers.yml "
        f"(paper/setup/exact): " + ", ".join(f"line {line}: {n}" for line, n in bad))


def test_allowlist_names_only_chapters_that_exist():
    stems = {p.stem for p in CHAPTERS}
    assert set(_allowed()) <= stems
