"""Unit tests for causalbook_lib.interventions: closed forms, exact Hessians, Monte Carlo, bad inputs."""
import math
import warnings

import pytest
import torch
from torch import nn

import causalbook_lib as cb
from causalbook_lib import interventions as I

D = torch.float64


def _problem(k=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(k, k, generator=g, dtype=D)
    cov = A @ A.T / k
    mean = torch.randn(k, generator=g, dtype=D)
    return mean, cov, g


def _quadratic(k, g):
    Q = torch.randn(k, k, generator=g, dtype=D)
    Q = Q + Q.T
    b = torch.randn(k, generator=g, dtype=D)
    return Q, (lambda x: 0.5 * ((x @ Q) * x).sum(-1) + x @ b + 1.5)


def _mlp(k, seed=1, out=3):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(k, 8), nn.Tanh(), nn.Linear(8, 5), nn.Sigmoid(), nn.Linear(5, out)).double()


def _points(mean, feature, alphas):
    x = mean.expand(len(alphas), -1).clone()
    x[:, feature] = alphas
    return x


ALPHAS = torch.linspace(-1.0, 1.5, 5, dtype=D)


# ---------------------------------------------------------------- closed forms

@pytest.mark.parametrize("method", ["hessian", "hvp"])
def test_exact_for_quadratic(method):
    mean, cov, g = _problem()
    Q, f = _quadratic(6, g)
    for i in range(6):
        exact = f(_points(mean, i, ALPHAS)) + 0.5 * (Q * I.intervened_covariance(cov, i)).sum()
        est = I.interventional_expectation(f, mean, cov, i, ALPHAS, method=method)
        assert est.shape == (5,)
        torch.testing.assert_close(est, exact, atol=1e-12, rtol=1e-12)


def test_quadratic_matches_gaussian_expectation():
    # E[xᵀQx/2 + bᵀx + c] under N(μ_α, Σ₋ᵢ) in closed form, and Monte Carlo on Gaussian draws.
    mean, cov, g = _problem()
    Q, f = _quadratic(6, g)
    est = I.interventional_expectation(f, mean, cov, 1, ALPHAS)
    n = 400_000
    z = torch.randn(n, 6, generator=g, dtype=D) @ torch.linalg.cholesky(cov).T + mean
    mc = I.interventional_expectation_mc(f, z, 1, ALPHAS)
    se = float(f(z).std()) / math.sqrt(n)
    assert float((mc - est).abs().max()) < 6 * se


def test_finite_difference_exact_for_quadratic_with_moderate_eps():
    mean, cov, g = _problem()
    Q, f = _quadratic(6, g)
    exact = f(_points(mean, 3, ALPHAS)) + 0.5 * (Q * I.intervened_covariance(cov, 3)).sum()
    est = I.interventional_expectation(f, mean, cov, 3, ALPHAS, method="finite_difference", eps=1e-3)
    torch.testing.assert_close(est, exact, atol=1e-7, rtol=0)


def test_exponential_closed_form_and_monte_carlo():
    # f = exp(aᵀx): E[f | do(x_i = α)] = exp(aᵀμ_α + aᵀΣ₋ᵢa / 2); Taylor gives exp(aᵀμ_α)(1 + aᵀΣ₋ᵢa/2).
    mean, cov, g = _problem()
    cov = 0.05 * cov
    a = 0.5 * torch.randn(6, generator=g, dtype=D)
    f = lambda x: torch.exp(x @ a)  # noqa: E731
    i = 4
    s = float(a @ I.intervened_covariance(cov, i) @ a)
    base = torch.exp(_points(mean, i, ALPHAS) @ a)
    taylor = base * (1 + s / 2)
    closed = base * math.exp(s / 2)
    for method in ("hessian", "hvp"):
        torch.testing.assert_close(I.interventional_expectation(f, mean, cov, i, ALPHAS, method=method), taylor,
                                   atol=1e-12, rtol=1e-12)
    fd = I.interventional_expectation(f, mean, cov, i, ALPHAS, method="finite_difference", eps=1e-4)
    torch.testing.assert_close(fd, taylor, atol=1e-6, rtol=1e-6)
    assert float(((taylor - closed) / closed).abs().max()) <= s * s / 8 * 1.01  # the Taylor remainder
    n = 400_000
    z = torch.randn(n, 6, generator=g, dtype=D) @ torch.linalg.cholesky(cov).T + mean
    mc = I.interventional_expectation_mc(f, z, i, ALPHAS)
    rel = ((mc - closed) / closed).abs().max()
    assert float(rel) < 5e-3


def test_methods_agree_on_smooth_network_and_monte_carlo():
    mean, cov, g = _problem()
    cov = 0.02 * cov
    net = _mlp(6)
    f = lambda x: net(x)[..., 1]  # noqa: E731
    h = I.interventional_expectation(f, mean, cov, 2, ALPHAS, method="hessian")
    v = I.interventional_expectation(f, mean, cov, 2, ALPHAS, method="hvp")
    fd = I.interventional_expectation(f, mean, cov, 2, ALPHAS, method="finite_difference", eps=1e-4)
    torch.testing.assert_close(v, h, atol=1e-13, rtol=0)
    torch.testing.assert_close(fd, h, atol=1e-7, rtol=0)
    n = 200_000
    z = torch.randn(n, 6, generator=g, dtype=D) @ torch.linalg.cholesky(cov).T + mean
    mc = I.interventional_expectation_mc(f, z, 2, ALPHAS)
    with torch.no_grad():
        se = float(f(z).std()) / math.sqrt(n)
    assert float((mc - h).abs().max()) < 6 * se + 1e-4


def test_float32_finite_difference_with_paper_eps_is_garbage():
    mean, cov, _ = _problem()
    net = _mlp(6)
    f64 = lambda x: net(x)[..., 0]  # noqa: E731
    net32 = _mlp(6).float()
    f32 = lambda x: net32(x)[..., 0]  # noqa: E731
    exact = I.interventional_expectation(f64, mean, cov, 0, ALPHAS, method="hessian")
    with torch.no_grad():
        second = (exact - f64(_points(mean, 0, ALPHAS))).abs().max()
    fd32 = I.interventional_expectation(f32, mean.float(), cov.float(), 0, ALPHAS.float(),
                                        method="finite_difference", eps=1e-6)
    fd64 = I.interventional_expectation(f64, mean, cov, 0, ALPHAS, method="finite_difference", eps=1e-6)
    assert fd32.dtype == torch.float32
    err32 = float((fd32.double() - exact).abs().max())
    err64 = float((fd64 - exact).abs().max())
    # float32 at the paper's eps is garbage: its error dwarfs the second-order term itself.
    assert err32 > 10 * float(second)
    # The lesson is the comparison. Rounding error of a second difference scales as u * |f| / eps^2,
    # so float64 beats float32 by about u32 / u64 = 2^29; we ask for 10^4, on every instruction set.
    assert err64 < 1e-4 * err32
    # And float64 stays inside the a-priori rounding bound 2 c u max|f| sum|C_ij| / eps^2 with a
    # forward pass accurate to c = 4 units of roundoff (measured: 3.6e-4 with AVX2/AVX-512 kernels,
    # 1.6e-4 with the portable ones, against a bound of 2.1e-3).
    u64 = torch.finfo(torch.float64).eps / 2
    with torch.no_grad():
        fmax = float(f64(_points(mean, 0, ALPHAS)).abs().max())
    assert err64 < 2 * 4 * u64 * fmax * float(cov.abs().sum()) / 1e-6 ** 2


# ---------------------------------------------------------------- all features and the trace identity

@pytest.mark.parametrize("method", ["hessian", "hvp", "finite_difference"])
def test_all_features_matches_per_feature(method):
    mean, cov, _ = _problem()
    net = _mlp(6)
    f = lambda x: net(x)[..., 2]  # noqa: E731
    eps = 1e-4 if method == "finite_difference" else None
    allv = I.interventional_expectation_all(f, mean, cov, ALPHAS, method=method, eps=eps)
    assert allv.shape == (6, 5)
    ref = torch.stack([I.interventional_expectation(f, mean, cov, i, ALPHAS, method="hessian") for i in range(6)])
    tol = 1e-6 if method == "finite_difference" else 1e-12
    torch.testing.assert_close(allv, ref, atol=tol, rtol=0)


def test_trace_identity():
    mean, cov, g = _problem()
    H = torch.randn(6, 6, generator=g, dtype=D)
    H = H + H.T
    for i in range(6):
        lhs = torch.trace(H @ I.intervened_covariance(cov, i))
        rhs = torch.trace(H @ cov) - 2 * (H @ cov)[i, i] + H[i, i] * cov[i, i]
        torch.testing.assert_close(lhs, rhs)


def test_rank_truncation_error_within_bound():
    mean, cov, _ = _problem()
    net = _mlp(6)
    f = lambda x: net(x)[..., 0]  # noqa: E731
    exact = I.interventional_expectation_all(f, mean, cov, ALPHAS, method="hessian")
    pts = mean.expand(6, 5, 6).clone()
    pts[torch.arange(6), :, torch.arange(6)] = ALPHAS
    hess = torch.func.vmap(torch.func.hessian(f))(pts.reshape(-1, 6))
    hnorm = float(torch.linalg.matrix_norm(hess.detach(), ord=2).max())
    for r in (1, 3, 5):
        trunc = I.interventional_expectation_all(f, mean, cov, ALPHAS, method="hvp", rank=r)
        bound = I.rank_truncation_bound(cov, r, hnorm)
        assert float((trunc - exact).abs().max()) <= bound * (1 + 1e-9) + 1e-14
    v, dropped = I.covariance_factor(cov, 2)
    lam = torch.linalg.eigvalsh(cov).flip(0)
    assert v.shape == (6, 2)
    assert math.isclose(dropped, float(lam[2:].sum()), rel_tol=1e-10)
    torch.testing.assert_close(v @ v.T, (torch.linalg.eigh(cov)[1][:, -2:] * lam[:2].flip(0)) @
                               torch.linalg.eigh(cov)[1][:, -2:].T)


def test_per_feature_rank_keeps_top_directions():
    mean, cov, g = _problem()
    Q, f = _quadratic(6, g)
    sig = I.intervened_covariance(cov, 0)
    lam, vec = torch.linalg.eigh(sig)
    top = vec[:, -2:] * lam[-2:]
    expected = f(_points(mean, 0, ALPHAS)) + 0.5 * (Q * (top @ vec[:, -2:].T)).sum()
    torch.testing.assert_close(I.interventional_expectation(f, mean, cov, 0, ALPHAS, rank=2), expected)


# ---------------------------------------------------------------- the MLP fast path

@pytest.mark.parametrize("hidden", [8, 3])  # 3 < k exercises the exact SVD compression
def test_mlp_fast_path_matches_hessian(hidden):
    mean, cov, _ = _problem()
    torch.manual_seed(2)
    net = nn.Sequential(nn.Linear(6, hidden), nn.Tanh(), nn.Linear(hidden, 5), nn.Softplus(), nn.Linear(5, 2)).double()
    fast = I.mlp_interventional_expectation_all(net, mean, cov, ALPHAS)
    assert fast.shape == (6, 5, 2)
    for c in range(2):
        ref = I.interventional_expectation_all(lambda x: net(x)[..., c], mean, cov, ALPHAS, method="hessian")
        torch.testing.assert_close(fast[..., c], ref, atol=1e-12, rtol=0)


def test_mlp_fast_path_rank_and_float32():
    mean, cov, _ = _problem()
    net = _mlp(6)
    ref = torch.stack([I.interventional_expectation_all(lambda x: net(x)[..., c], mean, cov, ALPHAS, rank=3)
                       for c in range(3)], -1)
    torch.testing.assert_close(I.mlp_interventional_expectation_all(net, mean, cov, ALPHAS, rank=3), ref,
                               atol=1e-12, rtol=0)
    f32 = I.mlp_interventional_expectation_all(net, mean, cov, ALPHAS, dtype=torch.float32)
    assert f32.dtype == torch.float32
    torch.testing.assert_close(f32.double(), I.mlp_interventional_expectation_all(net, mean, cov, ALPHAS),
                               atol=1e-5, rtol=0)


# ---------------------------------------------------------------- Monte Carlo

def test_monte_carlo_matches_brute_force_loop():
    mean, cov, g = _problem()
    net = _mlp(6)
    f = lambda x: net(x)[..., 0]  # noqa: E731
    data = torch.randn(50, 6, generator=g, dtype=D)
    mc = I.interventional_expectation_mc(f, data, 3, ALPHAS)
    brute = []
    with torch.no_grad():
        for a in ALPHAS:
            rows = []
            for row in data:
                x = row.clone()
                x[3] = a
                rows.append(f(x))
            brute.append(torch.stack(rows).mean())
    torch.testing.assert_close(mc, torch.stack(brute), atol=1e-12, rtol=0)


def test_monte_carlo_chunks(monkeypatch):
    mean, cov, g = _problem()
    f = lambda x: torch.sin(x).sum(-1)  # noqa: E731
    data = torch.randn(100, 6, generator=g, dtype=D)
    full = I.interventional_expectation_mc(f, data, 1, ALPHAS)
    monkeypatch.setattr(I, "_CHUNK_ELEMENTS", 700)  # forces one alpha per chunk
    torch.testing.assert_close(I.interventional_expectation_mc(f, data, 1, ALPHAS), full)


# ---------------------------------------------------------------- output range warning

def test_out_of_range_warning_for_softmax():
    # A sharp two-class softmax: p0 = sigmoid(20 (x0 + x1 - 1)); its curvature along x1 reaches
    # 400 * 0.096, so with Var(x1) = 0.3 the Taylor term exceeds 5 and leaves [0, 1].
    f = lambda x: torch.softmax(torch.stack([20 * (x[..., 0] + x[..., 1] - 1), 0 * x[..., 0]], -1), -1)[..., 0]  # noqa: E731
    mean = torch.full((2,), 0.5, dtype=D)
    cov = torch.tensor([[0.3, 0.0], [0.0, 0.3]], dtype=D)
    alphas = torch.linspace(0, 1, 21, dtype=D)
    with pytest.warns(I.OutOfRangeWarning, match="outside the output range"):
        est = I.interventional_expectation(f, mean, cov, 0, alphas, output_range=(0, 1))
    assert bool(((est < 0) | (est > 1)).any())
    with warnings.catch_warnings():
        warnings.simplefilter("error", I.OutOfRangeWarning)
        I.interventional_expectation(f, mean, 1e-6 * cov, 0, alphas, output_range=(0, 1))
        mc = I.interventional_expectation_mc(f, torch.randn(1000, 2, dtype=D) * 0.3 ** 0.5 + 0.5, 0, alphas)
    assert bool(((mc >= 0) & (mc <= 1)).all())


# ---------------------------------------------------------------- bad inputs

def test_bad_inputs():
    mean, cov, _ = _problem()
    f = lambda x: (x ** 2).sum(-1)  # noqa: E731
    ie = I.interventional_expectation
    with pytest.raises(ValueError, match="one scalar per row"):
        ie(lambda x: x, mean, cov, 0, ALPHAS)
    with pytest.raises(ValueError, match="callable"):
        ie(3, mean, cov, 0, ALPHAS)
    with pytest.raises(ValueError, match="NaN"):
        ie(lambda x: x.sum(-1) * float("nan"), mean, cov, 0, ALPHAS)
    bad = cov.clone()
    bad[0, 1] += 1
    with pytest.raises(ValueError, match="symmetric"):
        ie(f, mean, bad, 0, ALPHAS)
    with pytest.raises(ValueError, match="positive semi-definite"):
        ie(f, mean, -cov, 0, ALPHAS)
    with pytest.raises(ValueError, match="6x6"):
        ie(f, mean, cov[:5, :5], 0, ALPHAS)
    with pytest.raises(ValueError, match="feature"):
        ie(f, mean, cov, 6, ALPHAS)
    with pytest.raises(ValueError, match="feature"):
        ie(f, mean, cov, -1, ALPHAS)
    with pytest.raises(ValueError, match="empty"):
        ie(f, mean, cov, 0, [])
    with pytest.raises(ValueError, match="finite"):
        ie(f, mean, cov, 0, [0.0, float("nan")])
    with pytest.raises(ValueError, match="1-D"):
        ie(f, mean, cov, 0, torch.zeros(2, 2))
    with pytest.raises(ValueError, match="mean"):
        ie(f, mean[None], cov, 0, ALPHAS)
    with pytest.raises(ValueError, match="method"):
        ie(f, mean, cov, 0, ALPHAS, method="magic")
    with pytest.raises(ValueError, match="rank"):
        ie(f, mean, cov, 0, ALPHAS, method="hessian", rank=2)
    with pytest.raises(ValueError, match="rank"):
        ie(f, mean, cov, 0, ALPHAS, rank=7)
    with pytest.raises(ValueError, match="rank"):
        ie(f, mean, cov, 0, ALPHAS, rank=0)
    with pytest.raises(ValueError, match="eps"):
        ie(f, mean, cov, 0, ALPHAS, method="finite_difference", eps=-1e-3)
    with pytest.raises(ValueError, match="eps"):
        ie(f, mean, cov, 0, ALPHAS, method="hvp", eps=1e-3)
    with pytest.raises(ValueError, match="low must be smaller"):
        ie(f, mean, cov, 0, ALPHAS, output_range=(1, 0))
    with pytest.raises(ValueError, match="pair"):
        ie(f, mean, cov, 0, ALPHAS, output_range=1.0)
    with pytest.raises(ValueError, match="one scalar per row"):
        I.interventional_expectation_all(lambda x: x[..., :2], mean, cov, ALPHAS)
    with pytest.raises(ValueError, match="positive semi-definite"):
        I.interventional_expectation_all(f, mean, -cov, ALPHAS)


def test_bad_inputs_monte_carlo_and_helpers():
    mean, cov, g = _problem()
    f = lambda x: x.sum(-1)  # noqa: E731
    data = torch.randn(10, 6, generator=g, dtype=D)
    with pytest.raises(ValueError, match="shape"):
        I.interventional_expectation_mc(f, data[0], 0, ALPHAS)
    with pytest.raises(ValueError, match="at least one row"):
        I.interventional_expectation_mc(f, data[:0], 0, ALPHAS)
    with pytest.raises(ValueError, match="feature"):
        I.interventional_expectation_mc(f, data, 6, ALPHAS)
    with pytest.raises(ValueError, match="empty"):
        I.interventional_expectation_mc(f, data, 0, [])
    with pytest.raises(ValueError, match="one scalar per row"):
        I.interventional_expectation_mc(lambda x: x, data, 0, ALPHAS)
    bad = data.clone()
    bad[0, 0] = float("inf")
    with pytest.raises(ValueError, match="finite"):
        I.interventional_expectation_mc(f, bad, 0, ALPHAS)
    with pytest.raises(ValueError, match="feature"):
        I.intervened_covariance(cov, 9)
    with pytest.raises(ValueError, match="rank"):
        I.covariance_factor(cov, 0)
    with pytest.raises(ValueError, match="hessian_norm"):
        I.rank_truncation_bound(cov, 2, -1.0)
    with pytest.raises(ValueError, match="nn.Sequential"):
        I.mlp_interventional_expectation_all(lambda x: x, mean, cov, ALPHAS)
    with pytest.raises(ValueError, match="unsupported module"):
        I.mlp_interventional_expectation_all(nn.Sequential(nn.Linear(6, 2), nn.Dropout()), mean, cov, ALPHAS)
    with pytest.raises(ValueError, match="first layer expects"):
        I.mlp_interventional_expectation_all(nn.Sequential(nn.Linear(5, 2)).double(), mean, cov, ALPHAS)
    with pytest.raises(ValueError, match="first module"):
        I.mlp_interventional_expectation_all(nn.Sequential(nn.Tanh(), nn.Linear(6, 2)), mean, cov, ALPHAS)


def test_mlp_fast_path_features_and_alpha_nodes():
    mean, cov, _ = _problem()
    net = _mlp(6)
    alphas = torch.linspace(-1, 1, 21, dtype=D)
    full = I.mlp_interventional_expectation_all(net, mean, cov, alphas)
    sub = I.mlp_interventional_expectation_all(net, mean, cov, alphas, features=[4, 1])
    torch.testing.assert_close(sub, full[[4, 1]], atol=1e-13, rtol=0)
    # interpolating the second-order term in alpha converges to the exact map as nodes grow
    errs = [float((I.mlp_interventional_expectation_all(net, mean, cov, alphas, alpha_nodes=n) - full).abs().max())
            for n in (3, 6, 12)]
    assert errs[2] < errs[0] and errs[2] < 1e-6
    # with as many nodes as alphas nothing is interpolated
    torch.testing.assert_close(I.mlp_interventional_expectation_all(net, mean, cov, alphas, alpha_nodes=21), full)
    with pytest.raises(ValueError, match="alpha_nodes"):
        I.mlp_interventional_expectation_all(net, mean, cov, alphas, alpha_nodes=1)
    with pytest.raises(ValueError, match="features"):
        I.mlp_interventional_expectation_all(net, mean, cov, alphas, features=[])
    with pytest.raises(ValueError, match="features"):
        I.mlp_interventional_expectation_all(net, mean, cov, alphas, features=[6])


def test_finite_difference_hands_f_two_dimensional_rows_only():
    """Regression (library review §2.2): f written for (n, k) input, as ace_map's docstring says
    (``net(x)[:, 0]``), got a 3-D batch in the finite-difference branch and silently selected the
    wrong axis (errors of 1e7-1e11). Now f sees (n, k) only, and agrees with the exact Hessian."""
    mean, cov, _ = _problem(k=5)
    net = _mlp(5)
    seen = []

    def f(x):
        seen.append(x.ndim)
        return net(x)[:, 0]

    alphas = torch.linspace(-1, 1, 4, dtype=D)
    fd = I.interventional_expectation(f, mean, cov, 2, alphas, method="finite_difference", eps=1e-4)
    exact = I.interventional_expectation(lambda x: net(x)[..., 0], mean, cov, 2, alphas, method="hessian")
    assert set(seen) == {2}
    # central differences in float64 with eps = 1e-4: truncation O(eps^2 |f''''|), round-off O(1e-16/eps^2)
    assert torch.allclose(fd, exact, atol=1e-6)
    data = mean + torch.randn(200, 5, dtype=D, generator=torch.Generator().manual_seed(1)) @ torch.linalg.cholesky(cov).T
    grid_fd = cb.attribution.ace_map(f, -1.0, 1.0, num=5, data=data, method="finite_difference")
    grid_ex = cb.attribution.ace_map(lambda x: net(x)[..., 0], -1.0, 1.0, num=5, data=data, method="hessian")
    # ace_map uses the paper's eps = 1e-6: central differences then carry round-off of order
    # u |f| / eps^2 per direction (u = 2^-52), summed over the directions of the covariance
    u, eps = torch.finfo(D).eps, 1e-6
    roundoff = 4 * u / eps ** 2 * float(torch.trace(cov)) * float(net(data)[:, 0].abs().max() + 1)
    err = float((torch.as_tensor(grid_fd.ace) - torch.as_tensor(grid_ex.ace)).abs().max())
    assert err < roundoff, f"finite-difference ACE off by {err:.2e}, round-off scale {roundoff:.2e}"


# ---------------------------------------------------------------- forward_func only ever sees 2-D input

@pytest.mark.parametrize("method", ["hessian", "hvp", "finite_difference"])
@pytest.mark.parametrize("every_feature", [False, True])
def test_forward_func_sees_only_2d_input(method, every_feature):
    """`lambda x: net(x)[:, 0]` (the documented form) indexes the wrong axis of a 1-D point: every
    method must call it on (n, k) batches only, and agree with the `[..., 0]` form that works on both."""
    mean, cov, _ = _problem()
    net = _mlp(6)
    seen = []

    def strict(x):
        seen.append(x.dim())
        if x.dim() != 2:
            raise AssertionError(f"forward_func called on a {x.dim()}-D input")
        return net(x)[:, 0]

    def loose(x):
        return net(x)[..., 0]

    eps = 1e-4 if method == "finite_difference" else None
    if every_feature:
        got = I.interventional_expectation_all(strict, mean, cov, ALPHAS, method=method, eps=eps)
        ref = I.interventional_expectation_all(loose, mean, cov, ALPHAS, method=method, eps=eps)
    else:
        got = I.interventional_expectation(strict, mean, cov, 2, ALPHAS, method=method, eps=eps)
        ref = I.interventional_expectation(loose, mean, cov, 2, ALPHAS, method=method, eps=eps)
    assert seen and set(seen) == {2}
    torch.testing.assert_close(got, ref, atol=1e-12, rtol=0)


def test_ace_map_takes_forward_func_by_name():
    """The explained callable is `forward_func` everywhere (Captum's name), by keyword too."""
    mean, cov, _ = _problem(k=3)
    net = _mlp(3)
    by_name = cb.attribution.ace_map(forward_func=lambda x: net(x)[:, 1], low=-1.0, high=1.0, num=5,
                                     mean=mean, cov=cov)
    by_position = cb.attribution.ace_map(lambda x: net(x)[:, 1], -1.0, 1.0, num=5, mean=mean, cov=cov)
    torch.testing.assert_close(by_name.ace, by_position.ace, atol=0, rtol=0)


# ---------------------------------------------------------------- review m17: the gaps it listed

def test_intervened_points_sets_one_coordinate_and_validates():
    pts = I.intervened_points([1.0, 2.0, 3.0], 1, [0.5, -1.0])
    torch.testing.assert_close(pts, torch.tensor([[1.0, 0.5, 3.0], [1.0, -1.0, 3.0]], dtype=D))
    with pytest.raises(ValueError, match="feature"):
        I.intervened_points([1.0, 2.0], 2, [0.0])
    with pytest.raises(ValueError, match="mean must be a 1-D"):
        I.intervened_points([[1.0, 2.0]], 0, [0.0])


@pytest.mark.parametrize("method", ["hessian", "hvp"])
def test_local_ace_with_taylor_methods_is_exact_for_a_quadratic(method):
    """local_ace with the Taylor methods: for a quadratic f Eq. 4 is exact, so it equals the closed
    form E[f | do(x_i = u_i)] - mean over the doer grid, from the Gaussian moments."""
    mean, cov, g = _problem(k=3)
    Q, f = _quadratic(3, g)
    u = torch.tensor([[0.3, -0.2, 1.1]], dtype=D)
    got = cb.attribution.local_ace(f, u, -1.0, 1.0, num=41, mean=mean, cov=cov, method=method)

    def exact(i, a):  # E[f | do(x_i = a)]: plug in the intervened mean, add 1/2 tr(Q Sigma_-i)
        mu = mean.clone()
        mu[i] = a
        return float(f(mu[None])[0]) + 0.5 * float(torch.trace(Q @ I.intervened_covariance(cov, i)))

    grid = torch.linspace(-1.0, 1.0, 41, dtype=D)
    for i in range(3):
        curve = torch.tensor([exact(i, float(a)) for a in grid], dtype=D)
        base = float(torch.trapezoid(curve, grid) / 2.0)
        assert got[0, i].item() == pytest.approx(exact(i, float(u[0, i])) - base, abs=1e-10)


@pytest.mark.parametrize("method", ["riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"])
def test_riemann_rules_need_two_steps(method):
    f = lambda x: (x ** 2).sum(-1)  # noqa: E731
    with pytest.raises(ValueError, match="n_steps"):
        cb.attribution.integrated_gradients(f, torch.ones(1, 2, dtype=D), torch.zeros(2, dtype=D),
                                            method=method, n_steps=1)
    cb.attribution.integrated_gradients(f, torch.ones(1, 2, dtype=D), torch.zeros(2, dtype=D), method=method,
                                        n_steps=2)


@pytest.mark.parametrize("activation", ["relu", "identity"])
def test_mlp_fast_path_with_relu_and_identity(activation):
    """mlp_interventional_expectation_all with ReLU (second derivative 0 almost everywhere) and the
    identity: both make the network piecewise linear, so Eq. 4 reduces to f(mu_alpha), which the
    generic hessian path must match."""
    torch.manual_seed(3)
    act = nn.ReLU() if activation == "relu" else nn.Identity()
    net = nn.Sequential(nn.Linear(4, 8), act, nn.Linear(8, 2)).double()
    mean, cov, _ = _problem(k=4)
    fast = I.mlp_interventional_expectation_all(net, mean, cov, ALPHAS)
    ref = torch.stack([torch.stack([I.interventional_expectation(lambda x, c=c: net(x)[:, c], mean, cov, i, ALPHAS,
                                                                 method="hessian") for i in range(4)])
                       for c in range(2)], dim=-1)
    assert fast.shape == (4, len(ALPHAS), 2)
    torch.testing.assert_close(fast, ref, atol=1e-10, rtol=0)


def test_hvp_engine_runs_a_gru_and_agrees_with_the_full_hessian():
    """The one Hessian-vector engine batches by differentiating summed outputs, so it runs nn.GRU
    (which torch.func.vmap cannot), and it agrees with torch.autograd.functional.hessian per point."""
    torch.manual_seed(0)
    gru = torch.nn.GRU(1, 4, batch_first=True).double()
    f = lambda w: gru(w[..., None])[0][:, -1, 0]  # noqa: E731  (window of 3 steps -> last hidden unit)
    mean = torch.tensor([0.2, -0.1, 0.4], dtype=torch.float64)
    cov = torch.tensor([[0.3, 0.1, 0.0], [0.1, 0.2, 0.05], [0.0, 0.05, 0.1]], dtype=torch.float64)
    alphas = torch.tensor([-0.5, 0.0, 0.7], dtype=torch.float64)
    est = cb.interventions.interventional_expectation(f, mean, cov, 1, alphas)
    sigma = cov.clone()
    sigma[1, :] = 0
    sigma[:, 1] = 0
    for j, a in enumerate(alphas):
        x = mean.clone()
        x[1] = a
        H = torch.autograd.functional.hessian(lambda v: f(v[None])[0], x)
        ref = f(x[None])[0] + 0.5 * (H * sigma).sum()
        assert float(est[j]) == pytest.approx(float(ref), abs=1e-12)
