"""The exported notebooks (``_ext/ipynb_export.py``) against the HTML book and against a clean install.

* ``test_numbers_and_links_match_the_html``: equation, definition and exercise numbers, link texts,
  citations, included code (and glued values, when the HTML was built with execution) of the
  exported notebooks are those of the built HTML book. Skipped without ``_build/html``
  (``CAUSALBOOK_HTML`` points elsewhere).
* ``test_chapter_runs_from_the_wheel``: builds the library's wheel, installs it in a fresh
  virtualenv, exports chapters to a folder outside the repository and executes them there in
  strict mode (a failed claim fails). ``CAUSALBOOK_WHEEL_CHAPTERS`` picks the chapters:
  ``01-structural-causal-models`` by default, a space- or comma-separated list of names or number
  prefixes (``"01 02"``), or ``all``.
* ``test_install_cell_installs_the_wheel``: in a fresh virtualenv without the library, the first
  cell with ``CAUSALBOOK_INSTALL=<wheel>`` installs it.

The fresh virtualenvs see the project virtualenv's packages (torch, ...) through a ``.pth`` line,
so nothing is downloaded; causalbook_lib itself comes from the wheel (the project's editable
install is not visible there, and an assertion checks it).
"""
from __future__ import annotations

import html as htmllib
import importlib.util
import json
import os
import re
import subprocess
import sys
import sysconfig
from collections import Counter
from pathlib import Path
from urllib.parse import urljoin, urldefrag

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
HTML = Path(os.environ.get("CAUSALBOOK_HTML") or ROOT / "_build" / "html")
#: The executed chapters of the same build as the HTML (MyST-NB writes them next to it).
EXECUTED = HTML.parent / "jupyter_execute" / "notebooks"


from tests.build._common import ipynb_export  # noqa: E402
from tests.kernels import IpcKernelManager  # noqa: E402

ie = ipynb_export()
BOOK = ie.Book.load(ROOT)
CHAPTERS = ie.chapter_sources(BOOK)


def _selected_chapters() -> list[Path]:
    raw = os.environ.get("CAUSALBOOK_WHEEL_CHAPTERS", "01-structural-causal-models").strip()
    if raw == "all":
        return CHAPTERS
    picked = []
    for name in re.split(r"[\s,]+", raw):
        found = [c for c in CHAPTERS if c.stem == name or c.stem.startswith(name + "-")]
        assert found, f"CAUSALBOOK_WHEEL_CHAPTERS: no chapter {name!r}"
        picked += found
    return picked


# ---------------------------------------------------------------------------------------------
# Numbers and links against the HTML book

_TAG = re.compile(r"<[^>]+>")


_SMART = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})


def _text(fragment: str) -> str:
    """Visible text of an HTML fragment, with Sphinx's typographic quotes made plain again."""
    return " ".join(htmllib.unescape(_TAG.sub("", fragment)).translate(_SMART).split())


def _article(page: Path) -> str:
    h = page.read_text(encoding="utf-8")
    start, end = h.find("<article"), h.rfind("</article>")
    assert start != -1 and end != -1, f"{page}: no <article>"
    return h[start:end]


def _html_facts(doc: str) -> dict:
    page = HTML / f"{doc}.html"
    art = _article(page)
    page_url = BOOK.url(doc)
    facts = {
        "equations": {m["label"]: m["n"] for m in re.finditer(
            r'<div class="math notranslate nohighlight" id="equation-(?P<label>[^"]+)">\s*'
            r'<span class="eqno">\((?P<n>[^)<]+)\)', art)},
        "blocks": {m["label"]: _text(m["cap"]) for m in re.finditer(
            r'<div class="(?:proof \w+|exercise) admonition" id="(?P<label>[^"]+)">\s*'
            r'<p class="admonition-title">(?P<cap>.*?)</p>', art, re.S)},
        "citations": [_text(m[1]) for m in re.finditer(r'<span class="bibtex-citation"[^>]*>(.*?)</span>', art, re.S)],
        "glue": [_text(m[1]) for m in re.finditer(r'<span class="pasted-text">(.*?)</span>', art, re.S)],
        "code": [],
        "links": Counter(),
    }
    for m in re.finditer(r'<div class="highlight-[\w-]+ notranslate"><div class="highlight"><pre>(.*?)</pre>', art, re.S):
        if "cell_input" not in art[max(0, m.start() - 120):m.start()]:
            facts["code"].append(htmllib.unescape(_TAG.sub("", m[1])).strip("\n"))
    for m in re.finditer(r'<a class="reference internal" href="(?P<href>[^"]*)"[^>]*>(?P<inner>.*?)</a>', art, re.S):
        if re.search(r'<p class="admonition-title">Solution to\s*$', art[max(0, m.start() - 60):m.start()]):
            continue  # the title of a solution: the notebook says "Solution to Exercise N" without a link
        facts["links"][_link_key(urljoin(page_url, m["href"]), _text(m["inner"]))] += 1
    return facts


def _link_key(url: str, text: str) -> tuple[str, str]:
    base, frag = urldefrag(url)
    if base == BOOK.url(BOOK.bibliography_doc):
        frag = ""  # the notebook links the bibliography page; the HTML's entry ids are not stable
    if frag.startswith("equation-"):
        text = text.strip("()")
    return (base + (f"#{frag}" if frag else ""), text)


_MD_LINK = re.compile(r"\[(?P<text>(?:\\.|[^\[\]\\])*)\]\((?P<url>[^)\s]+)\)")


def _md_text(md: str) -> str:
    return " ".join(re.sub(r"\\(.)", r"\1", md.replace("*", "")).split())


def _nb_facts(nb) -> dict:
    body = [c for c in nb.cells[2:] if c.cell_type == "markdown"]  # not the generated note
    md = "\n\n".join(c.source for c in body)
    facts = {
        "equations": {m["label"]: m["n"] for m in re.finditer(
            r'<a id="equation-(?P<label>[^"]+)"></a>\s*\\begin\{equation\*\}.*?\\tag\{(?P<n>[^}]+)\}', md, re.S)},
        "blocks": {},
        "code": [m["code"] for m in re.finditer(r"^(?P<f>`{3,})python\n(?P<code>.*?)\n(?P=f)$", md, re.S | re.M)],
        "links": Counter(_link_key(m["url"], _md_text(m["text"])) for m in _MD_LINK.finditer(md)),
    }
    for m in re.finditer(r'<a id="(?P<label>[^"]+)"></a>\s*(?:#### (?P<ex>[^\n]+)|> \*\*(?P<prf>.+?)\.\*\*)', md):
        facts["blocks"][m["label"]] = (m["ex"] or m["prf"]).strip()
    return facts


def _cite_texts(source: Path) -> list[str]:
    out = []
    # The front matter's text (the prerequisites the chapter's paragraph is written from) is not shown.
    for m in re.finditer(r"\{(cite(?::[a-z]+)?)\}`([^`]+)`", ie._split_front_matter(source.read_text(encoding="utf-8"))):
        rendered = BOOK.cite(m[2], textual=m[1].startswith("cite:t"))
        out.append(_md_text(_MD_LINK.sub(lambda k: k["text"], rendered)))
    return out


@pytest.mark.skipif(not (HTML / "notebooks").is_dir(), reason=f"no built HTML book in {HTML}")
@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.stem)
def test_numbers_and_links_match_the_html(source):
    doc = BOOK.docname(source)
    if not (HTML / f"{doc}.html").exists():
        pytest.skip(f"{doc} is not in the built HTML")
    html = _html_facts(doc)
    glue_keys = re.findall(r"\{glue:text\}`([^`]+?)(?::[^`:]*)?`", source.read_text(encoding="utf-8"))
    if html["glue"]:  # built with execution: the values must be the build's
        glue = ie.load_glue(EXECUTED, source.stem)
    else:
        glue = {k: {"data": {"text/plain": "1"}} for k in glue_keys}
    nb = BOOK.export(source, glue)
    mine = _nb_facts(nb)
    src = ie._split_front_matter(source.read_text(encoding="utf-8"))  # the front matter is not shown
    assert len(html["equations"]) == len(re.findall(r"^```\{math\}\n:label:", src, re.M))
    assert len(html["blocks"]) == len(re.findall(r"^```\{(?:exercise|prf:(?!proof)[a-z]+)\}", src, re.M))
    assert len(html["citations"]) == len(re.findall(r"\{cite(?::[a-z]+)?\}`", src))
    assert mine["equations"] == html["equations"], "equation numbers differ from the HTML book"
    assert mine["blocks"] == html["blocks"], "definition/proposition/exercise captions differ from the HTML book"
    assert mine["code"] == html["code"], "included code differs from the HTML book"
    assert _cite_texts(source) == html["citations"], "citation texts differ from the HTML book"
    missing = html["links"] - mine["links"]
    extra = mine["links"] - html["links"]
    assert not missing and not extra, f"links differ from the HTML book: HTML only {dict(missing)}, notebook only {dict(extra)}"
    if html["glue"]:
        src = source.read_text(encoding="utf-8")
        ours = []
        for m in re.finditer(r"\{glue:text\}`([^`]+)`", src):
            key, _, fmt = m[1].rpartition(":") if ":" in m[1] else (m[1], "", "s")
            ours.append(ie.format_glue(glue[key]["data"]["text/plain"], fmt))
        assert ours == html["glue"], "glued values differ from the HTML book"


# ---------------------------------------------------------------------------------------------
# A clean install from the wheel


def _run(cmd, **kw):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def _site_packages(python: Path) -> Path:
    return Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip())


def _fresh_venv(where: Path) -> Path:
    """A new virtualenv whose interpreter also sees the project virtualenv's packages (by a .pth line)."""
    _run([sys.executable, "-m", "venv", where])
    python = where / "bin" / "python"
    (_site_packages(python) / "causalbook_project_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def _clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", **extra)
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    from tests.build._common import build_wheel

    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory, wheel) -> Path:
    python = _fresh_venv(tmp_path_factory.mktemp("venv") / "env")
    _run([python, "-m", "pip", "install", "--no-deps", "-q", wheel], env=_clean_env())
    where = _run([python, "-c", "import causalbook_lib; print(causalbook_lib.__file__)"],
                 cwd=tmp_path_factory.getbasetemp(), env=_clean_env()).strip()
    assert Path(where).is_relative_to(python.parent.parent), \
        f"causalbook_lib must come from the wheel in the fresh venv, not from {where}"
    return python


_WHERE_CELL = "import causalbook_lib as _cb, sys as _s; print('__where__', _cb.__file__, _s.executable)"


@pytest.mark.parametrize("source", _selected_chapters(), ids=lambda p: p.stem)
def test_chapter_runs_from_the_wheel(source, wheel_venv, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    assert not tmp_path.resolve().is_relative_to(ROOT)
    out = tmp_path / "notebooks"
    (path,) = ie.export_chapters(out, chapters=[source], executed=_executed_for(source, tmp_path))
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(_WHERE_CELL))
    # A kernel spec of its own, so that the kernel is the fresh venv's python whatever specs are installed.
    kernels = tmp_path / "jupyter" / "kernels" / "causalbook-wheel"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [str(wheel_venv), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "causalbook wheel", "language": "python",
        "env": {"CAUSALBOOK_STRICT": "1", "CAUSALBOOK_RESULTS": str(tmp_path / "results"), "PYTHONPATH": ""},
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    client = NotebookClient(nb, timeout=600, kernel_name="causalbook-wheel", kernel_manager_class=IpcKernelManager,
                            resources={"metadata": {"path": str(out)}})
    client.execute()
    where = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.get("name") == "stdout").split()
    assert where[0] == "__where__"
    venv = wheel_venv.parent.parent
    assert Path(where[1]).is_relative_to(venv), f"the kernel imported causalbook_lib from {where[1]}, not the wheel"
    assert Path(where[2]).is_relative_to(venv), f"the kernel ran {where[2]}, not the fresh venv's python"
    assert "installed" in "".join(o.get("text", "") for o in nb.cells[0].outputs)


def _executed_for(source: Path, tmp_path: Path) -> Path:
    """The build's executed chapter when it has every glued value; else placeholders (they are prose only)."""
    keys = set(re.findall(r"\{glue:text\}`([^`]+?)(?::[^`:]*)?`", source.read_text(encoding="utf-8")))
    try:
        if keys <= set(ie.load_glue(EXECUTED, source.stem)):
            return EXECUTED
    except ie.ExportError:
        pass
    fake = tmp_path / "executed"
    fake.mkdir(exist_ok=True)
    (fake / f"{source.stem}.glue.json").write_text(json.dumps({k: {"data": {"text/plain": "1"}} for k in keys}))
    return fake


def test_install_cell_installs_the_wheel(wheel, tmp_path):
    python = _fresh_venv(tmp_path / "bare")
    # No dependency resolution: the dependencies come from the project venv, and pip would compare
    # them with the fresh venv's own (older) setuptools. The cell's pip sees PIP_NO_DEPS.
    env = _clean_env(CAUSALBOOK_INSTALL=str(wheel), PIP_NO_DEPS="1")
    probe = [python, "-c", "import importlib.util; print(importlib.util.find_spec('causalbook_lib'))"]
    assert _run(probe, cwd=tmp_path, env=env).strip() == "None", "the bare venv must not see causalbook_lib"
    nb = BOOK.export(CHAPTERS[0], {k: {"data": {"text/plain": "1"}} for k in re.findall(
        r"\{glue:text\}`([^`]+?)(?::[^`:]*)?`", CHAPTERS[0].read_text(encoding="utf-8"))})
    first = nb.cells[0]
    assert first.cell_type == "code" and "CAUSALBOOK_INSTALL" in first.source
    _run([python, "-c", first.source], cwd=tmp_path, env=env)
    where = _run([python, "-c", "import causalbook_lib; print(causalbook_lib.__file__, causalbook_lib.__version__)"],
                 cwd=tmp_path, env=env).split()
    assert Path(where[0]).is_relative_to(tmp_path / "bare"), f"causalbook_lib was not installed into the venv: {where}"
    assert where[1] == BOOK.version
    # Run again: now it is importable, and the cell only says so.
    assert "installed" in _run([python, "-c", first.source], cwd=tmp_path, env=env)


def test_self_check_works_in_the_student_notebook_outside_the_repository(wheel_venv, tmp_path, monkeypatch):
    """The student edition's self-check cell of ch01-ex-3, with a student's right and wrong answers
    put in place of ``None``, run by the fresh venv's kernel (the wheel, not the repository, must
    carry the stored intervals) in a directory outside the repository."""
    import math

    from nbclient import NotebookClient

    spec = importlib.util.spec_from_file_location("editions", ROOT / "_ext" / "editions.py")
    editions = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(editions)
    assert not tmp_path.resolve().is_relative_to(ROOT)
    source = next(p for p in CHAPTERS if p.stem.startswith("01-"))
    (path,) = editions.export_editions(tmp_path / "student", None, _executed_for(source, tmp_path), [source], ROOT)
    student = nbformat.read(path, as_version=4)
    (cell,) = [c for c in student.cells if c.cell_type == "code" and 'check("ch01-ex-3", None)' in c.source]
    right = math.sqrt(2 * math.pi / (36 - 2 * math.pi))  # the closed form of the exercise
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import causalbook_lib as cb")]
    for answer in (f"{right:.3f}", "0.445", "None"):
        nb.cells.append(nbformat.v4.new_code_cell(cell.source.replace("None", answer)))
    nb.cells.append(nbformat.v4.new_code_cell(_WHERE_CELL))
    kernels = tmp_path / "jupyter" / "kernels" / "causalbook-wheel"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [str(wheel_venv), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "causalbook wheel", "language": "python", "env": {"PYTHONPATH": ""}}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    NotebookClient(nb, timeout=120, kernel_name="causalbook-wheel", kernel_manager_class=IpcKernelManager,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()

    def shown(c):
        return " ".join(o.get("text", "") + "".join(o.get("data", {}).get("text/plain", ""))
                        for o in c.outputs).lower()

    right_out, wrong_out, none_out = (shown(c) for c in nb.cells[1:4])
    assert "is right" in right_out and "not right" not in right_out, right_out
    assert "is not right" in wrong_out and "0.46" not in wrong_out, f"wrong answer accepted or answer revealed: {wrong_out}"
    assert "no answer yet" in none_out and "0.46" not in none_out, none_out
    where = shown(nb.cells[-1]).split()
    assert Path(where[1]).is_relative_to(wheel_venv.parent.parent), f"cb came from {where[1]}, not the wheel"
