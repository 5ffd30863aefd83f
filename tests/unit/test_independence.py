"""Unit tests for causalbook_lib.independence (HSIC and its gamma-approximation test)."""
import pytest
import torch

from causalbook_lib import independence as ind


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def test_hsic_is_the_trace_formula():
    """An independent, unbatched computation: K, L and H as explicit matrices, trace(K H L H) / n^2."""
    g = _gen(0)
    a, b = torch.randn(2, 3, 9, generator=g, dtype=torch.float64)
    ours = ind.hsic(a, b)
    assert ours.shape == (3,)
    for i in range(3):
        n = a.shape[1]
        za = (a[i] - a[i].mean()) / a[i].std()
        zb = (b[i] - b[i].mean()) / b[i].std()
        K = torch.tensor([[float(torch.exp(-(za[p] - za[q]) ** 2 / 2)) for q in range(n)] for p in range(n)],
                         dtype=torch.float64)
        L = torch.tensor([[float(torch.exp(-(zb[p] - zb[q]) ** 2 / 2)) for q in range(n)] for p in range(n)],
                         dtype=torch.float64)
        H = torch.eye(n, dtype=torch.float64) - 1.0 / n
        assert float(ours[i]) == pytest.approx(float(torch.trace(K @ H @ L @ H)) / n ** 2, rel=1e-12)


def test_hsic_sees_dependence_that_correlation_misses():
    g = _gen(1)
    x = torch.randn(400, generator=g, dtype=torch.float64)
    noise = torch.randn(400, generator=g, dtype=torch.float64)
    y = x ** 2 + 0.1 * noise                      # uncorrelated with x, but dependent
    assert abs(float(torch.corrcoef(torch.stack([x, y]))[0, 1])) < 0.15
    assert float(ind.hsic(x, y)) > 10 * float(ind.hsic(x, noise))
    assert float(ind.hsic_test(x, y)) < 1e-6


def test_hsic_test_is_calibrated_under_independence_and_agrees_with_permutations():
    g = _gen(2)
    a, b = torch.randn(2, 400, 60, generator=g, dtype=torch.float64)
    p = ind.hsic_test(a, b)
    assert p.shape == (400,) and bool(((p >= 0) & (p <= 1)).all())
    rate = float((p < 0.05).double().mean())      # binomial sd at 400 tests: about 0.011
    assert 0.01 <= rate <= 0.10
    # on one weakly dependent data set, the gamma p-value against a permutation test of HSIC
    # (2000 permutations: standard error about 0.006 near p = 0.07)
    x = torch.randn(60, generator=g, dtype=torch.float64)
    y = x + 5.0 * torch.randn(60, generator=g, dtype=torch.float64)   # weak: p near 0.07
    perms = torch.stack([y[torch.randperm(60, generator=g)] for _ in range(2000)])
    null = ind.hsic(x.expand(2000, -1), perms)
    p_perm = float((null >= ind.hsic(x, y)).double().mean())
    assert 0.02 < p_perm < 0.3
    assert float(ind.hsic_test(x, y)) == pytest.approx(p_perm, abs=0.02)


def test_hsic_keeps_dtype_and_rejects_bad_input():
    a = torch.randn(2, 20, generator=_gen(3))
    assert ind.hsic(a[0], a[1]).dtype == torch.float32
    assert ind.hsic_test(a[0], a[1]).dtype == torch.float32
    with pytest.raises(ValueError, match="same shape"):
        ind.hsic(torch.zeros(2, 10), torch.zeros(10))
    with pytest.raises(ValueError, match=">= 6"):
        ind.hsic(torch.randn(5), torch.randn(5))
    with pytest.raises(ValueError, match="finite"):
        ind.hsic(torch.tensor([float("nan")] + [0.0] * 7), torch.randn(8))
    with pytest.raises(ValueError, match="vary"):
        ind.hsic_test(torch.ones(8), torch.randn(8))
