"""The scaling benchmark of :doc:`chapter 06 </notebooks/06-scaling>` and ``bench/bench_interventions.py``.

A network the size of the paper's MNIST model and a correlated input distribution on a 28 x 28
pixel grid, so that the interventional-expectation methods can be timed where the number of inputs
matters:

* :func:`benchmark_network`: 784 inputs, four hidden layers of 256 tanh units and ten outputs, with
  Gaussian weights N(0, gain^2 / fan_in) (LeCun initialisation: the tanh units then work in their
  curved range) and biases N(0, 0.1^2);
* :func:`benchmark_inputs`: a smooth mean image and a squared-exponential covariance (length scale
  2 pixels, variance 0.05) with a 5 % independent "nugget", so that the covariance has full rank;
* :func:`gaussian_rows`: seeded draws from that distribution.

Nothing is downloaded; everything is generated from a seed.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..utils import as_generator, check_positive_int

__all__ = ["BENCHMARK_SIDE", "benchmark_network", "benchmark_inputs", "gaussian_rows"]

#: Side of the pixel grid; the network has ``BENCHMARK_SIDE ** 2`` = 784 inputs.
BENCHMARK_SIDE = 28
_K = BENCHMARK_SIDE * BENCHMARK_SIDE
_WIDTHS = (_K, 256, 256, 256, 256)


def benchmark_network(generator=0, gain: float = 1.0, dtype: torch.dtype = torch.float64) -> nn.Sequential:
    """784 -> 4 x 256 tanh -> 10, weights N(0, gain^2 / fan_in), biases N(0, 0.1^2), in eval mode.

    ``generator`` draws the weights: ``None``, an int seed or a ``torch.Generator`` (:func:`causalbook_lib.utils.as_generator`).
    """
    g = as_generator(generator)
    if not (isinstance(gain, (int, float)) and math.isfinite(gain) and gain > 0):
        raise ValueError(f"gain must be a positive finite number, got {gain!r}")
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")
    mods: list[nn.Module] = []
    for a, b in zip(_WIDTHS[:-1], _WIDTHS[1:]):
        lin = nn.Linear(a, b)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(b, a, generator=g, device=g.device) * gain / math.sqrt(a))
            lin.bias.copy_(torch.randn(b, generator=g, device=g.device) * 0.1)
        mods += [lin, nn.Tanh()]
    out = nn.Linear(_WIDTHS[-1], 10)
    with torch.no_grad():
        out.weight.copy_(torch.randn(10, _WIDTHS[-1], generator=g, device=g.device) / math.sqrt(_WIDTHS[-1]))
        out.bias.zero_()
    mods.append(out)
    return nn.Sequential(*mods).to(dtype).eval()


def benchmark_inputs(length_scale: float = 2.0, variance: float = 0.05, nugget: float = 0.05):
    """Mean ``(784,)`` and covariance ``(784, 784)``, float64, of the correlated pixel distribution."""
    for name, v in (("length_scale", length_scale), ("variance", variance)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a positive finite number, got {v!r}")
    if not (isinstance(nugget, (int, float)) and 0 < nugget <= 1):
        raise ValueError(f"nugget must lie in (0, 1] so that the covariance has full rank, got {nugget!r}")
    t = torch.arange(BENCHMARK_SIDE, dtype=torch.float64)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    p = torch.stack([yy.flatten(), xx.flatten()], 1)
    kern = torch.exp(-torch.cdist(p, p).square() / (2 * length_scale ** 2))
    cov = variance * ((1 - nugget) * kern + nugget * torch.eye(_K, dtype=torch.float64))
    mean = 0.3 + 0.2 * torch.sin(p[:, 0] / 5) * torch.cos(p[:, 1] / 7)
    return mean, cov


def gaussian_rows(mean: torch.Tensor, cov: torch.Tensor, n: int, generator=1) -> torch.Tensor:
    """``n`` draws from N(mean, cov), in the dtype and on the device of ``cov``, shape ``(n, len(mean))``;
    ``generator`` is ``None``, an int seed or a ``torch.Generator`` (:func:`causalbook_lib.utils.as_generator`)."""
    check_positive_int(n, "n")
    if mean.ndim != 1 or cov.shape != (mean.shape[0], mean.shape[0]):
        raise ValueError(f"mean must be (K,) and cov (K, K), got {tuple(mean.shape)} and {tuple(cov.shape)}")
    g = as_generator(generator, device=cov.device)
    chol = torch.linalg.cholesky(cov)
    return torch.randn(n, cov.shape[0], generator=g, dtype=cov.dtype, device=cov.device) @ chol.T + mean
