"""Unit tests for causalbook_lib.shapley: closed forms, efficiency, the shap package, interactions, errors."""
import math

import numpy as np
import pytest
import torch

import causalbook_lib as cb
from causalbook_lib import shapley as SH

D = torch.float64


def _data(n=400, seed=0, rho=0.0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 4, generator=g, dtype=D)
    z[:, 1] = rho * z[:, 0] + math.sqrt(1 - rho ** 2) * z[:, 1]
    return z


def _net(seed=1):
    torch.manual_seed(seed)
    net = cb.models.make_mlp([4, 8, 3], "tanh", dtype=D)
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def test_coalition_masks_enumerate_all_subsets():
    m = SH.coalition_masks(3)
    assert m.shape == (8, 3) and m.dtype == torch.bool
    assert {tuple(r) for r in m.tolist()} == {(a, b, c) for a in (False, True) for b in (False, True) for c in (False, True)}
    assert m[5].tolist() == [True, False, True]  # bit j of 5 at column j


def test_linear_model_interventional_shapley_closed_form():
    x = _data(rho=0.9)
    w = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=D)
    phi = SH.shapley_values(lambda z: z @ w + 1.0, x[:7], x)
    assert torch.allclose(phi, w * (x[:7] - x.mean(0)), atol=1e-13, rtol=0)


def test_efficiency_for_both_value_functions():
    x, net = _data(rho=0.7), _net()
    for vf in SH.VALUE_FUNCTIONS:
        v = SH.coalition_values(net, x[:6], x, target=2, value_function=vf)
        phi = SH.shapley_values(net, x[:6], x, target=2, value_function=vf)
        assert torch.allclose(v[:, -1], net(x[:6])[:, 2], atol=1e-14, rtol=0)      # v(all) = f(x)
        assert torch.allclose(v[:, 0], net(x)[:, 2].mean().expand(6), atol=1e-14)  # v(empty) = E f
        assert torch.allclose(phi.sum(1), v[:, -1] - v[:, 0], atol=1e-13, rtol=0)


def test_matches_shap_kernel_explainer_with_every_coalition():
    """shap's kernel explainer, with all 2^4 coalitions and the data as background, solves the Shapley
    regression exactly (its exact explainer agrees too, but JIT-compiles for 9 s)."""
    shap = pytest.importorskip("shap")
    x, net = _data(n=60), _net()
    phi = SH.shapley_values(net, x[:4], x, target=1, chunk_size=3)
    model = lambda a: net(torch.as_tensor(a, dtype=D))[:, 1].numpy()
    ref = shap.KernelExplainer(model, x.numpy()).shap_values(x[:4].numpy(), nsamples=16, silent=True)
    assert np.abs(np.asarray(ref) - phi.numpy()).max() <= 1e-12


def test_conditional_with_huge_bandwidth_is_interventional():
    x, net = _data(n=80, rho=0.9), _net()
    a = SH.shapley_values(net, x[:3], x, target=0)
    b = SH.shapley_values(net, x[:3], x, target=0, value_function="conditional", bandwidth=1e6)
    assert torch.allclose(a, b, atol=1e-9, rtol=0)


def test_conditional_splits_credit_between_duplicated_features():
    """f = x0 with x1 a near-copy of x0: interventional Shapley gives x1 nothing; the conditional
    value function splits the credit (x0 - E x0) about equally (Janzing et al. 2020)."""
    x = _data(n=3000, rho=0.999)
    f = lambda z: z[..., 0]
    u = torch.tensor([[1.5, 1.5, 0.0, 0.0]], dtype=D)
    inter = SH.shapley_values(f, u, x)
    cond = SH.shapley_values(f, u, x, value_function="conditional", bandwidth=0.1)
    centred = 1.5 - float(x[:, 0].mean())
    assert abs(float(inter[0, 0]) - centred) < 1e-12 and float(inter[0, 1:].abs().max()) < 1e-12
    assert abs(float(cond[0, 0]) - centred / 2) < 0.1 and abs(float(cond[0, 1]) - centred / 2) < 0.1


def test_product_is_split_equally_and_interaction_values():
    """f = x0 * x1, independent centred inputs: phi_0 = phi_1 = (x0 x1 - E[x0 x1]) / 2, the interaction
    value (x0 x1 + E[x0 x1]) / 2 off the diagonal, rows sum to phi."""
    x = _data(n=4000)
    x = x - x.mean(0)
    f = lambda z: z[..., 0] * z[..., 1]
    u = torch.tensor([[2.0, 3.0, 1.0, -1.0], [1.0, -1.0, 0.0, 0.5]], dtype=D)
    phi = SH.shapley_values(f, u, x)
    inter = SH.shapley_interaction_values(f, u, x)
    prod = u[:, 0] * u[:, 1]
    m01 = float((x[:, 0] * x[:, 1]).mean())
    assert torch.allclose(phi[:, 0], (prod - m01) / 2, atol=1e-12) and torch.allclose(phi[:, 1], (prod - m01) / 2, atol=1e-12)
    # Delta_01(empty) = x0 x1 - x0 E[x1] - E[x0] x1 + E[x0 x1] = x0 x1 + m01 (centred data)
    assert torch.allclose(inter[:, 0, 1], (prod + m01) / 2, atol=1e-12)
    assert torch.allclose(inter.sum(-1), phi, atol=1e-12) and torch.equal(inter, inter.transpose(1, 2))
    assert torch.allclose(inter[:, 0, 0], torch.full((2,), -m01, dtype=D), atol=1e-12)
    assert float(phi[:, 2:].abs().max()) < 1e-12


def test_dtype_and_chunks():
    x = _data(n=30).float()
    f = lambda z: (z ** 2).sum(-1)
    phi = SH.shapley_values(f, x[:5], x, chunk_size=2)
    assert phi.dtype == torch.float32
    assert torch.allclose(phi, SH.shapley_values(f, x[:5], x), atol=1e-6)


@pytest.mark.parametrize("call, match", [
    (lambda x: SH.shapley_values(lambda z: z[..., 0], x.numpy(), x), "torch tensor"),
    (lambda x: SH.shapley_values(lambda z: z[..., 0], x, x[:, :3]), "features of inputs"),
    (lambda x: SH.shapley_values(lambda z: z[..., 0], x, x, value_function="observational"), "value_function"),
    (lambda x: SH.shapley_values(lambda z: z[..., 0], x, x, value_function="conditional", bandwidth=0), "bandwidth"),
    (lambda x: SH.shapley_values(lambda z: z, x, x), "target="),
    (lambda x: SH.shapley_values(lambda z: z[..., 0], x, x, chunk_size=0), "chunk_size"),
    (lambda x: SH.coalition_masks(13), "at most 12"),
    (lambda x: SH.shapley_interaction_values(lambda z: z[..., 0], x[:, :1], x[:, :1]), "two features"),
    (lambda x: SH.shapley_values(lambda z: z[..., 0], x, torch.ones(5, 4, dtype=D), value_function="conditional"),
     "constant"),
])
def test_validation_errors(call, match):
    x = _data(n=10)
    with pytest.raises(ValueError, match=match):
        call(x)
