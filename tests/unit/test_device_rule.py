"""The device rule of ``cb.utils``, read from the library's source: no tensor is made without
``device=`` where the device matters.

The device-parametrised suite cannot see a missing ``device=``: on CUDA it sets torch's default
device, so a tensor made without ``device=`` lands on the GPU anyway and the test passes, while a
reader whose model is on the GPU and whose default device is the CPU gets a device-mismatch error.
These tests read the code instead (the test of the ``generator=`` rule does the same):

* every factory call that draws with ``generator=`` also passes ``device=``: a generator lives on
  one device, and torch otherwise draws on the default device, which fails when the two differ;
* in the modules that people call on their own models (attributions, interventions, Shapley
  values, evaluation, feature effects, recurrent estimators, attacks, information flow), every
  factory call passes ``device=`` (``*_like`` factories inherit it, and ``**kwargs`` may carry it).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import causalbook_lib

LIB = Path(causalbook_lib.__file__).parent
FACTORIES = {"zeros", "ones", "full", "empty", "arange", "linspace", "logspace", "rand", "randn", "randint",
             "randperm", "eye", "tensor", "normal"}
ESTIMATORS = ["attribution", "interventions", "shapley", "evaluation", "feature_effects", "recurrent", "attacks",
              "infoflow"]
#: torch's global CPU stream, drawn on purpose (a seed from torch.manual_seed's state).
GLOBAL_STREAM = {("utils.py", "torch.randint(0, 2**62, (1,))"), ("rim.py", "torch.randint(0, 2**62, (1,))")}


def _calls(path: Path):
    src = path.read_text(encoding="utf-8")
    for node in ast.walk(ast.parse(src)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch"
                and node.func.attr in FACTORIES):
            kw = {k.arg for k in node.keywords}
            yield node, kw, ast.get_source_segment(src, node)


def _where(path: Path, node) -> str:
    return f"{path.relative_to(LIB)}:{node.lineno}"


def test_a_factory_that_draws_with_a_generator_names_the_device():
    bad = [f"{_where(p, node)}: {seg[:80]}"
           for p in sorted(LIB.rglob("*.py")) for node, kw, seg in _calls(p)
           if "generator" in kw and "device" not in kw and None not in kw]
    assert not bad, "factory calls with generator= but no device=:\n" + "\n".join(bad)


@pytest.mark.parametrize("module", ESTIMATORS)
def test_the_estimators_make_no_tensor_without_a_device(module):
    path = LIB / f"{module}.py"
    bad = [f"{_where(path, node)}: {seg[:80]}" for node, kw, seg in _calls(path)
           if "device" not in kw and None not in kw and (path.name, seg) not in GLOBAL_STREAM]
    assert not bad, f"cb.{module} makes tensors without device=:\n" + "\n".join(bad)


def test_the_rule_reads_what_it_should():
    """The reader finds a factory without device= (so the tests above can fail)."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "m.py"
        p.write_text("import torch\nx = torch.zeros(3)\ny = torch.randn(2, generator=g)\n"
                     "z = torch.ones(2, device=d)\nw = torch.rand(2, **kw)\n")
        found = [(node.func.attr, "device" in kw or None in kw) for node, kw, _ in _calls(p)]
    assert found == [("zeros", False), ("randn", False), ("ones", True), ("rand", True)]
