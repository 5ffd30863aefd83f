"""Sphinx extension of causalbook: the reproduction-status table, and the Colab button.

The ``{claims-table}`` directive leaves a placeholder. When Sphinx resolves the page (after every
notebook has been executed and has written ``results/claims/<id>.json``), the placeholder becomes
one table per chapter with, for every ledger claim, the paper's value, our value from this build,
the criterion, the status and whether the check passed. The page is rebuilt on every build.

When ``make robustness`` has written ``results/robustness/summary.json``, the table gains a column
"Holds in": the runs (seeds, thread counts, numeric paths) in which the claim held, out of the runs
made, and the range of its value over them.

The launch and download buttons offer the plain notebooks of ``_ext/ipynb_export.py`` (``make
ipynb``): equations, definitions, exercises, citations, cross-references and glued numbers turned
into what any Jupyter and Colab render. The theme points the buttons at the chapter's ``.md``:

* :func:`_launch_the_notebook` points Binder and Colab at ``notebooks/NN.ipynb`` on the branch of
  ``repository.branch`` (``stable``), where the publishing workflow puts those notebooks. (Colab
  opens only ``.ipynb``; on Binder the ``.md`` also opens as a notebook, but jupyterlab-myst cannot
  show glued numbers, citations or included code.)
* :func:`_download_the_notebook` writes the plain notebooks over the executed copies that the
  theme offers for download (``_sources/notebooks/NN.ipynb``) when the build has finished.
"""
from __future__ import annotations

import datetime
import json
import os
import re
from collections import Counter
from pathlib import Path

from docutils import nodes
from sphinx.util.docutils import SphinxDirective

#: Pages that hold a claims table; they are re-written on every build, since their content comes
#: from the notebooks executed in the same build.
STATUS_PAGE_DOCS: set[str] = {"book/reproduction-status"}


class claims_table(nodes.General, nodes.Element):
    """Placeholder replaced by the table in ``doctree-resolved``."""


class ClaimsTableDirective(SphinxDirective):
    has_content = False

    def run(self):
        STATUS_PAGE_DOCS.add(self.env.docname)
        return [claims_table("")]


def _row(cells):
    row = nodes.row()
    for cell in cells:
        entry = nodes.entry()
        if isinstance(cell, nodes.Node):
            entry += cell
        else:
            entry += nodes.paragraph(text=str(cell))
        row += entry
    return row


def _table(headers, rows, widths):
    table = nodes.table(classes=["claims-table", "colwidths-given"])
    group = nodes.tgroup(cols=len(headers))
    table += group
    for w in widths:
        group += nodes.colspec(colwidth=w)
    head = nodes.thead()
    head += _row(headers)
    group += head
    body = nodes.tbody()
    for r in rows:
        body += r
    group += body
    return table


def _chapter_link(app, fromdocname, chapter):
    docname = f"notebooks/{chapter}"
    para = nodes.paragraph()
    if docname in app.env.all_docs:
        title = app.env.titles.get(docname)
        text = title.astext() if title is not None else chapter
        ref = nodes.reference("", "", internal=True,
                              refuri=app.builder.get_relative_uri(fromdocname, docname))
        ref += nodes.Text(text)
        para += ref
    else:
        para += nodes.Text(f"{chapter} (chapter missing)")
    return para, docname


def _robustness(app) -> dict | None:
    """The sweep's summary, if ``make robustness`` has run (``results/robustness/summary.json``)."""
    path = Path(app.srcdir) / "results" / "robustness" / "summary.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None


def _held_cell(fmt, entry):
    if entry is None or not entry.get("runs"):
        return "not run"
    cell = nodes.container()
    text = f"{entry['passed']} of {entry['runs']} runs"
    para = nodes.paragraph()
    para += nodes.strong(text=text) if entry["passed"] < entry["runs"] else nodes.Text(text)
    cell += para
    if entry.get("min") is not None:
        lo, hi = fmt(entry["min"]), fmt(entry["max"])
        cell += nodes.paragraph(text=lo if lo == hi else f"{lo} .. {hi}", classes=["claim-source"])
    return cell


def _resolve(app, doctree, fromdocname):
    placeholders = list(doctree.findall(claims_table))
    if not placeholders:
        return
    from causalbook_lib import claims as cbclaims

    ledger = cbclaims.load_ledger()
    results = cbclaims.load_results()
    fmt = cbclaims._fmt
    by_chapter: dict[str, list[dict]] = {}
    for entry in ledger.values():
        by_chapter.setdefault(entry["chapter"], []).append(entry)

    counts = Counter(e["status"] for e in ledger.values())
    checks = Counter("not run" if k not in results else ("pass" if results[k]["passed"] else "FAIL")
                     for k in ledger)
    content = []
    summary = nodes.paragraph()
    summary += nodes.Text(
        f"{len(ledger)} claim{'' if len(ledger) == 1 else 's'}: {counts['reproduces']} reproduce, {counts['differs']} differ, "
        f"{counts['beyond']} go beyond the papers, {counts['demonstration']} "
        f"{'is a demonstration' if counts['demonstration'] == 1 else 'are demonstrations'}, "
        f"{counts['degenerate']} pass only in a degenerate regime. In this build {checks['pass']} checks passed, "
        f"{checks['FAIL']} failed and {checks['not run']} were not run.")
    content.append(summary)
    sweep = _robustness(app)
    if sweep is not None:
        table = sweep.get("claims", {})
        robust = sum(1 for k in ledger if table.get(k, {}).get("runs") and
                     table[k]["passed"] == table[k]["runs"])
        note = nodes.paragraph()
        note += nodes.Text(
            f"Robustness sweep: {len(sweep.get('runs', []))} runs of every chapter "
            f"({', '.join(sweep.get('runs', []))}). {robust} of {len(ledger)} claims held in every run "
            "they were measured in; the column 'Holds in' gives the count and the range of the value.")
        content.append(note)

    headers = ["Claim and source", "Statement", "Paper", "Ours (this build)", "Criterion", "Status"]
    widths = [19, 34, 12, 12, 12, 11]
    if sweep is not None:
        headers.append("Holds in")
        widths = [17, 30, 10, 11, 11, 10, 11]
    for chapter in sorted(by_chapter):
        link, _ = _chapter_link(app, fromdocname, chapter)
        section_title = nodes.rubric()
        section_title += link.children[0].deepcopy() if link.children else nodes.Text(chapter)
        content.append(section_title)
        rows = []
        for e in by_chapter[chapter]:
            res = results.get(e["id"])
            ours = fmt(res["value"]) if res else "not run"
            check = "not run" if res is None else ("pass" if res["passed"] else "FAIL")
            claim = nodes.container()
            claim += nodes.paragraph("", "", nodes.literal(text=e["id"]))
            claim += nodes.paragraph(text=f"{e['citation']}, {e['where']}", classes=["claim-source"])
            statement = nodes.container()
            statement += nodes.paragraph(text=e["statement"])
            if e.get("explanation"):
                statement += nodes.paragraph(text=f"Note: {e['explanation']}", classes=["claim-note"])
            status = nodes.container()
            status += nodes.paragraph(text=e["status"])
            status += nodes.paragraph("", "", nodes.strong(text=check))
            cells = [claim, statement, fmt(e["paper"]), ours, cbclaims.describe_criterion(e), status]
            if sweep is not None:
                cells.append(_held_cell(fmt, sweep.get("claims", {}).get(e["id"])))
            rows.append(_row(cells))
        content.append(_table(headers, rows, widths))
    wrapper = nodes.container(classes=["claims-status"])
    wrapper += content
    content = [wrapper]
    for ph in placeholders:
        ph.replace_self(content)


def _always_rebuild(app, env, added, changed, removed):
    return sorted(d for d in STATUS_PAGE_DOCS if d in env.all_docs)


def _launch_the_notebook(app, pagename, templatename, context, doctree):
    """Rewrite a chapter's Binder and Colab links from ``notebooks/NN.md`` to ``notebooks/NN.ipynb``."""
    for group in context.get("header_buttons", []):
        for button in group.get("buttons", []) if isinstance(group, dict) else []:
            url = button.get("url", "")
            if button.get("text") in ("Binder", "Colab") and pagename.startswith("notebooks/"):
                button["url"] = url.replace(f"{pagename}.md", f"{pagename}.ipynb")


def _download_the_notebook(app, exception):
    """After a successful HTML build, the download button's ``.ipynb`` is the plain notebook."""
    if exception is not None or app.builder.format != "html":
        return
    if getattr(app.config, "nb_execution_mode", None) == "off":
        return  # no executed chapters, so no glued values to put into the notebooks
    import ipynb_export  # _ext/, on sys.path through local_extensions

    out = Path(app.outdir)
    executed = out.parent / "jupyter_execute" / "notebooks"
    chapters = sorted(p for p in (Path(app.srcdir) / "notebooks").glob("*.md")
                      if (out / "_sources" / "notebooks" / f"{p.stem}.ipynb").exists())
    ipynb_export.export_chapters(out / "_sources" / "notebooks", executed, chapters, root=app.srcdir)


#: Scripts and styles that extensions add to every page, and the mark in a page's body that shows
#: the page uses them: sphinx-thebe (no page has a live-code button) and sphinx-design's tabs.
_ONLY_WHERE_USED = {"sphinx-thebe.js": "thebe-launch-button", "sphinx-thebe.css": "thebe-launch-button",
                    "design-tabs.js": "sd-tab-set"}


def _drop_unused_assets(app, pagename, templatename, context, doctree):
    """Fewer requests on every page: leave out the assets of :data:`_ONLY_WHERE_USED` where unused."""
    body = context.get("body", "")

    def used(asset):
        name = str(getattr(asset, "filename", asset) or "").rsplit("/", 1)[-1].split("?")[0]
        return name not in _ONLY_WHERE_USED or _ONLY_WHERE_USED[name] in body

    for key in ("script_files", "css_files"):
        if key in context:
            context[key] = [a for a in context[key] if used(a)]


def _singlehtml_knows_html_nodes(app):
    """``make pdf`` builds the book with the ``singlehtml`` builder. Sphinx looks up node visitors
    by builder name and falls back to the format ("html") only when no extension registered any
    visitor for that name; one does, so sphinx-proof's nodes (registered for "html") would be
    unknown there. Give singlehtml every html visitor it lacks."""
    handlers = app.registry.translation_handlers
    if app.builder.name == "singlehtml" and "singlehtml" in handlers:
        for node, visitors in handlers.get("html", {}).items():
            handlers["singlehtml"].setdefault(node, visitors)


def _version_in_footer(app, config):
    """The version (``causalbook_lib.__version__``, its one definition) and the build date in the
    footer. The date is ``SOURCE_DATE_EPOCH`` when set (reproducible builds), else today (UTC)."""
    init = Path(app.confdir) / "causalbook_lib" / "__init__.py"
    version = re.search(r'^__version__ = "([^"]+)"', init.read_text(encoding="utf-8"), re.M).group(1)
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = (datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc) if epoch
            else datetime.datetime.now(datetime.timezone.utc))
    config.version = config.release = version
    options = dict(config.html_theme_options or {})
    base = (config.html_baseurl or "").rstrip("/")
    pdf = f' <a href="{base}/causalbook.pdf">The whole book as a PDF</a>.' if base else ""
    options["extra_footer"] = (options.get("extra_footer") or "") + (
        f'<p class="causalbook-version">causalbook {version}, built {when:%Y-%m-%d}.{pdf}</p>')
    config.html_theme_options = options


#: The environment variable that names the git ref the Binder and Colab buttons open. The publish
#: workflow sets it to ``notebooks-vX.Y.Z`` when it builds a release tag (the release job tags the
#: commit that holds that release's plain notebooks); otherwise ``repository.branch`` of
#: ``_config.yml`` applies (``stable``: the latest release's notebooks).
LAUNCH_REF_ENV = "CAUSALBOOK_LAUNCH_REF"
#: The branch that readers' edits and issues go to: the sources live on main, not on ``stable``.
EDIT_BRANCH = "main"


def _launch_ref(app, config):
    """Binder and Colab open ``$CAUSALBOOK_LAUNCH_REF`` when it is set (a release's notebooks tag)."""
    ref = os.environ.get(LAUNCH_REF_ENV, "").strip()
    if ref:
        if not re.fullmatch(r"[A-Za-z0-9._/-]+", ref):
            raise ValueError(f"{LAUNCH_REF_ENV} must be a git ref name, got {ref!r}")
        options = dict(config.html_theme_options or {})
        options["repository_branch"] = ref
        config.html_theme_options = options


def _edit_on_main(app):
    """The edit-this-page button opens the chapter's source ``.md`` on main. The theme gives the edit
    link the launch buttons' branch, where sources are a release old and notebooks are generated."""
    context = app.config.html_context
    for key in ("github_version", "gitlab_version", "bitbucket_version"):
        if key in context:
            context[key] = EDIT_BRANCH


# Chapter numbers that run through the book. Jupyter Book makes one toctree per part, and Sphinx
# numbers every numbered toctree from 1, so Part II would start again at chapter 1. The chapters are
# files 01-17 and the text calls them "chapter 13": after Sphinx assigns the section numbers, shift
# each numbered part's numbers by the chapters of the numbered parts before it. Figure, equation,
# exercise and proof numbers are assigned afterwards from these section numbers, so they follow.
def _shift_secnumber(number, offset):
    return (number[0] + offset, *number[1:]) if number else number


def _shift_doc(env, docname, offset, seen):
    if docname in seen:
        return 0
    seen.add(docname)
    secnums = env.toc_secnumbers.get(docname, {})
    top = max((n[0] for n in secnums.values() if n), default=0)
    env.toc_secnumbers[docname] = {k: _shift_secnumber(v, offset) for k, v in secnums.items()}
    toc = env.tocs.get(docname)
    if toc is not None:
        for node in toc.findall(nodes.reference):
            if node.get("secnumber"):
                node["secnumber"] = list(_shift_secnumber(tuple(node["secnumber"]), offset))
    title = env.titles.get(docname)
    if title is not None and title.get("secnumber"):
        title["secnumber"] = list(_shift_secnumber(tuple(title["secnumber"]), offset))
    for child in env.toctree_includes.get(docname, []):
        top = max(top, _shift_doc(env, child, offset, seen))
    return top


def _number_chapters_through_the_book(original):
    from sphinx import addnodes

    def assign_section_numbers(self, env):
        rewrite = original(self, env)
        if env.config.root_doc not in env.numbered_toctrees:
            return rewrite
        offset, seen = 0, set()
        for toctree in env.get_doctree(env.config.root_doc).findall(addnodes.toctree):
            if not toctree.get("numbered"):
                continue
            chapters = 0
            for _title, ref in toctree["entries"]:
                if ref in env.toc_secnumbers:
                    chapters = max(chapters, _shift_doc(env, ref, offset, seen))
            offset += chapters
        return rewrite + sorted(seen)

    assign_section_numbers.__wrapped__ = original
    return assign_section_numbers



def setup(app):
    from sphinx.environment.collectors.toctree import TocTreeCollector

    if not hasattr(TocTreeCollector.assign_section_numbers, "__wrapped__"):
        TocTreeCollector.assign_section_numbers = _number_chapters_through_the_book(
            TocTreeCollector.assign_section_numbers)
    app.connect("config-inited", _version_in_footer)
    app.connect("config-inited", _launch_ref)
    app.connect("builder-inited", _edit_on_main, priority=900)  # after the theme fills html_context
    app.connect("builder-inited", _singlehtml_knows_html_nodes)
    app.add_node(claims_table)
    app.add_directive("claims-table", ClaimsTableDirective)
    app.connect("doctree-resolved", _resolve)
    app.connect("env-get-outdated", _always_rebuild)
    # after sphinx-book-theme's add_launch_buttons (priority 501)
    app.connect("html-page-context", _launch_the_notebook, priority=600)
    app.connect("html-page-context", _drop_unused_assets, priority=900)  # after the theme's hooks
    app.connect("build-finished", _download_the_notebook)
    app.add_css_file("causalbook.css")
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
