"""Unit tests for causalbook_lib.evaluation (sanity checks and faithfulness curves; chapter 05)."""
import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from causalbook_lib import evaluation as E


def linear_model(w):
    return lambda x: x @ w


def test_rank_correlation_of_identical_maps_is_one_and_of_reversed_maps_minus_one():
    a = torch.tensor([[0.3, -1.0, 2.0, 0.1], [5.0, 4.0, 3.0, 2.0]], dtype=torch.float64)
    np.testing.assert_allclose(E.rank_correlation(a, a).numpy(), [1.0, 1.0])
    np.testing.assert_allclose(E.rank_correlation(a, -a).numpy(), [-1.0, -1.0])
    assert E.rank_correlation(a, -a, absolute=True).tolist() == pytest.approx([1.0, 1.0])


def test_rank_correlation_matches_scipy_spearmanr_with_ties():
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 4, (20, 7), generator=g).double()  # many ties
    b = torch.randn(20, 7, generator=g, dtype=torch.float64)
    ours = E.rank_correlation(a, b)
    ref = [spearmanr(a[r].numpy(), b[r].numpy()).statistic for r in range(20)]
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-12)
    assert E.rank_correlation(a[0], b[0]).shape == ()


def test_rank_correlation_keeps_dtype_and_gives_nan_for_a_constant_row():
    a = torch.tensor([[1.0, 1.0, 1.0], [1.0, 2.0, 3.0]], dtype=torch.float32)
    rho = E.rank_correlation(a, a)
    assert rho.dtype == torch.float32 and torch.isnan(rho[0]) and rho[1] == 1


def test_rank_correlation_validates():
    a = torch.zeros(3, 4)
    with pytest.raises(ValueError, match="same shape"):
        E.rank_correlation(a, torch.zeros(3, 5))
    with pytest.raises(ValueError, match="at least 2 features"):
        E.rank_correlation(torch.zeros(3, 1), torch.zeros(3, 1))
    with pytest.raises(ValueError, match="finite"):
        E.rank_correlation(torch.full((2, 3), float("nan")), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="floating-point"):
        E.rank_correlation(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long))


def test_deletion_curve_of_a_linear_model_with_exact_attributions():
    # f(x) = w.x; exact attributions against baseline b are w_i (x_i - b_i) (IG = occlusion = SHAP).
    w = torch.tensor([3.0, -1.0, 0.5, 2.0], dtype=torch.float64)
    x = torch.tensor([[1.0, 2.0, -1.0, 0.5], [0.0, -3.0, 4.0, 1.0]], dtype=torch.float64)
    b = torch.tensor([0.5, 0.0, 0.0, -1.0], dtype=torch.float64)
    attr = w * (x - b)
    f = linear_model(w)
    curve = E.deletion_curve(f, x, attr, baselines=b)
    # closed form: after s steps the output drops by the s largest attributions
    top = attr.sort(dim=1, descending=True).values
    expected = f(x)[:, None] - torch.cat([torch.zeros(2, 1, dtype=torch.float64), top.cumsum(1)], dim=1)
    np.testing.assert_allclose(curve.numpy(), expected.numpy(), atol=1e-12)
    assert curve[:, -1].tolist() == pytest.approx([float(f(b))] * 2)
    ins = E.insertion_curve(f, x, attr, baselines=b)
    expected_ins = f(b) + torch.cat([torch.zeros(2, 1, dtype=torch.float64), top.cumsum(1)], dim=1)
    np.testing.assert_allclose(ins.numpy(), expected_ins.numpy(), atol=1e-12)
    # exact attributions give the smallest deletion area of all 4! orders: check against every order
    import itertools
    areas = []
    for perm in itertools.permutations(range(4)):
        fake = torch.zeros_like(attr)
        fake[:, list(perm)] = torch.arange(4, 0, -1, dtype=torch.float64)
        areas.append(E.area_under_curve(E.deletion_curve(f, x, fake, baselines=b)))
    best = torch.stack(areas).min(0).values
    np.testing.assert_allclose(E.area_under_curve(curve).numpy(), best.numpy(), atol=1e-12)


def test_curves_chunk_targets_and_dtype():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))
    x = torch.randn(6, 5)
    attr = torch.randn(6, 5)
    full = E.deletion_curve(net, x, attr, target=2, baselines=x.mean(0))
    chunked = E.deletion_curve(net, x, attr, target=2, baselines=x.mean(0), chunk_size=4)
    torch.testing.assert_close(full, chunked)
    assert full.shape == (6, 6) and full.dtype == torch.float32
    torch.testing.assert_close(full[:, 0], net(x)[:, 2].detach())
    rows = torch.tensor([0, 1, 2, 0, 1, 2])
    per_row = E.insertion_curve(net, x, attr, target=rows, baselines=0.0, chunk_size=5)
    for t in range(3):
        ref = E.insertion_curve(net, x, attr, target=t, baselines=0.0)
        torch.testing.assert_close(per_row[rows == t], ref[rows == t])
    torch.testing.assert_close(per_row[:, -1], net(x).gather(1, rows[:, None])[:, 0].detach())


def test_curves_validate():
    f = linear_model(torch.ones(3))
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="shape"):
        E.deletion_curve(f, x, torch.zeros(2, 4))
    with pytest.raises(ValueError, match="broadcast"):
        E.deletion_curve(f, x, x, baselines=torch.zeros(2))
    with pytest.raises(ValueError, match="chunk_size"):
        E.deletion_curve(f, x, x, chunk_size=0)
    with pytest.raises(ValueError, match="one integer index per input row"):
        E.insertion_curve(lambda v: torch.stack([v.sum(1), v.sum(1)], 1), x, x, target=[0, 1, 0])
    with pytest.raises(ValueError, match="target="):
        E.deletion_curve(lambda v: torch.stack([v.sum(1), v.sum(1)], 1), x, x)
    with pytest.raises(ValueError, match=r"shape \(n, k\)"):
        E.deletion_curve(f, torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match="callable"):
        E.deletion_curve(3, x, x)


def test_area_under_curve_closed_form_and_validation():
    c = torch.tensor([[1.0, 1.0, 1.0], [0.0, 1.0, 2.0], [4.0, 0.0, 0.0]], dtype=torch.float64)
    np.testing.assert_allclose(E.area_under_curve(c).numpy(), [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="at least 2 points"):
        E.area_under_curve(torch.ones(3, 1))


def _gradient(model, x, target):
    x = x.clone().requires_grad_(True)
    out = model(x)[:, target].sum()
    return torch.autograd.grad(out, x)[0]


def test_randomisation_check_of_gradients_and_of_an_input_only_map():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 3)).double()
    x = torch.randn(50, 4, dtype=torch.float64)
    res = E.randomisation_check(net, _gradient, x, target=1, generator=0)
    assert res.layers == ["2", "0"] and res.randomised.shape == (2, 50, 4) and res.rank_correlation.shape == (2, 50)
    torch.testing.assert_close(res.original, _gradient(net, x, 1))  # the model itself is untouched
    assert float(res.rank_correlation[-1].mean()) < 0.5  # gradients depend on the weights
    # a "method" that ignores the model (the input itself) survives randomisation exactly: it fails the check
    same = E.randomisation_check(net, lambda m, v, t: v, x, generator=0)
    torch.testing.assert_close(same.rank_correlation, torch.ones(2, 50, dtype=torch.float64))
    # the same seed gives the same randomisation; independent mode re-initialises one layer at a time
    again = E.randomisation_check(net, _gradient, x, target=1, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(again.randomised, res.randomised)
    indep = E.randomisation_check(net, _gradient, x, target=1, cascade=False, generator=0)
    torch.testing.assert_close(indep.randomised[0], res.randomised[0])  # stage 1 is the top layer in both


def test_randomisation_check_validates():
    x = torch.randn(5, 4)
    with pytest.raises(ValueError, match="no parameters"):
        E.randomisation_check(nn.Sequential(nn.ReLU()), _gradient, x)
    with pytest.raises(ValueError, match="nn.Module"):
        E.randomisation_check(lambda v: v, _gradient, x)
    net = nn.Linear(4, 2)
    with pytest.raises(ValueError, match="callable"):
        E.randomisation_check(net, "ig", x)
    with pytest.raises(ValueError, match="inputs' shape"):
        E.randomisation_check(net, lambda m, v, t: v[:, :2], x)
    with pytest.raises(ValueError, match="generator"):
        E.randomisation_check(net, lambda m, v, t: v, x, generator=-1)

    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(4))

        def forward(self, v):
            return v * self.w

    with pytest.raises(ValueError, match="reset_parameters"):
        E.randomisation_check(Odd(), lambda m, v, t: v, x)


def test_ground_truth_error_closed_forms_and_batching():
    g = torch.Generator().manual_seed(1)
    t = torch.randn(10, 3, generator=g, dtype=torch.float64)
    shift = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    assert float(E.ground_truth_error(t + shift, t)) == pytest.approx(0.0, abs=1e-12)  # centred: shift ignored
    raw = float(E.ground_truth_error(t + shift, t, centre=False))
    assert raw == pytest.approx(float(shift.norm() * np.sqrt(10) / t.norm()))
    assert float(E.ground_truth_error(torch.zeros_like(t), t)) == pytest.approx(1.0)
    assert float(E.ground_truth_error(2 * t, t)) == pytest.approx(1.0)
    idx = torch.randint(0, 10, (7, 10), generator=g)  # bootstrap resamples as a batch dimension
    boot = E.ground_truth_error(2 * t[idx], t[idx])
    assert boot.shape == (7,) and torch.allclose(boot, torch.ones(7, dtype=torch.float64))


def test_ground_truth_error_validates():
    with pytest.raises(ValueError, match="zero norm"):
        E.ground_truth_error(torch.randn(4, 2), torch.ones(4, 2))
    with pytest.raises(ValueError, match=r"\(\.\.\., n, k\)"):
        E.ground_truth_error(torch.randn(4), torch.randn(4))
    with pytest.raises(ValueError, match="broadcast"):
        E.ground_truth_error(torch.randn(4, 2), torch.randn(3, 2))
