"""Hide gated solutions too when sphinx-exercise's ``hide_solutions`` is on (the student HTML edition).

sphinx-exercise 1.2.1 with ``hide_solutions: true`` drops a ``{solution}`` block, but for a gated
``{solution-start}`` ... ``{solution-end}`` pair only the start directive returns nothing: the
cells between stay in the page, and the lone ``solution_end_node`` has no HTML visitor, so the
build stops with ``NotImplementedError: ... departing unknown node type: solution_end_node``.

This extension replaces ``{solution-start}``: with ``hide_solutions`` on it leaves a marker, and a
transform removes everything from the marker up to and including the matching ``solution_end_node``
(text, code cells and their outputs). A marker without an end among its siblings is an error, not
a silent leak, and no solution node may reach the writer. With ``hide_solutions`` off it changes
nothing.

The pages' download button offers ``_sources/notebooks/NN.ipynb`` and ``NN.md``; the main book's
extension writes the plain notebook there, solutions included. With ``hide_solutions`` on, that
handler is replaced: both files become the student edition (``_ext/editions.py``), or are deleted
when the chapter cannot be exported (no executed glue), and the build fails if any ``{solution``
or ``solution`` cell tag is left under ``_sources``. The student build (``make html-student``) adds it; the main book does not load it.
"""
from __future__ import annotations

from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.transforms import SphinxTransform
from sphinx.util import logging
from sphinx_exercise.directive import SolutionStartDirective
from sphinx_exercise.nodes import solution_end_node, solution_node, solution_start_node


class hidden_solution(nodes.Element):
    """Where a hidden gated solution started; removed by :class:`RemoveHiddenSolutions`."""


class HiddenSolutionStart(SolutionStartDirective):
    def run(self):
        out = super().run()  # registers the start, so sphinx-exercise's structure check still runs
        if not self.env.app.config.hide_solutions:
            return out
        marker = hidden_solution(label=self.arguments[0])
        self.set_source_info(marker)
        return [marker]


class RemoveHiddenSolutions(SphinxTransform):
    # sphinx-exercise checks the gated structure at priority 1 and merges gated blocks at 10.
    default_priority = 5

    def apply(self):
        for marker in list(self.document.findall(hidden_solution)):
            parent = marker.parent
            start = parent.index(marker)
            end = next((k for k in range(start + 1, len(parent.children))
                        if isinstance(parent.children[k], solution_end_node)), None)
            if end is None:
                raise ExtensionError(f"{self.env.docname}: the hidden solution of {marker['label']} has no "
                                     "{solution-end} at the same level; it would show in the student edition")
            del parent.children[start:end + 1]
        if self.config.hide_solutions:
            left = [n for n in self.document.findall(nodes.Element)
                    if isinstance(n, (solution_node, solution_start_node, solution_end_node))]
            if left:
                raise ExtensionError(f"{self.env.docname}: {len(left)} solution node(s) left with hide_solutions on")


logger = logging.getLogger(__name__)


def _replace_download_handler(app: Sphinx) -> None:
    if not app.config.hide_solutions:
        return
    for listener in list(app.events.listeners["build-finished"]):
        if getattr(listener.handler, "__name__", "") == "_download_the_notebook":
            app.disconnect(listener.id)
    app.connect("build-finished", _student_downloads)


def _student_downloads(app: Sphinx, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    import jupytext

    import editions  # _ext/, on sys.path through local_extensions
    ie = editions.ie
    folder = Path(app.outdir) / "_sources" / "notebooks"
    executed = Path(app.config.student_glue_dir or Path(app.outdir).parent / "jupyter_execute" / "notebooks")
    book = ie.Book.load(app.srcdir)
    stems = sorted({p.stem for p in folder.glob("*.ipynb")} | {p.stem for p in folder.glob("*.md")})
    for stem in stems:
        ipynb, md = folder / f"{stem}.ipynb", folder / f"{stem}.md"
        try:
            nb = editions.student(book.export(Path(app.srcdir) / "notebooks" / f"{stem}.md",
                                              ie.load_glue(executed, stem)))
        except ie.ExportError as exc:
            logger.warning(f"no student notebook of {stem} to download ({exc}); its downloads are removed")
            ipynb.unlink(missing_ok=True)
            md.unlink(missing_ok=True)
            continue
        ipynb.write_text(ie.dumps(nb), encoding="utf-8")
        md.write_text(jupytext.writes(nb, fmt="md:myst"), encoding="utf-8")
    leaks = [p for p in folder.rglob("*") if p.is_file()
             and ("{solution" in (text := p.read_text(encoding="utf-8")) or '"solution"' in text)]
    if leaks:
        raise ExtensionError(f"solutions left in the downloads of the student edition: {leaks}")


def setup(app: Sphinx):
    app.setup_extension("sphinx_exercise")
    # Where the executed chapters' glue is (default: the build's own jupyter_execute/notebooks).
    app.add_config_value("student_glue_dir", "", "env")
    app.add_node(hidden_solution)
    app.add_directive("solution-start", HiddenSolutionStart, override=True)
    app.add_transform(RemoveHiddenSolutions)
    app.connect("builder-inited", _replace_download_handler)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
