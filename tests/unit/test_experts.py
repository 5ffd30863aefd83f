"""Tests of causalbook_lib.experts: competing experts, specialisation, restoration."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import causalbook_lib as cb
from causalbook_lib import experts as inv



def test_specialisation_matrix_brute_force():
    rng = np.random.default_rng(0)
    w = rng.integers(0, 3, 200)
    t = rng.integers(0, 4, 200)
    m = inv.specialisation_matrix(w, t, 3, 4)
    assert isinstance(m, torch.Tensor) and m.dtype == torch.float64
    assert torch.equal(inv.specialisation_matrix(torch.as_tensor(w), torch.as_tensor(t), 3, 4), m)
    for i in range(4):
        for j in range(3):
            assert m[i, j] == pytest.approx(np.mean(w[t == i] == j))
    assert torch.allclose(m.sum(1), torch.ones(4, dtype=torch.float64))
    with pytest.raises(ValueError):
        inv.specialisation_matrix(w, t, 2, 4)
    with pytest.raises(ValueError):
        inv.specialisation_matrix(w, t[:-1], 3, 4)
    with pytest.raises(ValueError):
        inv.specialisation_matrix(np.zeros(3, dtype=int), np.array([0, 0, 1]), 3, 3)
    with pytest.raises(ValueError):
        inv.specialisation_matrix(w.astype(float), t, 3, 4)


def test_competing_experts_small_run_and_outputs():
    data = cb.datasets.transformed_digits(generator=0)
    fit = inv.train_competing_experts(data.transformed[:300], data.clean[:300], n_experts=3, steps=5,
                                      discriminator_steps=5, generator=0)
    assert fit.kernels.shape == (3, 3, 3) and fit.biases.shape == (3,) and fit.wins.shape == (5, 3)
    assert bool((fit.wins.sum(1) == 300).all()) and fit.wins.dtype == torch.int64
    winner, out = inv.assign_experts(fit, data.transformed[:10])
    assert winner.shape == (10,) and out.shape == (3, 10, 64)
    # each expert output is its 3x3 convolution (zero padding) plus bias: check one pixel by hand
    img = data.transformed[0].reshape(8, 8).double()
    pad = F.pad(img, (1, 1, 1, 1))
    k = fit.kernels[1].double()
    want = float((pad[2:5, 3:6] * k).sum() + fit.biases[1])
    assert out[1, 0].reshape(8, 8)[2, 3].item() == pytest.approx(want, abs=1e-5)


def test_identity_expert_is_exact_and_winner_is_argmax():
    data = cb.datasets.transformed_digits(generator=0)
    fit = inv.train_competing_experts(data.transformed[:50], data.clean[:50], n_experts=2, steps=1,
                                      discriminator_steps=0, init_noise=0.0, lr=1e-12, generator=0)
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
    assert isinstance(r, torch.Tensor) and r.dtype == torch.float64
    assert torch.allclose(inv.restoration_error_ratio(original, transformed, original, index, 3), torch.zeros(3, dtype=torch.float64))
    assert torch.allclose(inv.restoration_error_ratio(transformed, transformed, original, index, 3), torch.ones(3, dtype=torch.float64))
    for bad in [(restored[:-1], transformed, original, index, 3), (restored, transformed, original, index, 2),
                (restored, transformed, original, index.float(), 3), (restored, original, original, index, 3),
                (restored, transformed, original, index, 4)]:
        with pytest.raises(ValueError):
            inv.restoration_error_ratio(*bad)


def test_restore_with_experts_is_the_winners_clipped_output():
    data = cb.datasets.transformed_digits(generator=0)
    fit = inv.train_competing_experts(data.transformed[:100], data.clean[:100], n_experts=3, steps=3,
                                      discriminator_steps=3, generator=0)
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
    data = cb.datasets.transformed_digits(generator=0)
    x = data.original[:200]
    index = torch.arange(200) % 2 * 3  # 0 = shift right, 3 = invert
    xt = cb.datasets.transform_digits(x, index, generator=0)
    fit = inv.train_competing_experts(xt, data.clean[:200], n_experts=2, steps=300, generator=0)
    winner, restored = inv.restore_with_experts(fit, xt)
    share = inv.specialisation_matrix(winner.numpy(), (index // 3).numpy(), 2, 2)
    assert share.max(1).values.min() > 0.9 and share.argmax(1)[0] != share.argmax(1)[1]
    ratio = inv.restoration_error_ratio(restored, xt, x, index // 3, 2)
    assert bool((ratio < 0.5).all())
