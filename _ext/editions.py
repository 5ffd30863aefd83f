"""Student and instructor editions of the plain notebooks, from the one generator of ``make ipynb``.

``ipynb_export`` tags every solution cell ``solution``: a ``{solution}`` block becomes its own
Markdown cell, and every cell of a gated ``{solution-start}`` ... ``{solution-end}`` span (its text
and its code cells) is tagged. The instructor edition is that notebook as it is; the student edition
drops the tagged cells and says so in its note. Nothing else differs, so both editions keep the
exercise numbers, links and glued numbers of the HTML book.

Usage::

    python _ext/editions.py --student DIR --instructor DIR [--executed DIR] [chapter.md ...]
    python _ext/editions.py html-config OUT   # _config.yml of the solution-free HTML edition

A later code cell must not use a name that only a solution defines: the student notebook would
fail there. :func:`solution_dependencies` finds such names; ``--student`` refuses to write a
notebook that has one.
"""
from __future__ import annotations

import argparse
import ast
import copy
import importlib.util
import sys
from pathlib import Path
from typing import Iterable

import nbformat
import yaml


def _exporter():
    if "ipynb_export" not in sys.modules:
        spec = importlib.util.spec_from_file_location("ipynb_export", Path(__file__).with_name("ipynb_export.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules["ipynb_export"] = module
        spec.loader.exec_module(module)
    return sys.modules["ipynb_export"]


ie = _exporter()
ROOT = ie.ROOT
SOLUTION_TAG = ie.SOLUTION_TAG
STUDENT_NOTE = ("*Student edition: the solutions are left out. Your instructor has the instructor "
                "edition, which has them.*")


def is_solution(cell) -> bool:
    return SOLUTION_TAG in cell.get("metadata", {}).get("tags", [])


def _bound_and_read(node: ast.AST) -> tuple[set[str], set[str]]:
    bound, read = set(), set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            (bound if isinstance(sub.ctx, (ast.Store, ast.Del)) else read).add(sub.id)
        elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(sub.name)
        elif isinstance(sub, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in sub.names)
    return bound, read


def _names(source: str) -> tuple[set[str], set[str]]:
    """(names a code cell binds, names it reads before binding them); magics and shell lines are skipped.

    Statement by statement: ``x = 1; print(x)`` reads no outside ``x``, ``x = x + 1`` does.
    """
    lines = [ln for ln in source.split("\n") if not ln.lstrip().startswith(("%", "!"))]
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return set(), set()
    bound, free = set(), set()
    for stmt in tree.body:
        b, r = _bound_and_read(stmt)
        free |= r - bound
        bound |= b
    return bound, free


def solution_dependencies(nb: nbformat.NotebookNode) -> dict[str, set[str]]:
    """Names that a non-solution code cell reads and that only earlier solution cells bind.

    Returns ``{cell id: names}``; empty when the student edition runs without the solutions.
    A static check (no execution): names bound inside functions or by ``global`` are not followed.
    """
    by_exercise: set[str] = set()  # bound so far by solution cells only
    by_text: set[str] = set()  # bound so far by the rest of the notebook
    out: dict[str, set[str]] = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        bound, read = _names(cell.source)
        if is_solution(cell):
            by_exercise |= bound - by_text
            continue
        missing = (read & by_exercise) - by_text
        if missing:
            out[cell.get("id", "?")] = missing
        by_text |= bound
        by_exercise -= bound
    return out


def _renumber(nb: nbformat.NotebookNode) -> None:
    for n, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{n:03d}"


def instructor(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The instructor edition: the exported notebook, solutions and all."""
    out = copy.deepcopy(nb)
    out.metadata.setdefault("causalbook", {})["edition"] = "instructor"
    return out


def student(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The student edition: every cell tagged ``solution`` removed, a line added to the note cell.

    Raises:
        ie.ExportError: a later cell reads a name that only a solution defines.
    """
    deps = solution_dependencies(nb)
    if deps:
        where = nb.metadata.get("causalbook", {}).get("source", "?")
        raise ie.ExportError(f"{where}: the student edition would fail: cells {sorted(deps)} use "
                             f"{sorted(set().union(*deps.values()))}, which only a solution defines")
    out = copy.deepcopy(nb)
    out.cells = [c for c in out.cells if not is_solution(c)]
    for cell in out.cells:  # the note cell (the first Markdown cell) says which edition this is
        if cell.cell_type == "markdown":
            cell.source = cell.source + "\n\n" + STUDENT_NOTE
            break
    _renumber(out)
    out.metadata.setdefault("causalbook", {})["edition"] = "student"
    nbformat.validate(out)
    return out


def export_editions(student_dir: Path | str | None, instructor_dir: Path | str | None,
                    executed: Path | str | None = None, chapters: Iterable[Path | str] | None = None,
                    root: Path | str = ROOT) -> list[Path]:
    """Write ``NN-name.ipynb`` of each chapter into ``student_dir`` and ``instructor_dir`` (either may be None)."""
    book = ie.Book.load(root)
    executed = Path(executed) if executed is not None else book.root / ie.DEFAULT_EXECUTED
    paths = [Path(c).resolve() for c in chapters] if chapters else ie.chapter_sources(book)
    written = []
    for src in paths:
        nb = book.export(src, ie.load_glue(executed, src.stem))
        for folder, edition in ((student_dir, student), (instructor_dir, instructor)):
            if folder is None:
                continue
            folder = Path(folder)
            folder.mkdir(parents=True, exist_ok=True)
            dest = folder / f"{src.stem}.ipynb"
            dest.write_text(ie.dumps(edition(nb)), encoding="utf-8")
            written.append(dest)
    return written


# ---------------------------------------------------------------------------------------------
# The solution-free HTML edition


def student_html_config(root: Path | str = ROOT) -> dict:
    """The book's ``_config.yml`` for a build with every solution hidden (see ``_ext/hide_solutions.py``).

    It is written to another folder, so paths are made absolute; the execution cache is the main
    build's, so a student build after ``make book`` re-executes nothing.
    """
    root = Path(root).resolve()
    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
    sphinx = config.setdefault("sphinx", {})
    local = dict(sphinx.get("local_extensions") or {})
    local["hide_solutions"] = "_ext"
    sphinx["local_extensions"] = {k: str(root / v) for k, v in local.items()}
    sconf = sphinx.setdefault("config", {})
    sconf["hide_solutions"] = True
    for key in ("html_extra_path", "html_static_path", "templates_path"):
        if key in sconf:
            sconf[key] = [str(root / p) for p in sconf[key]]
    config["bibtex_bibfiles"] = [str(root / b) for b in config.get("bibtex_bibfiles", [])]
    config.setdefault("execute", {})["cache"] = str(root / "_build" / ".jupyter_cache")
    # Binder and Colab open the stable branch's plain notebook, which has the solutions (folded).
    config["launch_buttons"] = {**(config.get("launch_buttons") or {}), "binderhub_url": "", "colab_url": ""}
    config["title"] = f"{config.get('title', '')} (student edition)".strip()
    return config


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["html-config"]:
        if len(argv) != 2:
            print("usage: editions.py html-config OUT_DIR", file=sys.stderr)
            return 2
        out = Path(argv[1])
        out.mkdir(parents=True, exist_ok=True)
        (out / "_config.yml").write_text(yaml.safe_dump(student_html_config(), sort_keys=False), encoding="utf-8")
        print(out / "_config.yml")
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--student", type=Path, help="folder for the student notebooks")
    parser.add_argument("--instructor", type=Path, help="folder for the instructor notebooks")
    parser.add_argument("--executed", type=Path, default=None,
                        help=f"executed chapters with their glue (default {ie.DEFAULT_EXECUTED})")
    parser.add_argument("chapters", nargs="*", type=Path, help="chapter .md files (default: all)")
    args = parser.parse_args(argv)
    if args.student is None and args.instructor is None:
        parser.error("give --student, --instructor or both")
    try:
        for path in export_editions(args.student, args.instructor, args.executed, args.chapters or None):
            print(path)
    except ie.ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
