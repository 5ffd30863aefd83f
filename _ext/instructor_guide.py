"""The instructor guide, generated from the chapters' own front matter.

Each chapter states, once, in the YAML header of ``notebooks/NN-*.md``, what it needs and what it
teaches::

    causalbook:
      short_title: SCMs            # its box in the dependency graph
      class_minutes: 75            # class time, for a 90-minute session with live coding
      main_ideas: "SCMs, sampling, do(), ..."        # MyST inline text, for the chapter map
      prerequisites:
      - chapter: 01-structural-causal-models          # an earlier chapter ...
        for: 'SCMs and $do(\\cdot)$'                  # ... and what is taken from it (MyST inline)
      - background: 'entropy and mutual information'  # knowledge from outside the book
        short: entropy                                # its name in the chapter map (default: the text)

Everything else is drawn from that:

* the chapter's "**Prerequisites.**" paragraph, written into the source by ``python
  _ext/instructor_guide.py --write`` (:func:`write_prerequisites`). It stays plain MyST in the
  chapter, so JupyterLab's MyST renderer, which knows no custom directive, shows it as the book
  does; ``tests/unit/test_instructor_guide.py`` fails when it drifts from the front matter.

At build time:

* ``{chapter-map}``: the table of chapters (main ideas, prerequisites, class time), with the
  execution time of each chapter from this build's execution cache (what MyST-NB's
  ``{nb-exec-table}`` reads) and the peak memory from ``results/robustness/summary.json``.
* ``{chapter-graph}``: the prerequisite graph (networkx, transitive reduction), drawn by part with
  matplotlib into an SVG that Sphinx copies into the build.
* ``{course-paths}``: the course paths of ``book/course-paths.yml``, each checked against the
  prerequisite closure (:func:`path_problems`; ``tests/unit/test_instructor_guide.py`` checks the
  same).

The data functions need only PyYAML (and networkx, matplotlib for the graph); the exporter and the
unit test import this file without Sphinx doing anything.
"""
from __future__ import annotations

import datetime
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PATHS_FILE = "book/course-paths.yml"
#: Shown where a value is missing (a chapter not executed in this build, no robustness sweep).
MISSING = "\u2013"
_FRONT = re.compile(r"\A---\n(?P<yaml>.*?)\n---\n", re.S)
_STEM = re.compile(r"^(?P<n>\d\d)-[a-z0-9-]+$")


class GuideError(ValueError):
    """A chapter's ``causalbook:`` front matter or a course path is malformed."""


# ---------------------------------------------------------------------------------------------
# The chapters' front matter


@dataclass
class Prerequisite:
    chapter: str  # stem, e.g. "01-structural-causal-models"
    why: str = ""  # MyST inline text

    @property
    def number(self) -> int:
        return int(self.chapter[:2])


@dataclass
class Background:
    text: str  # MyST inline text, as the chapter says it
    short: str  # as the chapter map says it


@dataclass
class Chapter:
    stem: str
    title: str
    short_title: str
    class_minutes: int
    main_ideas: str
    chapters: list[Prerequisite] = field(default_factory=list)
    background: list[Background] = field(default_factory=list)
    part: str = ""

    @property
    def number(self) -> int:
        return int(self.stem[:2])

    @property
    def docname(self) -> str:
        return f"notebooks/{self.stem}"


def front_matter(path: Path | str) -> dict:
    """The YAML header of a MyST file (``{}`` if it has none)."""
    text = Path(path).read_text(encoding="utf-8")
    m = _FRONT.match(text)
    if not m:
        return {}
    try:
        data = yaml.safe_load(m.group("yaml"))
    except yaml.YAMLError as exc:
        raise GuideError(f"{Path(path).name}: the front matter is not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise GuideError(f"{Path(path).name}: the front matter is not a mapping")
    return data


def _title(path: Path) -> str:
    text = _FRONT.sub("", Path(path).read_text(encoding="utf-8"), count=1)
    m = re.search(r"^# (.+?)\s*$", text, re.M)
    return m.group(1) if m else path.stem


def parse_chapter(path: Path | str) -> Chapter:
    """The ``causalbook:`` front matter of one chapter, checked for shape (not for other chapters)."""
    path = Path(path)
    stem = path.stem
    if not _STEM.match(stem):
        raise GuideError(f"{path.name}: a chapter file is named NN-name.md")
    meta = front_matter(path).get("causalbook")
    if not isinstance(meta, dict):
        raise GuideError(f"{path.name}: no 'causalbook:' mapping in the front matter")
    unknown = set(meta) - {"short_title", "class_minutes", "main_ideas", "prerequisites"}
    if unknown:
        raise GuideError(f"{path.name}: unknown 'causalbook:' key(s) {sorted(unknown)}")
    minutes = meta.get("class_minutes")
    if not isinstance(minutes, int) or isinstance(minutes, bool) or minutes <= 0:
        raise GuideError(f"{path.name}: class_minutes must be a positive whole number of minutes, got {minutes!r}")
    for key in ("short_title", "main_ideas"):
        if not isinstance(meta.get(key), str) or not meta[key].strip():
            raise GuideError(f"{path.name}: '{key}' must be a non-empty string")
    chapter = Chapter(stem, _title(path), meta["short_title"].strip(), minutes, meta["main_ideas"].strip())
    items = meta.get("prerequisites")
    if not isinstance(items, list):
        raise GuideError(f"{path.name}: 'prerequisites' must be a list (it may be empty)")
    for item in items:
        if isinstance(item, str):
            item = {"background": item}
        if not isinstance(item, dict):
            raise GuideError(f"{path.name}: a prerequisite is a mapping or a string, got {item!r}")
        if "chapter" in item:
            if set(item) - {"chapter", "for"}:
                raise GuideError(f"{path.name}: a chapter prerequisite has only 'chapter' and 'for', got {sorted(item)}")
            target = str(item["chapter"])
            if not _STEM.match(target):
                raise GuideError(f"{path.name}: prerequisite {target!r} is not a chapter stem (NN-name)")
            chapter.chapters.append(Prerequisite(target, str(item.get("for") or "").strip()))
        elif "background" in item:
            if set(item) - {"background", "short"}:
                raise GuideError(f"{path.name}: a background item has only 'background' and 'short', got {sorted(item)}")
            text = str(item["background"]).strip()
            if not text:
                raise GuideError(f"{path.name}: an empty background item")
            chapter.background.append(Background(text, str(item.get("short") or text).strip()))
        else:
            raise GuideError(f"{path.name}: a prerequisite needs 'chapter' or 'background', got {sorted(item)}")
    return chapter


def _parts(root: Path) -> dict[str, str]:
    """docname -> caption of its part in ``_toc.yml``."""
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8")) or {}
    out = {}
    for part in toc.get("parts") or []:
        for entry in part.get("chapters") or []:
            out[str(entry.get("file", "")).removesuffix(".md")] = str(part.get("caption", ""))
    return out


def load_chapters(root: Path | str = ROOT) -> dict[str, Chapter]:
    """Every chapter of ``notebooks/``, in order, keyed by stem. Raises :class:`GuideError`."""
    root = Path(root)
    parts = _parts(root)
    chapters = {}
    for path in sorted((root / "notebooks").glob("[0-9][0-9]-*.md")):
        chapter = parse_chapter(path)
        chapter.part = parts.get(chapter.docname, "")
        chapters[chapter.stem] = chapter
    return chapters


def problems(chapters: dict[str, Chapter]) -> list[str]:
    """What is wrong with the prerequisites as a whole: unknown or later chapters, cycles."""
    out = []
    for ch in chapters.values():
        seen = set()
        for p in ch.chapters:
            if p.chapter not in chapters:
                out.append(f"{ch.stem}: prerequisite {p.chapter} is not a chapter of the book")
            elif p.number >= ch.number:
                out.append(f"{ch.stem}: prerequisite {p.chapter} does not come earlier in the book")
            if p.chapter in seen:
                out.append(f"{ch.stem}: prerequisite {p.chapter} is listed twice")
            seen.add(p.chapter)
    graph = prerequisite_graph(chapters)
    import networkx as nx

    if not nx.is_directed_acyclic_graph(graph):
        cycle = nx.find_cycle(graph)
        out.append("the prerequisites form a cycle: " + " -> ".join(a for a, _ in cycle) + f" -> {cycle[0][0]}")
    return out


def prerequisite_graph(chapters: dict[str, Chapter]):
    """networkx DiGraph with an edge ``a -> b`` when ``b`` lists ``a`` as a prerequisite."""
    import networkx as nx

    graph = nx.DiGraph()
    graph.add_nodes_from(chapters)
    for ch in chapters.values():
        graph.add_edges_from((p.chapter, ch.stem) for p in ch.chapters if p.chapter in chapters)
    return graph


def reduced_graph(chapters: dict[str, Chapter]):
    """The transitive reduction: an edge implied by a longer chain of prerequisites is left out."""
    import networkx as nx

    return nx.transitive_reduction(prerequisite_graph(chapters))


# ---------------------------------------------------------------------------------------------
# Text


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:] if text[:1].isalpha() else text


def _sentence(text: str) -> str:
    text = _capitalised(text.strip())
    return text if text.endswith((".", "!", "?")) else text + "."


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def prerequisites_myst(chapter: Chapter) -> str:
    """The chapter's "**Prerequisites.**" paragraph in MyST: its chapters with what each is needed for,
    then the background it assumes."""
    parts = ["**Prerequisites.**"]
    if chapter.chapters:
        links = [f"{{doc}}`/{'notebooks/' + p.chapter}`" + (f" ({p.why})" if p.why else "")
                 for p in chapter.chapters]
        parts.append(_sentence(_and(links)))
    if chapter.background:
        parts.append(_sentence("; ".join(b.text for b in chapter.background)))
    if not chapter.chapters:
        parts.append("No earlier chapter is needed.")
    return " ".join(parts)


def prerequisites_paragraph(chapter: Chapter, width: int = 100) -> str:
    """:func:`prerequisites_myst` wrapped as the chapter's source carries it (never inside a role)."""
    import textwrap

    return textwrap.fill(prerequisites_myst(chapter), width=width, break_long_words=False,
                         break_on_hyphens=False)


_PREREQ_BLOCK = re.compile(r"^(?:```\{prerequisites\}\n```|\*\*Prerequisites\.\*\*.*?)(?=\n\n)", re.M | re.S)


def write_prerequisites(path: Path | str) -> bool:
    """Rewrite the chapter's "**Prerequisites.**" paragraph from its front matter; return whether it changed.

    The paragraph is plain MyST in the source (so that JupyterLab's MyST renderer, which knows no
    custom directive, shows it too); ``tests/unit/test_instructor_guide.py`` fails when it differs
    from what the front matter generates. Run ``python _ext/instructor_guide.py --write`` after
    editing a chapter's ``causalbook: prerequisites``.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    found = _PREREQ_BLOCK.findall(text)
    if len(found) != 1:
        raise GuideError(f"{path.name}: expected one Prerequisites paragraph, found {len(found)}")
    new = _PREREQ_BLOCK.sub(lambda m: prerequisites_paragraph(parse_chapter(path)), text, count=1)
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text


# ---------------------------------------------------------------------------------------------
# Course paths


def load_paths(root: Path | str = ROOT) -> list[dict]:
    data = yaml.safe_load((Path(root) / PATHS_FILE).read_text(encoding="utf-8")) or {}
    paths = data.get("paths")
    if not isinstance(paths, list) or not paths:
        raise GuideError(f"{PATHS_FILE}: no 'paths' list")
    return paths


def _reading(entry) -> tuple[str, str]:
    """(chapter stem, note) of an assigned reading (a stem, or ``{chapter:, note:}``)."""
    if isinstance(entry, str):
        return entry, ""
    if isinstance(entry, dict) and "chapter" in entry:
        return str(entry["chapter"]), str(entry.get("note") or "")
    raise GuideError(f"a reading is a chapter stem or {{chapter:, note:}}, got {entry!r}")


def _taught(unit: dict) -> list[str | list[str]]:
    """A unit's chapters; an entry ``{one_of: [...]}`` (an elective) becomes a list of stems."""
    out = []
    for entry in unit.get("chapters") or []:
        if isinstance(entry, dict) and "one_of" in entry:
            out.append([str(s) for s in entry["one_of"]])
        else:
            out.append(str(entry))
    return out


def unit_minutes(unit: dict, chapters: dict[str, Chapter]) -> tuple[int, int]:
    """(fewest, most) class minutes of a unit (they differ when it has an elective)."""
    lo = hi = 0
    for entry in _taught(unit):
        options = entry if isinstance(entry, list) else [entry]
        mins = [chapters[s].class_minutes for s in options if s in chapters]
        if mins:
            lo, hi = lo + min(mins), hi + max(mins)
    return lo, hi


def path_problems(path: dict, chapters: dict[str, Chapter]) -> list[str]:
    """What breaks the prerequisite closure in a course path (an empty list: nothing).

    A chapter taught in a unit needs each of its prerequisite chapters taught earlier (in an earlier
    unit, or before it in the same unit) or assigned as reading in that unit or an earlier one. An
    assigned reading needs the same of its own prerequisites (taught in an earlier unit, or read by
    then). Of an elective (``one_of``), every option must satisfy this. A unit has at most
    ``unit_minutes`` of class time.
    """
    name = path.get("title", "?")
    out = []
    taught: set[str] = set()
    read: set[str] = set()
    limit = path.get("unit_minutes")
    units = path.get("units") or []
    if not units:
        return [f"{name}: no units"]
    for k, unit in enumerate(units, start=1):
        label = f"{name}, {path.get('unit', 'unit')} {k}"
        readings = [_reading(r)[0] for r in unit.get("reading") or []]
        for stem in readings:
            if stem not in chapters:
                out.append(f"{label}: reading {stem} is not a chapter")
        # Readings of this unit come before its class; they may build on each other in order.
        for stem in readings:
            if stem in chapters:
                missing = [p.chapter for p in chapters[stem].chapters if p.chapter not in taught | read]
                if missing:
                    out.append(f"{label}: reading {stem} needs {', '.join(missing)} first")
                read.add(stem)
        for entry in _taught(unit):
            options = entry if isinstance(entry, list) else [entry]
            for stem in options:
                if stem not in chapters:
                    out.append(f"{label}: {stem} is not a chapter")
                    continue
                missing = [p.chapter for p in chapters[stem].chapters if p.chapter not in taught | read]
                if missing:
                    out.append(f"{label}: {stem} needs {', '.join(missing)}, neither taught before it "
                               "nor assigned as reading")
            if not isinstance(entry, list):
                taught.add(entry)
            # An elective's options are not taught to everyone: later units cannot build on them.
        if limit:
            _, most = unit_minutes(unit, chapters)
            if most > limit:
                out.append(f"{label}: {most} min of class time, more than the {limit} min of a {path.get('unit', 'unit').lower()}")
    return out


# ---------------------------------------------------------------------------------------------
# The figure


#: Light tints of the Okabe-Ito colours (colour-blind safe), one per part, under black text.
_PART_COLOURS = ["#cfe6f5", "#fde3b3", "#c9ebdf", "#f6d3e4", "#e7e7c5", "#dddddd"]
_COLUMN = 2.5  # width of a part's column, in data units (a chapter's box is 1.05 wide)
_BOX = (1.12, 0.52)
_LABEL_Y, _LABEL_HALF = 0.62, (1.15, 0.32)  # the parts' names above their columns


def graph_layout(chapters: dict[str, Chapter]) -> dict[str, tuple[float, float]]:
    """Columns are the parts (left to right); a chapter's row is its depth, the length of its longest
    chain of prerequisites (top to bottom). Chapters of one part at the same depth sit side by side."""
    import networkx as nx

    graph = prerequisite_graph(chapters)
    depth: dict[str, int] = {}
    for stem in nx.topological_sort(graph):
        depth[stem] = max((depth[p] + 1 for p in graph.predecessors(stem)), default=0)
    parts = list(dict.fromkeys(ch.part for ch in chapters.values()))
    column = {stem: parts.index(ch.part) for stem, ch in chapters.items()}
    reduced = reduced_graph(chapters)

    def barycentre(stem: str) -> tuple[float, int]:  # side by side: the one whose arrows come from the left first
        preds = [column[p] for p in reduced.predecessors(stem)]
        return (sum(preds) / len(preds) if preds else column[stem], chapters[stem].number)

    pos = {}
    for col, part in enumerate(parts):
        cells: dict[int, list[str]] = {}
        for ch in chapters.values():
            if ch.part == part:
                cells.setdefault(depth[ch.stem], []).append(ch.stem)
        for row, stems in cells.items():
            stems = sorted(stems, key=barycentre)
            for k, stem in enumerate(stems):
                pos[stem] = (col * _COLUMN + 1.25 * (k - (len(stems) - 1) / 2), -float(row))
    return pos


def alt_text(chapters: dict[str, Chapter]) -> str:
    edges = sorted(reduced_graph(chapters).edges, key=lambda e: (chapters[e[0]].number, chapters[e[1]].number))
    arrows = ", ".join(f"{chapters[a].number} to {chapters[b].number}" for a, b in edges)
    parts = "; ".join(
        f"{part or 'no part'}: chapters " + ", ".join(str(c.number) for c in chapters.values() if c.part == part)
        for part in dict.fromkeys(c.part for c in chapters.values()))
    return (f"Directed graph of the {len(chapters)} chapters, one column per part ({parts}). "
            f"An arrow from chapter A to chapter B means B builds on A. Arrows: {arrows}.")


def _inside(point, centre, margin: float = 0.0, half: tuple[float, float] = (_BOX[0] / 2, _BOX[1] / 2)) -> bool:
    return abs(point[0] - centre[0]) <= half[0] + margin and abs(point[1] - centre[1]) <= half[1] + margin


def _edge(a: str, b: str, pos: dict, labels: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points of the arrow from box ``a`` to box ``b``: a straight line, or the least bent arc that
    passes no other chapter's box and no part's name, cut where it leaves ``a`` and enters ``b``."""
    (xa, ya), (xb, yb) = pos[a], pos[b]
    others = [(c, (_BOX[0] / 2, _BOX[1] / 2)) for s, c in pos.items() if s not in (a, b)]
    others += [(c, _LABEL_HALF) for c in labels]
    best = None
    for bend in (0.0, 0.1, -0.1, 0.2, -0.2, 0.3, -0.3, 0.4, -0.4, 0.5, -0.5):
        cx, cy = (xa + xb) / 2 + bend * (yb - ya), (ya + yb) / 2 - bend * (xb - xa)
        ts = [k / 120 for k in range(121)]
        curve = [((1 - t) ** 2 * xa + 2 * t * (1 - t) * cx + t * t * xb,
                  (1 - t) ** 2 * ya + 2 * t * (1 - t) * cy + t * t * yb) for t in ts]
        curve = [p for p in curve if not _inside(p, pos[a]) and not _inside(p, pos[b])]
        hits = sum(1 for p in curve for c, half in others if _inside(p, c, 0.06, half))
        if best is None or hits < best[0]:
            best = (hits, curve)
        if hits == 0:
            break
    return best[1]


def draw_graph(chapters: dict[str, Chapter], out: Path | str) -> Path:
    """Draw the transitive reduction of the prerequisite graph by part into ``out`` (SVG or PNG)."""
    import textwrap

    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
    from matplotlib.path import Path as MplPath

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    graph = reduced_graph(chapters)
    pos = graph_layout(chapters)
    parts = list(dict.fromkeys(ch.part for ch in chapters.values()))
    colour = {part: _PART_COLOURS[k % len(_PART_COLOURS)] for k, part in enumerate(parts)}
    deepest = -min(y for _, y in pos.values())
    w, h = _BOX
    with matplotlib.rc_context({"svg.hashsalt": "causalbook", "svg.fonttype": "none",
                                "font.family": "DejaVu Sans"}):
        fig = Figure(figsize=(10, 1.1 + 0.85 * (deepest + 1)))
        ax = fig.add_axes((0.005, 0.005, 0.99, 0.99))
        ax.set_xlim(-_COLUMN / 2, _COLUMN * (len(parts) - 0.5))
        ax.set_ylim(-deepest - 0.5, 1.25)
        ax.axis("off")
        for col, part in enumerate(parts):
            x = col * _COLUMN
            ax.axvspan(x - _COLUMN / 2 + 0.04, x + _COLUMN / 2 - 0.04, color=colour[part], alpha=0.45, lw=0)
            name, _, rest = part.partition(": ")
            label = name + ("\n" + "\n".join(textwrap.wrap(rest, 22)) if rest else "")
            ax.text(x, _LABEL_Y, label, ha="center", va="center", fontsize=9, color="#222222")
        labels = [(col * _COLUMN, _LABEL_Y) for col in range(len(parts))]
        for a, b in sorted(graph.edges):
            ax.add_patch(FancyArrowPatch(path=MplPath(_edge(a, b, pos, labels)), arrowstyle="-|>", mutation_scale=12,
                                         color="#444444", lw=1.0, shrinkA=1, shrinkB=1, zorder=1))
        for stem, (x, y) in pos.items():
            ch = chapters[stem]
            ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0,rounding_size=0.08",
                                        fc="white", ec="#333333", lw=1.0, zorder=2))
            ax.text(x, y + 0.12, str(ch.number), ha="center", va="center", fontsize=10,
                    fontweight="bold", zorder=3)
            ax.text(x, y - 0.1, "\n".join(textwrap.wrap(ch.short_title, 16)), ha="center", va="center",
                    fontsize=7.2, linespacing=1.0, zorder=3)
        fig.savefig(out, format=out.suffix.lstrip(".") or "svg", dpi=150,
                    metadata={"Date": None} if out.suffix == ".svg" else None)
    return out


# ---------------------------------------------------------------------------------------------
# Measurements: execution times from the build, peak memory from the robustness sweep


def robustness_summary(root: Path | str) -> dict | None:
    path = Path(root) / "results" / "robustness" / "summary.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None


def format_seconds(seconds) -> str:
    if seconds is None:
        return MISSING
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def format_mb(mb) -> str:
    return MISSING if not mb else f"{mb:.0f} MB"


# ---------------------------------------------------------------------------------------------
# Sphinx


try:
    from docutils import nodes
    from sphinx.util import logging as sphinx_logging
    from sphinx.util.docutils import SphinxDirective
except ImportError:  # the data functions above work without Sphinx
    SphinxDirective = None

if SphinxDirective is not None:
    logger = sphinx_logging.getLogger(__name__)

    class guide_value(nodes.General, nodes.Inline, nodes.TextElement):
        """Placeholder of a measured value (``kind``: ``runtime`` of ``docname`` or ``memory`` of ``stem``)."""

    class guide_sources(nodes.General, nodes.Element):
        """Placeholder of the paragraph that says where the measured values come from."""

    def _note_guide_doc(env) -> None:
        if not hasattr(env, "instructor_guide_docs"):
            env.instructor_guide_docs = set()
        env.instructor_guide_docs.add(env.docname)

    class _GuideDirective(SphinxDirective):
        has_content = False

        def chapters(self) -> dict[str, Chapter]:
            root = Path(self.env.srcdir)
            for path in sorted((root / "notebooks").glob("[0-9][0-9]-*.md")):
                self.env.note_dependency(str(path))
            chapters = load_chapters(root)
            bad = problems(chapters)
            if bad:
                raise GuideError("; ".join(bad))
            return chapters

        def inline(self, text: str) -> list[nodes.Node]:
            """MyST inline text as the children of one paragraph."""
            parsed = self.parse_text_to_nodes(text)
            if len(parsed) == 1 and isinstance(parsed[0], nodes.paragraph):
                return parsed[0].children
            return parsed

        def cell(self, text: str) -> nodes.Element:
            parsed = self.parse_text_to_nodes(text)
            if len(parsed) == 1 and isinstance(parsed[0], nodes.paragraph):
                return parsed[0]
            box = nodes.container()
            box += parsed
            return box

        def fail(self, exc: Exception) -> list[nodes.Node]:
            logger.warning(f"{self.name}: {exc}", location=(self.env.docname, self.lineno))
            return []

    def _table(headers, rows, widths, classes):
        table = nodes.table(classes=["instructor-table", "colwidths-given", *classes])
        group = nodes.tgroup(cols=len(headers))
        table += group
        for w in widths:
            group += nodes.colspec(colwidth=w)
        head = nodes.thead()
        group += head
        row = nodes.row()
        for h in headers:
            row += nodes.entry("", nodes.paragraph(text=h))
        head += row
        body = nodes.tbody()
        group += body
        for cells in rows:
            row = nodes.row()
            for c in cells:
                entry = nodes.entry()
                entry += c if isinstance(c, nodes.Node) else nodes.paragraph(text=str(c))
                row += entry
            body += row
        return table

    class ChapterMapDirective(_GuideDirective):
        """Chapter, main ideas, prerequisites, class time, and (filled in when the page is written)
        the execution time of this build and the peak memory of the robustness sweep."""

        def run(self):
            try:
                chapters = self.chapters()
            except GuideError as exc:
                return self.fail(exc)
            _note_guide_doc(self.env)
            rows = []
            for ch in chapters.values():
                links = ", ".join(f"{{doc}}`{p.number} </notebooks/{p.chapter}>`"
                                  for p in sorted(ch.chapters, key=lambda p: p.number))
                needs = "; ".join(x for x in [links, ", ".join(b.short for b in ch.background)] if x)
                rows.append([
                    self.cell(f"{ch.number}\\. {{doc}}`/notebooks/{ch.stem}`"),  # "1\\." is not a list
                    self.cell(ch.main_ideas),
                    self.cell(needs or "none"),
                    f"{ch.class_minutes} min",
                    nodes.paragraph("", "", guide_value(kind="runtime", docname=ch.docname)),
                    nodes.paragraph("", "", guide_value(kind="memory", stem=ch.stem)),
                ])
            headers = ["Chapter", "Main ideas", "Prerequisites", "Class time", "Runs in", "Memory"]
            return [guide_sources(), _table(headers, rows, [22, 36, 17, 8, 8, 9], ["chapter-map"])]

    class ChapterGraphDirective(_GuideDirective):
        """The dependency graph as a figure, drawn when the page is read."""

        def run(self):
            try:
                chapters = self.chapters()
            except GuideError as exc:
                return self.fail(exc)
            out = Path(self.env.doctreedir).parent / "instructor-guide" / "chapter-graph.svg"
            draw_graph(chapters, out)
            docdir = Path(self.env.srcdir) / Path(self.env.docname).parent
            # A width makes Sphinx link the image to its full-size file (html_scaled_image_link).
            image = nodes.image(uri=os.path.relpath(out, docdir).replace(os.sep, "/"), width="100%",
                                alt=alt_text(chapters), classes=["chapter-graph"])
            figure = nodes.figure("", image, classes=["chapter-graph"])
            caption = nodes.caption()
            caption += self.inline(
                "How the chapters build on each other. An arrow from one chapter to another means "
                "that the second lists the first among its prerequisites; an arrow implied by a longer "
                "chain is left out (transitive reduction). Columns are the parts of the book, and a "
                "chapter stands lower the longer its chain of prerequisites. Drawn when the book is "
                "built, from the chapters' front matter.")
            figure += caption
            self.set_source_info(figure)
            return [figure]

    class CoursePathsDirective(_GuideDirective):
        """Every course path of ``book/course-paths.yml`` as a table of its units."""

        def run(self):
            try:
                chapters = self.chapters()
                self.env.note_dependency(str(Path(self.env.srcdir) / PATHS_FILE))
                paths = load_paths(self.env.srcdir)
            except GuideError as exc:
                return self.fail(exc)
            out = []
            for path in paths:
                bad = path_problems(path, chapters)
                for problem in bad:
                    logger.warning(f"course path breaks the prerequisites: {problem}",
                                   location=(self.env.docname, self.lineno))
                title = nodes.rubric()
                title += self.inline(str(path.get("title", "")))
                out.append(title)
                lo = hi = 0
                rows = []
                unit_name = str(path.get("unit", "Unit"))
                for k, unit in enumerate(path.get("units") or [], start=1):
                    taught = []
                    for entry in _taught(unit):
                        if isinstance(entry, list):
                            taught.append("one of " + _and([f"{{doc}}`{int(s[:2])} </notebooks/{s}>`" for s in entry]))
                        else:
                            taught.append(f"{int(entry[:2])}\\. {{doc}}`/notebooks/{entry}`")
                    readings = []
                    for r in unit.get("reading") or []:
                        stem, note = _reading(r)
                        readings.append(f"{int(stem[:2])}\\. {{doc}}`/notebooks/{stem}`" + (f" ({note})" if note else ""))
                    a, b = unit_minutes(unit, chapters)
                    lo, hi = lo + a, hi + b
                    rows.append([self.cell(str(unit.get("label") or f"{unit_name} {k}")),
                                 self.cell("; ".join(taught)),
                                 self.cell("; ".join(readings) or MISSING),
                                 f"{a} min" if a == b else f"{a}\u2013{b} min"])
                if path.get("about"):
                    about = nodes.paragraph()
                    about += self.inline(str(path["about"]).strip())
                    out.append(about)
                headers = [unit_name, "In class", "Assigned reading", "Class time"]
                out.append(_table(headers, rows, [12, 50, 28, 10], ["course-path"]))
                total = nodes.paragraph(classes=["course-path-total"])
                n = len(path.get("units") or [])
                span = f"{lo} min" if lo == hi else f"{lo}\u2013{hi} min"
                total += nodes.Text(f"{n} {unit_name.lower()}{'' if n == 1 else 's'}, {span} of class time. "
                                    + ("Every chapter's prerequisites are taught before it or assigned "
                                       "as reading (checked when the book is built)." if not bad else
                                       "This path breaks the prerequisites (see the build's warnings)."))
                out.append(total)
            return out

    def _date(ts) -> str:
        return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%d")

    def _resolve(app, doctree, fromdocname):
        values = list(doctree.findall(guide_value))
        sources = list(doctree.findall(guide_sources))
        if not values and not sources:
            return
        metadata = getattr(app.env, "nb_metadata", {}) or {}
        sweep = robustness_summary(app.srcdir)
        memory = (sweep or {}).get("chapters", {})
        times = []
        for node in values:
            if node["kind"] == "runtime":
                data = (metadata.get(node["docname"]) or {}).get("exec_data") or {}
                runtime = data.get("runtime") if data.get("succeeded") else None
                if runtime is not None:
                    times.append(data.get("mtime"))
                node.replace_self(nodes.Text(format_seconds(runtime)))
            else:
                node.replace_self(nodes.Text(format_mb((memory.get(node["stem"]) or {}).get("max_peak_mb"))))
        for node in sources:
            para = nodes.paragraph(classes=["chapter-map-sources"])
            when = sorted(_date(t) for t in times if t)
            if times:
                span = f" (executed {when[0]})" if when and when[0] == when[-1] else (
                    f" (executed between {when[0]} and {when[-1]})" if when else "")
                n = sum(1 for v in values if v["kind"] == "runtime")
                text = (f"In this build, every chapter has a recorded execution time{span}." if len(times) == n
                        else f"In this build, {len(times)} of {n} chapters "
                        f"{'has' if len(times) == 1 else 'have'} a recorded execution time{span}; "
                        f"the others show {MISSING}.")
            else:
                text = f"No chapter was executed in this build, so \u201cRuns in\u201d shows {MISSING}."
            if sweep is None:
                text += (" No robustness sweep has been run in this copy of the book "
                         f"(results/robustness/summary.json), so \u201cMemory\u201d shows {MISSING}.")
            else:
                runs = sweep.get("runs") or []
                text += (f" \u201cMemory\u201d is the largest peak over the {len(runs)} runs of the latest "
                         "robustness sweep.")
            para += nodes.Text(text)
            node.replace_self(para)

    def _always_rebuild(app, env, added, changed, removed):
        return sorted(d for d in getattr(env, "instructor_guide_docs", set()) if d in env.all_docs)

    def _purge(app, env, docname):
        getattr(env, "instructor_guide_docs", set()).discard(docname)

    def _merge(app, env, docnames, other):
        if not hasattr(env, "instructor_guide_docs"):
            env.instructor_guide_docs = set()
        env.instructor_guide_docs |= getattr(other, "instructor_guide_docs", set()) & set(docnames)

    def _visit_skip(self, node):
        raise nodes.SkipNode


def setup(app):
    for node in (guide_value, guide_sources):  # replaced before writing; never written
        app.add_node(node, html=(_visit_skip, None), latex=(_visit_skip, None), text=(_visit_skip, None))
    app.add_directive("chapter-map", ChapterMapDirective)
    app.add_directive("chapter-graph", ChapterGraphDirective)
    app.add_directive("course-paths", CoursePathsDirective)
    app.connect("doctree-resolved", _resolve)
    app.connect("env-get-outdated", _always_rebuild)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Write each chapter's Prerequisites paragraph from its front matter.")
    parser.add_argument("--write", action="store_true", help="rewrite the paragraphs (default: only report drift)")
    args = parser.parse_args()
    stale = []
    for source in sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.md")):
        if args.write:
            if write_prerequisites(source):
                print(f"rewrote {source.name}")
        elif prerequisites_paragraph(parse_chapter(source)) not in source.read_text(encoding="utf-8"):
            stale.append(source.name)
    if stale:
        raise SystemExit(f"stale Prerequisites paragraphs (run with --write): {', '.join(stale)}")
