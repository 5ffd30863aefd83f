"""Testing independence with the Hilbert-Schmidt independence criterion (HSIC; Part V).

:doc:`Chapter 14 </notebooks/14-causal-theory>` uses it twice: to pick the causal direction of an
additive-noise pair (only in the causal direction is the regression residual independent of the
regressor) and to test the independence of the noises, the third aspect of independent mechanisms.

* :func:`hsic`: the biased estimate ``trace(K H L H) / n^2`` of Gretton et al. (2005), with Gaussian
  kernels of unit bandwidth on standardised values;
* :func:`hsic_test`: the p-value of "a is independent of b" from ``n`` times that estimate and the
  gamma approximation of its null distribution (Gretton et al., 2007).

Both take scalar samples of shape ``(..., n)`` and are batched over the leading dimensions (many
data sets in one call). They compute in the dtype and on the device of their inputs; the gamma
tail probability is evaluated by SciPy on the CPU.
"""
from __future__ import annotations

import torch

from .utils import check_finite, check_positive_int

__all__ = ["hsic", "hsic_test"]


def _check_pair(a, b) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    if not a.is_floating_point():
        a = a.to(torch.float64)
    b = b.to(dtype=a.dtype, device=a.device)
    if a.dim() < 1 or a.shape != b.shape:
        raise ValueError(f"a and b must be samples of the same shape (..., n), got {tuple(a.shape)} and {tuple(b.shape)}")
    check_positive_int(a.shape[-1], "the number of samples n", minimum=6)
    check_finite(a, "a")
    check_finite(b, "b")
    if bool((a.std(-1) == 0).any()) or bool((b.std(-1) == 0).any()):
        raise ValueError("a and b must vary within every sample (a constant sample cannot be standardised)")
    return a, b


def _gram(v: torch.Tensor) -> torch.Tensor:
    """Gaussian kernel matrix exp(-(v_i - v_j)^2 / 2) of the standardised sample: (..., n, n)."""
    v = (v - v.mean(-1, keepdim=True)) / v.std(-1, keepdim=True)
    return torch.exp(-(v[..., :, None] - v[..., None, :]) ** 2 / 2)


def _center(k: torch.Tensor) -> torch.Tensor:
    """H K H with H = I - 11^T / n: the doubly centred kernel matrix."""
    return k - k.mean(-1, keepdim=True) - k.mean(-2, keepdim=True) + k.mean((-2, -1), keepdim=True)


def hsic(a, b) -> torch.Tensor:
    """Biased HSIC estimate ``trace(K H L H) / n^2`` of two scalar samples, batched over leading dimensions.

    ``K`` and ``L`` are Gaussian kernel matrices ``exp(-(v_i - v_j)^2 / 2)`` of ``a`` and ``b``, each
    standardised to mean 0 and standard deviation 1 within its sample; ``H`` centres. The population
    value is zero exactly when ``a`` and ``b`` are independent (the Gaussian kernel is
    characteristic); the estimate is positive and shrinks like ``1/n`` under independence.

    Args:
        a, b: samples of shape ``(..., n)``, ``n >= 6``, the same shape.

    Returns:
        Shape ``(...)``.

    Raises:
        ValueError: different shapes, fewer than 6 samples, non-finite or constant samples.
    """
    a, b = _check_pair(a, b)
    return (_center(_gram(a)) * _gram(b)).sum((-2, -1)) / a.shape[-1] ** 2


def hsic_test(a, b) -> torch.Tensor:
    """p-value of "``a`` is independent of ``b``" from HSIC and Gretton et al.'s gamma approximation.

    Under independence ``n * hsic(a, b)`` is approximately gamma-distributed with the mean and
    variance of Gretton et al. (2007, Theorem 3 and the estimates after it), computed from the
    kernel matrices; the p-value is that gamma's upper tail at the observed statistic. Batched over
    the leading dimensions.

    Args:
        a, b: samples of shape ``(..., n)``, ``n >= 6``, the same shape.

    Returns:
        p-values of shape ``(...)``, in the dtype and on the device of ``a``.

    Raises:
        ValueError: different shapes, fewer than 6 samples, non-finite or constant samples.
    """
    from scipy.stats import gamma

    a, b = _check_pair(a, b)
    n = a.shape[-1]
    k, l = _gram(a), _gram(b)
    kl = _center(k) * _center(l)
    stat = kl.sum((-2, -1)) / n                                   # n times the biased HSIC
    var = ((kl / 6) ** 2).sum((-2, -1)) - ((kl.diagonal(dim1=-2, dim2=-1) / 6) ** 2).sum(-1)
    var = var * 72 * (n - 4) * (n - 5) / (n * (n - 1)) ** 2 / ((n - 2) * (n - 3))
    mu_k, mu_l = ((m.sum((-2, -1)) - n) / (n * (n - 1)) for m in (k, l))   # mean off-diagonal kernel value
    mean = (1 + mu_k * mu_l - mu_k - mu_l) / n
    p = gamma.sf(stat.detach().cpu().numpy(), (mean ** 2 / var).detach().cpu().numpy(),
                 scale=(n * var / mean).detach().cpu().numpy())
    return torch.as_tensor(p, dtype=a.dtype, device=a.device)
