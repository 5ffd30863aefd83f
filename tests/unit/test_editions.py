"""Student and instructor editions (``_ext/editions.py``): the spoiler test.

For every exercise label of the MyST sources, the student notebook has the exercise (its anchor, its
numbered heading and its text) and none of its solution's text or code; the instructor notebook has
both. The solutions are parsed here from the ``.md`` sources, independently of the exporter. Glued
values are made up (as in ``test_ipynb_export.py``); nothing is executed.
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]


from tests.build._common import ext_module as _load  # noqa: E402


ie = _load("ipynb_export")
ed = _load("editions")
BOOK = ie.Book.load(ROOT)
CHAPTERS = ie.chapter_sources(BOOK)
GLUE_KEY = re.compile(r"\{glue:text\}`([^`]+?)(?::[^`:]*)?`")
SHINGLE = 6  # words; a run of this many words of a solution, not found elsewhere in its chapter


def fake_glue(source: Path) -> dict:
    return {k: {"data": {"text/plain": "1"}} for k in GLUE_KEY.findall(source.read_text(encoding="utf-8"))}


# ---------------------------------------------------------------------------------------------
# Exercises and solutions, read from the sources

_OPEN = re.compile(r"^(?P<fence>`{3,}|:{3,})\{(?P<name>exercise|solution|solution-start|solution-end)\}\s*(?P<arg>.*?)\s*$")  # arg: a label, or an exercise's title


def _closing(fence: str) -> re.Pattern:
    return re.compile("^" + re.escape(fence[0]) + "{" + str(len(fence)) + r",}\s*$")


def _body(lines: list[str]) -> list[str]:
    """A directive's body without its option lines."""
    k = 0
    while k < len(lines) and re.match(r"^:[\w-]+:", lines[k]):
        k += 1
    return lines[k:]


def parse_source(path: Path) -> tuple[dict[str, str], dict[str, str], str]:
    """({exercise label: body}, {exercise label: solution body}, the chapter without its solutions)."""
    lines = path.read_text(encoding="utf-8").split("\n")
    exercises, solutions, rest = {}, {}, []
    i = 0
    while i < len(lines):
        m = _OPEN.match(lines[i])
        if not m:
            rest.append(lines[i])
            i += 1
            continue
        close = _closing(m.group("fence"))
        j = next(n for n in range(i + 1, len(lines)) if close.match(lines[n]))
        name, arg = m.group("name"), m.group("arg")
        if name == "exercise":
            body = _body(lines[i + 1:j])
            label = next(ln.split(":", 2)[2].strip() for ln in lines[i + 1:j] if ln.startswith(":label:"))
            exercises[label] = "\n".join(body)
            rest.extend(lines[i:j + 1])
            i = j + 1
        elif name == "solution":
            solutions[arg] = "\n".join(_body(lines[i + 1:j]))
            i = j + 1
        elif name == "solution-start":
            end = next(n for n in range(j + 1, len(lines)) if _OPEN.match(lines[n])
                       and _OPEN.match(lines[n]).group("name") == "solution-end")
            solutions[arg] = "\n".join(lines[j + 1:end])
            i = next(n for n in range(end + 1, len(lines)) if _closing(_OPEN.match(lines[end]).group("fence")).match(lines[n])) + 1
        else:
            raise AssertionError(f"{path.name}:{i + 1}: {{solution-end}} without {{solution-start}}")
    return exercises, solutions, "\n".join(rest)


_ROLE = re.compile(r"\{[\w:.+-]+\}`[^`]*`")
_CODE_CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(.*?)^```\s*$", re.S | re.M)
_FENCED = re.compile(r"^(`{3,})[^\n]*\n(.*?)^\1\s*$", re.S | re.M)


def _words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z0-9]+", text)


def shingles(prose: str, split: bool = True) -> set[str]:
    """Runs of SHINGLE words; roles (rewritten by the exporter) split the text instead of being read."""
    out = set()
    for segment in _ROLE.split(prose) if split else [prose]:
        w = _words(segment)
        out.update(" ".join(w[k:k + SHINGLE]) for k in range(len(w) - SHINGLE + 1))
    return out


def code_lines(body: str) -> set[str]:
    """The solution's code: lines of its code cells (gated solutions) and fenced code, 12+ characters."""
    out = set()
    for m in list(_CODE_CELL.finditer(body)) + list(_FENCED.finditer(body)):
        out.update(ln.strip() for ln in m.groups()[-1].split("\n") if len(ln.strip()) >= 12)
    return out


def _prose(body: str) -> str:
    """The text of a solution; its code is cut out and splits the text (a role-like marker)."""
    return _FENCED.sub("\n{cut}`code`\n", _CODE_CELL.sub("\n{cut}`code`\n", body))


def _normal(text: str) -> str:
    return " ".join(_words(text))


def _all_text(nb) -> tuple[str, str]:
    """(the notebook's words, one string; its code and Markdown lines, stripped, one per line)."""
    joined = "\n".join(c.source for c in nb.cells)
    return " " + _normal(joined) + " ", "\n" + "\n".join(ln.strip() for ln in joined.split("\n")) + "\n"


SOURCES = {src.stem: parse_source(src) for src in CHAPTERS}


@pytest.fixture(scope="module")
def editions() -> dict[str, tuple[nbformat.NotebookNode, nbformat.NotebookNode]]:
    out = {}
    for src in CHAPTERS:
        nb = BOOK.export(src, fake_glue(src))
        out[src.stem] = (ed.student(nb), ed.instructor(nb))
    return out


def test_every_exercise_has_a_solution_and_they_are_counted():
    exercises = {label for ex, _, _ in SOURCES.values() for label in ex}
    solutions = {label for _, sol, _ in SOURCES.values() for label in sol}
    assert exercises == solutions
    assert len(exercises) >= 70
    gated = sum("```{code-cell}" in body for _, sol, _ in SOURCES.values() for body in sol.values())
    assert gated >= 10  # solutions with executed code


@pytest.mark.parametrize("stem", sorted(SOURCES))
def test_student_edition_has_every_exercise_and_no_solution(stem, editions):
    exercises, solutions, rest = SOURCES[stem]
    student, teacher = editions[stem]
    s_words, s_lines = _all_text(student)
    t_words, t_lines = _all_text(teacher)
    included = [ie._literalinclude(ROOT / "notebooks" / f"{stem}.md", b) for kind, b in ie._blocks(rest)
                if kind == "directive" and b.name == "literalinclude"]
    rest = "\n".join([rest, *included])  # text the chapter shows outside its solutions
    rest_shingles, rest_code = shingles(rest) | shingles(rest, split=False), {ln.strip() for ln in rest.split("\n")}
    assert exercises, f"{stem} has no exercises"
    for label, body in exercises.items():
        caption = BOOK.labels[label].caption
        for nb_words, nb_lines, edition in ((s_words, s_lines, "student"), (t_words, t_lines, "instructor")):
            assert f'<a id="{label}"></a>' in nb_lines, f"{edition} {stem}: no anchor of {label}"
            assert f"\n#### {caption}" in nb_lines, f"{edition} {stem}: no heading {caption!r} ({label})"
            missing = [s for s in shingles(body) if f" {s} " not in nb_words]
            assert not missing, f"{edition} {stem}: text of {label} is missing: {missing[:3]}"

        sol = solutions[label]
        own_text = shingles(_prose(sol)) - rest_shingles
        own_code = code_lines(sol) - rest_code
        assert own_text or own_code, f"{stem}: nothing to recognise the solution of {label} by"
        leaked = [s for s in own_text if f" {s} " in s_words] + [c for c in own_code if f"\n{c}\n" in s_lines]
        assert not leaked, f"student {stem}: the solution of {label} shows: {leaked[:3]}"
        absent = [s for s in own_text if f" {s} " not in t_words] + [c for c in own_code if f"\n{c}\n" not in t_lines]
        assert not absent, f"instructor {stem}: the solution of {label} is incomplete: {absent[:3]}"
        assert f"Solution to {caption}" in t_lines and f"Solution to {caption}" not in s_lines


@pytest.mark.parametrize("stem", sorted(SOURCES))
def test_student_edition_has_no_solution_cells_and_runs_without_them(stem, editions):
    student, teacher = editions[stem]
    assert not [c for c in student.cells if ed.is_solution(c)]
    removed = len(teacher.cells) - len(student.cells)
    assert removed == sum(ed.is_solution(c) for c in teacher.cells) > 0
    assert ed.solution_dependencies(teacher) == {}
    assert student.metadata["causalbook"]["edition"] == "student"
    assert teacher.metadata["causalbook"]["edition"] == "instructor"
    assert ed.STUDENT_NOTE in student.cells[1].source
    assert [c.id for c in student.cells] == [f"cell-{n:03d}" for n in range(len(student.cells))]
    nbformat.validate(student)


def test_a_later_cell_using_a_solution_variable_is_refused():
    nb = nbformat.v4.new_notebook()
    sol = nbformat.v4.new_code_cell("answer = 0.46\nimport math")
    sol.metadata["tags"] = ["solution"]
    nb.cells = [nbformat.v4.new_code_cell("x = 1"), sol,
                nbformat.v4.new_code_cell("print(answer, x, math.pi)"),
                nbformat.v4.new_code_cell("answer = 2\nprint(answer)")]
    for n, c in enumerate(nb.cells):
        c["id"] = f"c{n}"
    assert ed.solution_dependencies(nb) == {"c2": {"answer", "math"}}
    with pytest.raises(ie.ExportError, match="only a solution defines"):
        ed.student(nb)
    del nb.cells[2]
    assert ed.solution_dependencies(nb) == {}
    assert [c.source for c in ed.student(nb).cells] == ["x = 1", "answer = 2\nprint(answer)"]


def test_student_html_config_hides_solutions_with_absolute_paths():
    config = ed.student_html_config(ROOT)
    assert config["sphinx"]["config"]["hide_solutions"] is True
    assert all(Path(p).is_absolute() and Path(p).is_dir() for p in config["sphinx"]["local_extensions"].values())
    assert "hide_solutions" in config["sphinx"]["local_extensions"]
    assert all(Path(b).is_file() for b in config["bibtex_bibfiles"])
