"""Tests of causalbook_lib.irm: the IRMv1 penalty, environment risks, ERM/IRM/min-max training."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import causalbook_lib as cb
from causalbook_lib import irm as inv



def test_irmv1_penalty_closed_form_and_gradient():
    torch.manual_seed(0)
    logits = torch.randn(4, 50, dtype=torch.float64, requires_grad=True)
    y = (torch.rand(50) < 0.5).double()
    pen = inv.irmv1_penalty(logits, y)
    closed = ((torch.sigmoid(logits) - y) * logits).mean(-1).pow(2)
    assert pen.shape == (4,)
    assert torch.allclose(pen, closed)
    # differentiable: its gradient equals that of the closed form
    g1, = torch.autograd.grad(pen.sum(), logits)
    g2, = torch.autograd.grad(closed.sum(), logits)
    assert torch.allclose(g1, g2)
    # zero at the optimal scale: fit the scale by Newton steps, then the penalty vanishes
    f = torch.randn(200, dtype=torch.float64)
    yy = (torch.rand(200) < torch.sigmoid(2 * f)).double()
    w = torch.tensor(1.0, dtype=torch.float64)
    for _ in range(50):
        p = torch.sigmoid(w * f)
        w = w - ((p - yy) * f).mean() / (p * (1 - p) * f * f).mean()
    assert float(inv.irmv1_penalty(w * f, yy).detach()) < 1e-20


@pytest.mark.parametrize("logits, y", [(torch.zeros(3), torch.tensor([0.0, 1.0, 2.0])),
                                       (torch.zeros(3), torch.zeros(4)),
                                       (torch.tensor([0.0, float("nan")]), torch.zeros(2)),
                                       (torch.zeros(3, dtype=torch.long), torch.zeros(3))])
def test_irmv1_penalty_bad_input(logits, y):
    with pytest.raises(ValueError):
        inv.irmv1_penalty(logits, y)


def test_environment_risks_against_torch():
    logits = torch.randn(2, 30, dtype=torch.float64)
    y = (torch.rand(30) < 0.5).double()
    want = torch.stack([F.binary_cross_entropy_with_logits(l, y) for l in logits])
    assert torch.allclose(inv.environment_risks(logits, y), want)


def _toy_envs(seed=0):
    # the invariant feature x0 predicts y 75% of the time in every environment; x1 agrees 90% / 80%
    g = torch.Generator().manual_seed(seed)
    envs = []
    for flip in (0.1, 0.2, 0.9):
        y0 = (torch.rand(1000, generator=g) < 0.5).float()
        y = torch.where(torch.rand(1000, generator=g) < 0.25, 1 - y0, y0)
        c = torch.where(torch.rand(1000, generator=g) < flip, 1 - y, y)
        x = torch.stack([2 * y0 - 1, 2 * c - 1], 1) + 0.1 * torch.randn(1000, 2, generator=g)
        envs.append((x, y))
    return envs


def test_fit_invariant_classifiers_erm_uses_the_spurious_feature_and_irm_less():
    envs = _toy_envs()
    fit = inv.fit_invariant_classifiers(envs[:2], methods=("erm", "irm", "minmax"), seeds=(0, 1), hidden=8,
                                        steps=300, lr=1e-2, l2=1e-3, penalty_weight=1e3, anneal_steps=50)
    assert fit.methods == ["erm", "erm", "irm", "irm", "minmax", "minmax"] and fit.seeds == [0, 1] * 3
    assert fit.history["risk"].shape == (300, 6, 2) and fit.history["penalty"].shape == (300, 6, 2)
    assert fit.history["logit_rms"].shape == (300, 6, 2) and bool((fit.history["logit_rms"] > 0).all())
    test = fit.accuracy(*envs[2])
    train = fit.accuracy(torch.cat([envs[0][0], envs[1][0]]), torch.cat([envs[0][1], envs[1][1]]))
    assert isinstance(test, torch.Tensor) and test.dtype == torch.float64 and test.shape == (6,)
    assert isinstance(fit.history["risk"], torch.Tensor)
    assert bool((train[:2] > 0.84).all())             # ERM exploits the 85%-reliable spurious feature
    assert bool((test[:2] < 0.5).all())               # ... and fails when it flips
    assert bool((test[2:4] > test[:2].max()).all())   # IRMv1 relies on it less
    assert bool((fit.history["penalty"][-1, 2:4] < fit.history["penalty"][-1, :2]).all())


def test_fit_is_deterministic_and_models_are_independent():
    envs = _toy_envs()[:2]
    a = inv.fit_invariant_classifiers(envs, methods=("erm",), seeds=(0, 1), hidden=4, steps=20)
    b = inv.fit_invariant_classifiers(envs, methods=("erm",), seeds=(1,), hidden=4, steps=20)
    assert torch.allclose(a.model.weights[0][1], b.model.weights[0][0], atol=1e-6)


@pytest.mark.parametrize("kwargs", [dict(methods=("erm", "dro")), dict(seeds=()), dict(steps=0),
                                    dict(lr=0.0), dict(l2=-1.0), dict(penalty_weight=float("inf"))])
def test_fit_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        inv.fit_invariant_classifiers(_toy_envs()[:2], **kwargs)


def test_fit_bad_environments():
    x, y = _toy_envs()[0]
    for envs in ([], [(x, y[:-1])], [(x, y + 2)], [(x, y), (x[:, :1], y)], [(x,)]):
        with pytest.raises(ValueError):
            inv.fit_invariant_classifiers(envs)
