"""Exercise titles and difficulty marks: every exercise of every chapter has a short title that starts
with its difficulty, ★ (apply the text), ★★ (derive or combine) or ★★★ (open-ended, a new experiment or
a proof), and each chapter's exercises are graded easy to hard (the marks never decrease)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.md"))

# The opening line of an exercise: ```{exercise} <title> or :::{exercise-start} <title> (gated form).
_OPEN = re.compile(r"^(?P<fence>`{3,}|:{3,})\{(?P<name>exercise|exercise-start)\}[ \t]*(?P<title>.*?)\s*$")
_TITLE = re.compile(r"^(?P<mark>★{1,3}) (?P<words>[^\s★]+(?: [^\s★]+)+)$")


def exercises(path: Path) -> list[tuple[int, str, str]]:
    """(line number, label, title) of each exercise directive, in the order of the chapter."""
    lines = path.read_text(encoding="utf-8").split("\n")
    out = []
    for i, line in enumerate(lines):
        m = _OPEN.match(line)
        if not m:
            continue
        label = ""
        for option in lines[i + 1:]:
            if not re.match(r"^:[\w-]+:", option):
                break
            if option.startswith(":label:"):
                label = option.split(":", 2)[2].strip()
        out.append((i + 1, label, m.group("title")))
    return out


def _params():
    for path in CHAPTERS:
        yield pytest.param(path, id=path.stem)


def test_all_chapters_are_covered():
    assert len(CHAPTERS) == 17


@pytest.mark.parametrize("path", list(_params()))
def test_titles_and_marks(path: Path):
    found = exercises(path)
    assert found, f"{path.name} has no exercises"
    levels = []
    for line, label, title in found:
        where = f"{path.name}:{line} ({label or 'no label'})"
        assert label, f"{where}: the exercise has no :label:"
        assert title, f"{where}: the exercise has no title"
        m = _TITLE.match(title)
        assert m, f"{where}: title {title!r} is not '★, ★★ or ★★★, a space, then at least two words'"
        assert not m.group("words").endswith("."), f"{where}: title {title!r} ends with a period"
        levels.append((len(m.group("mark")), label))
    for (before, first), (after, second) in zip(levels, levels[1:]):
        assert after >= before, (f"{path.name}: {second} ({'★' * after}) comes after the harder "
                                 f"{first} ({'★' * before}); order the exercises easy to hard")


@pytest.mark.parametrize("path", list(_params()))
def test_stars_only_in_exercise_titles(path: Path):
    """The star is the difficulty mark; anywhere else it would read as one."""
    title_lines = {line for line, _, _ in exercises(path)}
    stray = [n for n, text in enumerate(path.read_text(encoding="utf-8").split("\n"), 1)
             if "★" in text and n not in title_lines]
    assert not stray, f"{path.name}: ★ outside an exercise title on lines {stray}"


def test_the_parser(tmp_path):
    path = tmp_path / "99-example.md"
    path.write_text("\n".join([
        "```{exercise} ★ Gradient times input", ":label: t-ex-1", "Body.", "```", "",
        ":::{exercise-start} ★★★ A new experiment", ":label: t-ex-2", ":::",
        "```{exercise}", ":label: t-ex-3", "```", ""]), encoding="utf-8")
    assert exercises(path) == [(1, "t-ex-1", "★ Gradient times input"),
                               (6, "t-ex-2", "★★★ A new experiment"), (9, "t-ex-3", "")]
    for good in ("★ Gradient times input", "★★ Left Riemann sums by hand", "★★★ A latent ability"):
        assert _TITLE.match(good), good
    for bad in ("★★★★ Too hard", "★Gradient times input", "★ Gradient", "Gradient times input",
                "★  Two  spaces", "★★ ★ Mixed marks", ""):
        assert not _TITLE.match(bad), bad
