"""The student edition runs and shows no solution.

* The solution-free HTML edition (``_ext/hide_solutions.py`` with sphinx-exercise's
  ``hide_solutions``) builds every chapter without executing it, into a temporary folder: every
  exercise is there, no solution element, none of a solution's own text or code, and the pages'
  downloads are student notebooks (or absent, when there is no executed glue).
* The student notebooks of chapters 01 and 02 execute without their solutions (nbval, this
  environment), outside the repository. Needs the executed book (``make build`` or ``make book``).
  With ``CAUSALBOOK_EDITION_CHAPTERS=all`` (``make editions-check``, run by the publish workflow)
  every chapter's student and instructor notebooks execute, the two editions side by side.

Usage: ``pytest tests/build/test_student_edition.py``. About 3 minutes beside the other post-build checks of
``make test``; the full run of both editions takes longer (see ``make editions-check``).
"""
from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.build._common import JUPYTER_BOOK, ROOT, SPHINX_PROBLEM

sys.path.insert(0, str(ROOT / "tests" / "unit"))
import test_editions as T  # noqa: E402  (the sources' exercises and solutions, parsed independently)

EXECUTED = ROOT / "_build" / "jupyter_execute" / "notebooks"
RUN_CHAPTERS = ["01-structural-causal-models", "02-d-separation-and-networks"]


def _page_words(raw: str) -> str:
    raw = re.sub(r"<script.*?</script>|<style.*?</style>", " ", raw, flags=re.S)
    return " " + " ".join(T._words(html.unescape(re.sub(r"<[^>]+>", " ", raw)))) + " "


@pytest.fixture(scope="module")
def student_html(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("student-html")
    config = T.ed.student_html_config(ROOT)
    config["execute"]["execute_notebooks"] = "off"
    if EXECUTED.is_dir():
        config["sphinx"]["config"]["student_glue_dir"] = str(EXECUTED)
    (out / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    proc = subprocess.run([str(JUPYTER_BOOK), "build", str(ROOT), "--config", str(out / "_config.yml"),
                           "--path-output", str(out), "--keep-going"], cwd=ROOT, capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    (out / "build.log").write_text(log, encoding="utf-8")
    assert proc.returncode == 0, log[-3000:]
    # Unexecuted, glued values are missing, and figure cells make no figure, so {numref} to a figure
    # finds no label (the executed build, test_book.py, checks both); nothing else may go wrong.
    problems = [ln for ln in log.splitlines() if SPHINX_PROBLEM.search(ln)
                and "found in glue data" not in ln and "no student notebook" not in ln
                and not re.search(r"undefined label: '?fig-ch\d\d-", ln)]
    assert not problems, "\n".join(problems[:20])
    return out / "_build" / "html"


def test_student_html_has_every_exercise_and_no_solution(student_html):
    exercises = leaked = 0
    for stem, (ex, sol, rest) in T.SOURCES.items():
        raw = (student_html / "notebooks" / f"{stem}.html").read_text(encoding="utf-8")
        words = _page_words(raw)
        assert not re.findall(r'class="[^"]*\bsolution\b', raw), f"{stem}: a solution element"
        assert "Solution to" not in words, stem
        included = [T.ie._literalinclude(ROOT / "notebooks" / f"{stem}.md", b) for kind, b in T.ie._blocks(rest)
                    if kind == "directive" and b.name == "literalinclude"]
        rest = "\n".join([rest, *included])
        rest_words = " " + T._normal(rest) + " "
        rest_shingles = T.shingles(rest) | T.shingles(rest, split=False)
        for label in ex:
            assert f'id="{label}"' in raw, f"{stem}: exercise {label} is missing"
            exercises += 1
            own = [s for s in T.shingles(T._prose(sol[label])) - rest_shingles]
            code = [T._normal(c) for c in T.code_lines(sol[label])]
            code = [c for c in code if c and f" {c} " not in rest_words]
            shown = [s for s in own + code if f" {s} " in words]
            assert not shown, f"{stem}: the solution of {label} shows: {shown[:3]}"
            leaked += bool(shown)
    assert exercises == sum(len(e) for e, _, _ in T.SOURCES.values()) >= 70


def test_student_html_downloads_are_student_notebooks(student_html):
    folder = student_html / "_sources" / "notebooks"
    for path in folder.glob("*"):
        text = path.read_text(encoding="utf-8")
        assert "{solution" not in text and '"solution"' not in text, path.name
        if path.suffix == ".ipynb":
            assert json.loads(text)["metadata"]["causalbook"]["edition"] == "student"
    if EXECUTED.is_dir():
        assert len(list(folder.glob("*.ipynb"))) == len(T.SOURCES)
    page = (student_html / "notebooks" / f"{RUN_CHAPTERS[0]}.html").read_text(encoding="utf-8")
    assert "colab.research.google.com" not in page and "mybinder.org" not in page


STUDENT, INSTRUCTOR = ROOT / "_build" / "student", ROOT / "_build" / "instructor"


@pytest.mark.skipif(not STUDENT.is_dir(), reason="needs `make student` (make test runs it)")
def test_make_student_wrote_both_editions_of_every_chapter():
    """What `make student` wrote from the executed book: one student and one instructor notebook per
    chapter; the student's has every exercise anchor and no solution cell or solution heading, the
    instructor's has every solution; glued numbers are filled in (no `{glue:` role is left)."""
    import nbformat

    for stem, (exercises, solutions, _) in T.SOURCES.items():
        student = nbformat.read(STUDENT / f"{stem}.ipynb", as_version=4)
        teacher = nbformat.read(INSTRUCTOR / f"{stem}.ipynb", as_version=4)
        s_text = "\n".join(c.source for c in student.cells)
        t_text = "\n".join(c.source for c in teacher.cells)
        assert student.metadata["causalbook"]["edition"] == "student", stem
        assert not [c for c in student.cells if T.ed.is_solution(c)], f"{stem}: a solution cell in the student edition"
        for label in exercises:
            assert f'<a id="{label}"></a>' in s_text and f'<a id="{label}"></a>' in t_text, f"{stem}: {label}"
        assert "Solution to" not in s_text and t_text.count("Solution to") >= len(solutions), stem
        assert "{glue:" not in s_text and "{glue:" not in t_text, f"{stem}: an unfilled glue role"


def _run_chapters() -> tuple[list[str], tuple[str, ...]]:
    """Chapters and editions to execute: ``CAUSALBOOK_EDITION_CHAPTERS=all`` (``make editions-check``,
    the publish workflow) runs every chapter in both editions; by default (``make test``) the student
    notebooks of chapters 01 and 02 run."""
    raw = os.environ.get("CAUSALBOOK_EDITION_CHAPTERS", "").strip()
    if not raw:
        return RUN_CHAPTERS, ("student",)
    stems = sorted(T.SOURCES) if raw == "all" else [s.strip() for s in raw.split(",") if s.strip()]
    unknown = [s for s in stems if s not in T.SOURCES]
    assert not unknown, f"CAUSALBOOK_EDITION_CHAPTERS: no chapter {unknown}"
    return stems, ("student", "instructor")


def _nbval(folder: Path, notebooks: list[Path], env: dict) -> subprocess.Popen:
    # Both editions start their kernels at once: -p tests.kernels gives each its own Unix sockets.
    env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))}
    return subprocess.Popen([sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider",
                             "-p", "tests.kernels",
                             "-o", "testpaths=", "-q", "--rootdir", str(folder), *map(str, notebooks)],
                            cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.skipif(not EXECUTED.is_dir(), reason="needs the executed book (make build)")
def test_edition_notebooks_run(tmp_path):
    """The edition notebooks execute under nbval, outside the repository, strict: the student ones
    without their solutions, the instructor ones with them. Both editions run side by side."""
    stems, editions = _run_chapters()
    chapters = [ROOT / "notebooks" / f"{stem}.md" for stem in stems]
    folders = {e: tmp_path / e for e in editions}
    written = T.ed.export_editions(folders.get("student"), folders.get("instructor"), EXECUTED, chapters, ROOT)
    assert sorted({p.name for p in written}) == sorted(f"{s}.ipynb" for s in stems)
    procs = {}
    for edition, folder in folders.items():
        # Strict, and the claims' values go to the temporary folder, not the repository's results/.
        env = {**os.environ, "CAUSALBOOK_STRICT": "1", "CAUSALBOOK_RESULTS": str(tmp_path / f"claims-{edition}")}
        procs[edition] = _nbval(folder, [folder / f"{s}.ipynb" for s in stems], env)
    failed = {}
    for edition, proc in procs.items():
        out, _ = proc.communicate()
        if proc.returncode != 0:
            failed[edition] = out[-3000:]
    assert not failed, "\n\n".join(f"== {e} edition\n{out}" for e, out in failed.items())
