"""Tests of causalbook_lib.datasets.irm_sem: the linear SEM with an invariant cause and a spurious effect."""
import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from causalbook_lib import irm
from causalbook_lib.datasets.irm_sem import irm_linear_sem

W, MU = (1.0, -0.5), (0.5, 0.5)


def _logistic_fit(x, y):
    """Unpenalised logistic regression (coefficients, intercept), fitted by scikit-learn."""
    fit = LogisticRegression(C=1e8, max_iter=2000).fit(x.numpy(), y.numpy())
    return fit.coef_[0], fit.intercept_[0]


def test_shapes_dtype_and_labels():
    x, y = irm_linear_sem(50, (0.5, 1.0, 2.0), cause_weights=(1.0, 2.0, 3.0), effect_means=(0.1, 0.2),
                          generator=torch.Generator().manual_seed(0))
    assert x.shape == (3, 50, 5) and y.shape == (3, 50)
    assert x.dtype == torch.float64 and y.dtype == torch.float64
    assert set(torch.unique(y).tolist()) <= {0.0, 1.0}


def test_generator_makes_draws_reproducible():
    a = irm_linear_sem(20, (1.0,), generator=torch.Generator().manual_seed(5))
    b = irm_linear_sem(20, (1.0,), generator=torch.Generator().manual_seed(5))
    c = irm_linear_sem(20, (1.0,), generator=torch.Generator().manual_seed(6))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_cause_regression_is_invariant_and_effect_moments_follow_the_environment():
    stds = (0.5, 2.0)
    x, y = irm_linear_sem(40000, stds, cause_weights=W, effect_means=MU, generator=torch.Generator().manual_seed(1))
    for e, s in enumerate(stds):
        # P(Y = 1 | Z1) = sigmoid(w'Z1) in every environment: coefficients w, intercept 0
        coef, icpt = _logistic_fit(x[e, :, :2], y[e])
        assert np.allclose(coef, W, atol=0.05) and abs(icpt) < 0.05
        # Z2 given Y: mean (2Y - 1) mu, standard deviation sigma_e, uncorrelated with Z1
        for label, sign in ((1.0, 1.0), (0.0, -1.0)):
            z2 = x[e, y[e] == label, 2:]
            assert np.allclose(z2.mean(0).numpy(), sign * np.array(MU), atol=4 * s / np.sqrt(len(z2)) + 1e-3)
            assert np.allclose(z2.std(0).numpy(), s, rtol=0.03)
            z1 = x[e, y[e] == label, :2]
            corr = np.corrcoef(np.concatenate([z1.numpy(), z2.numpy()], 1).T)[:2, 2:]
            assert np.abs(corr).max() < 0.03


def test_bayes_weights_on_the_effect_are_two_mu_over_sigma_squared():
    stds = (0.7, 1.5)
    x, y = irm_linear_sem(40000, stds, cause_weights=W, effect_means=MU, generator=torch.Generator().manual_seed(2))
    for e, s in enumerate(stds):
        coef, icpt = _logistic_fit(x[e], y[e])
        expected = np.array(list(W) + [2 * m / s**2 for m in MU])
        assert np.allclose(coef, expected, rtol=0.06, atol=0.04), (coef, expected)
        assert abs(icpt) < 0.05


def test_invariant_logit_has_near_zero_irmv1_penalty_and_the_spurious_one_does_not():
    stds = (0.5, 1.5)
    x, y = irm_linear_sem(40000, stds, cause_weights=W, effect_means=MU, generator=torch.Generator().manual_seed(3))
    invariant = x[..., :2] @ torch.tensor(W, dtype=torch.float64)  # (E, n)
    pen_inv = irm.irmv1_penalty(invariant, y).detach()
    assert float(pen_inv.max()) < 1e-4  # zero in the population, sampling error only
    # the Bayes logit of environment 0 is over-confident in environment 1: a clearly positive penalty there
    bayes0 = x @ torch.tensor(list(W) + [2 * m / stds[0] ** 2 for m in MU], dtype=torch.float64)
    pen_spur = irm.irmv1_penalty(bayes0, y).detach()
    assert float(pen_spur[0]) < 1e-3 and float(pen_spur[1]) > 100 * float(pen_inv.max()) + 1e-2


@pytest.mark.parametrize("kwargs", [
    dict(n=0, noise_stds=(1.0,)),
    dict(n=2.5, noise_stds=(1.0,)),
    dict(n=10, noise_stds=()),
    dict(n=10, noise_stds=(1.0, 0.0)),
    dict(n=10, noise_stds=(1.0, -1.0)),
    dict(n=10, noise_stds=(1.0, float("nan"))),
    dict(n=10, noise_stds=1.0),
    dict(n=10, noise_stds="ab"),
    dict(n=10, noise_stds=(1.0,), cause_weights=()),
    dict(n=10, noise_stds=(1.0,), cause_weights=(1.0, float("inf"))),
    dict(n=10, noise_stds=(1.0,), effect_means=(True,)),
    dict(n=10, noise_stds=(1.0,), generator=-1),
    dict(n=10, noise_stds=(1.0,), generator=0.5),
])
def test_bad_input_raises_value_error(kwargs):
    n = kwargs.pop("n")
    with pytest.raises(ValueError):
        irm_linear_sem(n, **kwargs)
