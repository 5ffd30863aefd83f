"""The instructor guide (``_ext/instructor_guide.py``): the chapters' front matter, the prerequisite
graph, and the course paths of ``book/course-paths.yml`` checked against the prerequisite closure.
Nothing is executed; the exporter test uses made-up glued values."""
from __future__ import annotations

import copy
from pathlib import Path

import jupytext
import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[2]


from tests.build._common import ext_module as _load  # noqa: E402


ig = _load("instructor_guide")
SOURCES = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.md"))
CHAPTERS = ig.load_chapters(ROOT)
PATHS = ig.load_paths(ROOT)


# ---------------------------------------------------------------------------------------------
# Front matter and the graph


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_front_matter_parses(source):
    chapter = ig.parse_chapter(source)
    assert chapter.class_minutes > 0 and chapter.main_ideas and chapter.short_title
    assert CHAPTERS[source.stem].part.startswith("Part "), f"{source.stem} is in no part of _toc.yml"
    # Jupytext keeps the entry in the notebook's metadata (tests.notebooks convert, nbval, MyST-NB).
    meta = jupytext.read(source).metadata
    assert meta["causalbook"]["class_minutes"] == chapter.class_minutes
    assert meta["kernelspec"]["name"] == "python3"


def test_prerequisites_point_at_existing_earlier_chapters():
    assert len(CHAPTERS) == len(SOURCES)
    for ch in CHAPTERS.values():
        for p in ch.chapters:
            assert p.chapter in CHAPTERS, f"{ch.stem}: prerequisite {p.chapter} does not exist"
            assert p.number < ch.number, f"{ch.stem}: prerequisite {p.chapter} comes later"
    assert ig.problems(CHAPTERS) == []


def test_the_prerequisite_graph_is_acyclic_and_reduces():
    graph = ig.prerequisite_graph(CHAPTERS)
    assert nx.is_directed_acyclic_graph(graph)
    reduced = ig.reduced_graph(CHAPTERS)
    assert set(reduced.edges) <= set(graph.edges)
    # the reduction keeps every dependency: the same chapters are reachable from each chapter
    for stem in CHAPTERS:
        assert nx.descendants(reduced, stem) == nx.descendants(graph, stem)


def test_problems_finds_unknown_and_later_chapters_and_cycles():
    broken = copy.deepcopy(CHAPTERS)
    first, second = broken["01-structural-causal-models"], broken["02-d-separation-and-networks"]
    first.chapters.append(ig.Prerequisite("02-d-separation-and-networks", "a cycle"))
    second.chapters.append(ig.Prerequisite("99-no-such-chapter"))
    found = " | ".join(ig.problems(broken))
    assert "99-no-such-chapter is not a chapter" in found
    assert "01-structural-causal-models: prerequisite 02-d-separation-and-networks does not come earlier" in found
    assert "cycle" in found


def test_malformed_front_matter_is_refused(tmp_path):
    bad = tmp_path / "03-bad.md"
    bad.write_text("---\ncausalbook:\n  short_title: x\n  class_minutes: 0\n  main_ideas: y\n"
                   "  prerequisites: []\n---\n\n# Bad\n")
    with pytest.raises(ig.GuideError, match="class_minutes"):
        ig.parse_chapter(bad)
    bad.write_text("---\ncausalbook:\n  short_title: x\n  class_minutes: 30\n  main_ideas: y\n"
                   "  prerequisites:\n  - chapter: 01-x\n    why: typo\n---\n\n# Bad\n")
    with pytest.raises(ig.GuideError, match="only 'chapter' and 'for'"):
        ig.parse_chapter(bad)


# ---------------------------------------------------------------------------------------------
# Course paths


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p["title"])
def test_course_path_respects_the_prerequisites(path):
    assert ig.path_problems(path, CHAPTERS) == []


def test_the_paths_named_on_the_page_exist():
    titles = " / ".join(p["title"] for p in PATHS)
    for wanted in ("one-week", "six-week", "term", "seminar"):
        assert wanted in titles, f"no {wanted} path in {ig.PATHS_FILE}"


def _path(*units, minutes=90):
    return {"title": "test", "unit": "Session", "unit_minutes": minutes, "units": list(units)}


def test_a_path_that_skips_prerequisites_fails():
    # The seminar as the page used to print it: 1, 3, 4, 7, 11 and 13, nothing assigned as reading.
    old_seminar = _path(*({"chapters": [s]} for s in (
        "01-structural-causal-models", "03-gradients-and-ig", "04-interventional-expectations",
        "07-recurrent-networks", "11-information-flow", "13-generative-causal-explanations")))
    found = " | ".join(ig.path_problems(old_seminar, CHAPTERS))
    assert "03-gradients-and-ig needs 02-d-separation-and-networks" in found
    assert "07-recurrent-networks needs 02-d-separation-and-networks" in found
    assert "13-generative-causal-explanations needs 12-linear-gaussian-explanations, 10-vae-latents" in found


def test_reading_order_units_time_and_electives_count():
    scm, dsep, grads = "01-structural-causal-models", "02-d-separation-and-networks", "03-gradients-and-ig"
    # reading counts from its own unit on, not before
    late = _path({"chapters": [scm]}, {"chapters": [grads]}, {"chapters": [], "reading": [dsep]})
    assert any("03-gradients-and-ig needs 02" in p for p in ig.path_problems(late, CHAPTERS))
    ok = _path({"chapters": [scm]}, {"chapters": [grads], "reading": [{"chapter": dsep, "note": "x"}]})
    assert ig.path_problems(ok, CHAPTERS) == []
    # a reading's own prerequisites must be covered too
    early = _path({"chapters": [], "reading": [dsep]})
    assert any("reading 02-d-separation-and-networks needs 01" in p for p in ig.path_problems(early, CHAPTERS))
    # a chapter before its prerequisite in the same unit
    swapped = _path({"chapters": [dsep, scm]}, minutes=180)
    assert any("02-d-separation-and-networks needs 01" in p for p in ig.path_problems(swapped, CHAPTERS))
    # more class time than the unit has (75 + 75 min in a 90-minute session)
    assert any("more than the 90 min" in p for p in ig.path_problems(_path({"chapters": [scm, dsep]}), CHAPTERS))
    # an elective is not a prerequisite that later units may rely on
    elective = _path({"chapters": [scm, {"one_of": [dsep, "11-information-flow"]}]},
                     {"chapters": [grads]}, minutes=400)
    assert any("03-gradients-and-ig needs 02" in p for p in ig.path_problems(elective, CHAPTERS))


def test_unit_minutes_add_the_class_times():
    unit = {"chapters": ["14-causal-theory", {"one_of": ["15-ood-generalisation", "17-robustness-fairness"]}]}
    lo, hi = ig.unit_minutes(unit, CHAPTERS)
    c = {s: CHAPTERS[s].class_minutes for s in ("14-causal-theory", "15-ood-generalisation", "17-robustness-fairness")}
    assert (lo, hi) == (c["14-causal-theory"] + min(c["15-ood-generalisation"], c["17-robustness-fairness"]),
                        c["14-causal-theory"] + max(c["15-ood-generalisation"], c["17-robustness-fairness"]))


# ---------------------------------------------------------------------------------------------
# The Prerequisites paragraph, the figure and the measured columns


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_the_prerequisites_paragraph_is_generated(source):
    text = source.read_text(encoding="utf-8")
    chapter = CHAPTERS[source.stem]
    assert text.count("**Prerequisites.**") == 1, f"{source.name}: no (or two) Prerequisites paragraphs"
    assert ig.prerequisites_paragraph(chapter) in text, (
        f"{source.name}: the Prerequisites paragraph differs from its front matter; "
        "run python _ext/instructor_guide.py --write")
    para = ig.prerequisites_myst(chapter)
    assert para.startswith("**Prerequisites.** ")
    for p in chapter.chapters:
        assert f"{{doc}}`/notebooks/{p.chapter}`" + (f" ({p.why})" if p.why else "") in para
    for b in chapter.background:
        assert b.text[1:] in para
    assert ("No earlier chapter is needed." in para) == (not chapter.chapters)


def test_exported_notebook_has_the_paragraph_as_markdown():
    ie = _load("ipynb_export")
    book = ie.Book.load(ROOT)
    source = ROOT / "notebooks" / "13-generative-causal-explanations.md"
    # The chapter's Markdown cell as the exporter converts it (the rest of the chapter is
    # test_ipynb_export.py's business).
    converter = ie._Converter(book, book.docname(source), source, glue={})
    paragraph = ig.prerequisites_paragraph(CHAPTERS[source.stem])
    ((para, tags),) = converter.markdown(f"Before.\n\n{paragraph}\n\nAfter.")
    assert tags == []
    para = " ".join(para[para.index("**Prerequisites.**"):].split("\n\n")[0].split())  # the source wraps it
    ie._check_no_myst(para, "test")
    assert "{doc}" not in para
    for p in CHAPTERS[source.stem].chapters:
        assert f"]({book.url('notebooks/' + p.chapter)}) ({p.why})" in para


def test_the_graph_is_drawn_with_alt_text(tmp_path):
    out = ig.draw_graph(CHAPTERS, tmp_path / "graph.svg")
    assert out.read_text(encoding="utf-8").lstrip().startswith(("<?xml", "<svg"))
    alt = ig.alt_text(CHAPTERS)
    for a, b in ig.reduced_graph(CHAPTERS).edges:
        assert f"{CHAPTERS[a].number} to {CHAPTERS[b].number}" in alt


def test_missing_measurements_show_a_dash():
    assert ig.format_seconds(None) == ig.MISSING == "\u2013"
    assert ig.format_mb(None) == ig.MISSING
    assert ig.format_seconds(12.6) == "13 s" and ig.format_mb(570.2) == "570 MB"


def test_write_prerequisites_rewrites_a_stale_paragraph(tmp_path):
    source = ROOT / "notebooks" / "13-generative-causal-explanations.md"
    copy = tmp_path / source.name
    text = source.read_text(encoding="utf-8")
    copy.write_text(text.replace("(the saliency maps)", "(saliency)"), encoding="utf-8")
    assert ig.prerequisites_paragraph(ig.parse_chapter(copy)) not in copy.read_text(encoding="utf-8")
    assert ig.write_prerequisites(copy) and copy.read_text(encoding="utf-8") == text
    assert not ig.write_prerequisites(copy)
