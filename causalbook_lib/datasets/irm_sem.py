"""A linear structural equation model with an invariant cause and a spurious effect (Part V, :doc:`chapter 15 </notebooks/15-ood-generalisation>`).

* :func:`irm_linear_sem` samples several environments of the binary-label analogue of the synthetic
  experiment of Arjovsky et al. (2019, Sec. 5.1): causes :math:`Z_1` of the label, and effects
  :math:`Z_2` of the label whose noise level differs from one environment to the next. The
  logistic regression of :math:`Y` on :math:`Z_1` is the same in every environment (the invariant
  predictor); the regression on :math:`(Z_1, Z_2)` is not.

Everything is drawn from an explicit ``torch.Generator``; nothing is downloaded.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..utils import as_generator, check_positive_int

__all__ = ["irm_linear_sem"]


def _vector(v, name: str, *, positive: bool = False) -> torch.Tensor:
    """A non-empty 1-D sequence of finite numbers (``positive``: all > 0) as a float64 tensor."""
    if isinstance(v, (str, bytes)) or not hasattr(v, "__len__") or len(v) == 0:
        raise ValueError(f"{name} must be a non-empty sequence of numbers, got {v!r}")
    out = []
    for x in v:
        if isinstance(x, torch.Tensor) and x.dim() == 0:
            x = x.item()
        if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)) or not math.isfinite(x):
            raise ValueError(f"{name} must hold finite numbers, got {v!r}")
        if positive and not x > 0:
            raise ValueError(f"{name} must hold positive numbers, got {v!r}")
        out.append(float(x))
    return torch.tensor(out, dtype=torch.float64)


def irm_linear_sem(n: int, noise_stds, *, cause_weights=(1.0, -0.5), effect_means=(0.5, 0.5),
                   generator=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample ``n`` points in each of several environments of a linear SEM with a spurious effect.

    In environment :math:`e` (one per entry :math:`\\sigma_e` of ``noise_stds``), with
    :math:`w` = ``cause_weights`` (length :math:`d_1`) and :math:`\\mu` = ``effect_means``
    (length :math:`d_2`):

    .. math::

        Z_1 &:= N_1, \\qquad N_1 \\sim \\mathcal N(0, I_{d_1}),\\\\
        Y &:= \\mathbb 1[\\, w^\\top Z_1 + N_Y > 0 \\,], \\qquad N_Y \\sim \\text{Logistic}(0, 1),\\\\
        Z_2 &:= (2Y - 1)\\,\\mu + \\sigma_e N_2, \\qquad N_2 \\sim \\mathcal N(0, I_{d_2}).

    So :math:`P(Y = 1 \\mid Z_1) = \\sigma(w^\\top Z_1)` in every environment: the invariant
    predictor has logit coefficients :math:`(w, 0)` and bias 0. Given both blocks, Bayes' rule
    gives the logit :math:`w^\\top Z_1 + (2/\\sigma_e^2)\\,\\mu^\\top Z_2` (the Gaussian effects are
    independent of :math:`Z_1` given :math:`Y`), whose weight on :math:`Z_2` changes with the
    environment. This is the binary-label analogue of the regression SEM of Arjovsky et al.
    (2019, Sec. 5.1), where the effect's noise is the environment's signature.
    :doc:`Chapter 15 </notebooks/15-ood-generalisation>`.

    Args:
        n: number of samples per environment.
        noise_stds: the effect noise :math:`\\sigma_e` of each environment (positive numbers).
        cause_weights: :math:`w`, the invariant logit coefficients of the causes.
        effect_means: :math:`\\mu`, the mean of the effects given :math:`Y = 1` (minus it given
            :math:`Y = 0`).
        generator: ``None``, an int seed or a ``torch.Generator`` (see
            :func:`causalbook_lib.utils.as_generator`).

    Returns:
        ``(x, y)``: ``x`` of shape ``(E, n, d_1 + d_2)`` (causes first, then effects) and binary
        labels ``y`` of shape ``(E, n)``, both float64, with ``E = len(noise_stds)``.

    Raises:
        ValueError: a non-positive ``n``, empty or non-finite parameters, a non-positive noise
            standard deviation, or a ``generator`` that is not None, an int or a ``torch.Generator``.
    """
    n = check_positive_int(n, "n")
    stds = _vector(noise_stds, "noise_stds", positive=True)
    w = _vector(cause_weights, "cause_weights")
    mu = _vector(effect_means, "effect_means")
    generator = as_generator(generator)
    n_env = len(stds)
    z1 = torch.randn(n_env, n, len(w), generator=generator, dtype=torch.float64, device=generator.device)
    u = torch.rand(n_env, n, generator=generator, dtype=torch.float64, device=generator.device)
    y = (u < torch.sigmoid(z1 @ w)).to(torch.float64)  # the same as 1[w'z1 + logistic noise > 0]
    n2 = torch.randn(n_env, n, len(mu), generator=generator, dtype=torch.float64, device=generator.device)
    z2 = (2 * y - 1).unsqueeze(-1) * mu + stds[:, None, None] * n2
    return torch.cat([z1, z2], dim=-1), y
