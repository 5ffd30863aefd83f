"""The GitHub workflows, read statically (they cannot run here): every action is pinned by a full
commit SHA, permissions are granted per job, and the publish workflow builds, deploys and releases
what the issue asks. `make lint` runs the schema check and zizmor on the same files."""
from __future__ import annotations

import re

import pytest
import yaml

from tests.build._common import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
SHA_PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def _load(path):
    return yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.BaseLoader)  # "on" stays a key


def _steps(workflow):
    for job in workflow["jobs"].values():
        yield from job.get("steps", [])


def test_the_three_workflows_exist():
    assert {p.stem for p in WORKFLOWS} == {"ci", "publish", "weekly"}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_and_permissions_are_per_job(path):
    workflow = _load(path)
    assert workflow.get("permissions") == {}, f"{path.name}: top-level permissions must be {{}}"
    for name, job in workflow["jobs"].items():
        assert "permissions" in job, f"{path.name}: job {name} states no permissions"
    for step in _steps(workflow):
        if "uses" in step:
            assert SHA_PIN.match(step["uses"]), f"{path.name}: {step['uses']} is not pinned by commit SHA"
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step.get("with", {}).get("persist-credentials") == "false", path.name


def test_ci_runs_the_readme_test_command():
    runs = [s.get("run", "") for s in _steps(_load(ROOT / ".github" / "workflows" / "ci.yml"))]
    assert any(r.strip() == ".ci/run" for r in runs)


def test_publish_builds_deploys_and_releases():
    workflow = _load(ROOT / ".github" / "workflows" / "publish.yml")
    assert workflow["on"]["push"]["branches"] == ["main"] and workflow["on"]["push"]["tags"] == ["v*"]
    build = " ".join(s.get("run", "") for s in workflow["jobs"]["build"]["steps"])
    order = [build.index(f"make {t}") for t in ("robustness", "book", "pdf", "ipynb", "site")]
    assert order == sorted(order), "publish must run make robustness, book, pdf, ipynb, site in order"
    uses = " ".join(s.get("uses", "") for s in _steps(workflow))
    assert "actions/upload-pages-artifact@" in uses and "actions/deploy-pages@" in uses
    assert workflow["jobs"]["deploy"]["permissions"] == {"pages": "write", "id-token": "write"}
    release = workflow["jobs"]["release"]
    assert release["if"] == "startsWith(github.ref, 'refs/tags/v')"
    script = " ".join(s.get("run", "") for s in release["steps"])
    assert "stable" in script and "gh release create" in script
    # the release build's launch buttons open the tag that the release job puts on its notebooks
    # job-wide: make ipynb and make slides rebuild the book and must keep the same launch ref
    assert "notebooks-{0}" in workflow["jobs"]["build"]["env"]["CAUSALBOOK_LAUNCH_REF"]
    assert 'git tag "notebooks-${TAG}"' in script and 'git push' in script.split('git tag "notebooks-${TAG}"')[1]
    # ${{ }} in a run: script is template injection; values come in through env.
    for step in _steps(workflow):
        assert "${{" not in step.get("run", ""), f"expression inside a run script: {step.get('name')}"


def test_weekly_checks_links_and_the_binder_image():
    workflow = _load(ROOT / ".github" / "workflows" / "weekly.yml")
    assert "schedule" in workflow["on"]
    runs = " ".join(s.get("run", "") for s in _steps(workflow))
    uses = " ".join(s.get("uses", "") for s in _steps(workflow))
    assert "linkcheck" in runs and "jupyterhub/repo2docker-action@" in uses
