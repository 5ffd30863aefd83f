"""Tests of cb.verification (interval bound propagation): soundness, exactness on linear nets, and an
exact comparison with the true worst-case margin of a tiny ReLU network found by enumerating
activation patterns (one linear programme per pattern)."""
import itertools

import numpy as np
import pytest
import torch
from scipy.optimize import linprog
from torch import nn

import causalbook_lib as cb
from causalbook_lib import verification as V


def _net(sizes, seed, dtype=torch.float64):
    with cb.utils.seeded_init(seed):
        return cb.models.make_mlp(sizes, "relu", dtype=dtype)


def _ball_points(x, eps, k, seed, lower=None, upper=None):
    """k uniform points and all corners (for d <= 4) of each input's L-inf ball, clipped: (n, m, d)."""
    g = torch.Generator().manual_seed(seed)
    n, d = x.shape
    pts = x[:, None, :] + eps * (2 * torch.rand(n, k, d, generator=g, dtype=x.dtype) - 1)
    if d <= 4:
        corners = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=d)), dtype=x.dtype)
        pts = torch.cat([pts, x[:, None, :] + eps * corners[None]], 1)
    if lower is not None:
        pts = pts.clamp(lower, upper)
    return pts


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_bounds_contain_random_points_and_keep_dtype(dtype):
    net = _net([5, 16, 16, 3], 0, dtype)
    x = torch.rand(20, 5, generator=torch.Generator().manual_seed(1), dtype=dtype)
    lo, hi = V.interval_bounds(net, x, 0.05, lower=0.0, upper=1.0)
    assert lo.dtype == dtype and lo.shape == (20, 3) and bool((lo <= hi).all())
    with torch.no_grad():
        out = net(_ball_points(x, 0.05, 200, 2, 0.0, 1.0))
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    assert bool((out >= lo[:, None] - tol).all()) and bool((out <= hi[:, None] + tol).all())
    m = V.margin_lower_bound(net, x, out.new_zeros(20, dtype=torch.long), 0.05, lower=0.0, upper=1.0)
    true_margin = out[..., 0] - out[..., 1:].amax(-1)
    assert bool((m[:, None] <= true_margin + tol).all())


def test_linear_net_bounds_are_exact():
    """For a linear classifier IBP is exact: each logit and each logit difference is linear, so its
    worst case over the box is a corner, and the interval rule finds that corner."""
    lin = nn.Sequential(nn.Identity(), nn.Linear(3, 3)).double()
    x = torch.rand(6, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    corners = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=3)), dtype=torch.float64)
    with torch.no_grad():
        out = lin(x[:, None, :] + 0.1 * corners[None])  # (n, 8, 3)
    lo, hi = V.interval_bounds(lin, x, 0.1)
    torch.testing.assert_close(lo, out.amin(1), rtol=0, atol=1e-12)
    torch.testing.assert_close(hi, out.amax(1), rtol=0, atol=1e-12)
    true = out.gather(2, y[:, None, None].expand(-1, 8, 1))[..., 0]
    exact = torch.stack([(true - out[..., j]).amin(1) for j in range(3)], 1)  # min over corners, per j
    exact = exact.masked_fill(nn.functional.one_hot(y, 3).bool(), torch.inf).amin(1)
    torch.testing.assert_close(V.margin_lower_bound(lin, x, y, 0.1), exact, rtol=0, atol=1e-12)
    # two stacked linear layers are still a linear map, but IBP bounds |W2| |W1| r >= |W2 W1| r: loose
    two = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 3)).double()
    lo2, hi2 = V.interval_bounds(two, x, 0.1)
    with torch.no_grad():
        out2 = two(x[:, None, :] + 0.1 * corners[None])
    assert bool((lo2 <= out2.amin(1) + 1e-12).all()) and bool((lo2 < out2.amin(1) - 1e-6).any())


def _exact_min_margin(net, x0, eps, y, other):
    """min over the box of z_y - z_other for a 2-h-2 ReLU net, by enumerating the 2^h activation
    patterns: on each pattern's region (a polytope) the margin is linear, so one LP finds its minimum."""
    w1, b1 = net[0].weight.detach().numpy(), net[0].bias.detach().numpy()
    w2, b2 = net[2].weight.detach().numpy(), net[2].bias.detach().numpy()
    c = w2[y] - w2[other]
    best = np.inf
    for pattern in itertools.product([0, 1], repeat=len(b1)):
        a = np.array(pattern, dtype=float)
        cost = (c * a) @ w1  # margin = cost @ x + const on this region
        const = (c * a) @ b1 + b2[y] - b2[other]
        sgn = np.where(a == 1, -1.0, 1.0)  # active: w x + b >= 0  <=>  -(w x) <= b
        res = linprog(cost, A_ub=sgn[:, None] * w1, b_ub=-sgn * b1,
                      bounds=[(v - eps, v + eps) for v in x0], method="highs")
        if res.status == 0:
            best = min(best, res.fun + const)
    return best


def test_ibp_margin_is_below_exact_minimum_on_tiny_relu_net():
    gaps = []
    for seed in range(5):
        net = _net([2, 3, 2], seed)
        x0 = torch.rand(1, 2, generator=torch.Generator().manual_seed(10 + seed), dtype=torch.float64)
        y = int(net(x0).argmax())
        for eps in (0.05, 0.3, 1.0):
            exact = _exact_min_margin(net, x0[0].numpy(), eps, y, 1 - y)
            # the LP answer agrees with a fine grid (which can only overestimate the minimum)
            g = torch.linspace(-eps, eps, 201, dtype=torch.float64)
            grid = x0 + torch.cartesian_prod(g, g)
            with torch.no_grad():
                z = net(grid)
            grid_min = float((z[:, y] - z[:, 1 - y]).min())
            assert exact <= grid_min + 1e-9 and grid_min - exact < 1e-2 * max(1.0, abs(exact))
            ibp = float(V.margin_lower_bound(net, x0, torch.tensor([y]), eps))
            assert ibp <= exact + 1e-9
            gaps.append(exact - ibp)
            assert bool(V.certified(net, x0, torch.tensor([y]), eps)) == (ibp > 0)
    assert max(gaps) > 1e-3  # with ReLUs IBP is loose somewhere: it is a bound, not the minimum


def test_difference_bound_is_tighter_than_logit_bounds():
    net = _net([8, 32, 5], 3)
    x = torch.rand(30, 8, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    y = net(x).argmax(1)
    lo, hi = V.interval_bounds(net, x, 0.02)
    naive = (lo.gather(1, y[:, None]) - hi).masked_fill(nn.functional.one_hot(y, 5).bool(), torch.inf).amin(1)
    tight = V.margin_lower_bound(net, x, y, 0.02)
    assert bool((tight >= naive - 1e-12).all()) and bool((tight > naive + 1e-6).any())


def test_pgd_never_breaks_a_certified_point_and_stays_inside_bounds():
    net = _net([10, 32, 4], 5)
    x = torch.rand(100, 10, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    y = net(x).argmax(1)
    for eps in (0.01, 0.03, 0.1):
        adv = cb.attacks.pgd(net, x, y, eps, steps=20, restarts=2, generator=0)
        lo, hi = V.interval_bounds(net, x, eps, lower=0.0, upper=1.0)
        with torch.no_grad():
            z = net(adv)
        assert bool((z >= lo - 1e-10).all() and (z <= hi + 1e-10).all())
        cert = V.certified(net, x, y, eps, lower=0.0, upper=1.0)
        assert not bool((cert & (z.argmax(1) != y)).any())
    assert bool(V.certified(net, x, y, 0.0).all())  # eps = 0: the bound is the clean margin, > 0


def test_domain_clipping_tightens_bounds():
    net = _net([3, 8, 2], 7)
    x = torch.tensor([[0.0, 0.5, 1.0]], dtype=torch.float64)
    lo, hi = V.interval_bounds(net, x, 0.2)
    lo_c, hi_c = V.interval_bounds(net, x, 0.2, lower=0.0, upper=1.0)
    assert bool((lo_c >= lo - 1e-12).all() and (hi_c <= hi + 1e-12).all())
    with torch.no_grad():
        out = net(_ball_points(x, 0.2, 500, 0, 0.0, 1.0))
    assert bool((out >= lo_c[:, None] - 1e-10).all() and (out <= hi_c[:, None] + 1e-10).all())


def test_flatten_is_supported():
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)).double()
    x = torch.rand(5, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    lo, hi = V.interval_bounds(net, x, 0.0)
    torch.testing.assert_close(lo, net(x).detach())
    torch.testing.assert_close(hi, net(x).detach())


@pytest.mark.parametrize("bad", [
    dict(model=nn.Sequential(nn.Linear(2, 2), nn.Tanh(), nn.Linear(2, 2))),
    dict(model=nn.Linear(2, 2)),
    dict(eps=-0.1), dict(eps=float("nan")), dict(eps=torch.ones(3)),
    dict(x=torch.tensor([0.1, 0.2])), dict(x=torch.tensor([[float("nan"), 0.0]])),
    dict(y=torch.tensor([2])), dict(y=torch.tensor([0.0])),
    dict(lower=0.5), dict(upper=0.0),
])
def test_bad_inputs_raise(bad):
    args = dict(model=nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2)).double(),
                x=torch.tensor([[0.2, 0.3]], dtype=torch.float64), y=torch.tensor([0]), eps=0.1,
                lower=None, upper=None)
    args.update(bad)
    with pytest.raises(ValueError):
        V.margin_lower_bound(args["model"], args["x"], args["y"], args["eps"], lower=args["lower"], upper=args["upper"])
