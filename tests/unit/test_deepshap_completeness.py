"""DeepSHAP on the chapter 13 classifier satisfies completeness (summation-to-delta).

DeepLIFT's attributions of ``f`` at ``x`` against a baseline ``b`` sum to ``f(x) - f(b)``; DeepSHAP
(Captum's ``DeepLiftShap``) averages them over a background set, so they sum to
``f(x) - mean_b f(b)``. Captum gets this only if every nonlinearity is a layer it has a rule for, and
(Captum 0.9, issue #1104) if no two such layers feed each other directly. ``DigitCNN`` is built for
both; these tests fail if either is undone. They run in float64, where the sum is exact to rounding.
"""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from causalbook_lib.explanations import DigitCNN

captum_attr = pytest.importorskip("captum.attr")

N_BACKGROUND = 8


def _digit_like(n: int, gen: torch.Generator, device) -> torch.Tensor:
    """Rows of 64 pixels in [0, 1] with exact zeros, as in the digits (zeros make DeepLIFT's ties)."""
    u = torch.rand(n, 64, generator=gen, dtype=torch.float64)
    return torch.where(u < 0.5, torch.zeros_like(u), u).to(device)


def _network(device, logit_scale: float = 1.0) -> DigitCNN:
    """An untrained, seeded DigitCNN in eval mode and float64; ``logit_scale`` sharpens its softmax."""
    torch.manual_seed(0)
    model = DigitCNN(2).double().eval().requires_grad_(False)
    model.features[-1].weight.mul_(logit_scale)
    model.features[-1].bias.mul_(logit_scale)
    return model.to(device)


def _deepshap_sums(module: nn.Module, x: torch.Tensor, background: torch.Tensor, target: int):
    """(sum of the DeepSHAP attributions per input, f(x) - mean f(background), Captum's deltas)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)   # Captum's notice about its hooks
        attr, delta = captum_attr.DeepLiftShap(module).attribute(
            x, target=target, baselines=background, return_convergence_delta=True)
    with torch.no_grad():
        change = module(x)[:, target] - module(background)[:, target].mean()
    return attr.sum(1), change, delta


def test_digitcnn_forward_is_the_softmax_of_its_logits(device):
    model = _network(device)
    x = _digit_like(5, torch.Generator().manual_seed(1), device)
    assert torch.equal(model(x), torch.softmax(model.logits(x), dim=-1))
    assert torch.equal(model.logit_network()(x), model.logits(x))
    assert isinstance(model.softmax, nn.Softmax)
    # no new parameters, so state_dict keys are those of the layers alone
    assert all(k.startswith("features.") for k in model.state_dict())


@pytest.mark.parametrize("target", [0, 1])
def test_deepshap_of_the_logit_network_is_complete(device, target):
    model = _network(device)
    gen = torch.Generator().manual_seed(2)
    x, background = _digit_like(3, gen, device), _digit_like(N_BACKGROUND, gen, device)
    sums, change, delta = _deepshap_sums(model.logit_network(), x, background, target)
    assert change.abs().min() > 1e-3                       # a change to explain, not a trivial zero
    torch.testing.assert_close(sums, change, rtol=1e-9, atol=1e-12)
    assert delta.abs().max() < 1e-10                       # every (input, baseline) pair, not only the mean


def test_captum_softmax_rule_is_not_complete(device):
    """Why chapter 13 explains logits: Captum's softmax rule (each output's own rescale multiplier,
    minus the mean multiplier over the whole batch) is exact only if the logit changes sum to zero."""
    model = _network(device)
    gen = torch.Generator().manual_seed(3)
    x, background = _digit_like(3, gen, device), _digit_like(N_BACKGROUND, gen, device)
    sums, change, _ = _deepshap_sums(model, x, background, 0)
    assert (sums - change).abs().max() > 0.1 * change.abs().max()


def test_functional_softmax_breaks_completeness(device):
    """The old ``forward``: ``torch.softmax`` is no layer, so DeepLIFT passes its plain gradient."""
    model = _network(device, logit_scale=20.0)

    class FunctionalSoftmax(nn.Module):
        def forward(self, x):
            return torch.softmax(model.logit_network()(x), dim=-1)

    gen = torch.Generator().manual_seed(3)
    x, background = _digit_like(3, gen, device), _digit_like(N_BACKGROUND, gen, device)
    sums, change, _ = _deepshap_sums(FunctionalSoftmax(), x, background, 0)
    assert (sums - change).abs().max() > 0.1 * change.abs().max()


def test_relu_feeding_max_pool_breaks_captum_deeplift(device):
    """The paper's order (ReLU straight into the max-pool) is the same function, but Captum 0.9 gets it
    wrong (issue #1104): if this test fails after an upgrade, Captum has fixed the bug and DigitCNN's
    layer order is no longer needed."""
    model = _network(device)
    f = model.features
    paper_order = nn.Sequential(nn.Unflatten(1, (1, 8, 8)), f[0], f[1], f[2], f[6], f[3], f[4], f[5], *f[7:])
    gen = torch.Generator().manual_seed(2)
    x, background = _digit_like(3, gen, device), _digit_like(N_BACKGROUND, gen, device)
    assert torch.equal(paper_order(x), model.logits(x))   # max-pool and ReLU commute exactly
    sums, change, delta = _deepshap_sums(paper_order, x, background, 0)
    assert delta.abs().max() > 1e-3
