"""pip resolves the library's metadata on the Pythons readers have (Colab: 3.12; laptops: 3.10-3.13).

The wheel is built from a copy of the library, and each interpreter of this machine (pyenv's 3.10,
3.12 and 3.13) does a ``pip install --dry-run`` of it in a fresh virtualenv: pip reads the metadata
of every dependency from the package index and picks versions, without downloading the wheels. A
``requires-python`` cap or an exact pin that some Python cannot meet fails here.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.build._common import build_wheel

PYTHONS = ["3.10", "3.12", "3.13"]


def _interpreter(version: str) -> str | None:
    found = shutil.which(f"python{version}")
    if found and subprocess.run([found, "-c", "pass"], capture_output=True).returncode == 0:
        return found
    pyenv = sorted(Path.home().glob(f".pyenv/versions/{version}.*/bin/python"))
    return str(pyenv[-1]) if pyenv else None


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


def _dry_run(version: str, wheel: Path, tmp: Path) -> tuple[int, str, dict]:
    python = _interpreter(version)
    if python is None:
        return -1, f"no Python {version} on this machine", {}
    venv = tmp / f"venv{version}"
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    report = tmp / f"report{version}.json"
    proc = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--dry-run", "--quiet",
                           "--disable-pip-version-check", "--report", str(report), str(wheel)],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        return proc.returncode, proc.stderr[-3000:], {}
    chosen = {i["metadata"]["name"].lower().replace("_", "-"): i["metadata"]["version"]
              for i in json.loads(report.read_text())["install"]}
    return 0, "", chosen


@pytest.fixture(scope="module")
def resolutions(wheel, tmp_path_factory) -> dict:
    """The three dry runs wait on the package index, not the CPU: run them side by side."""
    from concurrent.futures import ThreadPoolExecutor

    tmp = tmp_path_factory.mktemp("pythons")
    with ThreadPoolExecutor(len(PYTHONS)) as pool:
        return dict(zip(PYTHONS, pool.map(lambda v: _dry_run(v, wheel, tmp), PYTHONS)))


@pytest.mark.parametrize("version", PYTHONS)
def test_pip_resolves_the_wheel(version, resolutions):
    code, err, chosen = resolutions[version]
    if code == -1:
        pytest.skip(err)
    assert code == 0, f"pip cannot install the wheel on Python {version}:\n{err}"
    print(f"\nPython {version}: torch {chosen.get('torch')}, numpy {chosen.get('numpy')}, "
          f"captum {chosen.get('captum')}")
    assert {"causalbook-lib", "torch", "captum", "scikit-learn"} <= set(chosen)
