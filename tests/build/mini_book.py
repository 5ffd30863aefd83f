"""Build a mini-book around one chapter with the real configuration, and print its warnings.

Every other chapter is included unexecuted (so cross-references resolve); only the named chapter runs.
Usage: ``python -m tests.build.mini_book 03-gradients-and-ig``.
"""
from __future__ import annotations

import sys

import yaml

from tests.build._common import ROOT, run_build
from tests.notebooks import chapter_sources


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.build.mini_book NN-chapter-stem")
        return 2
    stem = argv[0].removesuffix(".md").split("/")[-1]
    if not (ROOT / "notebooks" / f"{stem}.md").exists():
        print(f"no notebook notebooks/{stem}.md")
        return 2
    out = ROOT / "_build" / "mini" / stem
    out.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    others = [f"notebooks/{p.name}" for p in chapter_sources() if p.stem != stem]
    config["execute"]["exclude_patterns"] = others
    # Paths in a configuration file are read relative to it: point them back at the book.
    config["sphinx"]["local_extensions"] = {k: str(ROOT / v) for k, v in config["sphinx"]["local_extensions"].items()}
    config["bibtex_bibfiles"] = [str(ROOT / b) for b in config["bibtex_bibfiles"]]
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    existing = {f"notebooks/{p.stem}" for p in chapter_sources()}
    for part in toc["parts"]:
        part["chapters"] = [c for c in part["chapters"]
                            if not c["file"].startswith("notebooks/") or c["file"] in existing]
    toc["parts"] = [p for p in toc["parts"] if p["chapters"]]
    (out / "_config.yml").write_text(yaml.safe_dump(config))
    (out / "_toc.yml").write_text(yaml.safe_dump(toc))
    code, warnings = run_build("--config", str(out / "_config.yml"), "--toc", str(out / "_toc.yml"),
                               "--path-output", str(out), log=out / "build.log")
    mine = [w for w in warnings if stem in w]
    if code != 0 and not warnings:
        print(f"the build failed (exit {code}); see {out / 'build.log'}")
        return 1
    print("\n".join(mine) if mine else f"no warnings in {stem}")
    rest = len(warnings) - len(mine)
    if rest:
        print(f"({rest} warning(s) elsewhere in the book; see {out / 'build.log'})")
    print(f"HTML: {out / '_build' / 'html' / 'notebooks' / (stem + '.html')}")
    return 1 if mine else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
