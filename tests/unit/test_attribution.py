"""Unit tests for causalbook_lib.attribution (gradients, IG via Captum, ACE maps; chapters 03-05)."""
import copy

import numpy as np
import pytest
import torch

from torch import nn

import causalbook_lib as cb
from causalbook_lib import attribution as A


def product(x):
    return x[..., 0] * x[..., 1]


def test_gradients_of_a_product_are_the_swapped_inputs():
    g = A.gradients(product, torch.tensor([[5.0, 1000.0], [2.0, -3.0]]))
    np.testing.assert_allclose(g.numpy(), [[1000.0, 5.0], [-3.0, 2.0]])
    np.testing.assert_allclose(A.gradients(product, [5.0, 1000.0]).numpy(), [1000.0, 5.0])


def test_gradients_of_a_network_match_autograd():
    torch.manual_seed(0)
    net = cb.models.make_mlp([3, 5, 1], "tanh", dtype=torch.float64)
    f = lambda x: net(x)[..., 0]  # noqa: E731
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    ref, = torch.autograd.grad(f(x).sum(), x)
    np.testing.assert_allclose(A.gradients(f, x.detach()).numpy(), ref.numpy(), atol=1e-12)


def test_integrated_gradients_left_riemann_reproduces_the_paper():
    ig = A.integrated_gradients(product, [[3.0, 5.0], [3.0, 100.0]], [2.0, 2.0], method="riemann_left",
                                n_steps=1000)
    # closed form of the left Riemann sum: mean of t_j = (n - 1) / (2n) = 0.4995
    np.testing.assert_allclose(ig.numpy(), [[3.4985, 7.4985], [50.951, 244.951]], atol=1e-10)


def test_integrated_gradients_gauss_legendre_is_exact_and_complete():
    x = torch.tensor([[3.0, 5.0], [3.0, 100.0], [-1.0, 0.5]])
    ig, gap = A.integrated_gradients(product, x, [2.0, 2.0], method="gausslegendre", n_steps=2,
                                     return_delta=True)
    # exact IG of ab from (2, 2): IG_a = (a-2)(2 + (b-2)/2), IG_b = (b-2)(2 + (a-2)/2)
    a, b = x[:, 0].double(), x[:, 1].double()
    exact = torch.stack([(a - 2) * (2 + (b - 2) / 2), (b - 2) * (2 + (a - 2) / 2)], dim=1)
    np.testing.assert_allclose(ig.numpy(), exact.numpy(), atol=1e-12)
    np.testing.assert_allclose(gap.numpy(), 0.0, atol=1e-12)


def test_integrated_gradients_rejects_bad_input():
    with pytest.raises(ValueError, match="method"):
        A.integrated_gradients(product, [3.0, 5.0], [2.0, 2.0], method="simpson")
    with pytest.raises(ValueError, match="n_steps"):
        A.integrated_gradients(product, [3.0, 5.0], [2.0, 2.0], n_steps=0)
    with pytest.raises(ValueError, match="broadcast"):
        A.integrated_gradients(product, [3.0, 5.0], [2.0, 2.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        A.integrated_gradients(product, [3.0, float("nan")], [2.0, 2.0])
    with pytest.raises(ValueError, match=r"outputs of shape \(n,\)"):
        A.integrated_gradients(lambda x: x, [3.0, 5.0], [2.0, 2.0])


def test_gradients_reject_bad_input():
    with pytest.raises(ValueError, match="shape"):
        A.gradients(product, torch.zeros(2, 2, 2))
    with pytest.raises(ValueError, match=r"outputs of shape \(n,\)"):
        A.gradients(lambda x: x.sum(dim=-1, keepdim=True), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="non-finite"):
        A.gradients(lambda x: x[..., 0] / 0.0, torch.ones(3, 2))


def test_make_mlp_and_train_classifier_fit_separable_data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 2, generator=g)
    y = (x[:, 0] > 0).long()
    torch.manual_seed(0)
    net = cb.models.make_mlp([2, 8, 2], "relu")
    assert [type(m).__name__ for m in net] == ["Linear", "ReLU", "Linear"]
    losses = cb.models.train_classifier(net, x, y, epochs=200, lr=1e-2)
    assert len(losses) == 200 and losses[-1] < 0.5 * losses[0]
    assert float((net(x).argmax(1) == y).float().mean()) > 0.95
    losses_mb = cb.models.train_classifier(cb.models.make_mlp([2, 4, 2]), x, y, epochs=3, batch_size=7)
    assert len(losses_mb) == 3


def test_make_mlp_and_train_classifier_reject_bad_input():
    with pytest.raises(ValueError, match="activation"):
        cb.models.make_mlp([2, 3, 1], "sigmoidish")
    with pytest.raises(ValueError, match="at least"):
        cb.models.make_mlp([2])
    with pytest.raises(ValueError, match="layer size"):
        cb.models.make_mlp([2, 0, 1])
    with pytest.raises(ValueError, match="y"):
        cb.models.train_classifier(cb.models.make_mlp([2, 2]), torch.zeros(5, 2), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="lr"):
        cb.models.train_classifier(cb.models.make_mlp([2, 2]), torch.zeros(5, 2), torch.zeros(5, dtype=torch.long), lr=0.0)


def _product_data():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(500, 2, generator=g, dtype=torch.float64)
    return torch.stack([3 + z[:, 0], 50 + 30 * (0.6 * z[:, 0] + 0.8 * z[:, 1])], dim=1)


@pytest.mark.parametrize("method", ["mc", "hessian", "hvp"])
def test_ace_map_of_a_product_matches_the_closed_form(method):
    data = _product_data()
    m = A.ace_map(product, [0.0, 0.0], [6.0, 120.0], num=7, data=data, method=method)
    mean = data.mean(0)
    # E[ab | do(a = alpha)] = alpha E[b]; the uniform-doer baseline of a is 3 E[b], of b is 60 E[a]
    np.testing.assert_allclose(m.expectations[0].numpy(), (m.alphas[0] * mean[1]).numpy(), rtol=1e-12)
    np.testing.assert_allclose(m.expectations[1].numpy(), (m.alphas[1] * mean[0]).numpy(), rtol=1e-12)
    np.testing.assert_allclose(m.baseline.numpy(), [3 * mean[1], 60 * mean[0]], rtol=1e-12)
    np.testing.assert_allclose(m.ace.numpy(), (m.expectations - m.baseline[:, None]).numpy())
    assert m.alphas.shape == (2, 7) and m.ace.shape == (2, 7)


def test_local_ace_depends_only_on_the_feature_value():
    data = _product_data()
    x = torch.tensor([[3.0, 5.0], [3.0, 100.0], [4.0, 60.0]], dtype=torch.float64)
    loc = A.local_ace(product, x, [0.0, 0.0], [6.0, 120.0], data=data, method="mc")
    mean = data.mean(0)
    expected = torch.stack([(x[:, 0] - 3) * mean[1], (x[:, 1] - 60) * mean[0]], dim=1)
    np.testing.assert_allclose(loc.numpy(), expected.numpy(), rtol=1e-10, atol=1e-10)
    single = A.local_ace(product, x[0], [0.0, 0.0], [6.0, 120.0], data=data, method="mc")
    np.testing.assert_allclose(single.numpy(), loc[0].numpy())


def test_ace_map_taylor_uses_moments_from_data_or_given():
    data = _product_data()
    mean, cov = data.mean(0), torch.cov(data.T, correction=0)
    a = A.ace_map(product, 0.0, 10.0, num=5, data=data, method="hessian")
    b = A.ace_map(product, 0.0, 10.0, num=5, mean=mean, cov=cov, method="hessian")
    np.testing.assert_allclose(a.expectations.numpy(), b.expectations.numpy(), rtol=1e-12)


def test_ace_map_and_local_ace_reject_bad_input():
    data = _product_data()
    with pytest.raises(ValueError, match="low must be smaller"):
        A.ace_map(product, [0.0, 5.0], [1.0, 5.0], data=data, method="mc")
    with pytest.raises(ValueError, match="num"):
        A.ace_map(product, 0.0, 1.0, num=1, data=data, method="mc")
    with pytest.raises(ValueError, match="needs data"):
        A.ace_map(product, 0.0, 1.0, method="mc")
    with pytest.raises(ValueError, match="mean and cov"):
        A.ace_map(product, 0.0, 1.0, method="hvp")
    with pytest.raises(ValueError, match="features"):
        A.local_ace(product, torch.zeros(2, 3), 0.0, 1.0, data=data, method="mc")
    with pytest.raises(ValueError, match="method"):
        A.ace_map(product, 0.0, 1.0, data=data, method="simpson")


def test_iris_classifier_is_deterministic_and_accurate():
    m1, split, acc = cb.models.iris_classifier("relu", epochs=60)
    m2, _, _ = cb.models.iris_classifier("relu", epochs=60)
    assert split.x_train.shape == (150, 4) and split.x_train.dtype == torch.float64
    out = m1(split.x_train)
    assert out.shape == (150, 3) and out.dtype == torch.float64
    np.testing.assert_array_equal(out.numpy(), m2(split.x_train).numpy())
    assert acc > 0.8
    # generator= has the library's one meaning: an int, a Generator, or None (the global stream)
    m3, _, _ = cb.models.iris_classifier("relu", epochs=5, generator=torch.Generator().manual_seed(4))
    m4, _, _ = cb.models.iris_classifier("relu", epochs=5, generator=torch.Generator().manual_seed(4))
    assert torch.equal(m3(split.x_train), m4(split.x_train))
    torch.manual_seed(0)
    state = torch.random.get_rng_state()
    cb.models.iris_classifier("relu", epochs=2, generator=3)
    assert torch.equal(torch.random.get_rng_state(), state)   # the caller's stream is untouched
    with pytest.raises(ValueError, match="generator"):
        cb.models.iris_classifier("relu", epochs=2, generator=1.5)


# ---- CausalACE: Captum's contract -----------------------------------------------------------------

def _linear_problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(3, 4, generator=g, dtype=torch.float64)
    b = torch.randn(3, generator=g, dtype=torch.float64)
    A = torch.randn(4, 4, generator=g, dtype=torch.float64)
    data = torch.randn(300, 4, generator=g, dtype=torch.float64) @ A.T
    return (lambda x: x @ W.T + b), W, data


@pytest.mark.parametrize("method", ["hvp", "hessian", "mc"])
def test_causal_ace_closed_form_for_a_linear_model(method):
    """For y = Wx + b, E[y_c | do(x_i = u)] - baseline_i = W[c, i] (u - (low_i + high_i) / 2) exactly."""
    from captum.attr import Attribution

    forward, W, data = _linear_problem()
    explainer = cb.attribution.CausalACE(forward)
    assert isinstance(explainer, Attribution)
    inputs = data[:5]
    low, high = data.min(0).values, data.max(0).values
    attr = explainer.attribute(inputs, target=1, data=data, method=method)
    expected = W[1] * (inputs - (low + high) / 2)
    assert attr.shape == inputs.shape and attr.dtype == inputs.dtype
    assert torch.allclose(attr, expected, atol=1e-10)


def test_causal_ace_matches_local_ace_and_per_row_targets():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    data = torch.rand(200, 4, dtype=torch.float64)
    inputs = data[:6]
    explainer = cb.attribution.CausalACE(net)
    one = explainer.attribute(inputs, target=2, data=data, low=0.0, high=1.0, num=20)
    ref = cb.attribution.local_ace(lambda x: net(x)[..., 2], inputs, 0.0, 1.0, num=20, data=data)
    assert torch.allclose(one, ref)
    targets = [0, 2, 1, 2, 0, 1]
    per_row = explainer.attribute(inputs, target=targets, data=data, low=0.0, high=1.0, num=20)
    for r, t in enumerate(targets):
        alone = explainer.attribute(inputs[r:r + 1], target=t, data=data, low=0.0, high=1.0, num=20)
        assert torch.allclose(per_row[r], alone[0])


def test_causal_ace_works_with_captum_metrics():
    """Captum's infidelity is zero for a linear model when the perturbation moves the chosen features
    to the centre of the intervention range (the ACE is exactly the change of the output), and not
    zero for gradients; sensitivity_max takes the explainer like any Captum method."""
    from captum.metrics import infidelity, sensitivity_max

    forward, W, data = _linear_problem(1)
    inputs = data[:8]
    centre = (data.min(0).values + data.max(0).values) / 2
    explainer = cb.attribution.CausalACE(forward)
    attr = explainer.attribute(inputs, target=0, data=data)

    def to_centre(x):
        mask = (torch.rand(x.shape, generator=torch.Generator().manual_seed(3)) < 0.5).to(x.dtype)
        return mask, x - mask * (x - centre)

    ours = infidelity(forward, to_centre, inputs, attr, target=0, n_perturb_samples=4)
    grads = W[0].expand_as(inputs)
    theirs = infidelity(forward, to_centre, inputs, grads, target=0, n_perturb_samples=4)
    assert float(ours.max()) < 1e-20 and float(theirs.min()) > 1e-6
    sens = sensitivity_max(explainer.attribute, inputs, target=0, data=data, n_perturb_samples=3)
    assert sens.shape == (8,) and bool(torch.isfinite(sens).all())


@pytest.mark.parametrize("method", ["hvp", "mc"])
def test_causal_ace_global_mode_is_the_closed_form_curve(method):
    """Global ACE of y = Wx + b: alpha -> W[c, i] (alpha - (low_i + high_i) / 2) on the grid, for every i."""
    forward, W, data = _linear_problem(2)
    explainer = cb.attribution.CausalACE(forward)
    grid = explainer.global_ace(target=2, data=data, num=7, method=method)
    low, high = data.min(0).values, data.max(0).values
    assert grid.ace.shape == (4, 7) and grid.alphas.shape == (4, 7)
    assert torch.allclose(grid.alphas[:, 0], low) and torch.allclose(grid.alphas[:, -1], high)
    assert torch.allclose(grid.ace, W[2][:, None] * (grid.alphas - ((low + high) / 2)[:, None]), atol=1e-10)
    with pytest.raises(ValueError, match="one output"):
        explainer.global_ace(target=[0, 1], data=data)
    with pytest.raises(ValueError, match="low and high"):
        explainer.global_ace(target=0, mean=data.mean(0), cov=torch.cov(data.T))


def test_causal_ace_output_feeds_captum_visualisation():
    """Captum's image visualisation takes CausalACE's map of a 2x2 'image' like any attribution."""
    import matplotlib
    matplotlib.use("Agg")
    from captum.attr import visualization as viz

    forward, _, data = _linear_problem(3)
    attr = cb.attribution.CausalACE(forward).attribute(data[:1], target=0, data=data)
    fig, ax = viz.visualize_image_attr(attr[0].reshape(2, 2, 1).numpy(), method="heat_map", sign="all",
                                       use_pyplot=False)
    assert fig is not None and len(ax.images) == 1
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_causal_ace_validates():
    forward, _, data = _linear_problem()
    explainer = cb.attribution.CausalACE(forward)
    with pytest.raises(ValueError, match="callable"):
        cb.attribution.CausalACE(3)
    with pytest.raises(ValueError, match=r"\(n, k\)"):
        explainer.attribute(data[0], target=0, data=data)
    with pytest.raises(ValueError, match="low and high"):
        explainer.attribute(data[:2], target=0, mean=data.mean(0), cov=torch.cov(data.T))
    with pytest.raises(ValueError, match=r"one integer index per input row \(2\)"):
        explainer.attribute(data[:2], target=[0], data=data)
    with pytest.raises(ValueError, match="give target"):
        explainer.attribute(data[:2], data=data)


def test_uniform_doer_average():
    g = torch.linspace(-1.0, 2.0, 31, dtype=torch.float64)
    curve = torch.stack([3 * g + 1, g ** 2])                    # averages over [-1, 2]: 2.5 and 1 (+ trapezoid error)
    avg = A.uniform_doer_average(curve)
    torch.testing.assert_close(avg, torch.trapezoid(curve, g) / 3.0)
    assert abs(float(avg[0]) - 2.5) < 1e-12 and abs(float(avg[1]) - 1.0) < 1e-2
    with pytest.raises(ValueError, match="grid points"):
        A.uniform_doer_average(torch.ones(3, 1))


def test_gradients_and_ig_compute_in_the_dtype_of_the_inputs():
    """A float32 network with float32 inputs works (it used to fail: inputs were cast to float64), and
    agrees with the same network in float64 to float32 precision."""
    torch.manual_seed(0)
    net32 = cb.models.make_mlp([4, 8, 3], "tanh")
    net64 = copy.deepcopy(net32).double()
    x64 = torch.rand(5, 4, dtype=torch.float64)
    out = {}
    for dtype, net in ((torch.float32, net32), (torch.float64, net64)):
        x = x64.to(dtype)
        f = lambda v, net=net: net(v)[:, 1]  # noqa: E731
        g = A.gradients(f, x)
        ig = A.integrated_gradients(f, x, torch.zeros(4), method="gausslegendre", n_steps=20)
        assert g.dtype == ig.dtype == dtype and g.shape == ig.shape == x.shape
        out[dtype] = (g, ig)
    for a, b in zip(out[torch.float32], out[torch.float64]):
        torch.testing.assert_close(a.double(), b, rtol=1e-4, atol=1e-5)



def test_causal_attributions_compute_in_the_models_dtype():
    """The model's dtype wins where the library sees the model (a module): float64 data with a float32
    network, and float32 data with a float64 one, both run, and agree with each other to float32
    precision. Behind a plain callable the model is invisible, and a mismatch says what to do."""
    torch.manual_seed(0)
    net32 = cb.models.make_mlp([4, 8, 3], "tanh").eval().requires_grad_(False)
    net64 = copy.deepcopy(net32).double()
    data64 = torch.rand(40, 4, dtype=torch.float64)
    kw = dict(low=0.0, high=1.0, num=5, method="mc")
    a32 = A.ace_map(net32, data=data64, target=1, **kw)            # float64 data, float32 model
    a64 = A.ace_map(net64, data=data64.float(), target=1, **kw)    # float32 data, float64 model
    torch.testing.assert_close(a32.ace.double(), a64.ace.double(), rtol=1e-4, atol=1e-6)
    g32 = A.CausalACE(net32).global_ace(target=1, data=data64, **kw)
    torch.testing.assert_close(g32.ace.double(), a64.ace.double(), rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match=r"failed on inputs of dtype torch.float64.*pass them in the model's dtype"):
        A.ace_map(lambda v: net32(v)[:, 1], data=data64, **kw)


def test_integrated_gradients_takes_sequences_and_images():
    """(n, T, d) and (n, C, H, W) inputs: for f(x) = sum x^2 from a zero baseline IG is exactly x^2
    (Gauss-Legendre is exact for the linear path integrand), the gap is zero, and the result is
    Captum's own for the same rule."""
    from captum.attr import IntegratedGradients

    g = torch.Generator().manual_seed(0)
    for shape in ((3, 5, 2), (2, 1, 4, 4)):
        x = torch.randn(shape, generator=g, dtype=torch.float64)
        f = lambda v: (v ** 2).flatten(1).sum(1)
        attr, gap = A.integrated_gradients(f, x, torch.zeros_like(x), n_steps=4, return_delta=True)
        assert attr.shape == x.shape and gap.shape == (shape[0],)
        torch.testing.assert_close(attr, x ** 2)
        assert float(gap.abs().max()) < 1e-12
        theirs = IntegratedGradients(f).attribute(x, baselines=torch.zeros_like(x), n_steps=4, method="gausslegendre")
        assert torch.equal(attr, theirs)
    with pytest.raises(ValueError, match=r"\(n,\)"):
        A.integrated_gradients(lambda v: v.flatten(1), torch.ones(2, 3, 2), 0.0)


@pytest.mark.parametrize("method", ["hvp", "hessian", "finite_difference", "mc"])
def test_chunk_size_bounds_every_call_and_leaves_the_result(method):
    """chunk_size caps the rows forward_func sees per call (at least one point's worth) and does not
    change the numbers beyond round-off."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 1)).double()
    data = torch.rand(40, 5, dtype=torch.float64)
    seen = []

    def f(x):
        seen.append(x.shape[0])
        return net(x)[:, 0]

    kw = dict(num=6, data=data, method=method)
    ref = A.local_ace(f, data[:3], 0.0, 1.0, **kw)
    seen.clear()
    small = A.local_ace(f, data[:3], 0.0, 1.0, chunk_size=45, **kw)
    per_point = {"hvp": 5, "hessian": 5, "finite_difference": 5, "mc": 40}[method]
    if method not in ("hessian", "hvp"):      # vmapped paths call f on one row per traced point
        assert max(seen) <= max(45, per_point)
    torch.testing.assert_close(small, ref, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="chunk_size"):
        A.local_ace(f, data[:3], 0.0, 1.0, chunk_size=0, **kw)


def test_target_picks_one_output_as_in_captum():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    x = torch.rand(5, 3, dtype=torch.float64)
    one = lambda v: net(v)[:, 2]  # noqa: E731
    assert torch.equal(A.gradients(net, x, target=2), A.gradients(one, x))
    assert torch.equal(A.integrated_gradients(net, x, 0.0, target=2), A.integrated_gradients(one, x, 0.0))
    kw = dict(low=0.0, high=1.0, num=5, data=x)
    assert torch.equal(A.ace_map(net, target=2, **kw).ace, A.ace_map(one, **kw).ace)
    assert torch.equal(A.local_ace(net, x, target=2, **kw), A.local_ace(one, x, **kw))
    with pytest.raises(ValueError, match="forward_func must map inputs of shape"):
        A.gradients(net, x)                               # three outputs and no target
    for bad in (1.5, True, "2"):
        with pytest.raises(ValueError, match="target must be None or the integer index"):
            A.ace_map(net, target=bad, **kw)
