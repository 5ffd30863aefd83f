"""Unit tests of causalbook_lib.rim (recurrent independent mechanisms)."""
import math

import pytest
import torch

import causalbook_lib as cb

R = cb.rim


def test_validation():
    with pytest.raises(ValueError, match="k_active"):
        R.RIMCell(3, 4, n_mechanisms=2, k_active=3)
    with pytest.raises(ValueError, match="hidden_size"):
        R.RIMCell(3, 0)
    with pytest.raises(ValueError, match="communication"):
        R.RIMCell(3, 4, communication="yes")
    cell = R.RIMCell(3, 4, 4, 2, generator=0)
    with pytest.raises(ValueError, match="x must have shape"):
        cell(torch.zeros(5, 2), torch.zeros(5, 4, 4))
    with pytest.raises(ValueError, match="h must have shape"):
        cell(torch.zeros(5, 3), torch.zeros(5, 3, 4))
    model = R.RIM(3, 4, 2, 4, 2, generator=0)
    with pytest.raises(ValueError, match="x must have shape"):
        model(torch.zeros(5, 3))
    with pytest.raises(ValueError, match="state must have shape"):
        model(torch.zeros(5, 6, 3), torch.zeros(5, 4, 5))
    with pytest.raises(ValueError, match="T >= 2"):
        R.next_step_mse(model, torch.zeros(5, 1, 3))


def test_shapes_and_exactly_k_active():
    model = R.RIM(3, 5, 2, n_mechanisms=5, k_active=3, generator=1)
    x = torch.randn(7, 11, 3, generator=torch.Generator().manual_seed(0))
    y, h, active = model(x, return_active=True)
    assert y.shape == (7, 11, 2) and h.shape == (7, 5, 5) and active.shape == (7, 11, 5)
    assert active.dtype == torch.bool and bool((active.sum(-1) == 3).all())
    # the winners are the mechanisms that attend most to the input
    cell, hc = model.cell, torch.zeros(7, 5, 5)
    for t in range(11):
        att = cell.input_attention(x[:, t], hc)
        hc, a = cell(x[:, t], hc)
        assert torch.equal(a, active[:, t])
        assert bool((att[a].view(7, 3).min(1).values >= att[~a].view(7, 2).max(1).values).all())
    torch.testing.assert_close(hc, h)
    square = R.RIM(3, 5, 3, generator=1).double()
    err = R.next_step_mse(square, x.double())
    assert err.shape == (3,) and err.dtype == torch.float64
    torch.testing.assert_close(err, ((square(x.double()[:, :-1])[0] - x.double()[:, 1:]) ** 2).mean((0, 1)))


def test_inactive_states_exactly_unchanged():
    cell = R.RIMCell(4, 6, n_mechanisms=4, k_active=2, generator=2)
    g = torch.Generator().manual_seed(1)
    x, h = torch.randn(50, 4, generator=g), torch.randn(50, 4, 6, generator=g)
    h_new, active = cell(x, h)
    assert torch.equal(h_new[~active], h[~active])
    assert bool(((h_new[active] - h[active]).abs().amax(-1) > 0).all())


def _gru_cell_of(cell, m):
    ref = torch.nn.GRUCell(cell.value_size, cell.hidden_size)
    with torch.no_grad():
        ref.weight_ih.copy_(cell.weight_ih[m]); ref.weight_hh.copy_(cell.weight_hh[m])
        ref.bias_ih.copy_(cell.bias_ih[m]); ref.bias_hh.copy_(cell.bias_hh[m])
    return ref


def test_reduces_to_torch_gru_cells_without_communication():
    """Without communication, each active mechanism is a torch.nn.GRUCell on its attended input."""
    g = torch.Generator().manual_seed(2)
    for K, k in ((1, 1), (4, 2)):
        cell = R.RIMCell(3, 5, n_mechanisms=K, k_active=k, communication=False, generator=K)
        x, h = torch.randn(9, 3, generator=g), torch.randn(9, K, 5, generator=g)
        h_new, active = cell(x, h)
        # attention against the null input, by hand: softmax over the scores (0 for the null, q.k for x)
        q = torch.stack([h[:, m] @ cell.query[m] for m in range(K)], 1)
        score = (q * (x @ cell.input_key)[:, None]).sum(-1) / math.sqrt(cell.key_size)
        weight = torch.softmax(torch.stack([torch.zeros_like(score), score], -1), -1)[..., 1]
        for m in range(K):
            expected = _gru_cell_of(cell, m)(weight[:, m, None] * (x @ cell.input_value), h[:, m])
            rows = active[:, m]
            torch.testing.assert_close(h_new[rows, m], expected[rows], atol=1e-6, rtol=1e-5)
        if K == 1:
            assert bool(active.all())


def test_communication_by_hand():
    cell = R.RIMCell(2, 3, n_mechanisms=3, k_active=1, generator=4)
    g = torch.Generator().manual_seed(3)
    x, h = torch.randn(4, 2, generator=g), torch.randn(4, 3, 3, generator=g)
    h_new, active = cell(x, h)
    off = R.RIMCell(2, 3, n_mechanisms=3, k_active=1, communication=False, generator=4)
    h_tilde, active_off = off(x, h)
    assert torch.equal(active, active_off)
    for b in range(4):
        q = torch.stack([h_tilde[b, m] @ cell.comm_query[m] for m in range(3)])
        key = torch.stack([h_tilde[b, m] @ cell.comm_key[m] for m in range(3)])
        val = torch.stack([h_tilde[b, m] @ cell.comm_value[m] for m in range(3)])
        read = torch.softmax(q @ key.T / math.sqrt(cell.key_size), -1) @ val
        expected = torch.where(active[b, :, None], h_tilde[b] + read, h[b])
        torch.testing.assert_close(h_new[b], expected, atol=1e-6, rtol=1e-5)


def test_reproducible_with_seed_and_dtype():
    x = torch.randn(3, 5, 2, generator=torch.Generator().manual_seed(0))
    a, b, c = (R.RIM(2, 4, 2, generator=s) for s in (7, 7, 8))
    torch.testing.assert_close(a(x)[0], b(x)[0], atol=0, rtol=0)
    assert not torch.allclose(a(x)[0], c(x)[0])
    y64 = a.double()(x.double())[0]
    assert y64.dtype == torch.float64


def test_two_oscillators():
    x = cb.datasets.make_two_oscillators(4000, 30, noise=0.3, damping=0.9, generator=0, dtype=torch.float64)
    assert x.shape == (4000, 30, 4)
    # stationary variance noise^2 / (1 - damping^2) in every channel and at every step
    var = 0.09 / (1 - 0.81)
    torch.testing.assert_close(x.var(dim=0).mean(0), torch.full((4,), var, dtype=torch.float64), atol=0.02, rtol=0)
    # the best predictor damping * R z has residual variance noise^2, for each process with its own period
    for sl, period in ((slice(0, 2), 8.0), (slice(2, 4), 20.0)):
        w = 2 * math.pi / period
        rot = 0.9 * torch.tensor([[math.cos(w), -math.sin(w)], [math.sin(w), math.cos(w)]], dtype=torch.float64)
        res = x[:, 1:, sl] - x[:, :-1, sl] @ rot.T
        torch.testing.assert_close(res.var(), torch.tensor(0.09, dtype=torch.float64), atol=0.003, rtol=0)
    # the shift changes process 1 only; same seed, same draws
    a = cb.datasets.make_two_oscillators(10, 20, generator=3)
    b = cb.datasets.make_two_oscillators(10, 20, shift=4.0, generator=3)
    torch.testing.assert_close(a[..., :2], b[..., :2], atol=0, rtol=0)
    assert not torch.allclose(a[:, 1:, 2:], b[:, 1:, 2:])
    with pytest.raises(ValueError, match="damping"):
        cb.datasets.make_two_oscillators(3, damping=1.0)
    with pytest.raises(ValueError, match="shift"):
        cb.datasets.make_two_oscillators(3, shift=-2.0)


def test_rim_without_communication_has_no_communication_weights_and_the_same_others():
    """communication=False keeps no unused weights, and every weight it keeps equals the RIM's with
    communication made from the same seed (so the two variants can be compared from one start)."""
    with_c = R.RIM(4, 10, 4, n_mechanisms=4, k_active=2, generator=3)
    without = R.RIM(4, 10, 4, n_mechanisms=4, k_active=2, communication=False, generator=3)
    kept = dict(without.named_parameters())
    assert not [n for n in kept if "comm_" in n]
    assert set(kept) == {n for n, _ in with_c.named_parameters() if "comm_" not in n}
    for name, p in with_c.named_parameters():
        if name in kept:
            assert torch.equal(p, kept[name]), name
