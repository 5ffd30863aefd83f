"""environment.yml (Binder, conda) is generated from requirements.lock and must not drift from it."""
import pytest
import yaml

from tests.build.binder import LOCK, ROOT, TORCH_CPU_INDEX, chapter_urlpath, render_environment, urlpath_of_binder_link


def test_environment_yml_is_the_rendering_of_the_lock():
    committed = (ROOT / "environment.yml").read_text(encoding="utf-8")
    assert committed == render_environment(LOCK.read_text(encoding="utf-8")), (
        "environment.yml is stale: run `python -m tests.build.binder > environment.yml`")


def test_environment_pins_every_lock_line_and_python_311():
    env = yaml.safe_load(render_environment(LOCK.read_text(encoding="utf-8")))
    assert env["channels"] == ["conda-forge"]
    assert "python=3.11" in env["dependencies"]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip[0] == f"--extra-index-url {TORCH_CPU_INDEX}"
    lock = [ln for ln in LOCK.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert pip[1:] == lock
    assert "torch==2.13.0" in pip


def test_render_rejects_a_loose_requirement():
    with pytest.raises(ValueError):
        render_environment("numpy>=2\n")


def test_chapter_urlpath_is_the_launch_button_rule():
    assert chapter_urlpath("notebooks/01-structural-causal-models.md") == "lab/tree/notebooks/01-structural-causal-models.md"
    href = ("https://mybinder.org/v2/gh/causalbook/causalbook/main?"
            "urlpath=lab/tree/notebooks/01-structural-causal-models.md")
    assert urlpath_of_binder_link(href) == chapter_urlpath("notebooks/01-structural-causal-models.md")
