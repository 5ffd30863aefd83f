"""Turn the book's MyST chapters into plain Jupyter notebooks that Colab and classic Jupyter render.

Each notebook starts with a cell that installs ``causalbook_lib`` at this release when it is
missing, then a short note, then the chapter. MyST directives and roles become plain Markdown:
numbered equations, definitions and exercises keep the numbers of the HTML book, cross-references
and citations link to the online book, ``{glue:text}`` values come from an executed notebook,
solutions become cells tagged ``solution``. Anything left unconverted is an error.

Usage::

    python _ext/ipynb_export.py --out DIR [--executed DIR] [chapter.md ...]

``--executed`` holds the executed chapters (``NN-name.glue.json`` as MyST-NB writes it, or
``NN-name.ipynb`` with the glue outputs); default ``_build/jupyter_execute/notebooks``.
"""
from __future__ import annotations

import argparse
import ast
import json
import re
import sys
import textwrap
from ast import literal_eval
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BASE_URL = "https://causalbook.github.io/causalbook/"
DEFAULT_EXECUTED = Path("_build") / "jupyter_execute" / "notebooks"
INSTALL_ENV = "CAUSALBOOK_INSTALL"
SOLUTION_TAG = "solution"

_FENCE_OPEN = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|:{3,})(?P<info>[^`]*)$")
_DIRECTIVE_INFO = re.compile(r"^\{(?P<name>[A-Za-z][\w:.-]*)\}\s*(?P<arg>.*)$")
_OPTION = re.compile(r"^:(?P<key>[\w-]+):\s*(?P<value>.*)$")
_TARGET = re.compile(r"^\((?P<label>[^()\s]+)\)=\s*$")
_HEADING = re.compile(r"^(?P<level>#{1,6})\s+(?P<title>.+?)\s*#*\s*$")
#: A role with its content, or a plain code span (left alone); scanning both keeps code spans intact.
_INLINE = re.compile(
    r"(?P<role>\{(?P<name>[A-Za-z][\w:.+-]*)\})?(?P<ticks>`+)(?P<content>.+?)(?<!`)(?P=ticks)(?!`)", re.S)
_EXPLICIT = re.compile(r"^(?P<text>.*?)\s*<(?P<target>[^<>]+)>$", re.S)
_LEFTOVER_DIRECTIVE = re.compile(r"^\s*(`{3,}|:{3,})\s*\{", re.M)
_DOLLAR_LABEL = re.compile(r"^\$\$\s*\((?P<label>[^()\s]+)\)\s*$")

#: sphinx-proof directives and the word their caption starts with.
PROOF_KINDS = {
    "axiom", "theorem", "lemma", "algorithm", "definition", "remark", "conjecture", "corollary",
    "criterion", "example", "property", "observation", "proposition", "assumption", "notation",
}


class ExportError(ValueError):
    """A chapter could not be exported faithfully (unknown syntax, missing value or label)."""


# ---------------------------------------------------------------------------------------------
# Reading MyST blocks


@dataclass
class Directive:
    name: str
    arg: str
    options: dict[str, str]
    body: str
    line: int  # 1-based line of the opening fence within the text it was parsed from
    meta: dict = field(default_factory=dict)  # the YAML option block as parsed (nested values kept)


def _split_front_matter(text: str) -> str:
    if text.startswith("---\n"):
        end = text.find("\n---\n", 4)
        if end != -1:
            return text[end + 5:]
    return text


def _blocks(text: str):
    """Yield ``("text", str)``, ``("code", str)`` (a plain fence, raw) and ``("directive", Directive)``."""
    lines = text.split("\n")
    buf: list[str] = []
    i = 0
    while i < len(lines):
        m = _FENCE_OPEN.match(lines[i])
        if not m:
            buf.append(lines[i])
            i += 1
            continue
        fence = m.group("fence")
        closing = re.compile(r"^ {0,3}" + re.escape(fence[0]) + "{" + str(len(fence)) + r",}\s*$")
        j = i + 1
        while j < len(lines) and not closing.match(lines[j]):
            j += 1
        if buf:
            yield "text", "\n".join(buf)
            buf = []
        info = m.group("info").strip()
        d = _DIRECTIVE_INFO.match(info)
        if d is None:
            yield "code", "\n".join(lines[i:j + 1])
        else:
            yield "directive", _parse_directive(d.group("name"), d.group("arg").strip(), lines[i + 1:j], i + 1)
        i = j + 1
    if buf:
        yield "text", "\n".join(buf)


def _parse_directive(name: str, arg: str, body: list[str], line: int) -> Directive:
    options: dict[str, str] = {}
    meta: dict = {}
    k = 0
    if body and body[0].strip() == "---":
        end = next((n for n in range(1, len(body)) if body[n].strip() == "---"), None)
        if end is None:
            raise ExportError(f"line {line}: unterminated option block of {{{name}}}")
        meta = yaml.safe_load("\n".join(body[1:end])) or {}
        options = {str(a): "" if b is None else str(b) for a, b in meta.items()}
        k = end + 1
    else:
        while k < len(body):
            m = _OPTION.match(body[k])
            if not m:
                break
            options[m.group("key")] = m.group("value").strip()
            k += 1
    return Directive(name, arg, options, "\n".join(body[k:]).strip("\n"), line, meta)


def _title_of(text: str) -> str | None:
    for ln in _split_front_matter(text).split("\n"):
        m = _HEADING.match(ln)
        if m and len(m.group("level")) == 1:
            return m.group("title").strip()
    return None


# ---------------------------------------------------------------------------------------------
# The book: table of contents, numbers, titles, bibliography


@dataclass
class Numbered:
    """A numbered item of the HTML book: an equation, a sphinx-proof block or an exercise."""

    docname: str
    kind: str  # "equation", "exercise" or a sphinx-proof kind ("definition", ...)
    number: str | None  # "3.2" in chapter 3; None for ``:nonumber:``
    title: str = ""

    @property
    def caption(self) -> str:
        word = "Fig." if self.kind == "figure" else self.kind.capitalize()
        return word if self.number is None else f"{word} {self.number}"


@dataclass
class Book:
    """What the HTML book knows across pages: numbers of labelled items, titles, citations.

    Sphinx numbers labelled equations, exercises and each kind of sphinx-proof block (one counter
    per kind) in table-of-contents order. The parts of the chapters are numbered toctrees, so an
    item in chapter 3 is "3.2" and the counters restart in each chapter (``numfig_secnum_depth``
    is 1; ``_ext/causalbook_sphinx.py`` makes chapter numbers run through the parts). Pages outside
    the numbered parts share one counter per kind and get plain numbers.
    """

    root: Path = ROOT
    docs: list[str] = field(default_factory=list)
    titles: dict[str, str] = field(default_factory=dict, repr=False)
    labels: dict[str, Numbered] = field(default_factory=dict, repr=False)
    sections: dict[str, tuple[str, str]] = field(default_factory=dict, repr=False)  # label -> (docname, title)
    base_url: str = DEFAULT_BASE_URL
    repository_url: str = ""
    version: str = ""
    bibliography_doc: str = "book/bibliography"
    bibfiles: list[Path] = field(default_factory=list)
    _bib: dict | None = field(default=None, repr=False)
    _bib_order: dict[str, int] | None = field(default=None, repr=False)
    _labels: dict[str, tuple[str, str]] = field(default_factory=dict, repr=False)
    chapter_numbers: dict[str, int] = field(default_factory=dict, repr=False)  # docname -> chapter
    terms: dict[str, tuple[str, str]] = field(default_factory=dict, repr=False)  # lower-case term -> (docname, anchor)

    @classmethod
    def load(cls, root: Path | str = ROOT) -> "Book":
        root = Path(root).resolve()
        config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8")) or {}
        book = cls(root=root)
        base = (config.get("html") or {}).get("baseurl") or DEFAULT_BASE_URL
        book.base_url = base if base.endswith("/") else base + "/"
        book.repository_url = ((config.get("repository") or {}).get("url") or "").rstrip("/")
        init = (root / "causalbook_lib" / "__init__.py").read_text(encoding="utf-8")
        found = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", init, re.M)
        if not found:
            raise ExportError("no __version__ in causalbook_lib/__init__.py")
        book.version = found.group(1)
        book.bibfiles = [root / p for p in ((config.get("bibtex_bibfiles")) or [])]
        toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
        book.docs = _toc_docs(toc)
        book.chapter_numbers = _toc_chapter_numbers(toc)
        counters: dict[tuple[int | None, str], int] = {}
        for doc in book.docs:
            book._index(doc, counters)
        return book

    def source(self, docname: str) -> Path:
        path = self.root / f"{docname}.md"
        if not path.exists():
            raise ExportError(f"no MyST source for {docname!r} ({path})")
        return path

    def docname(self, path: Path) -> str:
        return Path(path).resolve().relative_to(self.root).with_suffix("").as_posix()

    def url(self, docname: str, anchor: str | None = None) -> str:
        return f"{self.base_url}{docname}.html" + (f"#{anchor}" if anchor else "")

    def _index(self, doc: str, counters: dict[tuple[int | None, str], int]) -> None:
        text = _split_front_matter(self.source(doc).read_text(encoding="utf-8"))
        self.titles[doc] = _title_of(text) or doc
        pending_target: str | None = None

        def number(kind: str, label: str | None, options: dict, title: str = "") -> None:
            if "nonumber" in options:
                n = None
            else:
                chapter = self.chapter_numbers.get(doc)
                counters[chapter, kind] = k = counters.get((chapter, kind), 0) + 1
                n = str(k) if chapter is None else f"{chapter}.{k}"
            if label:
                if label in self.labels or label in self.sections:
                    raise ExportError(f"{doc}: label {label!r} is defined twice")
                self.labels[label] = Numbered(doc, kind, n, title)

        for kind, block in _blocks(text):
            if kind == "text":
                for ln in block.split("\n"):
                    t = _TARGET.match(ln)
                    if t:
                        pending_target = t.group("label")
                        continue
                    h = _HEADING.match(ln)
                    if h and pending_target:
                        self.sections[pending_target] = (doc, h.group("title").strip())
                        pending_target = None
                    elif ln.strip() and pending_target:
                        self.sections[pending_target] = (doc, "")
                        pending_target = None
                    d = _DOLLAR_LABEL.match(ln.strip())
                    if d:
                        number("equation", d.group("label"), {})
            elif kind == "directive":
                d = block
                if d.name == "math" and "label" in d.options:
                    number("equation", d.options["label"], d.options)
                elif d.name.startswith("prf:") and d.name[4:] in PROOF_KINDS:
                    number(d.name[4:], d.options.get("label"), d.options, d.arg)
                elif d.name in ("exercise", "exercise-start"):
                    number("exercise", d.options.get("label"), d.options, d.arg)
                elif d.name == "code-cell" and _figure_caption(d.meta):
                    # MyST-NB makes a captioned figure of the cell's image; Sphinx numbers only
                    # captioned figures.
                    number("figure", (d.meta["mystnb"]["figure"].get("name") or None), {})
                elif d.name == "bibliography":
                    self.bibliography_doc = doc
                elif d.name == "glossary":
                    # Sphinx's anchor of a term: "term-" and the term with every run of other
                    # characters than letters, digits, "." and "_" made one hyphen.
                    for ln in d.body.split("\n"):
                        if ln.strip() and not ln[0].isspace():
                            term = ln.strip()
                            anchor = "term-" + re.sub(r"[^A-Za-z0-9_.]+", "-", term).strip("-")
                            self.terms[term.lower()] = (doc, anchor)

    # --- citations ----------------------------------------------------------------------------

    def _load_bib(self) -> None:
        if self._bib is not None:
            return
        from pybtex.database import BibliographyData, parse_file
        from pybtex.plugin import find_plugin

        data = BibliographyData()
        for path in self.bibfiles:
            for key, entry in parse_file(str(path)).entries.items():
                data.add_entry(key, entry)
        self._bib = dict(data.entries)
        # Within one citation the HTML book lists the references in bibliography order.
        ordered = find_plugin("pybtex.style.formatting", "plain")().sort(list(data.entries.values()))
        self._bib_order = {e.key: n for n, e in enumerate(ordered)}

    def _authors(self, key: str) -> tuple[str, str]:
        """(authors as the HTML book shows them, year) of a bibliography entry."""
        self._load_bib()
        if key not in self._labels:
            from pybtex.backends.plaintext import Backend
            from pybtex.richtext import Text
            from pybtex.style.template import join

            plain = Backend()  # rendering through render_as() looks the plugin up each time: slow
            entry = self._bib[key]
            persons = entry.persons.get("author") or entry.persons.get("editor")
            if persons:
                names = [join(sep=" ")[p.rich_prelast_names + p.rich_last_names].format().render(plain)
                         for p in persons]
                who = (names[0] if len(names) == 1 else f"{names[0]} and {names[1]}" if len(names) == 2
                       else f"{names[0]} *et al.*")
            else:
                who = Text.from_latex(entry.fields.get("title", key)).render(plain)
            self._labels[key] = (who, entry.fields.get("year", ""))
        return self._labels[key]

    def cite(self, keys: str, textual: bool) -> str:
        self._load_bib()
        wanted = [k.strip() for k in keys.split(",") if k.strip()]
        missing = [k for k in wanted if k not in self._bib]
        if missing:
            raise ExportError(f"unknown citation key(s) {missing}")
        wanted = sorted(dict.fromkeys(wanted), key=self._bib_order.__getitem__)
        url = self.url(self.bibliography_doc)
        parts = []
        for key in wanted:
            who, year = self._authors(key)
            parts.append(f"{_md_escape_text(who)} \\[[{year}]({url})\\]" if textual
                         else f"[{_md_escape_text(who)}, {year}]({url})")
        return ", ".join(parts) if textual else "\\[" + ", ".join(parts) + "\\]"

    # --- export -------------------------------------------------------------------------------

    def install_spec(self) -> str:
        if not self.repository_url:
            return f"causalbook_lib=={self.version}"
        return f"causalbook_lib @ git+{self.repository_url}@v{self.version}"

    def export(self, source: Path | str, glue: Mapping[str, Mapping] | None) -> nbformat.NotebookNode:
        """The notebook of one chapter; ``glue`` maps glue keys to MyST-NB outputs (see :func:`load_glue`)."""
        import jupytext

        source = Path(source).resolve()
        doc = self.docname(source)
        if doc not in self.titles:
            raise ExportError(f"{doc} is not in _toc.yml")
        number = _chapter_number(source)
        src_nb = jupytext.read(source)
        conv = _Converter(self, doc, source, glue)
        cells = [nbformat.v4.new_code_cell(self._install_cell()),
                 nbformat.v4.new_markdown_cell(self._note_cell(doc, number))]
        for cell in src_nb.cells:
            if cell.cell_type == "markdown":
                for text, tags in conv.markdown(cell.source):
                    if text.strip():
                        md = nbformat.v4.new_markdown_cell(_unnumbered_environments(text.strip("\n")))
                        if tags:
                            md.metadata["tags"] = tags
                        cells.append(md)
            elif cell.cell_type == "code":
                code = nbformat.v4.new_code_cell(cell.source)
                tags = list(cell.metadata.get("tags", []))
                if conv.in_solution and SOLUTION_TAG not in tags:
                    tags.append(SOLUTION_TAG)
                if tags:
                    code.metadata["tags"] = tags
                cells.append(code)
                caption = _figure_caption(cell.metadata)
                if caption:
                    # The figure's number and caption, as the book prints them under the figure.
                    name = cell.metadata["mystnb"]["figure"].get("name")
                    fig = self.labels.get(name) if name else None
                    head = f"**{fig.caption}.**" if fig is not None else "**Figure.**"
                    text = " ".join(conv._roles(caption).split())
                    md = nbformat.v4.new_markdown_cell(f"{head} {text}")
                    if SOLUTION_TAG in tags:
                        md.metadata["tags"] = [SOLUTION_TAG]
                    cells.append(md)
            else:  # raw cells are MyST-only
                raise ExportError(f"{doc}: unexpected {cell.cell_type} cell")
        if conv.in_solution:
            raise ExportError(f"{doc}: {{solution-start}} of {conv.in_solution} has no {{solution-end}}")
        for n, cell in enumerate(cells):
            cell["id"] = f"cell-{n:03d}"
            if cell.cell_type == "markdown":
                _check_no_myst(cell.source, doc)
        nb = nbformat.v4.new_notebook()
        nb.cells = cells
        nb.metadata = {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
            "causalbook": {
                "source": source.relative_to(self.root).as_posix(),
                "chapter": number,
                "causalbook_lib_version": self.version,
                "url": self.url(doc),
            },
        }
        nbformat.validate(nb)
        return nb

    def _install_cell(self) -> str:
        return textwrap.dedent(f'''\
            # Installs causalbook_lib, the book's library, at the release this notebook was made from,
            # unless it is importable already. ${INSTALL_ENV} (a wheel, a path, any pip requirement) overrides it.
            import importlib.util, os, subprocess, sys
            if importlib.util.find_spec("causalbook_lib") is None:
                spec = os.environ.get("{INSTALL_ENV}") or "{self.install_spec()}"
                subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", spec])
                importlib.invalidate_caches()
            else:
                print("causalbook_lib is installed; this notebook was made with version {self.version}")''')

    def _note_cell(self, doc: str, number: int) -> str:
        return (
            f"*This notebook was generated from the MyST source of Chapter {number} of causalbook, "
            f"version {self.version}. The chapter is online at [{_md_escape_text(self.titles[doc])}]"
            f"({self.url(doc)}); equation numbers, references and citations link there.*\n\n"
            "*The numbers quoted in the text are those of the book's own run (seed 0). The cells print "
            "the numbers of your run, which can differ a little. When a claim of a paper does not hold "
            "on your machine, its check shows a box that says so and the notebook goes on.*")


def _toc_docs(toc: dict) -> list[str]:
    """Docnames in the order Sphinx walks the toctree (root first, then depth first)."""
    out = [str(toc["root"])]

    def walk(entries):
        for e in entries or []:
            if "file" in e:
                out.append(str(e["file"]).removesuffix(".md"))
            walk(e.get("sections"))
            walk(e.get("chapters"))

    walk(toc.get("parts"))
    walk(toc.get("chapters"))
    walk(toc.get("sections"))
    return [d.removesuffix(".md") for d in out]


def _toc_chapter_numbers(toc: dict) -> dict[str, int]:
    """Chapter number of each document in a ``numbered`` part: the chapters of the numbered parts
    are counted through the book (as ``_ext/causalbook_sphinx.py`` makes Sphinx count them), and a
    chapter's sub-pages share its number."""
    out: dict[str, int] = {}
    chapter = 0

    def walk(entries, number):
        for e in entries or []:
            if "file" in e:
                out[str(e["file"]).removesuffix(".md")] = number
            walk(e.get("sections"), number)

    for part in toc.get("parts") or []:
        if not part.get("numbered"):
            continue
        for entry in part.get("chapters") or []:
            chapter += 1
            if "file" in entry:
                out[str(entry["file"]).removesuffix(".md")] = chapter
            walk(entry.get("sections"), chapter)
    return out


def _chapter_number(path: Path) -> int:
    m = re.match(r"(\d+)-", path.name)
    if not m:
        raise ExportError(f"{path.name}: a chapter file is named NN-name.md")
    return int(m.group(1))


# ---------------------------------------------------------------------------------------------
# Converting one chapter's Markdown


def _md_escape_text(text: str) -> str:
    """Escape what Markdown or Jupyter's math would read in plain text (not ``*et al.*``)."""
    return re.sub(r"([\\`\[\]<>$|])", r"\\\1", text)


def _md_escape_value(text: str) -> str:
    return re.sub(r"([\\`*_\[\]<>$|])", r"\\\1", text)


def format_glue(text_plain: str, fmt_spec: str) -> str:
    """Format a glued ``text/plain`` value as MyST-NB 1.x does for ``{glue:text}`key:fmt```."""
    try:
        value = literal_eval(text_plain)
    except (SyntaxError, ValueError):
        value = text_plain
    if fmt_spec == "":
        return str(value)
    type_char = fmt_spec[-1]
    if type_char == "s":
        value = str(value)
    elif type_char in ("b", "c", "d", "o", "x", "X"):
        value = int(value)
    elif type_char in ("e", "E", "f", "F", "g", "G", "n", "%"):
        value = float(value)
    return format(value, fmt_spec)


def _display_math(body: str, tag: int | None) -> str:
    """A ``$$`` block as Sphinx's MathJax writer shows it (multi-line parts aligned), with ``\\tag``."""
    parts = [p.strip("\n") for p in body.split("\n\n") if p.strip()]
    wrapped = [f"\\begin{{aligned}}\n{p}\n\\end{{aligned}}" if "\\\\" in p and not _one_environment(p) else p
               for p in parts]
    math = wrapped[0] if len(wrapped) == 1 else "\\begin{aligned}\n" + "\n\\\\\n".join(wrapped) + "\n\\end{aligned}"
    if re.search(r"(?<!\\)%", math):
        raise ExportError("a TeX comment (%) in display math would break the notebook's math")
    return f"$$\n{math}\n" + (f"\\tag{{{tag}}}\n" if tag is not None else "") + "$$"


_DISPLAY_BLOCK = re.compile(r"^(?P<q>(?:> ?)?)\$\$\n(?P<body>.*?)\n(?P=q)\$\$$", re.S | re.M)
_DISPLAY_LINE = re.compile(r"^(?P<q>(?:> ?)?)\$\$(?P<body>[^$\n]+)\$\$$", re.M)


def _unnumbered_environments(markdown: str) -> str:
    """Display math as ``equation*`` environments instead of ``$$``.

    jupyterlab-myst (Binder's renderer) numbers every ``$$`` block itself, so a block would show
    the book's number (``\\tag``) and a second one of its own; unnumbered blocks would get numbers
    the book does not have. A starred environment it leaves alone, and MathJax in Colab, classic
    Jupyter and JupyterLab renders it the same, ``\\tag`` included.
    """
    def env(q: str, body: str) -> str:
        lines = body.split("\n")
        return "\n".join([f"{q}\\begin{{equation*}}", *lines, f"{q}\\end{{equation*}}"])

    markdown = _DISPLAY_BLOCK.sub(lambda m: env(m.group("q"), m.group("body")), markdown)
    return _DISPLAY_LINE.sub(lambda m: f"{m.group('q')}\\begin{{equation*}} {m.group('body').strip()} "
                                       "\\end{equation*}", markdown)


def _one_environment(tex: str) -> bool:
    m = re.fullmatch(r"\s*\\begin\{([A-Za-z]+\*?)\}.*\\end\{\1\}\s*", tex, re.S)
    return bool(m) and tex.count("\\begin{" + m.group(1) + "}") == 1


def _blockquote(text: str) -> str:
    """Quote Markdown line by line; display math goes on one line (a ``>`` inside it would be TeX)."""
    text = re.sub(r"\$\$(.+?)\$\$", lambda m: "$$" + " ".join(m.group(1).split()) + "$$", text, flags=re.S)
    return "\n".join(f"> {ln}" if ln.strip() else ">" for ln in text.split("\n"))


def _literalinclude(source: Path, d: Directive) -> str:
    known = {"pyobject", "lines", "dedent", "language", "start-after", "end-before", "caption",
             "linenos", "emphasize-lines", "lineno-start", "name", "class", "force", "encoding"}
    unknown = set(d.options) - known
    if unknown:
        raise ExportError(f"{{literalinclude}} option(s) {sorted(unknown)} are not supported")
    path = (source.parent / d.arg).resolve()
    if not path.exists():
        raise ExportError(f"{{literalinclude}} {d.arg}: no such file ({path})")
    text = path.read_text(encoding=d.options.get("encoding") or "utf-8")
    lines = text.split("\n")
    if "pyobject" in d.options:
        lines = _pyobject(text, d.options["pyobject"], d.arg)
    if "start-after" in d.options:
        idx = next((n for n, ln in enumerate(lines) if d.options["start-after"] in ln), None)
        if idx is None:
            raise ExportError(f"{{literalinclude}} {d.arg}: start-after text not found")
        lines = lines[idx + 1:]
    if "end-before" in d.options:
        idx = next((n for n, ln in enumerate(lines) if d.options["end-before"] in ln), None)
        if idx is None:
            raise ExportError(f"{{literalinclude}} {d.arg}: end-before text not found")
        lines = lines[:idx]
    if "lines" in d.options:  # after pyobject, start-after and end-before, as in Sphinx
        lines = [lines[n] for n in _parse_linenos(d.options["lines"], len(lines))]
    if "dedent" in d.options:
        width = d.options["dedent"]
        # as Sphinx does: cut that many characters from every line (whitespace or not)
        lines = textwrap.dedent("\n".join(lines)).split("\n") if not width else [ln[int(width):] for ln in lines]
    code = "\n".join(lines).rstrip("\n")
    language = d.options.get("language") or ("python" if path.suffix == ".py" else "")
    fence = "```"
    while fence in code:
        fence += "`"
    out = f"{fence}{language}\n{code}\n{fence}"
    if d.options.get("caption"):
        out = f"*{d.options['caption']}*\n\n" + out
    return out


def _pyobject(text: str, name: str, where: str) -> list[str]:
    """Lines of a class or function (dotted name for methods), decorators included, as Sphinx cuts them."""
    tree = ast.parse(text)
    scope: Iterable[ast.AST] = tree.body
    node = None
    for part in name.split("."):
        node = next((n for n in scope if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                     and n.name == part), None)
        if node is None:
            raise ExportError(f"{{literalinclude}} {where}: no object {name!r}")
        scope = node.body
    start = min([node.lineno] + [dec.lineno for dec in node.decorator_list])
    return text.split("\n")[start - 1:node.end_lineno]


def _parse_linenos(spec: str, total: int) -> list[int]:
    out: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        if "-" in part:
            a, b = part.split("-", 1)
            lo = int(a) if a else 1
            hi = int(b) if b else total
            out.extend(range(lo - 1, min(hi, total)))
        else:
            out.append(int(part) - 1)
    if not out or max(out) >= total:
        raise ExportError(f"{{literalinclude}} :lines: {spec} is out of range ({total} lines)")
    return out


def _check_no_myst(markdown: str, where: str) -> None:
    """Raise if a MyST directive or role is left in Markdown (fenced code and code spans excepted)."""
    prose = "\n".join(part for kind, part in _blocks(markdown) if kind == "text")
    for kind, block in _blocks(markdown):
        if kind == "directive":
            raise ExportError(f"{where}: MyST directive {{{block.name}}} left in the notebook")
    m = _LEFTOVER_DIRECTIVE.search(prose)
    if m:
        raise ExportError(f"{where}: MyST directive left in the notebook: {prose[m.start():m.start() + 60]!r}")
    for m in _INLINE.finditer(prose):
        if m.group("role"):
            raise ExportError(f"{where}: MyST role left in the notebook: {m.group(0)[:80]!r}")


class _Converter:
    """Converts the Markdown cells of one chapter, in order (gated solutions span cells)."""

    def __init__(self, book: Book, doc: str, source: Path, glue: Mapping[str, Mapping] | None):
        self.book, self.doc, self.source, self.glue = book, doc, source, glue
        self.in_solution: str | None = None  # label of the exercise of an open gated solution

    # The result of a Markdown cell is a list of (markdown, tags): solutions are separate cells.
    def markdown(self, text: str) -> list[tuple[str, list[str]]]:
        chunks: list[tuple[str, list[str]]] = []
        current: list[str] = []

        def flush():
            if current:
                chunks.append(("\n".join(current), [SOLUTION_TAG] if self.in_solution else []))
                current.clear()

        for kind, block in _blocks(text):
            if kind == "directive" and block.name == "solution":
                flush()
                chunks.append((self._solution(block), [SOLUTION_TAG]))
            elif kind == "directive" and block.name == "solution-start":
                flush()
                if self.in_solution:
                    raise ExportError(f"{self.doc}: nested {{solution-start}}")
                self.in_solution = block.arg  # every cell up to {solution-end} is tagged
                current.append(f"**Solution to {self._exercise(block.arg).caption}**\n")
            elif kind == "directive" and block.name == "solution-end":
                if not self.in_solution:
                    raise ExportError(f"{self.doc}: {{solution-end}} without {{solution-start}}")
                flush()
                self.in_solution = None
            else:
                current.append(self._block(kind, block))
        flush()
        return chunks

    def convert(self, text: str) -> str:
        """Markdown of a directive's body (no solutions inside)."""
        out = []
        for kind, block in _blocks(text):
            if kind == "directive" and block.name.startswith("solution"):
                raise ExportError(f"{self.doc}: {{{block.name}}} inside another directive")
            out.append(self._block(kind, block))
        return "\n".join(out)

    def _block(self, kind: str, block) -> str:
        if kind == "code":
            return block
        if kind == "text":
            return self._text(block)
        return self._directive(block)

    def _text(self, text: str) -> str:
        lines: list[str] = []
        opening = None  # index in lines of the $$ that opened the current display block
        for ln in text.split("\n"):
            stripped = ln.strip()
            if opening is not None:  # inside $$ ... $$: TeX, untouched
                d = _DOLLAR_LABEL.match(stripped)
                if d:
                    label = d.group("label")
                    lines.insert(opening, f'<a id="equation-{label}"></a>\n')
                    lines += [f"\\tag{{{self._numbered(label, 'equation').number}}}", "$$"]
                    opening = None
                    continue
                if stripped == "$$":
                    opening = None
                lines.append(ln)
                continue
            if stripped == "$$":
                opening = len(lines)
                lines.append(ln)
                continue
            t = _TARGET.match(ln)
            if t:
                lines.append(f'<a id="{t.group("label")}"></a>\n')
            elif not ln.startswith("%"):  # MyST comment lines are dropped
                lines.append(ln)
        return self._roles("\n".join(lines))

    # --- directives ---------------------------------------------------------------------------

    def _directive(self, d: Directive) -> str:
        name = d.name
        if name == "math":
            unknown = set(d.options) - {"label", "name", "class"}
            if unknown:
                raise ExportError(f"{self.doc}: {{math}} option(s) {sorted(unknown)} are not supported")
            label = d.options.get("label")
            if not label:
                return _display_math(d.body, None)
            n = self._numbered(label, "equation").number
            return f'<a id="equation-{label}"></a>\n\n' + _display_math(d.body, n)
        if name.startswith("prf:") and name[4:] in PROOF_KINDS:
            return self._proof_block(d)
        if name == "prf:proof":
            body = self.convert(d.body).strip("\n").rstrip()
            if body.split("\n")[-1].strip() == "$$" or body.endswith("```"):
                body += "\n\n∎"
            else:
                body += " ∎"
            if re.match(r"^(\$\$|[-*+] |\d+\. |>|#|<|```)", body):
                return "*Proof.*\n\n" + body
            return "*Proof.* " + body
        if name == "exercise":
            ex = self._exercise(d.options.get("label"))
            title = f" ({self._roles(d.arg)})" if d.arg else ""
            anchor = f'<a id="{d.options["label"]}"></a>\n\n' if d.options.get("label") else ""
            return f"{anchor}#### {ex.caption}{title}\n\n{self.convert(d.body)}"
        if name == "literalinclude":
            return _literalinclude(self.source, d)
        raise ExportError(f"{self.doc}: MyST directive {{{name}}} has no notebook form")

    def _proof_block(self, d: Directive) -> str:
        label = d.options.get("label")
        if label:
            item = self._numbered(label, d.name[4:])
        else:  # unlabelled blocks are numbered too, but we cannot tell which number without a label
            raise ExportError(f"{self.doc}: {{{d.name}}} {d.arg!r} needs a :label: to be numbered")
        title = f" ({self._roles(d.arg)})" if d.arg else ""
        body = self.convert(d.body).strip("\n")
        head = f"**{item.caption}{title}.**"
        if re.match(r"^(\$\$|[-*+] |\d+\. |>|#|<|```)", body):
            text = f"{head}\n\n{body}"
        else:
            text = f"{head} {body}"
        return f'<a id="{label}"></a>\n\n' + _blockquote(text)

    def _solution(self, d: Directive) -> str:
        ex = self._exercise(d.arg)
        body = self.convert(d.body).strip("\n")
        return f"<details>\n<summary>Solution to {ex.caption}</summary>\n\n{body}\n\n</details>"

    def _exercise(self, label: str | None) -> Numbered:
        if not label:
            raise ExportError(f"{self.doc}: an exercise (or its solution) has no label")
        return self._numbered(label, "exercise")

    def _numbered(self, label: str, kind: str | None = None) -> Numbered:
        item = self.book.labels.get(label)
        if item is None:
            raise ExportError(f"{self.doc}: unknown label {label!r}")
        if kind and item.kind != kind:
            raise ExportError(f"{self.doc}: label {label!r} is a {item.kind}, not a {kind}")
        return item

    # --- roles --------------------------------------------------------------------------------

    def _roles(self, text: str) -> str:
        return _INLINE.sub(self._role, text)

    def _role(self, m: re.Match) -> str:
        if not m.group("role"):
            return m.group(0)
        name, content = m.group("name"), " ".join(m.group("content").split())
        if name == "eq":
            item = self._numbered(content, "equation")
            return f"([{item.number}]({self.book.url(item.docname, 'equation-' + content)}))"
        if name in ("cite", "cite:p", "cite:ps", "cite:t", "cite:ts"):
            return self.book.cite(content, textual=name.startswith("cite:t"))
        if name == "doc":
            text, target = _explicit(content)
            docname = _resolve_doc(self.doc, target)
            if docname not in self.book.titles:
                raise ExportError(f"{self.doc}: {{doc}} target {target!r} is not in the book")
            return f"[{text or _md_escape_text(self.book.titles[docname])}]({self.book.url(docname)})"
        if name in ("ref", "prf:ref"):
            text, label = _explicit(content)
            if label in self.book.labels:
                item = self.book.labels[label]
                if item.kind == "equation":
                    raise ExportError(f"{self.doc}: use {{eq}} for the equation {label!r}")
                return f"[{text or item.caption}]({self.book.url(item.docname, label)})"
            if name != "prf:ref" and label in self.book.sections:
                docname, title = self.book.sections[label]
                if not (text or title):
                    raise ExportError(f"{self.doc}: {{ref}} {label!r} needs a text (no heading follows it)")
                return f"[{text or _md_escape_text(title)}]({self.book.url(docname, label)})"
            raise ExportError(f"{self.doc}: unknown {{{name}}} target {label!r}")
        if name == "term":
            text, term = _explicit(content)
            if term.lower() not in self.book.terms:
                raise ExportError(f"{self.doc}: {{term}} {term!r} is not in the glossary")
            docname, anchor = self.book.terms[term.lower()]
            return f"[{_md_escape_text(text or term)}]({self.book.url(docname, anchor)})"
        if name == "numref":
            text, label = _explicit(content)
            if label not in self.book.labels:
                raise ExportError(f"{self.doc}: unknown {{numref}} target {label!r}")
            item = self.book.labels[label]
            shown = (text.replace("%s", item.number or "").replace("{number}", item.number or "")
                     if text else item.caption)
            return f"[{_md_escape_text(shown)}]({self.book.url(item.docname, label)})"
        if name == "glue:text":
            return _md_escape_value(self._glue_text(content))
        if name == "math":
            return f"${content}$"
        raise ExportError(f"{self.doc}: MyST role {{{name}}} has no notebook form ({m.group(0)[:60]!r})")

    def _glue_text(self, content: str) -> str:
        key, _, fmt_spec = content.rpartition(":") if ":" in content else (content, "", "s")
        if "::" in key:
            raise ExportError(f"{self.doc}: glue from another document ({content!r}) is not supported")
        if self.glue is None:
            raise ExportError(f"{self.doc}: {{glue:text}}`{content}` needs the executed notebook (--executed)")
        if key not in self.glue:
            raise ExportError(f"{self.doc}: no glued value {key!r} in the executed notebook "
                              f"({len(self.glue)} values there); was the chapter executed after its last edit?")
        data = self.glue[key].get("data", {})
        if "text/plain" not in data:
            raise ExportError(f"{self.doc}: the glued value {key!r} has no text/plain")
        plain = data["text/plain"]
        return format_glue("".join(plain) if isinstance(plain, list) else plain, fmt_spec)


def _figure_caption(meta: dict) -> str:
    """The caption of a code cell's MyST-NB figure (``mystnb: figure: caption:``), or ``""``."""
    figure = (meta.get("mystnb") or {}).get("figure") if isinstance(meta.get("mystnb"), dict) else None
    return str(figure.get("caption") or "").strip() if isinstance(figure, dict) else ""


def _explicit(content: str) -> tuple[str, str]:
    m = _EXPLICIT.match(content)
    if m:
        return m.group("text").strip(), m.group("target").strip()
    return "", content.strip()


def _resolve_doc(current: str, target: str) -> str:
    target = target.removesuffix(".md").removesuffix(".ipynb")
    if target.startswith("/"):
        return target.lstrip("/")
    parts: list[str] = current.split("/")[:-1]
    for p in target.split("/"):
        if p == "..":
            if parts:
                parts.pop()
        elif p not in ("", "."):
            parts.append(p)
    return "/".join(parts)


# ---------------------------------------------------------------------------------------------
# Glue values, files, command line


def load_glue(executed: Path | str, stem: str) -> dict[str, dict]:
    """Glued outputs of one executed chapter: ``stem.glue.json`` (MyST-NB) or the outputs of ``stem.ipynb``.

    Raises:
        ExportError: neither file exists.
    """
    executed = Path(executed)
    gj = executed / f"{stem}.glue.json"
    if gj.exists():
        return json.loads(gj.read_text(encoding="utf-8"))
    ipynb = executed / f"{stem}.ipynb"
    if not ipynb.exists():
        raise ExportError(f"no executed notebook of {stem} in {executed} (looked for {gj.name} and {ipynb.name})")
    return notebook_glue(nbformat.read(ipynb, as_version=4))


def notebook_glue(nb: nbformat.NotebookNode) -> dict[str, dict]:
    """The glued outputs of an executed notebook (MyST-NB's ``scrapbook`` outputs), by name."""
    out: dict[str, dict] = {}
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            meta = (o.get("metadata") or {}).get("scrapbook")
            if not meta:
                continue
            prefix = len(meta.get("mime_prefix", ""))
            out[meta["name"]] = {"data": {k[prefix:]: v for k, v in (o.get("data") or {}).items()},
                                 "metadata": {}, "output_type": o.get("output_type", "display_data")}
    return out


def dumps(nb: nbformat.NotebookNode) -> str:
    """The notebook as JSON text; the same notebook always gives the same bytes."""
    return nbformat.writes(nb) + "\n"


def chapter_sources(book: Book) -> list[Path]:
    return [book.source(d) for d in book.docs if re.match(r"notebooks/\d\d-", d)]


def export_chapters(out: Path | str, executed: Path | str | None = None,
                    chapters: Iterable[Path | str] | None = None, root: Path | str = ROOT) -> list[Path]:
    """Write ``out/NN-name.ipynb`` for each chapter (default: every chapter of ``_toc.yml``)."""
    book = Book.load(root)
    executed = Path(executed) if executed is not None else book.root / DEFAULT_EXECUTED
    paths = [Path(c).resolve() for c in chapters] if chapters else chapter_sources(book)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for src in paths:
        nb = book.export(src, load_glue(executed, src.stem))
        dest = out / f"{src.stem}.ipynb"
        dest.write_text(dumps(nb), encoding="utf-8")
        written.append(dest)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for the .ipynb files")
    parser.add_argument("--executed", type=Path, default=None,
                        help=f"executed chapters with their glue (default {DEFAULT_EXECUTED})")
    parser.add_argument("chapters", nargs="*", type=Path, help="chapter .md files (default: all)")
    args = parser.parse_args(argv)
    try:
        for path in export_chapters(args.out, args.executed, args.chapters or None):
            print(path)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
