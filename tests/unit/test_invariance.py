"""Tests of causalbook_lib.invariance: stacked MLPs, the IRMv1 penalty, ERM/IRM/min-max, experts."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import causalbook_lib as cb
from causalbook_lib import invariance as inv


def test_stacked_mlp_matches_separate_linear_layers():
    net = inv.StackedMLP(3, 5, 4, 2, seeds=[0, 1, 2], dtype=torch.float64)
    x = torch.randn(7, 5, dtype=torch.float64)
    out = net(x)
    assert out.shape == (3, 7, 2)
    for m in range(3):
        h = x
        for layer, (w, b) in enumerate(zip(net.weights, net.biases)):
            h = h @ w[m] + b[m]
            h = torch.relu(h) if layer < len(net.weights) - 1 else h
        assert torch.allclose(out[m], h)
    # a model's initialisation depends only on its own seed
    other = inv.StackedMLP(2, 5, 4, 2, seeds=[2, 9], dtype=torch.float64)
    assert torch.equal(other.weights[0][0], net.weights[0][2])
    assert torch.allclose(net.squared_norms()[1], sum(p[1].pow(2).sum() for p in net.parameters()))


def test_stacked_mlp_bad_input():
    with pytest.raises(ValueError):
        inv.StackedMLP(2, 5, 4, 1, seeds=[0])
    with pytest.raises(ValueError):
        inv.StackedMLP(2, 5, 0, 1)
    with pytest.raises(ValueError):
        inv.StackedMLP(2, 5, 4, 1, output="softmax")
    with pytest.raises(ValueError):
        inv.StackedMLP(2, 5, 4, 1)(torch.zeros(3, 4))


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
    test = fit.accuracy(*envs[2])
    train = fit.accuracy(torch.cat([envs[0][0], envs[1][0]]), torch.cat([envs[0][1], envs[1][1]]))
    assert np.all(train[:2] > 0.84)            # ERM exploits the 85%-reliable spurious feature
    assert np.all(test[:2] < 0.5)              # ... and fails when it flips
    assert np.all(test[2:4] > test[:2].max())  # IRMv1 relies on it less
    assert np.all(fit.history["penalty"][-1, 2:4] < fit.history["penalty"][-1, :2])


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


def test_specialisation_matrix_brute_force():
    rng = np.random.default_rng(0)
    w = rng.integers(0, 3, 200)
    t = rng.integers(0, 4, 200)
    m = inv.specialisation_matrix(w, t, 3, 4)
    for i in range(4):
        for j in range(3):
            assert m[i, j] == pytest.approx(np.mean(w[t == i] == j))
    assert np.allclose(m.sum(1), 1)
    with pytest.raises(ValueError):
        inv.specialisation_matrix(w, t, 2, 4)
    with pytest.raises(ValueError):
        inv.specialisation_matrix(w, t[:-1], 3, 4)
    with pytest.raises(ValueError):
        inv.specialisation_matrix(np.zeros(3, dtype=int), np.array([0, 0, 1]), 3, 3)
    with pytest.raises(ValueError):
        inv.specialisation_matrix(w.astype(float), t, 3, 4)


def test_competing_experts_small_run_and_outputs():
    data = cb.datasets.transformed_digits(seed=0)
    fit = inv.train_competing_experts(data.transformed[:300], data.clean[:300], n_experts=3, steps=5,
                                      discriminator_steps=5, seed=0)
    assert fit.kernels.shape == (3, 3, 3) and fit.biases.shape == (3,) and fit.wins.shape == (5, 3)
    assert np.all(fit.wins.sum(1) == 300)
    winner, out = inv.assign_experts(fit, data.transformed[:10])
    assert winner.shape == (10,) and out.shape == (3, 10, 64)
    # each expert output is its 3x3 convolution (zero padding) plus bias: check one pixel by hand
    img = data.transformed[0].reshape(8, 8).double()
    pad = F.pad(img, (1, 1, 1, 1))
    k = fit.kernels[1].double()
    want = float((pad[2:5, 3:6] * k).sum() + fit.biases[1])
    assert out[1, 0].reshape(8, 8)[2, 3].item() == pytest.approx(want, abs=1e-5)


def test_identity_expert_is_exact_and_winner_is_argmax():
    data = cb.datasets.transformed_digits(seed=0)
    fit = inv.train_competing_experts(data.transformed[:50], data.clean[:50], n_experts=2, steps=1,
                                      discriminator_steps=0, init_noise=0.0, lr=1e-12, seed=0)
    _, out = inv.assign_experts(fit, data.clean[:5])
    assert torch.allclose(out[0], data.clean[:5], atol=1e-6)


@pytest.mark.parametrize("kwargs", [dict(n_experts=0), dict(steps=0), dict(lr=-1.0), dict(init_noise=-0.1),
                                    dict(discriminator_lr=0.0)])
def test_competing_experts_bad_arguments(kwargs):
    x = torch.rand(10, 64)
    with pytest.raises(ValueError):
        inv.train_competing_experts(x, x, **kwargs)
    with pytest.raises(ValueError):
        inv.train_competing_experts(torch.rand(10, 63), x)


def test_restoration_error_ratio_brute_force():
    g = torch.Generator().manual_seed(0)
    original = torch.rand(40, 64, generator=g)
    transformed = torch.rand(40, 64, generator=g)
    restored = torch.rand(40, 64, generator=g)
    index = torch.arange(40) % 3
    r = inv.restoration_error_ratio(restored, transformed, original, index, 3)
    for t in range(3):
        m = index == t
        want = float(((restored[m] - original[m]) ** 2).mean() / ((transformed[m] - original[m]) ** 2).mean())
        assert r[t] == pytest.approx(want, rel=1e-6)
    # a perfect inverse gives 0, doing nothing gives 1
    assert np.allclose(inv.restoration_error_ratio(original, transformed, original, index, 3), 0)
    assert np.allclose(inv.restoration_error_ratio(transformed, transformed, original, index, 3), 1)
    for bad in [(restored[:-1], transformed, original, index, 3), (restored, transformed, original, index, 2),
                (restored, transformed, original, index.float(), 3), (restored, original, original, index, 3),
                (restored, transformed, original, index, 4)]:
        with pytest.raises(ValueError):
            inv.restoration_error_ratio(*bad)


def test_restore_with_experts_is_the_winners_clipped_output():
    data = cb.datasets.transformed_digits(seed=0)
    fit = inv.train_competing_experts(data.transformed[:100], data.clean[:100], n_experts=3, steps=3,
                                      discriminator_steps=3, seed=0)
    fit.biases[2] = 0.7  # make some outputs leave [0, 1]
    x = data.transformed[:20]
    winner, restored = inv.restore_with_experts(fit, x)
    out = torch.stack([F.conv2d(x.reshape(-1, 1, 8, 8), fit.kernels[j].reshape(1, 1, 3, 3), padding=1).reshape(20, 64)
                       + fit.biases[j] for j in range(3)])
    scores = torch.stack([fit.discriminator(out[j].reshape(1, 20, 64)).reshape(20) for j in range(3)])
    assert torch.equal(winner, scores.argmax(0))
    assert torch.allclose(restored, out[winner, torch.arange(20)].clamp(0, 1), atol=1e-6)
    assert float(restored.min()) >= 0 and float(restored.max()) <= 1


def test_competition_specialises_on_an_easy_pair():
    # two transformations with exact 3x3 inverses, two experts: each should win one transformation
    data = cb.datasets.transformed_digits(seed=0)
    x = data.original[:200]
    index = torch.arange(200) % 2 * 3  # 0 = shift right, 3 = invert
    xt = cb.datasets.transform_digits(x, index, seed=0)
    fit = inv.train_competing_experts(xt, data.clean[:200], n_experts=2, steps=300, seed=0)
    winner, restored = inv.restore_with_experts(fit, xt)
    share = inv.specialisation_matrix(winner.numpy(), (index // 3).numpy(), 2, 2)
    assert share.max(1).min() > 0.9 and share.argmax(1)[0] != share.argmax(1)[1]
    ratio = inv.restoration_error_ratio(restored, xt, x, index // 3, 2)
    assert np.all(ratio < 0.5)
