"""Project-wide consistency: ledger vs chapters, toc vs notebooks, library names used by chapters,
notebook headers, and the dependency lists of pyproject.toml and environment.yml."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import jupytext
import pytest
import yaml

import causalbook_lib as cb

ROOT = Path(__file__).resolve().parents[2]
CHAPTERS = sorted((ROOT / "notebooks").glob("*.md"))
CHECK_CALL = re.compile(r"claims\.check\(\s*[\"']([^\"']+)[\"']")
CB_NAME = re.compile(r"\bcb((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")


def _code(path: Path) -> str:
    nb = jupytext.read(path)
    return "\n".join(c.source for c in nb.cells if c.cell_type == "code")


def test_chapter_files_are_named_and_formatted():
    assert CHAPTERS, "no chapters in notebooks/"
    for path in CHAPTERS:
        assert re.fullmatch(r"\d\d-[a-z0-9]+(-[a-z0-9]+)*\.md", path.name), f"bad chapter name {path.name}"
        meta = jupytext.read(path).metadata
        assert meta["jupytext"]["text_representation"]["format_name"] == "myst", path.name
        assert meta["kernelspec"]["name"] == "python3", path.name


def test_toc_lists_exactly_the_chapters():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    listed = {f for f in files if f.startswith("notebooks/")}
    present = {f"notebooks/{p.stem}" for p in CHAPTERS}
    assert listed == present, f"toc only: {sorted(listed - present)}; notebooks only: {sorted(present - listed)}"
    for f in files:
        assert (ROOT / f"{f}.md").exists(), f"toc entry {f} has no file"


def test_ledger_chapters_exist_and_notebook_ids_are_in_the_ledger():
    ledger = cb.claims.load_ledger()
    stems = {p.stem for p in CHAPTERS}
    bad = {cid: e["chapter"] for cid, e in ledger.items() if e["chapter"] not in stems}
    assert not bad, f"ledger entries name chapters that do not exist: {bad}"
    for path in CHAPTERS:
        for cid in CHECK_CALL.findall(_code(path)):
            assert cid in ledger, f"{path.name} checks {cid!r}, which is not in the ledger"
            assert ledger[cid]["chapter"] == path.stem, f"{cid!r} is checked in {path.name} but filed under {ledger[cid]['chapter']}"


def test_every_ledger_claim_is_named_in_its_chapter():
    ledger = cb.claims.load_ledger()
    sources = {p.stem: p.read_text() for p in CHAPTERS}
    missing = [cid for cid, e in ledger.items() if cid not in sources.get(e["chapter"], "")]
    assert not missing, f"ledger claims their chapter never names: {missing}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_uses_only_names_the_library_has(path):
    code = _code(path)
    assert "import causalbook_lib as cb" in code, f"{path.name} must import causalbook_lib as cb"
    first = next(c.source for c in jupytext.read(path).cells if c.cell_type == "code")
    assert "cb.__version__" in first, f"{path.name}: the first code cell must print cb.__version__"
    for chain in sorted(set(CB_NAME.findall(code))):
        obj = cb
        for part in chain.strip(".").split("."):
            if not hasattr(obj, part):
                if isinstance(obj, type) or not hasattr(obj, "__file__"):
                    break  # an attribute of a class or an object: only modules are checked
                pytest.fail(f"{path.name} uses cb{chain}, but {obj.__name__} has no {part!r}")
            obj = getattr(obj, part)


def _norm(name: str) -> str:
    return re.split(r"[<>=!~\[; ]", name.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_has_every_pyproject_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = list(project["dependencies"]) + [d for extra in project["optional-dependencies"].values() for d in extra]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    names = set()
    for d in env["dependencies"]:
        if isinstance(d, dict):
            names |= {_norm(x) for x in d.get("pip", [])}
        else:
            names.add(_norm(d))
    conda_names = {"torch": "pytorch-cpu"}
    missing = [d for d in deps if _norm(d) not in names and conda_names.get(_norm(d)) not in names]
    assert not missing, f"environment.yml lacks: {missing}"
    assert "python=3.11" in env["dependencies"]
    post = (ROOT / "postBuild").read_text()
    assert "pip install" in post and "-e ." in post


def test_generated_notebooks_and_results_are_ignored():
    ignored = (ROOT / ".gitignore").read_text().split()
    assert "notebooks/*.ipynb" in ignored and "results/" in ignored and "_build/" in ignored


LITERAL_SEED = re.compile(r"(manual_seed|seed_everything|default_rng|RandomState)\(\s*\d+\s*[,)]|\b(seed|random_state)\s*=\s*\d+\s*[,)]")


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_takes_its_seed_from_the_one_knob(path):
    """The first cell reads CAUSALBOOK_SEED through cb.utils.book_seed, and no code cell seeds a
    generator with a literal number: every other seed is derived from SEED."""
    cells = [c.source for c in jupytext.read(path).cells if c.cell_type == "code"]
    assert "SEED = cb.utils.book_seed()" in cells[0] and "seed_everything(SEED)" in cells[0], (
        f"{path.name}: the first code cell must set SEED = cb.utils.book_seed() and seed_everything(SEED)")
    literal = [m.group(0) for c in cells for m in LITERAL_SEED.finditer(c)]
    assert not literal, f"{path.name}: seeds typed as numbers instead of derived from SEED: {literal}"


def test_lock_pins_every_dependency_and_pyproject_keeps_ranges():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = list(project["dependencies"]) + [d for extra in project["optional-dependencies"].values() for d in extra]
    pinned = [d for d in deps if "==" in d]
    assert not pinned, f"pyproject.toml pins exact versions (they belong in requirements.lock): {pinned}"
    lock = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[0-9][0-9A-Za-z.+\-]*", line), f"not an exact pin: {line!r}"
            lock[_norm(line)] = line.split("==")[1]
    missing = [d for d in deps if _norm(d) not in lock]
    assert not missing, f"requirements.lock lacks: {missing}"
    assert lock["torch"] == "2.13.0", "the lock keeps torch at 2.13.0, the CPU wheel this project's machines carry"


def test_library_accepts_the_pythons_readers_have():
    """Colab runs Python 3.12, laptops 3.10-3.13: a floor, never a cap (tests/build/test_python_versions.py
    checks that pip resolves the wheel's metadata on the interpreters this machine has)."""
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.10", f"requires-python should be '>=3.10' with no upper cap, got {requires!r}"


def test_wheel_ships_the_ledger(tmp_path):
    """A normal (non-editable) install must carry claims.yml, or every chapter stops at its first check."""
    import zipfile

    from tests.build._common import build_wheel

    wheel = build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    assert "causalbook_lib/claims.yml" in names
    assert "causalbook_lib/exercises.yml" in names  # the self-checks of cb.exercises
    assert "causalbook_lib/datasets/__init__.py" in names


def test_ledger_section_headers_name_the_chapter_below_them():
    """Entries are grouped by chapter under '# ---- <chapter> ----'; a header must not drift."""
    current = None
    for line in (ROOT / "causalbook_lib" / "claims.yml").read_text().splitlines():
        head = re.fullmatch(r"# ---- (\S+) ----", line)
        if head:
            current = head.group(1)
        chapter = re.fullmatch(r"  chapter: (\S+)", line)
        if chapter:
            assert chapter.group(1) == current, f"an entry of {chapter.group(1)} sits under the header {current}"


def test_citation_file_carries_the_library_version():
    """CITATION.cff repeats the version by hand (cffconvert reads only the file): it must match."""
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert str(cff["version"]) == cb.__version__, f"CITATION.cff says version {cff['version']}, the library {cb.__version__}"


def test_the_repository_address_is_the_one_in_config():
    """_config.yml's repository.url (which the repository, issue, edit and launch buttons use) is the
    one definition: every other mention of a GitHub repository in the project's text is the same one."""
    import subprocess

    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    repo = config["repository"]["url"].rstrip("/").removeprefix("https://github.com/")
    files = subprocess.run(["git", "-C", str(ROOT), "ls-files"], capture_output=True, text=True,
                           check=True).stdout.split()
    pattern = re.compile(r"github\.com/([A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)")
    others = {}
    for name in files:
        path = ROOT / name
        if path.suffix not in {".md", ".yml", ".yaml", ".toml", ".cff", ".py", ".txt", ".cfg"} or not path.is_file():
            continue
        for hit in pattern.findall(path.read_text(encoding="utf-8", errors="replace")):
            hit = hit.removesuffix(".git")
            if "causalbook" in hit.lower() and hit != repo:
                others.setdefault(hit, []).append(name)
    assert not others, f"repository addresses other than {repo} (from _config.yml): {others}"
