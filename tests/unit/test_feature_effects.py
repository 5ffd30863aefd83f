"""Unit tests for causalbook_lib.feature_effects: PDP = Eq. 2 = scikit-learn, ICE, ALE closed forms, support."""
import numpy as np
import pytest
import torch
from sklearn.inspection import partial_dependence as sk_partial_dependence

import causalbook_lib as cb
from causalbook_lib import feature_effects as FE

D = torch.float64


def _data(n=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 3, generator=g, dtype=D)
    return torch.stack([z[:, 0], 0.8 * z[:, 0] + 0.6 * z[:, 1], z[:, 2]], dim=1)  # x0, x1 correlated


def _net(k=3, out=2, seed=1):
    torch.manual_seed(seed)
    net = cb.models.make_mlp([k, 6, out], "tanh", dtype=D)
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def test_partial_dependence_equals_interventional_expectation_mc_and_ice_mean():
    x, net = _data(), _net()
    grid = torch.linspace(-2, 2, 17, dtype=D)
    pd = FE.partial_dependence(net, x, 1, grid, target=1, chunk_size=5)
    mc = cb.interventions.interventional_expectation_mc(lambda z: net(z)[..., 1], x, 1, grid)
    assert torch.equal(pd, mc)
    ice = FE.ice_curves(net, x, 1, grid, target=1, chunk_size=7)
    assert ice.shape == (300, 17)
    assert torch.allclose(ice.mean(0), pd, atol=1e-14, rtol=0)


def test_partial_dependence_matches_sklearn_brute():
    x, net = _data(), _net()
    est = FE.SklearnRegressor(net, target=0).fit(x.numpy())
    for i in range(3):
        res = sk_partial_dependence(est, x.numpy(), [i], method="brute", kind="average")
        pd = FE.partial_dependence(net, x, i, torch.as_tensor(res["grid_values"][0]), target=0)
        assert np.abs(res["average"][0] - pd.numpy()).max() <= 1e-12


def test_partial_dependence_closed_form_for_product():
    """f = x0 * x2: PD of x0 at alpha is alpha * mean(x2) (the interaction averaged away)."""
    x = _data()
    grid = torch.linspace(-1, 1, 5, dtype=D)
    pd = FE.partial_dependence(lambda z: z[..., 0] * z[..., 2], x, 0, grid)
    assert torch.allclose(pd, grid * x[:, 2].mean(), atol=1e-14, rtol=0)


def test_ale_of_additive_function_is_its_component_up_to_a_constant():
    x = _data()
    f = lambda z: torch.sin(2 * z[:, 0]) + z[:, 1] ** 2 - z[:, 2]
    ale = FE.accumulated_local_effects(f, x, 0, n_bins=12)
    gap = ale.values - torch.sin(2 * ale.edges)
    assert float(gap.max() - gap.min()) <= 1e-12
    assert int(ale.counts.sum()) == 300 and ale.edges.shape == (13,) and ale.values.shape == (13,)
    # centred: the row-weighted mean of the value at each row's upper bin edge is zero
    assert abs(float((ale.counts.to(D) * ale.values[1:]).sum())) <= 1e-12


def test_ale_ignores_correlated_features_where_pd_does_not():
    """f = x1 only: ALE of x0 is exactly zero, and so is PD, but for f = x0*x1 the ALE follows the
    conditional slope E[x1 | x0] while PD uses the marginal mean of x1."""
    x = _data(n=4000)
    ale = FE.accumulated_local_effects(lambda z: z[:, 1], x, 0, n_bins=8)
    assert float(ale.values.abs().max()) == 0.0
    ale = FE.accumulated_local_effects(lambda z: z[:, 0] * z[:, 1], x, 0, n_bins=20)
    # d/dx0 of x0*x1 is x1, E[x1 | x0] = 0.8 x0, so ALE ~ 0.4 x0^2 + const
    gap = ale.values - 0.4 * ale.edges ** 2
    inner = slice(2, -2)  # the outer bins are wide and noisy
    assert float(gap[inner].max() - gap[inner].min()) < 0.15


def test_ale_points_and_pd_points_shapes_and_dtype():
    x = _data(n=50).float()
    pts = FE.ale_points(x, 0, n_bins=5)
    assert pts.shape == (100, 3) and pts.dtype == torch.float32
    assert torch.equal(pts[:, 1:], torch.cat([x, x])[:, 1:])
    grid = torch.tensor([0.0, 1.0])
    pd_pts = FE.partial_dependence_points(x, 2, grid)
    assert pd_pts.shape == (100, 3) and torch.equal(pd_pts[:50, 2], torch.zeros(50))
    assert FE.partial_dependence(lambda z: z.sum(-1), x, 2, grid).dtype == torch.float32


def test_off_support_radius_and_flags():
    data = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]], dtype=D)
    pts = torch.tensor([[0.5, 0.0], [3.0, 1.9], [3.0, 2.1], [10.0, 0.0]], dtype=D)
    outside, r = FE.off_support(pts, data)
    assert r == 2.0 and outside.tolist() == [False, False, True, True]
    outside, _ = FE.off_support(pts, data, features=[0])
    assert outside.tolist() == [False, False, False, True]


def test_sklearn_regressor_predicts_the_target():
    x, net = _data(n=10), _net()
    est = FE.SklearnRegressor(net, target=1).fit(x.numpy())
    assert np.allclose(est.predict(x.numpy()), net(x)[:, 1].numpy())
    with pytest.raises(ValueError, match="shape"):
        est.predict(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="fit"):
        FE.SklearnRegressor(net, target=1).predict(x.numpy())


@pytest.mark.parametrize("call, match", [
    (lambda x, net: FE.partial_dependence(net, x.numpy(), 0, [0.0], target=0), "torch tensor"),
    (lambda x, net: FE.partial_dependence(net, x[0], 0, [0.0], target=0), r"shape \(n, k\)"),
    (lambda x, net: FE.partial_dependence(net, x, 3, [0.0], target=0), "feature"),
    (lambda x, net: FE.partial_dependence(net, x, 0, [], target=0), "grid"),
    (lambda x, net: FE.partial_dependence(net, x, 0, [float("nan")], target=0), "grid must be finite"),
    (lambda x, net: FE.partial_dependence(net, x, 0, [0.0]), "target="),
    (lambda x, net: FE.partial_dependence(net, x, 0, [0.0], target=1.5), "target"),
    (lambda x, net: FE.partial_dependence(net, x, 0, [0.0], target=0, chunk_size=0), "chunk_size"),
    (lambda x, net: FE.partial_dependence("net", x, 0, [0.0]), "callable"),
    (lambda x, net: FE.ice_curves(net, x, -1, [0.0], target=0), "feature"),
    (lambda x, net: FE.accumulated_local_effects(net, x, 0, n_bins=0, target=0), "n_bins"),
    (lambda x, net: FE.accumulated_local_effects(net, x[:1], 0, target=0), "at least 2 rows"),
    (lambda x, net: FE.accumulated_local_effects(net, torch.ones(5, 3, dtype=D), 0, target=0), "constant"),
    (lambda x, net: FE.accumulated_local_effects(lambda z: z, x, 0), "target="),
    (lambda x, net: FE.off_support(x, x[:1]), "n >= 2"),
    (lambda x, net: FE.off_support(x, x, features=[]), "at least one column"),
    (lambda x, net: FE.off_support(x, x, features=[7]), "features entry"),
    (lambda x, net: FE.partial_dependence(net, torch.full((2, 3), float("inf"), dtype=D), 0, [0.0], target=0), "finite"),
])
def test_validation_errors(call, match):
    x, net = _data(n=20), _net()
    with pytest.raises(ValueError, match=match):
        call(x, net)
