"""Quadrature (exact-reference) information terms, the bias-corrected plug-in estimator, the
common-random-numbers decoder batch and the linear-Gaussian explanation fit of ``cb.infoflow``
(chapters 11-12), checked against the closed forms already in the module."""
import math

import numpy as np
import pytest
import torch

from causalbook_lib import infoflow as I

GAMMA = 0.1


def probit_table(points, W, a, gamma=GAMMA):
    """p(y | z) of the probit classifier Phi(a^T x), x = W z + eps, eps ~ N(0, gamma I), integrated exactly."""
    u = (points @ W.T) @ a / math.sqrt(1 + gamma * float(a @ a))
    p1 = torch.special.ndtr(u)
    return torch.stack([1 - p1, p1], -1)


@pytest.fixture(scope="module")
def model3():
    a = torch.tensor([2.0, 0.5], dtype=torch.float64)
    W = torch.tensor([[0.8, 0.3, -0.4], [0.2, -0.9, 0.6]], dtype=torch.float64)   # columns: alpha1, alpha2, beta
    points, weights = I.normal_quadrature_grid(40, 3, 7.0)
    return a, W, points, weights, probit_table(points, W, a)


def test_normal_quadrature_grid_moments():
    points, weights = I.normal_quadrature_grid(32, 2, 7.0)
    assert points.shape == (32, 32, 2) and weights.shape == (32, 32) and weights.dtype == torch.float64
    assert float(weights.sum()) == pytest.approx(1.0, abs=1e-14)
    second = (weights[..., None, None] * points[..., :, None] * points[..., None, :]).sum((0, 1))
    assert torch.allclose(second, torch.eye(2, dtype=torch.float64), atol=1e-10)          # E zz^T = I


@pytest.mark.parametrize("causal", [[0], [0, 1]])
def test_quadrature_flow_matches_closed_form(model3, causal):
    a, W, points, weights, P = model3
    noncausal = [j for j in range(3) if j not in causal]
    exact = I.linear_gaussian_information_flow(a.numpy(), W[:, causal].numpy(), W[:, noncausal].numpy(), GAMMA)
    value = I.quadrature_conditional_mutual_information(P, weights, causal)
    assert value.dtype == torch.float64 and value.dim() == 0
    assert float(value) == pytest.approx(exact, abs=1e-8)


def test_quadrature_chain_rule_and_prop4c(model3):
    _, _, _, w, P = model3
    cmi = lambda S, C=(): float(I.quadrature_conditional_mutual_information(P, w, S, C))
    assert cmi([0, 1]) == pytest.approx(cmi([0]) + cmi([1], [0]), abs=1e-12)          # chain rule
    lhs = cmi([0, 1], [2]) - cmi([0, 1])                                               # Prop. 4(c)
    assert lhs == pytest.approx(float(I.quadrature_conditional_dependence(P, w, [0, 1], [2])), abs=1e-12)
    assert float(I.quadrature_conditional_dependence(P, w, [0], [1])) >= -1e-12


def test_quadrature_correlated_weights_break_prop4c(model3):
    """With beta correlated with alpha1 (rho), C_jc - C - I(alpha; beta | Y) = -I(alpha; beta) = ln(1 - rho^2)/2."""
    _, _, Z, w, P = model3
    rho = 0.6
    tilt = torch.exp((2 * rho * Z[..., 0] * Z[..., 2] - rho ** 2 * (Z[..., 0] ** 2 + Z[..., 2] ** 2)) / (2 * (1 - rho ** 2)))
    wc = w * tilt
    cmi = lambda S, C=(): float(I.quadrature_conditional_mutual_information(P, wc, S, C))
    residual = cmi([0, 1], [2]) - cmi([0, 1]) - float(I.quadrature_conditional_dependence(P, wc, [0, 1], [2]))
    assert residual == pytest.approx(0.5 * math.log(1 - rho ** 2), abs=1e-6)


def test_quadrature_validation(model3):
    _, _, _, w, P = model3
    with pytest.raises(ValueError, match="shape"):
        I.quadrature_conditional_mutual_information(P[..., 0], w, [0])
    with pytest.raises(ValueError, match="disjoint"):
        I.quadrature_conditional_mutual_information(P, w, [0], [0, 2])
    with pytest.raises(ValueError, match="at least one"):
        I.quadrature_conditional_dependence(P, w, [], [1])
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        I.quadrature_conditional_mutual_information(P, w, [3])
    with pytest.raises(ValueError, match="non-negative"):
        I.quadrature_conditional_mutual_information(P, -w, [0])
    with pytest.raises(ValueError, match="probabilit"):
        I.quadrature_conditional_mutual_information(2 * P, w, [0])
    with pytest.raises(ValueError, match="n_nodes"):
        I.normal_quadrature_grid(1, 2)
    with pytest.raises(ValueError, match="half_width"):
        I.normal_quadrature_grid(8, 2, half_width=-1.0)


def test_bias_corrected_flow_removes_most_of_the_bias():
    a = torch.tensor([2.0, 0.0], dtype=torch.float64)
    w_alpha, w_beta = torch.tensor([0.8, 0.6], dtype=torch.float64), torch.tensor([0.6, -0.8], dtype=torch.float64)
    exact = I.linear_gaussian_information_flow(a.numpy(), w_alpha.numpy(), w_beta[:, None].numpy(), GAMMA)
    g = torch.Generator().manual_seed(0)
    plain, corrected = [], []
    for _ in range(200):
        alpha = torch.randn(100, 1, generator=g, dtype=torch.float64)
        beta = torch.randn(100, 3, generator=g, dtype=torch.float64)
        p1 = torch.special.ndtr((float(a @ w_alpha) * alpha + float(a @ w_beta) * beta) / math.sqrt(1 + GAMMA * 4))
        p = torch.stack([1 - p1, p1], -1)
        plain.append(float(I.plugin_information_flow(p)))
        corrected.append(float(I.bias_corrected_information_flow(p)))
    bias_plain, bias_corrected = np.mean(plain) - exact, np.mean(corrected) - exact
    assert bias_plain > 0.02                      # too few beta draws: clearly upwards
    assert abs(bias_corrected) < 0.3 * bias_plain


def test_bias_corrected_flow_general_and_degenerate_cases():
    g = torch.Generator().manual_seed(1)
    p = torch.softmax(torch.randn(20, 5, 2, generator=g, dtype=torch.float64), -1)
    # the binary shortcut agrees with the M-class formula
    pa, va = p.mean(1), p.var(1)
    general = I.plugin_information_flow(p) - (va / (2 * pa)).sum(-1).mean() / 5
    assert float(I.bias_corrected_information_flow(p)) == pytest.approx(float(general), abs=1e-12)
    # no spread over beta: nothing to correct
    const = torch.softmax(torch.randn(20, 1, 3, generator=g, dtype=torch.float64), -1).expand(-1, 4, -1)
    assert float(I.bias_corrected_information_flow(const)) == pytest.approx(float(I.plugin_information_flow(const)), abs=1e-14)
    with pytest.raises(ValueError, match="N_beta >= 2"):
        I.bias_corrected_information_flow(p[:, :1])


def test_common_random_probabilities_shares_noise():
    clf = I.HyperplaneClassifier([1.0, 0.0], steepness=5.0)
    W1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    Ws = torch.stack([W1, W1, torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)])
    z = torch.randn(30, 4, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    p = I.common_random_probabilities(Ws, 0.05, clf, z, generator=torch.Generator().manual_seed(3))
    assert p.shape == (3, 30, 4, 2) and p.dtype == torch.float64
    assert torch.equal(p[0], p[1])                                  # same decoder, same noise
    exact = I.common_random_probabilities(W1, 0.0, clf, z)          # gamma = 0: deterministic
    assert torch.allclose(exact[0], clf(z.reshape(-1, 2)).reshape(30, 4, 2).double(), atol=1e-12)
    with pytest.raises(ValueError, match="same D"):
        I.common_random_probabilities(Ws, 0.05, clf, z[..., :1])
    with pytest.raises(ValueError, match="gamma"):
        I.common_random_probabilities(Ws, -1.0, clf, z)


def test_fit_linear_gaussian_explanation_reproduces_prop3():
    a = torch.tensor([1.2, -1.6], dtype=torch.float64)
    W = I.fit_linear_gaussian_explanation(a, 0.1, GAMMA, generator=0)
    assert W.shape == (2, 2) and not W.requires_grad
    assert torch.allclose(W.norm(dim=0), torch.full((2,), math.sqrt(1 - GAMMA), dtype=torch.float64), atol=1e-12)
    cos_alpha = abs(float(W[:, 0] @ a)) / float(W[:, 0].norm() * a.norm())
    cos_beta = abs(float(W[:, 1] @ a)) / float(W[:, 1].norm() * a.norm())
    assert cos_alpha > 1 - 1e-8 and cos_beta < 1e-4                  # w_alpha || a, w_beta _|_ a
    with pytest.raises(ValueError, match="gamma"):
        I.fit_linear_gaussian_explanation(a, 0.1, 1.5)
    with pytest.raises(ValueError, match="generator"):
        I.fit_linear_gaussian_explanation(a, 0.1, GAMMA, generator="seed")
