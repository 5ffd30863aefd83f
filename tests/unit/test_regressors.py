"""Unit tests for causalbook_lib.regressors (causal regressors, chapter 05)."""
import numpy as np
import pytest
import torch
from sklearn.linear_model import BayesianRidge

from causalbook_lib import regressors as R


def test_legendre_features_are_orthonormal_under_uniform():
    # Gauss-Legendre quadrature integrates degree <= 2*20-1 polynomials exactly.
    nodes, weights = np.polynomial.legendre.leggauss(20)
    x = 3.0 + 2.0 * (nodes + 1) / 2  # map [-1, 1] onto [3, 5]
    phi = R.legendre_features(x, 6, 3.0, 5.0).numpy()
    gram = (phi * (weights / 2)[:, None]).T @ phi
    np.testing.assert_allclose(gram, np.eye(7), atol=1e-12)


def test_legendre_features_match_numpy_legendre():
    x = np.linspace(-1, 1, 11)
    phi = R.legendre_features(x, 4, -1.0, 1.0).numpy()
    for j in range(5):
        coef = np.zeros(j + 1)
        coef[j] = 1
        np.testing.assert_allclose(phi[:, j], np.sqrt(2 * j + 1) * np.polynomial.legendre.legval(x, coef), atol=1e-13)


def test_evidence_matches_sklearn_bayesian_ridge():
    g = np.random.default_rng(0)
    x = np.linspace(0, 1, 200)
    y = np.sin(3 * x) + 0.05 * g.standard_normal(200)
    phi = R.legendre_features(x, 4, 0.0, 1.0).numpy()
    ours = R.bayesian_evidence_fit(phi, y)
    br = BayesianRidge(fit_intercept=False, alpha_1=0, alpha_2=0, lambda_1=0, lambda_2=0, tol=1e-12,
                       max_iter=10000, compute_score=True).fit(phi, y)
    assert ours["log_evidence"] == pytest.approx(br.scores_[-1], rel=1e-8)
    assert ours["alpha"] == pytest.approx(br.lambda_, rel=1e-6)   # weight precision
    assert ours["beta"] == pytest.approx(br.alpha_, rel=1e-6)     # noise precision
    np.testing.assert_allclose(ours["mean"].numpy(), br.coef_, atol=1e-9)
    np.testing.assert_allclose(ours["covariance"].numpy(), br.sigma_, rtol=1e-6, atol=1e-12)


def test_order_selection_and_baseline_of_a_noisy_cubic():
    g = np.random.default_rng(1)
    x = np.linspace(-2, 2, 400)
    y = 1 + x - 0.5 * x**3 + 0.1 * g.standard_normal(400)
    reg = R.fit_causal_regressor(x, y, max_order=8)
    assert reg.order == 3
    assert reg.log_evidence.shape == (9,)
    assert int(torch.argmax(reg.log_evidence)) == reg.order
    # mean of 1 + x - x^3/2 over a symmetric interval is 1
    assert reg.baseline() == pytest.approx(1.0, abs=3 * reg.baseline_std() + 0.02)
    mean, var = reg.predict(torch.tensor([0.0, 1.0]))
    np.testing.assert_allclose(mean.numpy(), [1.0, 1.5], atol=0.05)
    assert bool((var > 0).all())
    np.testing.assert_allclose(reg.ace(torch.tensor([1.0])).numpy(), mean[1:].numpy() - reg.baseline())


def test_noise_free_polynomial_is_recovered_exactly():
    x = np.linspace(0, 1, 100)
    y = 2 - 3 * x**2
    reg = R.fit_causal_regressor(x, y, max_order=6)
    assert reg.order == 2
    assert reg.baseline() == pytest.approx(1.0, abs=1e-9)  # mean of 2 - 3x^2 on [0, 1]
    mean, var_curve = reg.predict(torch.tensor([0.5]), include_noise=False)
    assert float(mean) == pytest.approx(2 - 0.75, abs=1e-9)
    assert float(var_curve) < 1e-12


def test_baseline_is_the_mean_of_the_predictive_mean():
    g = np.random.default_rng(2)
    x = g.uniform(-1, 3, 300)
    y = np.exp(-x) + 0.01 * g.standard_normal(300)
    reg = R.fit_causal_regressor(x, y, max_order=7, low=-1.0, high=3.0)
    nodes, weights = np.polynomial.legendre.leggauss(30)
    grid = 1.0 + 2.0 * nodes
    mean, _ = reg.predict(torch.tensor(grid))
    assert reg.baseline() == pytest.approx(float((mean.numpy() * weights / 2).sum()), abs=1e-12)


@pytest.mark.parametrize("kwargs, msg", [
    ({"alphas": [], "values": []}, "non-empty"),
    ({"alphas": [0.0, 1.0], "values": [1.0]}, "same shape"),
    ({"alphas": [0.0, float("nan")], "values": [1.0, 2.0]}, "finite"),
    ({"alphas": [0.0, 1.0], "values": [1.0, float("inf")]}, "finite"),
    ({"alphas": [0.0, 1.0], "values": [1.0, 2.0], "max_order": -1}, "max_order"),
    ({"alphas": [0.0, 1.0], "values": [1.0, 2.0], "low": 1.0, "high": 1.0}, "low must be smaller"),
    ({"alphas": [0.0, 1.0], "values": [1.0, 2.0], "low": 2.0, "high": 0.0}, "low must be smaller"),
    ({"alphas": [1.0, 1.0], "values": [1.0, 2.0], "low": 0.0, "high": 2.0}, "distinct"),
    ({"alphas": [[0.0, 1.0]], "values": [[1.0, 2.0]]}, "1-D"),
])
def test_fit_causal_regressor_rejects_bad_input(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        R.fit_causal_regressor(**kwargs)


def test_legendre_and_evidence_reject_bad_input():
    with pytest.raises(ValueError, match="order"):
        R.legendre_features([0.0], -1, 0.0, 1.0)
    with pytest.raises(ValueError, match="low must be smaller"):
        R.legendre_features([0.0], 2, 1.0, 0.0)
    with pytest.raises(ValueError, match="same N"):
        R.bayesian_evidence_fit(np.ones((3, 2)), np.ones(4))
