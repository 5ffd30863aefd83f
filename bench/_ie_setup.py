"""The benchmark problem of ``bench_interventions.py`` (also used by chapter 06-scaling).

A 784-input network with 4 hidden layers of 256 tanh units and 10 outputs, with Gaussian weights
N(0, 1/fan_in) (LeCun initialisation; the tanh units then work in their curved range), and a
correlated input distribution on a 28 x 28 pixel grid: a smooth mean image and a squared-exponential
covariance (length scale 2 pixels, variance 0.05) plus a 5 % independent "nugget" so the covariance
has full rank.
"""
from __future__ import annotations

import math

import torch
from torch import nn

SIDE = 28
K = SIDE * SIDE
WIDTHS = (K, 256, 256, 256, 256)


def benchmark_network(seed: int = 0, gain: float = 1.0, dtype: torch.dtype = torch.float64) -> nn.Sequential:
    """784 -> 4 x 256 tanh -> 10, weights N(0, gain^2 / fan_in), biases N(0, 0.1^2)."""
    g = torch.Generator().manual_seed(seed)
    mods: list[nn.Module] = []
    for a, b in zip(WIDTHS[:-1], WIDTHS[1:]):
        lin = nn.Linear(a, b)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(b, a, generator=g) * gain / math.sqrt(a))
            lin.bias.copy_(torch.randn(b, generator=g) * 0.1)
        mods += [lin, nn.Tanh()]
    out = nn.Linear(WIDTHS[-1], 10)
    with torch.no_grad():
        out.weight.copy_(torch.randn(10, WIDTHS[-1], generator=g) / math.sqrt(WIDTHS[-1]))
        out.bias.zero_()
    mods.append(out)
    return nn.Sequential(*mods).to(dtype).eval()


def benchmark_inputs(length_scale: float = 2.0, variance: float = 0.05, nugget: float = 0.05):
    """Mean (784,) and covariance (784, 784) in float64 of the correlated pixel distribution."""
    t = torch.arange(SIDE, dtype=torch.float64)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    p = torch.stack([yy.flatten(), xx.flatten()], 1)
    kern = torch.exp(-torch.cdist(p, p).square() / (2 * length_scale ** 2))
    cov = variance * ((1 - nugget) * kern + nugget * torch.eye(K, dtype=torch.float64))
    mean = 0.3 + 0.2 * torch.sin(p[:, 0] / 5) * torch.cos(p[:, 1] / 7)
    return mean, cov


def gaussian_rows(mean: torch.Tensor, cov: torch.Tensor, n: int, seed: int = 1) -> torch.Tensor:
    """n draws from N(mean, cov), float64, shape (n, 784)."""
    g = torch.Generator().manual_seed(seed)
    chol = torch.linalg.cholesky(cov)
    return torch.randn(n, cov.shape[0], generator=g, dtype=torch.float64) @ chol.T + mean
