"""The notebook exporter (``_ext/ipynb_export.py``): every chapter exports cleanly, and each MyST
construct has the intended plain-notebook form. Nothing is executed; glued values are made up."""
from __future__ import annotations

import json
import re
from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]


from tests.build._common import ipynb_export  # noqa: E402

ie = ipynb_export()
BOOK = ie.Book.load(ROOT)
CHAPTERS = ie.chapter_sources(BOOK)
GLUE_KEY = re.compile(r"\{glue:text\}`([^`]+?)(?::[^`:]*)?`")
MYST_LEFT = [re.compile(r"^\s*`{3,}\s*\{", re.M), re.compile(r"^\s*:{3,}\s*\{", re.M),
             re.compile(r"(?<!`)\{[A-Za-z][\w:.-]*\}`")]


def fake_glue(source: Path, value: str = "1") -> dict:
    """A glue table with every key the chapter uses ("1" fits every format: d, .2f, .1%, s)."""
    return {k: {"data": {"text/plain": value}} for k in GLUE_KEY.findall(source.read_text(encoding="utf-8"))}


@pytest.fixture(scope="module")
def exported() -> dict[str, nbformat.NotebookNode]:
    return {src.stem: BOOK.export(src, fake_glue(src)) for src in CHAPTERS}


def _markdown(nb) -> str:
    return "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def _without_code(md: str) -> str:
    md = re.sub(r"^(`{3,}).*?^\1\s*$", "", md, flags=re.S | re.M)  # fenced code (included sources)
    return re.sub(r"(?<!\})(`+)(?!`).+?(?<!`)\1(?!`)", "", md, flags=re.S)  # code spans


# ---------------------------------------------------------------------------------------------
# Every chapter


def test_every_chapter_of_the_toc_is_exported():
    assert [p.stem for p in CHAPTERS] == sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]-*.md"))


@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_notebook_is_valid_and_plain(source, exported):
    nb = exported[source.stem]
    nbformat.validate(nb)
    assert nb.nbformat == 4
    assert nb.metadata["kernelspec"]["name"] == "python3"
    meta = nb.metadata["causalbook"]
    assert meta["source"] == f"notebooks/{source.name}"
    assert meta["causalbook_lib_version"] == BOOK.version
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    # 1. the install cell, 2. the note, 3. the chapter's title
    install, note, title = nb.cells[:3]
    assert install.cell_type == "code"
    assert 'find_spec("causalbook_lib") is None' in install.source
    assert f"git+{BOOK.repository_url}@v{BOOK.version}" in install.source and "CAUSALBOOK_INSTALL" in install.source
    assert "%pip" not in install.source and "!pip" not in install.source
    compile(install.source, "install", "exec")
    number = int(source.name[:2])
    assert note.cell_type == "markdown" and f"Chapter {number} " in note.source and BOOK.version in note.source
    assert BOOK.url(f"notebooks/{source.stem}") in note.source and "seed 0" in note.source
    assert title.cell_type == "markdown" and title.source.startswith("# ")
    # code cells are the chapter's, in order, with their tags
    src_nb = jupytext.read(source)
    src_code = [c for c in src_nb.cells if c.cell_type == "code"]
    out_code = [c for c in nb.cells[1:] if c.cell_type == "code"]
    assert [c.source for c in out_code] == [c.source for c in src_code]
    for a, b in zip(src_code, out_code):
        assert set(a.metadata.get("tags", [])) <= set(b.metadata.get("tags", []))


@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.stem)
def test_no_myst_syntax_is_left(source, exported):
    md = _without_code(_markdown(exported[source.stem]))
    for pattern in MYST_LEFT:
        found = pattern.search(md)
        assert found is None, f"MyST left in {source.name}: {md[found.start():found.start() + 80]!r}"
    assert "\n%" not in "\n" + md


@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.stem)
def test_exercises_and_solutions(source, exported):
    nb = exported[source.stem]
    text = source.read_text(encoding="utf-8")
    labels = re.findall(r"^```\{exercise\}[^\n]*\n:label: (\S+)", text, re.M)
    assert labels, f"{source.name} has no exercises"
    md = _markdown(nb)
    for label in labels:
        number = BOOK.labels[label].number
        assert re.search(rf'<a id="{re.escape(label)}"></a>\n\n#### Exercise {number}\b', md), label
    assert len(re.findall(r"^#### Exercise \d+", md, re.M)) == len(labels)

    # The cells a student edition drops: dropdown solutions and everything in a gated solution.
    expected = set()
    inside = False
    out = iter(nb.cells[2:])
    for cell in jupytext.read(source).cells:
        if cell.cell_type == "code":
            produced = next(out)
            while produced.cell_type != "code":
                produced = next(out)
            if inside:
                expected.add(produced.id)
        else:
            for marker in re.finditer(r"\{solution-(start|end)\}", cell.source):
                inside = marker.group(1) == "start"
    tagged = [c for c in nb.cells if "solution" in c.metadata.get("tags", [])]
    assert expected <= {c.id for c in tagged}, "a code cell of a gated solution is not tagged"
    details = [c for c in nb.cells if c.cell_type == "markdown" and "<details>" in c.source]
    assert len(details) == len(re.findall(r"^```\{solution\}", text, re.M))
    assert all("solution" in c.metadata.get("tags", []) for c in details)
    gated = len(re.findall(r"^```\{solution-start\}", text, re.M))
    assert len([c for c in tagged if c.source.startswith("**Solution to Exercise")]) == gated
    # A student edition: no solution is left, every exercise is.
    student = [c for c in nb.cells if "solution" not in c.metadata.get("tags", [])]
    student_md = "\n".join(c.source for c in student if c.cell_type == "markdown")
    assert "Solution to" not in student_md and "<details>" not in student_md
    assert len(re.findall(r"^#### Exercise \d+", student_md, re.M)) == len(labels)
    # Tagged code cells are only those of gated solutions.
    assert {c.id for c in tagged if c.cell_type == "code"} == expected


def test_output_is_deterministic(exported):
    source = CHAPTERS[2]
    again = ie.Book.load(ROOT).export(source, fake_glue(source))
    assert ie.dumps(again) == ie.dumps(exported[source.stem])
    assert ie.dumps(again).encode() == ie.dumps(again).encode()


def test_a_missing_glue_value_raises():
    source = next(s for s in CHAPTERS if GLUE_KEY.search(s.read_text(encoding="utf-8")))
    glue = fake_glue(source)
    missing = sorted(glue)[0]
    del glue[missing]
    with pytest.raises(ie.ExportError, match=re.escape(missing)):
        BOOK.export(source, glue)
    with pytest.raises(ie.ExportError, match="executed"):
        BOOK.export(source, None)


def test_equations_are_numbered_by_chapter():
    """The chapters' parts are numbered: a chapter's labelled equations are N.1, N.2, ... in order."""
    by_doc: dict[str, list[str]] = {}
    for item in BOOK.labels.values():
        if item.kind == "equation" and item.docname.startswith("notebooks/"):
            by_doc.setdefault(item.docname, []).append(item.number)
    assert len(by_doc) >= 10
    for doc, numbers in by_doc.items():
        chapter = int(doc.split("/")[1][:2])
        assert numbers == [f"{chapter}.{k}" for k in range(1, len(numbers) + 1)], doc
    assert BOOK.labels["ch04-eq-taylor"].docname == "notebooks/04-interventional-expectations"


def test_cross_chapter_equation_reference(exported):
    md = _markdown(exported["06-scaling"])
    n = BOOK.labels["ch04-eq-taylor"].number
    assert f"([{n}]({BOOK.base_url}notebooks/04-interventional-expectations.html#equation-ch04-eq-taylor))" in md


# ---------------------------------------------------------------------------------------------
# Each construct, on a small book of two chapters

MINI_BIB = r"""
@article{zeta2020, author = {Zeta, Anna and Beta, Bob and Gamma, Carl}, title = {Z}, year = {2020}, journal = {J}}
@article{alpha2019, author = {Alpha, Ann and Sch{\"o}lkopf, Bernhard}, title = {A}, year = {2019}, journal = {J}}
@book{solo2001, author = {Solo, Sam}, title = {S}, year = {2001}, publisher = {P}}
"""

HEADER = (ROOT / "notebooks" / "01-structural-causal-models.md").read_text(encoding="utf-8").split("\n---\n")[0] + "\n---\n"

CH1 = HEADER + r"""
# First chapter

Intro with {cite}`zeta2020,alpha2019` and {cite:t}`solo2001`; code `{solution}` stays; $a_{ij}$ `x`.

% a MyST comment
(sec-target)=
## A section

```{math}
:label: one-eq
a = b \\
c = d
```

```{math}
e = f
```

$$
g = h
$$ (dollar-eq)

```{prf:definition} A thing
:label: one-def

Body with {eq}`one-eq` and

$$
x = y
$$
```

```{prf:proof}
Because {eq}`dollar-eq`.
```

See {prf:ref}`one-def`, {ref}`sec-target`, {ref}`words <sec-target>`, {doc}`02-second` and
{doc}`the next <02-second>`. Value {glue:text}`v:.1%`, {glue:text}`n:d`, {glue:text}`s`.

```{literalinclude} ../pkg/mod.py
:pyobject: Thing.method
:lines: 3-4
:dedent: 4
```

## Exercises

```{exercise}
:label: one-ex-1
Do it.
```

```{solution} one-ex-1
:class: dropdown
Like this, see {eq}`two-eq`.
```

```{exercise} Hard one
:label: one-ex-2
Do more.
```

```{solution-start} one-ex-2
:class: dropdown
```

First the idea.

```{code-cell} ipython3
print("solution code")
```

```{solution-end}
```

```{code-cell} ipython3
:tags: [hide-input]
print("not a solution")
```
"""

CH2 = HEADER + r"""
# Second chapter

```{math}
:label: two-eq
z = 1
```

Back to {eq}`one-eq` and {ref}`one-ex-1`.

```{prf:proposition} Claim
:label: two-prop
True.
```
"""

MOD = '''\
class Thing:
    @staticmethod
    def method(x):
        y = x + 1
        return y
'''


@pytest.fixture()
def mini(tmp_path):
    root = tmp_path / "book"
    (root / "notebooks").mkdir(parents=True)
    (root / "book").mkdir()
    (root / "pkg").mkdir()
    (root / "causalbook_lib").mkdir()
    (root / "causalbook_lib" / "__init__.py").write_text('__version__ = "9.8.7"\n')
    (root / "_config.yml").write_text("bibtex_bibfiles: [book/references.bib]\n"
                                      "repository: {url: https://github.com/x/y}\n"
                                      "html: {baseurl: 'https://example.org/b'}\n")
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nparts:\n  - chapters:\n"
                                   "      - file: notebooks/01-first\n      - file: notebooks/02-second\n"
                                   "      - file: book/bibliography\n")
    (root / "book" / "intro.md").write_text("# Intro\n\n```{math}\n:label: intro-eq\nq\n```\n")
    (root / "book" / "bibliography.md").write_text("# Refs\n\n```{bibliography}\n```\n")
    (root / "book" / "references.bib").write_text(MINI_BIB)
    (root / "pkg" / "mod.py").write_text(MOD)
    (root / "notebooks" / "01-first.md").write_text(CH1)
    (root / "notebooks" / "02-second.md").write_text(CH2)
    glue = {"v": {"data": {"text/plain": "0.4456"}}, "n": {"data": {"text/plain": "3"}},
            "s": {"data": {"text/plain": "'rot_90'"}}}
    book = ie.Book.load(root)
    return book, root, glue


def _md(nb) -> str:
    return _markdown(nb)


def test_mini_numbers_and_metadata(mini):
    book, root, glue = mini
    assert book.base_url == "https://example.org/b/"
    assert book.install_spec() == "causalbook_lib @ git+https://github.com/x/y@v9.8.7"
    # intro's equation comes first in the toc: the chapters continue its count
    assert [book.labels[k].number for k in ("intro-eq", "one-eq", "dollar-eq", "two-eq")] == ["1", "2", "3", "4"]
    assert book.labels["one-def"].caption == "Definition 1" and book.labels["two-prop"].caption == "Proposition 1"
    assert book.labels["one-ex-2"].caption == "Exercise 2"
    nb = book.export(root / "notebooks" / "01-first.md", glue)
    assert nb.metadata["causalbook"] == {"source": "notebooks/01-first.md", "chapter": 1,
                                         "causalbook_lib_version": "9.8.7",
                                         "url": "https://example.org/b/notebooks/01-first.html"}


def test_numbered_parts_number_items_by_chapter_through_the_book(mini):
    # As Sphinx numbers them with numbered parts (and _ext/causalbook_sphinx.py): chapter numbers run
    # through the parts, items are "chapter.n", and pages outside numbered parts keep plain numbers.
    _book, root, _glue = mini
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nparts:\n"
                                   "  - caption: One\n    numbered: true\n    chapters:\n"
                                   "      - file: notebooks/01-first\n"
                                   "  - caption: Two\n    numbered: true\n    chapters:\n"
                                   "      - file: notebooks/02-second\n"
                                   "  - caption: Back\n    chapters:\n      - file: book/bibliography\n")
    book = ie.Book.load(root)
    assert book.chapter_numbers == {"notebooks/01-first": 1, "notebooks/02-second": 2}
    assert [book.labels[k].number for k in ("intro-eq", "one-eq", "dollar-eq", "two-eq")] == ["1", "1.1", "1.2", "2.1"]
    assert book.labels["one-ex-2"].caption == "Exercise 1.2" and book.labels["two-prop"].caption == "Proposition 2.1"


def test_term_links_to_the_glossary_anchor_sphinx_makes(mini):
    _book, root, glue = mini
    (root / "book" / "glossary.md").write_text("# Glossary\n\n```{glossary}\nDo-operator\nIntervention\n"
                                               "  Setting a variable.\n\nAverage causal effect\n  A mean.\n```\n")
    toc = (root / "_toc.yml").read_text().replace("      - file: book/bibliography\n",
                                                   "      - file: book/glossary\n      - file: book/bibliography\n")
    (root / "_toc.yml").write_text(toc)
    book = ie.Book.load(root)
    assert book.terms["do-operator"] == ("book/glossary", "term-Do-operator")
    assert book.terms["average causal effect"] == ("book/glossary", "term-Average-causal-effect")
    conv = ie._Converter(book, "notebooks/01-first", root / "notebooks" / "01-first.md", glue)
    ((md, _),) = conv.markdown("The {term}`ACE <average causal effect>` and {term}`intervention`.")
    assert "[ACE](https://example.org/b/book/glossary.html#term-Average-causal-effect)" in md
    assert "[intervention](https://example.org/b/book/glossary.html#term-Intervention)" in md
    with pytest.raises(ie.ExportError, match="not in the glossary"):
        conv.markdown("A {term}`confounder`.")


def test_mini_math(mini):
    book, root, glue = mini
    md = _md(book.export(root / "notebooks" / "01-first.md", glue))
    # display math as equation* (jupyterlab-myst numbers $$ blocks itself), the book's number as \tag
    assert ('<a id="equation-one-eq"></a>\n\n\\begin{equation*}\n\\begin{aligned}\na = b \\\\\nc = d\n'
            '\\end{aligned}\n\\tag{2}\n\\end{equation*}') in md
    assert "\\begin{equation*}\ne = f\n\\end{equation*}" in md  # unlabelled: no number
    assert '<a id="equation-dollar-eq"></a>\n\n\\begin{equation*}\ng = h\n\\tag{3}\n\\end{equation*}' in md
    assert "$$" not in md
    assert "$a_{ij}$ `x`" in md  # braces in math followed by code are not a role


def test_mini_references_and_citations(mini):
    book, root, glue = mini
    md = _md(book.export(root / "notebooks" / "01-first.md", glue))
    bib = "https://example.org/b/book/bibliography.html"
    # sorted in bibliography order; three authors or more: "et al."; LaTeX accents decoded
    assert f"\\[[Alpha and Schölkopf, 2019]({bib}), [Zeta *et al.*, 2020]({bib})\\]" in md
    assert f"Solo \\[[2001]({bib})\\]" in md
    assert "code `{solution}` stays" in md
    assert '<a id="sec-target"></a>' in md and "a MyST comment" not in md
    page = "https://example.org/b/notebooks/01-first.html"
    assert f"[Definition 1]({page}#one-def)" in md
    assert f"[A section]({page}#sec-target)" in md and f"[words]({page}#sec-target)" in md
    assert "[Second chapter](https://example.org/b/notebooks/02-second.html)" in md
    assert "[the next](https://example.org/b/notebooks/02-second.html)" in md
    assert "([4](https://example.org/b/notebooks/02-second.html#equation-two-eq))" in md
    md2 = _md(book.export(root / "notebooks" / "02-second.md", {}))
    assert "([2](https://example.org/b/notebooks/01-first.html#equation-one-eq))" in md2
    assert "[Exercise 1](https://example.org/b/notebooks/01-first.html#one-ex-1)" in md2
    assert '> **Proposition 1 (Claim).** True.' in md2


def test_mini_blocks_glue_and_include(mini):
    book, root, glue = mini
    md = _md(book.export(root / "notebooks" / "01-first.md", glue))
    assert '<a id="one-def"></a>\n\n> **Definition 1 (A thing).** Body with ([2](' in md
    assert "\n>\n> \\begin{equation*} x = y \\end{equation*}" in md  # one line inside the quote
    assert "*Proof.* Because ([3](" in md and md.count("∎") == 1
    assert "Value 44.6%, 3, rot\\_90." in md
    assert "```python\n    y = x + 1\n    return y\n```" in md  # decorator included before :lines:, as in Sphinx


def test_mini_exercises_and_solutions(mini):
    book, root, glue = mini
    nb = book.export(root / "notebooks" / "01-first.md", glue)
    cells = nb.cells
    ex1 = next(i for i, c in enumerate(cells) if "#### Exercise 1\n" in c.source)
    assert '<a id="one-ex-1"></a>' in cells[ex1].source and "Do it." in cells[ex1].source
    sol = cells[ex1 + 1]
    assert sol.metadata["tags"] == ["solution"]
    assert sol.source.startswith("<details>\n<summary>Solution to Exercise 1</summary>\n\nLike this")
    assert sol.source.endswith("\n\n</details>")
    ex2 = cells[ex1 + 2]
    assert "#### Exercise 2 (Hard one)" in ex2.source and "tags" not in ex2.metadata
    gated = cells[ex1 + 3:]
    assert gated[0].source.startswith("**Solution to Exercise 2**") and "First the idea." in gated[0].source
    assert gated[0].metadata["tags"] == ["solution"]
    assert gated[1].source == 'print("solution code")' and gated[1].metadata["tags"] == ["solution"]
    assert gated[2].source == 'print("not a solution")' and gated[2].metadata["tags"] == ["hide-input"]
    assert len(gated) == 3


@pytest.mark.parametrize("snippet, message", [
    ("```{figure} x.png\n```", "figure"),
    ("Text {numref}`x`.", "numref"),
    ("Text {eq}`nowhere`.", "nowhere"),
    ("Text {cite}`nokey2000`.", "nokey2000"),
    ("Text {glue:text}`missing:.2f`.", "missing"),
    ("```{solution-start} one-ex-1\n```\n", "solution-end"),
])
def test_mini_unconvertible_input_raises(mini, snippet, message):
    book, root, glue = mini
    path = root / "notebooks" / "02-second.md"
    path.write_text(CH2 + "\n" + snippet + "\n")
    with pytest.raises(ie.ExportError, match=message):
        book.export(path, glue)


def test_leftover_check():
    with pytest.raises(ie.ExportError):
        ie._check_no_myst("text {weird}`x` text", "here")
    with pytest.raises(ie.ExportError):
        ie._check_no_myst(":::{note}\nx\n:::", "here")
    ie._check_no_myst("`{code}` and $x_{ij}$ and\n```python\n{a}`b`\n```", "here")


# ---------------------------------------------------------------------------------------------
# Glue values


@pytest.mark.parametrize("plain, fmt", [
    ("0.44518", ".1%"), ("0.44518", ".0%"), ("12", "d"), ("3.0", ".2f"), ("-0.00123", "+.3f"),
    ("1.5e-07", ".1e"), ("0.5", "g"), ("'rotate'", "s"), ("'rotate'", ""), ("7", "s"), ("2.25", ".0f"),
])
def test_glue_format_matches_myst_nb(plain, fmt):
    from myst_nb.core.variables import format_plain_text

    assert ie.format_glue(plain, fmt or "s") == format_plain_text(plain, fmt or "s")


def test_load_glue_reads_myst_nb_files_and_executed_notebooks(tmp_path):
    (tmp_path / "a.glue.json").write_text(json.dumps({"k": {"data": {"text/plain": "1.5"}}}))
    assert ie.load_glue(tmp_path, "a")["k"]["data"]["text/plain"] == "1.5"
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("glue")
    cell.outputs = [nbformat.v4.new_output(
        "display_data", data={"application/papermill.record/text/plain": "0.25"},
        metadata={"scrapbook": {"name": "k2", "mime_prefix": "application/papermill.record/"}}),
        nbformat.v4.new_output("stream", name="stdout", text="hello\n")]
    nb.cells = [cell]
    nbformat.write(nb, tmp_path / "b.ipynb")
    assert ie.load_glue(tmp_path, "b") == {"k2": {"data": {"text/plain": "0.25"}, "metadata": {},
                                                  "output_type": "display_data"}}
    with pytest.raises(ie.ExportError, match="no executed notebook"):
        ie.load_glue(tmp_path, "c")


def test_command_line(tmp_path, capsys):
    source = CHAPTERS[0]
    executed = tmp_path / "executed"
    executed.mkdir()
    (executed / f"{source.stem}.glue.json").write_text(json.dumps(fake_glue(source)))
    assert ie.main(["--out", str(tmp_path / "out"), "--executed", str(executed), str(source)]) == 0
    written = tmp_path / "out" / f"{source.stem}.ipynb"
    assert str(written) in capsys.readouterr().out
    nbformat.validate(nbformat.read(written, as_version=4))
    assert ie.main(["--out", str(tmp_path / "out"), "--executed", str(tmp_path / "none"), str(source)]) == 1
    assert "no executed notebook" in capsys.readouterr().err
