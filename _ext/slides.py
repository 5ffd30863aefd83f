"""Write a reveal.js slide deck for each chapter, from the same MyST source and executed notebook as the book.

Each deck ``DIR/NN-name.html`` has

* a title slide: the chapter's title and its learning goals (the list after ``**Learning goals.**``);
* one slide per ``##`` section: the section's first paragraph and its first displayed equation
  (a ``{math}`` block or ``$$ … $$``, also inside a ``{prf:…}`` block), or the titles of the
  section's exercises; sections with nothing to show (``## References``) get no slide;
* one slide per figure of a section: the PNG (or SVG) outputs of its code cells in the executed
  notebook, embedded as ``data:`` URIs, with the caption of the cell's ``mystnb.figure.caption``
  metadata (or else of a ``*Figure.*`` paragraph right after the cell) under it. The alt text is
  the cell's ``mystnb.image.alt``, else that caption, else the titles the cell gives its axes
  (``set_title``/``suptitle``/``title=``), else the section's name. Cells tagged
  ``remove-output`` or ``remove-cell`` and the cells of the ``## Exercises`` section (solutions)
  give no figure;
* the ``## Summary`` section whole, as the summary slide (its place in the chapter: before the
  exercises). A chapter without one gets a summary slide with its learning goals.

Math is typeset in the browser by the vendored MathJax (``_vendor/mathjax/tex-chtml.js``, ``make
mathjax``); reveal.js is the vendored copy in ``_vendor/reveal.js`` (``make reveal``). Nothing is
loaded from another host. MyST roles become plain text: ``{cite}`` gives "(Author et al., year)",
``{glue:text}`` the glued value from the executed notebook (as the book formats it; a sentence whose
value is missing is dropped), ``{eq}`` the book's equation number, ``{ref}``, ``{prf:ref}``,
``{numref}`` and ``{doc}`` their explicit text or the target's title, any other role its content.

**Choosing a section's slide (opt-in).** By default a section's slide shows its first paragraph. A
chapter can instead say what goes on a slide by tagging markdown cells ``slide``: in the MyST source,
a line ``+++ {"tags": ["slide"]}`` right before the cell's text (a cell ends at the next ``+++``,
code cell or end of file). A section that contains tagged cells shows those cells whole (text, lists,
displayed math, ``{prf:…}`` and admonition blocks) instead of its first paragraph and equation; the
other sections keep the default, and figures are added either way. Tagged cells before the first
``##`` heading make one extra slide after the title slide.

The executed notebook is ``DIR/NN-name.ipynb`` of ``--executed DIR`` when given. Otherwise it is the
best of those found: the book's execution cache (``_build/.jupyter_cache``, filled by
``_ext/execute_book.py``) when it holds the chapter's current code, ``_build/executed/NN-name.ipynb``
(``python -m tests.notebooks run``) and ``_build/jupyter_execute/notebooks/NN-name.ipynb`` (MyST-NB's
copy, glue in ``NN-name.glue.json``), the best being the one whose code cells match most of the
chapter's. Code cells are matched to executed ones by their source, so a stale notebook only loses
the outputs of the cells changed since (a warning names how many). Without any executed notebook the
deck has no figures and no glued values (a warning is printed).

Usage::

    python _ext/slides.py --out DIR [--executed DIR] [--vendor-url PREFIX] [chapter ...]

A chapter is a path (``notebooks/01-structural-causal-models.md``), a stem or its number (``01``);
default: every chapter. Without ``--vendor-url`` the vendored reveal.js and MathJax are copied into
``DIR/_vendor`` so that the folder works on its own; with it, the decks load them from ``PREFIX/reveal.js``
and ``PREFIX/mathjax`` (``--vendor-url ..`` for decks in ``_build/html/slides``, where the book's
build already put both: ``html_extra_path`` copies ``_vendor``).
"""
from __future__ import annotations

import argparse
import ast
import base64
import html
import importlib.util
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "_vendor"
REVEAL = VENDOR / "reveal.js"
MATHJAX = VENDOR / "mathjax"
CACHE = ROOT / "_build" / ".jupyter_cache"
#: Executed chapters besides the cache: ``python -m tests.notebooks run`` and MyST-NB's own copies.
EXECUTED_FOLDERS = [ROOT / "_build" / "executed", ROOT / "_build" / "jupyter_execute" / "notebooks"]
SLIDE_TAG = "slide"
NO_FIGURE_TAGS = {"remove-output", "remove-cell"}
SKIP_SECTIONS = {"references", "bibliography", "further reading"}

def _module(name: str):
    """``_ext/<name>.py`` (``_ext`` is not a package: loaded by path, once)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "_ext" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


#: The notebook exporter's MyST patterns (fences, headings, targets, roles, explicit targets).
_FENCE_OPEN, _HEADING, _INLINE, _EXPLICIT = (_module("ipynb_export").__dict__[k] for k in
                                             ("_FENCE_OPEN", "_HEADING", "_INLINE", "_EXPLICIT"))
_TARGET = re.compile(r"^\s*\((?P<label>[^()\s]+)\)=\s*$")  # also indented, unlike the exporter's
_DISPLAY = re.compile(r"\$\$(?P<tex>.+?)\$\$(?:[ \t]*\((?P<label>[^()\s]+)\))?", re.S)
_INLINE_MATH = re.compile(r"(?<![\\$])\$(?=\S)(?P<tex>(?:\\\$|[^$])+?)(?<![\s\\])\$(?!\d)")
_DROP = "\ue002"  # marks a sentence whose glued value is missing
_SENTENCE_END = re.compile(r"[.!?]\**\s+(?=\**[A-Z])")
#: Words ending in a full stop that do not end a sentence.
_ABBREVIATIONS = {"al", "e.g", "i.e", "cf", "vs", "eq", "eqs", "fig", "figs", "sec", "secs", "prop", "cor",
                  "def", "thm", "app", "alg", "ch", "no", "resp", "etc"}


# ---------------------------------------------------------------------------------------------
# Helpers from the other generators (loaded by path: _ext is not a package)


def _book():
    """The book's index of labels, titles and citations (``_ext/ipynb_export.py``)."""
    return _module("ipynb_export").Book.load(ROOT)


def format_glue(text_plain: str, fmt_spec: str) -> str:
    return _module("ipynb_export").format_glue(text_plain, fmt_spec)


# ---------------------------------------------------------------------------------------------
# The executed notebook


def _candidates(source: Path, executed: Path | None):
    """Yield (where, notebook, glue) for each executed notebook of ``source`` that exists."""
    import nbformat

    def from_folder(folder: Path):
        path = folder / f"{source.stem}.ipynb"
        if path.exists():
            nb = nbformat.read(path, as_version=4)
            glue = glue_values(nb)
            glue_json = folder / f"{source.stem}.glue.json"  # MyST-NB moves the glue out of its copy
            if not glue and glue_json.exists():
                import json

                for key, value in json.loads(glue_json.read_text(encoding="utf-8")).items():
                    plain = (value.get("data") or {}).get("text/plain")
                    if plain is not None:
                        glue[key] = "".join(plain) if isinstance(plain, list) else plain
            yield str(path), nb, glue

    if executed is not None:
        yield from from_folder(Path(executed))
        return
    if (CACHE / "global.db").exists():
        try:
            from jupyter_cache import get_cache

            cache = get_cache(str(CACHE))
            record = cache.match_cache_notebook(_module("execute_book").read_chapter(source))
            nb = cache.get_cache_bundle(record.pk).nb
            yield f"{CACHE} (record {record.pk})", nb, glue_values(nb)
        except Exception:  # noqa: BLE001 - not in the cache (KeyError) or no MyST-NB: try the next
            pass
    for folder in EXECUTED_FOLDERS:
        yield from from_folder(folder)


def executed_notebook(source: Path, cells, executed: Path | None = None):
    """(where, executed notebook, glue values) of ``source``: of the notebooks found (see the module
    docstring), the one whose code matches most of ``cells``; (None, None, {}) when there is none."""
    best, best_matched = (None, None, {}), -1
    for where, nb, glue in _candidates(source, executed):
        matched = len(match_outputs(cells, nb))
        if matched > best_matched:
            best, best_matched = (where, nb, glue), matched
    return best


def _code(cell) -> str:
    src = cell.get("source", "")
    return "\n".join(ln.rstrip() for ln in ("".join(src) if isinstance(src, list) else src).strip().split("\n"))


def match_outputs(cells, nb) -> dict[int, list]:
    """Outputs of the executed notebook for each code cell of ``cells`` (by index), matched on source."""
    if nb is None:
        return {}
    done = [c for c in nb.cells if c.get("cell_type") == "code"]
    out: dict[int, list] = {}
    j = 0
    for i, cell in enumerate(cells):
        if cell.cell_type != "code":
            continue
        src = _code(cell)
        for k in range(j, len(done)):
            if _code(done[k]) == src:
                out[i] = done[k].get("outputs", [])
                j = k + 1
                break
    return out


def glue_values(nb) -> dict[str, str]:
    """Glue key -> its ``text/plain`` value in the executed notebook (the exporter's reader)."""
    glued = _module("ipynb_export").notebook_glue(nb) if nb is not None else {}
    values = {}
    for name, out in glued.items():
        plain = out["data"].get("text/plain")
        if plain is not None:
            values[name] = "".join(plain) if isinstance(plain, list) else plain
    return values


# ---------------------------------------------------------------------------------------------
# MyST blocks


def blocks(text: str):
    """``("text", str)``, ``("code", str)`` (a plain fence) and ``("directive", Directive)`` of
    ``text``: the notebook exporter's reader of MyST blocks (``_ext/ipynb_export.py``), so that the
    decks and the plain notebooks read a chapter the same way."""
    return _module("ipynb_export")._blocks(text)


def visible_blocks(text: str):
    """:func:`blocks` without solutions: ``{solution}`` blocks and all from ``{solution-start}`` to
    ``{solution-end}``."""
    hidden = False
    for kind, b in blocks(text):
        if kind == "directive" and b.name == "solution-start":
            hidden = True
        elif kind == "directive" and b.name == "solution-end":
            hidden = False
        elif not hidden and not (kind == "directive" and b.name == "solution"):
            yield kind, b


def sentences(text: str) -> list[str]:
    """``text`` split into sentences (a full stop after an abbreviation such as "et al." ends none)."""
    out, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        word = re.search(r"([\w.]+)\W*$", text[start:m.start()])
        if word and word.group(1).lower() in _ABBREVIATIONS:
            continue
        out.append(text[start:m.end()].strip())
        start = m.end()
    out.append(text[start:].strip())
    return [s for s in out if s]


def paragraphs(text: str) -> list[str]:
    """The paragraphs (blank-line separated) of a text block, without MyST targets, comments and headings."""
    out = []
    for para in re.split(r"\n\s*\n", text):
        lines = [ln for ln in para.split("\n")
                 if not _TARGET.match(ln) and not ln.startswith("%") and ln.strip() != "+++"
                 and not _HEADING.match(ln)]
        para = "\n".join(lines).strip()
        if para:
            out.append(para)
    return out


def split_sections(text: str) -> list[tuple[str | None, str]]:
    """Split markdown at ``##`` headings outside fences: [(heading or None, text after it), ...]."""
    parts: list[tuple[str | None, list[str]]] = [(None, [])]
    fence: str | None = None
    for ln in text.split("\n"):
        m = _FENCE_OPEN.match(ln)
        if fence is None and m:
            fence = m.group("fence")
        elif fence is not None and re.match(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$", ln):
            fence = None
        h = _HEADING.match(ln) if fence is None else None
        if h and len(h.group("level")) <= 2:
            parts.append((ln, []))
        else:
            parts[-1][1].append(ln)
    return [(h, "\n".join(body)) for h, body in parts]


# ---------------------------------------------------------------------------------------------
# Inline conversion and rendering


class Inline:
    """Turns MyST markdown into HTML for a slide: roles to plain text, math kept for MathJax."""

    def __init__(self, book, glue: dict[str, str], doc: str):
        from markdown_it import MarkdownIt

        self.book, self.glue, self.doc = book, glue, doc
        self.md = MarkdownIt("commonmark", {"html": True}).enable("table")
        self.missing: set[str] = set()

    # --- roles --------------------------------------------------------------------------------

    def roles(self, text: str) -> str:
        """``text`` with every role replaced; sentences with a missing glued value are dropped."""
        text = _INLINE.sub(self._role, text)
        if _DROP in text:
            text = " ".join(s for s in sentences(text) if _DROP not in s)
        return text

    def _role(self, m: re.Match) -> str:
        if not m.group("role"):
            return m.group(0)
        name, content = m.group("name"), " ".join(m.group("content").split())
        explicit = _EXPLICIT.match(content)
        text, target = (explicit.group("text").strip(), explicit.group("target").strip()) if explicit \
            else ("", content.strip())
        if name.startswith("cite"):
            return self._cite(content, textual=name.startswith("cite:t"))
        if name.startswith("glue"):
            key, _, fmt = content.rpartition(":") if ":" in content else (content, "", "")
            if key not in self.glue:
                self.missing.add(key)
                return _DROP
            value = format_glue(self.glue[key], fmt)
            return re.sub(r"([\\`*_\[\]<>$|])", r"\\\1", value)
        if name == "math":
            return f"${content}$"
        if name == "eq":
            item = self.book.labels.get(target) if self.book else None
            return f"({item.number})" if item is not None and item.number is not None else "(equation)"
        if name in ("ref", "prf:ref", "numref"):
            item = self.book.labels.get(target) if self.book is not None else None
            if text and name == "numref" and item is not None:  # "Fig. %s" or "{number}" templates
                text = text.replace("%s", str(item.number)).replace("{number}", str(item.number))
                text = text.replace("{name}", item.title or "")
            if text:
                return _plain(text)
            if self.book is not None:
                if target in self.book.labels:
                    item = self.book.labels[target]
                    return item.caption + (f" ({item.title})" if item.title and name == "ref" else "")
                if target in self.book.sections and self.book.sections[target][1]:
                    return self.book.sections[target][1]
            return target
        if name == "doc":
            if text:
                return _plain(text)
            if self.book is not None:
                doc = _module("ipynb_export")._resolve_doc(self.doc, target)
                if doc in self.book.titles:
                    return f"«{self.book.titles[doc]}»"
            return target
        return content

    def _cite(self, keys: str, textual: bool) -> str:
        parts = []
        for key in (k.strip() for k in keys.split(",") if k.strip()):
            try:
                who, year = self.book._authors(key)
            except Exception:  # noqa: BLE001 - unknown key or no bibliography: the key itself
                who, year = key, ""
            parts.append(f"{who} ({year})" if textual else f"{who}, {year}" if year else who)
        return ", ".join(parts) if textual else "(" + "; ".join(parts) + ")"

    # --- rendering ----------------------------------------------------------------------------

    def html(self, markdown: str, inline: bool = False) -> str:
        """HTML of ``markdown`` (roles converted); math becomes ``\\(…\\)``/``\\[…\\]`` for MathJax."""
        markdown = self.roles(markdown)
        math: list[str] = []
        codes: list[str] = []

        def keep_code(m: re.Match) -> str:
            codes.append(m.group(0))
            return f"\ue003{len(codes) - 1}\ue004"

        def keep_math(m: re.Match, display: bool) -> str:
            tex = m.group("tex").strip()
            label = m.groupdict().get("label")
            math.append(display_tex(tex, self._number(label)) if display else f"\\({tex}\\)")
            return f"\ue000{len(math) - 1}\ue001"

        markdown = _INLINE.sub(keep_code, markdown)
        markdown = _DISPLAY.sub(lambda m: keep_math(m, True), markdown)
        markdown = _INLINE_MATH.sub(lambda m: keep_math(m, False), markdown)
        markdown = re.sub("\ue003(\\d+)\ue004", lambda m: codes[int(m.group(1))], markdown)
        out = self.md.renderInline(markdown) if inline else self.md.render(markdown)
        return re.sub("\ue000(\\d+)\ue001", lambda m: html.escape(math[int(m.group(1))], quote=False), out)

    def _number(self, label: str | None) -> str | int | None:
        item = self.book.labels.get(label) if (self.book is not None and label) else None
        return item.number if item is not None else None

    def exercise(self, d: Directive) -> str:
        """An exercise's title, after its number in the book when the book index has it."""
        item = self.book.labels.get(d.options.get("label", "")) if self.book is not None else None
        title = self.html(d.arg, inline=True)
        return f"<strong>{item.caption}.</strong> {title}" if item is not None and item.number else title

    def equation(self, d: Directive) -> str:
        return html.escape(display_tex(d.body, self._number(d.options.get("label"))), quote=False)

    def text_of(self, markdown: str) -> str:
        """Plain text (for alt attributes): roles converted, markup and math delimiters removed."""
        text = re.sub(r"<[^>]+>", "", self.md.renderInline(self.roles(markdown)))
        return " ".join(html.unescape(text).replace("$", "").split())

    def block_html(self, markdown: str) -> str:
        """A whole markdown cell: text, displayed math, sphinx-proof blocks and admonitions."""
        out = []
        for kind, block in blocks(markdown):
            if kind == "text":
                body = "\n\n".join(paragraphs(block))
                if body:
                    out.append(self.html(body))
            elif kind == "code":
                out.append(self.md.render(block))
            elif block.name == "math":
                out.append(f'<div class="equation">{self.equation(block)}</div>')
            elif block.name.startswith("prf:") or block.name in ADMONITIONS:
                word = block.name.split(":")[-1].capitalize()
                title = self.html(block.arg, inline=True) if block.arg else ""
                head = f"<strong>{word}{' (' + title + ')' if title else ''}.</strong>"
                out.append(f'<div class="block">{head}{self.block_html(block.body)}</div>')
        return "\n".join(out)


ADMONITIONS = {"note", "tip", "important", "warning", "caution", "attention", "hint", "seealso", "admonition"}


def display_tex(tex: str, number: str | int | None) -> str:
    tex = tex.strip()
    if number is not None:
        # \tag does not go inside a nested environment's rows: put it after the environment.
        tex = f"{tex} \\tag{{{number}}}"
    return f"\\[{tex}\\]"


def _plain(text: str) -> str:
    return re.sub(r"([*_\[\]<>])", r"\\\1", text)


# ---------------------------------------------------------------------------------------------
# A chapter as sections


@dataclass
class Figure:
    data_uri: str
    alt: str
    caption_html: str = ""


@dataclass
class Section:
    title: str
    chunks: list[tuple[str, bool]] = field(default_factory=list)  # (markdown, tagged "slide")
    figures: list[Figure] = field(default_factory=list)


def _figure_titles(source: str) -> list[str]:
    """The titles a code cell gives its axes: string arguments of set_title/suptitle and title=."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return re.findall(r"title\s*[=(]\s*[rf]*\"([^\"]+)\"", source)
    titles = []

    def text(node) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.JoinedStr):
            return "".join(v.value if isinstance(v, ast.Constant) else "…" for v in node.values)
        return None

    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = getattr(node.func, "attr", getattr(node.func, "id", ""))
        args = list(node.args[:1]) if func in ("set_title", "suptitle", "title") else []
        args += [k.value for k in node.keywords if k.arg == "title"]
        for a in args:
            t = text(a)
            if t and t.strip("… "):
                titles.append(t.replace("$", "").strip())
    return list(dict.fromkeys(titles))


def _images(outputs: list) -> list[str]:
    uris = []
    for o in outputs:
        data = o.get("data") or {}
        if "image/png" in data:
            png = data["image/png"]
            png = "".join(png) if isinstance(png, list) else png
            uris.append("data:image/png;base64," + "".join(png.split()))
        elif "image/svg+xml" in data:
            svg = data["image/svg+xml"]
            svg = "".join(svg) if isinstance(svg, list) else svg
            uris.append("data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode())
    return uris


@dataclass
class Chapter:
    stem: str
    title: str
    intro: list[tuple[str, bool]]
    sections: list[Section]
    code_cells: int = 0
    matched_cells: int = 0


def read_chapter(source: Path, notebook, nb, inline: Inline) -> Chapter:
    outputs = match_outputs(notebook.cells, nb)
    title, intro, sections = source.stem, [], []
    current: Section | None = None
    pending: list[Figure] = []  # the figures of the last code cell, awaiting a caption
    for i, cell in enumerate(notebook.cells):
        if cell.cell_type == "markdown":
            tagged = SLIDE_TAG in (cell.metadata.get("tags") or [])
            for heading, body in split_sections(cell.source):
                if heading is not None:
                    h = _HEADING.match(heading)
                    if len(h.group("level")) == 1:
                        title = h.group("title")
                    else:
                        current = Section(h.group("title"))
                        sections.append(current)
                (intro if current is None else current.chunks).append((body, tagged))
            # A "*Figure.* …" paragraph right after a figure cell is its caption and alt text.
            first = next(iter(paragraphs(cell.source)), "")
            if pending and re.match(r"^\*Figure[^*]*\*", first):
                caption = re.sub(r"^\*Figure[^*]*\*\s*", "", first)
                for fig in pending:
                    if fig.alt.startswith("Figure"):  # not an alt text of the cell's own
                        fig.alt = inline.text_of(caption)
                    fig.caption_html = inline.html(caption, inline=True)
            pending = []
        elif cell.cell_type == "code" and current is not None:
            tags = set(cell.metadata.get("tags") or [])
            if tags & NO_FIGURE_TAGS or current.title.strip().lower() == "exercises":
                continue
            uris = _images(outputs.get(i, []))
            if not uris:
                pending = []
                continue
            mystnb = cell.metadata.get("mystnb") or {}
            caption = str(((mystnb.get("figure") or {}).get("caption")) or "").strip()
            alt = str(((mystnb.get("image") or {}).get("alt")) or "").strip()
            titles = _figure_titles(cell.source)
            if not alt:
                alt = inline.text_of(caption) if caption else ("Figure: " + "; ".join(titles)) if titles else \
                    f"Figure {len(current.figures) + 1} of the section {inline.text_of(current.title)}"
            caption_html = inline.html(caption, inline=True) if caption else ""
            name = (mystnb.get("figure") or {}).get("name")
            numbered = inline.book.labels.get(name) if (caption and name and inline.book is not None) else None
            if numbered is not None and numbered.number is not None:
                caption_html = f"<strong>{html.escape(numbered.caption)}.</strong> {caption_html}"
            figures = [Figure(uri, alt, caption_html) for uri in uris]
            current.figures += figures
            # Without a caption in the cell's metadata, a "*Figure.*" paragraph after it is one.
            pending = [] if caption else figures
    code = sum(1 for c in notebook.cells if c.cell_type == "code")
    return Chapter(source.stem, title, intro, sections, code, len(outputs))


# ---------------------------------------------------------------------------------------------
# Slides


def learning_goals(intro: list[tuple[str, bool]]) -> str:
    """The markdown list after ``**Learning goals.**`` in the chapter's introduction ("" if none)."""
    text = "\n".join(body for body, _ in intro)
    items = r"(?:(?:[-*+]|\d+\.)\s.*\n(?:[ \t]+\S.*\n)*)+"  # list items with their continuation lines
    m = re.search(r"\*\*Learning goals\.?\*\*[^\n]*\n((?:[ \t]*\n)*" + items + ")", text + "\n")
    return m.group(1).strip() if m else ""


def _density(html_text: str) -> str:
    n = len(re.sub(r"<[^>]+>|\\\(.*?\\\)", "", html_text, flags=re.S))
    return " dense" if n > 900 else ""


def section_slide(section: Section, inline: Inline, opted_in: bool) -> str | None:
    """The HTML of a section's main slide, or None when the section has nothing to show."""
    heading = inline.html(section.title, inline=True)
    text = "\n\n".join(body for body, _ in section.chunks)
    tagged = [body for body, tag in section.chunks if tag] if opted_in else []
    if tagged:
        body = "\n".join(inline.block_html(b) for b in tagged)
    else:
        body = ""
        para = None
        for kind, b in visible_blocks(text):
            if kind == "directive" and b.name in ("exercise", "exercise-start"):
                break  # what follows an exercise belongs to it
            if kind == "text":
                para = next((p for p in paragraphs(b) if re.search(r"[A-Za-z]", p)
                             and not p.startswith(("|", "<", "*Figure"))), None)
                if para is not None:
                    break
        if para is not None:
            rendered = inline.html(para)
            if re.sub(r"<[^>]+>", "", rendered).strip():
                body += rendered
        if "$$" not in (para or ""):
            eq = first_equation(text, inline)
            if eq:
                body += f'\n<div class="equation">{eq}</div>'
        exercises = [d for kind, d in blocks(text) if kind == "directive"
                     and d.name in ("exercise", "exercise-start")]
        if exercises:
            items = "".join(f"<li>{inline.exercise(d)}</li>" for d in exercises)
            body += f'\n<ul class="exercises">{items}</ul>'
    if not body.strip() and not section.figures:
        return None
    return f'<section{_classes(body)}>\n<h2>{heading}</h2>\n{body}\n</section>'


def _classes(body: str) -> str:
    d = _density(body).strip()
    return f' class="{d}"' if d else ""


def first_equation(text: str, inline: Inline) -> str:
    """The first displayed equation of a section (top level or inside a sphinx-proof block), as HTML."""
    for kind, b in visible_blocks(text):
        if kind == "directive" and b.name == "math":
            return inline.equation(b)
        if kind == "directive" and b.name.startswith("prf:"):
            inner = first_equation(b.body, inline)
            if inner:
                return inner
        if kind == "text":
            m = _DISPLAY.search(b)
            if m:
                return html.escape(display_tex(m.group("tex"), inline._number(m.group("label"))), quote=False)
    return ""


def figure_slide(section: Section, fig: Figure, inline: Inline) -> str:
    caption = f'\n<p class="caption">{fig.caption_html}</p>' if fig.caption_html else ""
    return (f'<section>\n<h3>{inline.html(section.title, inline=True)}</h3>\n'
            f'<img class="r-stretch" src="{fig.data_uri}" alt="{html.escape(fig.alt)}">{caption}\n</section>')


STYLE = """
.reveal { font-size: 30px; }
.reveal h1, .reveal h2, .reveal h3 { text-transform: none; }
.reveal h1 { font-size: 2.0em; }
.reveal h2 { font-size: 1.45em; }
.reveal h3 { font-size: 1.1em; color: #555; }
.reveal .slides section { text-align: left; }
.reveal .slides section.title { text-align: center; }
.reveal .slides section.title ul { display: inline-block; text-align: left; font-size: 0.8em; }
.reveal .subtitle { color: #555; }
.reveal .dense { font-size: 0.8em; }
.reveal .equation { margin: 0.6em 0; }
.reveal .block { border-left: 4px solid #c9d6e8; padding-left: 0.6em; margin: 0.4em 0; }
.reveal ul.exercises { list-style: none; margin-left: 0; }
.reveal .caption { font-size: 0.55em; color: #444; margin: 0.3em 3.5em 0 0; }
.reveal img.r-stretch { display: block; margin: 0 auto; }
.reveal code { font-size: 0.9em; }
"""


def book_title() -> str:
    try:
        import yaml

        config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8")) or {}
        return str(config.get("title") or "")
    except Exception:  # noqa: BLE001
        return ""


def deck(chapter: Chapter, inline: Inline, vendor: str) -> str:
    number = int(chapter.stem[:2]) if chapter.stem[:2].isdigit() else None
    title_html = inline.html(chapter.title, inline=True)
    goals = learning_goals(chapter.intro)
    subtitle = (f"Chapter {number} · " if number else "") + html.escape(book_title())
    slides = [f'<section class="title">\n<h1>{title_html}</h1>\n<p class="subtitle">{subtitle}</p>\n'
              + (f"<h3>Learning goals</h3>\n{inline.html(goals)}" if goals else "") + "\n</section>"]
    opted_in = any(tag for _, tag in chapter.intro) or any(tag for s in chapter.sections for _, tag in s.chunks)
    intro_tagged = [body for body, tag in chapter.intro if tag]
    if intro_tagged:
        body = "\n".join(inline.block_html(b) for b in intro_tagged)
        slides.append(f"<section{_classes(body)}>\n{body}\n</section>")
    has_summary = False
    for section in chapter.sections:
        name = inline.text_of(section.title).lower()
        if name in SKIP_SECTIONS:
            continue
        if name == "summary":
            has_summary = True
            body = "\n".join(inline.block_html(b) for b, _ in section.chunks)
            slides.append(f'<section class="summary{_density(body)}">\n<h2>Summary</h2>\n{body}\n</section>')
            continue
        main = section_slide(section, inline, opted_in)
        if main is not None:
            slides.append(main)
        slides += [figure_slide(section, fig, inline) for fig in section.figures]
    if not has_summary and goals:
        slides.append(f'<section class="summary">\n<h2>Summary</h2>\n<p>After this chapter you can</p>\n'
                      f'{inline.html(goals)}\n</section>')
    plain_title = inline.text_of(chapter.title)
    return TEMPLATE.format(title=html.escape(f"{number}. {plain_title}" if number else plain_title),
                           vendor=vendor, style=STYLE, slides="\n\n".join(slides))


TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} (slides)</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{vendor}/reveal.js/dist/reset.css">
<link rel="stylesheet" href="{vendor}/reveal.js/dist/reveal.css">
<link rel="stylesheet" href="{vendor}/reveal.js/dist/theme/white.css">
<style>{style}</style>
</head>
<body>
<div class="reveal"><div class="slides">
{slides}
</div></div>
<script src="{vendor}/reveal.js/dist/reveal.js"></script>
<script>
window.MathJax = {{
  tex: {{inlineMath: [["\\\\(", "\\\\)"]], displayMath: [["\\\\[", "\\\\]"]]}},
  startup: {{pageReady: () => MathJax.startup.defaultPageReady()
    .then(() => window.Reveal && Reveal.isReady() && Reveal.layout())}}
}};
Reveal.initialize({{hash: true, slideNumber: "c/t", width: 1280, height: 800, margin: 0.05,
                   center: false, transition: "none", controlsTutorial: false}});
</script>
<script defer src="{vendor}/mathjax/tex-chtml.js"></script>
</body>
</html>
"""


# ---------------------------------------------------------------------------------------------
# Command line


def chapter_paths(names: list[str]) -> list[Path]:
    chapters = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.md"))
    if not names:
        return chapters
    paths = []
    for name in names:
        p = Path(name)
        if p.suffix == ".md" and p.exists():
            paths.append(p.resolve())
            continue
        found = [c for c in chapters if c.stem == p.stem or c.stem.startswith(p.stem + "-")]
        if len(found) != 1:
            raise SystemExit(f"slides: no single chapter matches {name!r}")
        paths.append(found[0])
    return paths


def copy_vendor(out: Path) -> None:
    """Copy the vendored reveal.js (dist) and MathJax into ``out/_vendor`` (MathJax only when missing)."""
    for src, name in ((REVEAL, "reveal.js"), (MATHJAX, "mathjax")):
        if not src.exists():
            target = "reveal" if name == "reveal.js" else "mathjax"
            raise SystemExit(f"slides: {src.relative_to(ROOT)} is missing: run `make {target}`")
    dest = out / "_vendor"
    shutil.rmtree(dest / "reveal.js", ignore_errors=True)
    shutil.copytree(REVEAL, dest / "reveal.js", ignore=shutil.ignore_patterns("*.map", "*.esm.js"))
    if not (dest / "mathjax" / "tex-chtml.js").exists():
        shutil.copytree(MATHJAX, dest / "mathjax", dirs_exist_ok=True)


def write_deck(source: Path, out: Path, executed: Path | None, vendor: str, book) -> Path:
    import jupytext

    notebook = jupytext.read(source)
    where, nb, glue = executed_notebook(source, notebook.cells, executed)
    if nb is None:
        print(f"slides: warning: no executed notebook of {source.stem}: no figures, no glued values",
              file=sys.stderr)
    inline = Inline(book, glue, f"notebooks/{source.stem}")
    chapter = read_chapter(source, notebook, nb, inline)
    text = deck(chapter, inline, vendor)
    if inline.missing:
        print(f"slides: {source.stem}: dropped the sentences of missing glue values {sorted(inline.missing)}",
              file=sys.stderr)
    unmatched = chapter.code_cells - chapter.matched_cells
    if nb is not None and unmatched:
        print(f"slides: {source.stem}: {unmatched} code cells changed since {where} was executed "
              f"(their figures are missing)", file=sys.stderr)
    dest = out / f"{source.stem}.html"
    dest.write_text(text, encoding="utf-8")
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for the decks")
    parser.add_argument("--executed", type=Path, default=None, help="folder of executed NN-name.ipynb")
    parser.add_argument("--vendor-url", default=None,
                        help="URL prefix of reveal.js/ and mathjax/ (default: copy them into OUT/_vendor)")
    parser.add_argument("chapters", nargs="*", help="chapter paths, stems or numbers (default: all)")
    args = parser.parse_args(argv)
    paths = chapter_paths(args.chapters)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.vendor_url is None:
        copy_vendor(args.out)
    vendor = (args.vendor_url or "_vendor").rstrip("/")
    book = _book()
    failed = []
    for source in paths:
        try:
            print(write_deck(source, args.out, args.executed, vendor, book))
        except Exception as exc:  # noqa: BLE001 - one broken chapter does not stop the others
            failed.append(source.stem)
            print(f"slides: FAILED {source.stem}: {type(exc).__name__}: {exc}", file=sys.stderr)
    if failed:
        print(f"slides: no deck for {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
