"""Causal regressors: Bayesian polynomial regression of interventional expectations (Part II).

Phase II of Chattopadhyay et al. (2019, Sec. 4.3 and Algorithm 3) fits a smooth curve
:math:`\\alpha \\mapsto \\mathbb{E}[y \\mid do(x_i = \\alpha)]` through interventional expectations computed
at ``num`` values of :math:`\\alpha`. The book (:doc:`chapter 05 </notebooks/05-causal-regressors>`) does this with Bayesian
linear regression on an orthonormal Legendre basis on ``[low, high]``:

* features :math:`\\phi_j(\\alpha) = \\sqrt{2j+1}\\,P_j(t)` with :math:`t = 2(\\alpha - low)/(high - low) - 1`,
  so every feature has mean square 1 under the uniform doer and the design is well conditioned;
* prior :math:`w \\sim \\mathcal N(0, a^{-1} I)`, noise precision :math:`b`; the hyper-parameters are set by
  evidence maximisation (Bishop 2006, Sec. 3.5, the MacKay fixed point) and the order is the one with the
  largest log evidence (Bishop Eq. 3.86);
* the baseline of Eq. 1 is the mean of the predictive mean over ``[low, high]`` (a uniform doer). As
  :math:`\\phi_j` integrates to zero for :math:`j \\ge 1`, that mean is exactly the weight :math:`w_0`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .utils import as_float_tensor, check_interval, check_positive_int

__all__ = ["legendre_features", "bayesian_evidence_fit", "CausalRegressor", "fit_causal_regressor"]

#: Largest noise precision allowed, relative to the targets' variance. Noise-free targets (a Taylor
#: estimate is a deterministic function of alpha) would otherwise drive the noise precision to infinity.
_NOISE_FLOOR = 1e-10


def legendre_features(x, order: int, low: float, high: float) -> torch.Tensor:
    """Orthonormal Legendre features of ``x`` on ``[low, high]``.

    Returns the (n, order + 1) float64 matrix :math:`\\Phi_{nj} = \\sqrt{2j+1}\\,P_j(t_n)`, with
    :math:`t = 2(x - low)/(high - low) - 1`, built with the three-term recurrence
    :math:`(j+1)P_{j+1} = (2j+1)\\,t\\,P_j - j\\,P_{j-1}`. Under the uniform distribution on
    ``[low, high]`` the columns are orthonormal. See :doc:`chapter 05 </notebooks/05-causal-regressors>`.

    Args:
        x: values of shape (n,).
        order: polynomial order (>= 0).
        low, high: the interval, ``low < high``.

    Raises:
        ValueError: non-finite or non 1-D ``x``, ``order < 0``, ``low >= high``.
    """
    x = as_float_tensor(x, "x")
    if x.dim() != 1:
        raise ValueError(f"x must be 1-D, got shape {tuple(x.shape)}")
    order = check_positive_int(order, "order", minimum=0)
    check_interval(low, high, "[low, high]")
    t = 2.0 * (x - low) / (high - low) - 1.0
    cols = [torch.ones_like(t)]
    if order >= 1:
        cols.append(t)
    for j in range(1, order):
        cols.append(((2 * j + 1) * t * cols[j] - j * cols[j - 1]) / (j + 1))
    scale = torch.sqrt(2.0 * torch.arange(order + 1, dtype=torch.float64) + 1.0)
    return torch.stack(cols, dim=1) * scale


def bayesian_evidence_fit(design, targets, *, max_iter: int = 500, tol: float = 1e-10):
    """Bayesian linear regression with evidence-maximised hyper-parameters (Bishop 2006, Sec. 3.5).

    Model: :math:`t = \\Phi w + \\varepsilon`, :math:`w \\sim \\mathcal N(0, a^{-1}I)`,
    :math:`\\varepsilon \\sim \\mathcal N(0, b^{-1}I)`. Iterates the fixed point
    :math:`\\gamma = \\sum_j b\\lambda_j/(a + b\\lambda_j)`, :math:`a = \\gamma / m^\\top m`,
    :math:`b = (N - \\gamma)/\\lVert t - \\Phi m\\rVert^2` (the same update as scikit-learn's
    ``BayesianRidge`` with its gamma hyper-priors switched off) and returns the log evidence (Bishop Eq. 3.86)

    .. math:: \\ln p(t) = \\tfrac M2 \\ln a + \\tfrac N2 \\ln b - \\tfrac b2 \\lVert t-\\Phi m\\rVert^2
              - \\tfrac a2 m^\\top m - \\tfrac12 \\ln|A| - \\tfrac N2 \\ln 2\\pi,\\quad A = aI + b\\Phi^\\top\\Phi.

    Args:
        design: (N, M) float matrix.
        targets: (N,) float vector.

    Returns:
        dict with ``mean`` (M,), ``covariance`` (M, M), ``alpha`` (weight precision a), ``beta`` (noise
        precision b), ``log_evidence`` (float) and ``n_iter``.

    Raises:
        ValueError: shapes that do not match, or non-finite values.
    """
    phi = as_float_tensor(design, "design")
    t = as_float_tensor(targets, "targets")
    if phi.dim() != 2 or t.dim() != 1 or phi.shape[0] != t.shape[0]:
        raise ValueError(f"design must be (N, M) and targets (N,) with the same N, got {tuple(phi.shape)} "
                         f"and {tuple(t.shape)}")
    n, m = phi.shape
    eig, vecs = torch.linalg.eigh(phi.T @ phi)
    eig = eig.clamp_min(0.0)
    proj = vecs.T @ (phi.T @ t)
    var_t = float(t.var(unbiased=False)) if n > 1 else 0.0
    beta_max = 1.0 / (_NOISE_FLOOR**2 * max(var_t, float(t.pow(2).mean()), 1e-300))
    alpha, beta = 1.0, 1.0 / (var_t + np.finfo(float).eps)
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        mean = vecs @ (beta * proj / (alpha + beta * eig))
        sse = float((t - phi @ mean).pow(2).sum())
        gamma = float((beta * eig / (alpha + beta * eig)).sum())
        new_alpha = min(gamma / max(float(mean @ mean), 1e-300), 1e300)
        new_beta = min((n - gamma) / max(sse, 1e-300), beta_max)
        done = abs(new_alpha - alpha) <= tol * alpha and abs(new_beta - beta) <= tol * beta
        alpha, beta = max(new_alpha, 1e-300), max(new_beta, 1e-300)
        if done:
            break
    mean = vecs @ (beta * proj / (alpha + beta * eig))
    sse = float((t - phi @ mean).pow(2).sum())
    log_det = float(torch.log(alpha + beta * eig).sum())
    log_ev = (0.5 * m * math.log(alpha) + 0.5 * n * math.log(beta) - 0.5 * beta * sse
              - 0.5 * alpha * float(mean @ mean) - 0.5 * log_det - 0.5 * n * math.log(2 * math.pi))
    cov = vecs @ torch.diag(1.0 / (alpha + beta * eig)) @ vecs.T
    return {"mean": mean, "covariance": cov, "alpha": alpha, "beta": beta, "log_evidence": log_ev,
            "n_iter": n_iter}


@dataclass
class CausalRegressor:
    """A fitted causal regressor: a Bayesian Legendre polynomial for :math:`\\alpha \\mapsto \\mathbb{E}[y|do(x_i=\\alpha)]`.

    Attributes:
        low, high: the intervention interval (the uniform doer's support).
        order: the polynomial order chosen by maximum log evidence.
        log_evidence: (max_order + 1,) tensor, the log evidence of every order tried.
        weights: (order + 1,) posterior mean of the Legendre weights.
        covariance: (order + 1, order + 1) posterior covariance of the weights.
        alpha: weight precision; beta: noise precision (both evidence-maximised).
    """

    low: float
    high: float
    order: int
    log_evidence: torch.Tensor
    weights: torch.Tensor
    covariance: torch.Tensor
    alpha: float
    beta: float

    def features(self, x) -> torch.Tensor:
        """The (n, order + 1) Legendre design matrix at ``x`` (shape (n,))."""
        return legendre_features(x, self.order, self.low, self.high)

    def predict(self, x, *, include_noise: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Predictive mean and variance at ``x`` (shape (n,)), each of shape (n,).

        The variance is :math:`\\phi^\\top S \\phi + 1/b` (Bishop Eq. 3.59); ``include_noise=False``
        drops the noise term and gives the variance of the regression curve itself.
        """
        phi = self.features(x)
        mean = phi @ self.weights
        var = ((phi @ self.covariance) * phi).sum(dim=1)
        if include_noise:
            var = var + 1.0 / self.beta
        return mean, var

    def baseline(self) -> float:
        """Mean of the predictive mean over ``[low, high]`` (a uniform doer): the weight :math:`w_0`."""
        return float(self.weights[0])

    def baseline_std(self) -> float:
        """Posterior standard deviation of the baseline, :math:`\\sqrt{S_{00}}`."""
        return float(self.covariance[0, 0].sqrt())

    def ace(self, x) -> torch.Tensor:
        """Average causal effect :math:`\\mathbb{E}[y|do(x_i=\\alpha)] - \\text{baseline}` at ``x`` (shape (n,))."""
        return self.predict(x)[0] - self.baseline()


def fit_causal_regressor(alphas, values, *, max_order: int = 10, low: float | None = None,
                         high: float | None = None) -> CausalRegressor:
    """Fit a causal regressor to interventional expectations (Algorithm 3 of Chattopadhyay et al., 2019).

    For every order 0..``max_order`` fits Bayesian linear regression on orthonormal Legendre features on
    ``[low, high]`` with evidence-maximised hyper-parameters (:func:`bayesian_evidence_fit`) and keeps the
    order with the largest log evidence. Explained in :doc:`chapter 05 </notebooks/05-causal-regressors>`.

    Args:
        alphas: (num,) intervention values.
        values: (num,) interventional expectations :math:`\\mathbb{E}[y|do(x_i=\\alpha)]`.
        max_order: largest polynomial order tried (>= 0).
        low, high: the interval of the uniform doer; default to ``min(alphas)`` and ``max(alphas)``.

    Returns:
        a :class:`CausalRegressor` with ``.order``, ``.log_evidence``, ``.predict``, ``.baseline``.

    Raises:
        ValueError: empty, non 1-D, mismatched or non-finite inputs; ``max_order < 0``; ``low >= high``;
            fewer distinct alphas than needed (at least 2).
    """
    a = as_float_tensor(alphas, "alphas")
    v = as_float_tensor(values, "values")
    if a.dim() != 1 or a.numel() == 0:
        raise ValueError(f"alphas must be a non-empty 1-D array, got shape {tuple(a.shape)}")
    if v.shape != a.shape:
        raise ValueError(f"values must have the same shape as alphas {tuple(a.shape)}, got {tuple(v.shape)}")
    max_order = check_positive_int(max_order, "max_order", minimum=0)
    low = float(a.min()) if low is None else low
    high = float(a.max()) if high is None else high
    check_interval(low, high, "[low, high]")
    if torch.unique(a).numel() < 2:
        raise ValueError("alphas must hold at least two distinct values")
    fits, evidence = [], []
    for order in range(max_order + 1):
        fit = bayesian_evidence_fit(legendre_features(a, order, low, high), v)
        fits.append(fit)
        evidence.append(fit["log_evidence"])
    evidence_t = torch.tensor(evidence, dtype=torch.float64)
    best = int(torch.argmax(evidence_t))
    f = fits[best]
    return CausalRegressor(float(low), float(high), best, evidence_t, f["mean"], f["covariance"],
                           f["alpha"], f["beta"])
