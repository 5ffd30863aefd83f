"""Unit tests of causalbook_lib.recurrent: Algorithm 2, Eq. 4, the lag tau (Prop. 3), bad input."""
import numpy as np
import pytest
import torch

import causalbook_lib as cb

R = cb.recurrent


def quadratic(z):
    return z + 0.3 * z ** 2


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(0)
    return 0.5 * torch.randn(60, 8, 2, generator=g, dtype=torch.float64)


@pytest.fixture
def tiny_gru():
    torch.manual_seed(1)
    return R.RecurrentRegressor(2, 3, 2, cell="gru")


def naive_rollout(model, seq, t_hat, feature, alpha, t):
    """Per-sequence reference: feed outputs back one step at a time, re-running the whole prefix."""
    xs = list(seq[: t_hat + 1].clone())
    xs[t_hat] = xs[t_hat].clone()
    xs[t_hat][feature] = alpha
    m = R.float64_copy(model)
    for _ in range(t - t_hat):
        out, _ = m(torch.stack(xs)[None])
        xs.append(out[0, -1])
    out, _ = m(torch.stack(xs)[None])
    return torch.stack(xs), out[0, -1]


def test_rollout_matches_naive_loop(data, tiny_gru):
    alphas = torch.tensor([-1.0, 0.3, 2.0])
    W, y = R.rollout_with_feedback(tiny_gru, data, t_hat=2, feature=1, alphas=alphas, t=6)
    assert W.shape == (3, 60, 7, 2) and y.shape == (3, 60, 2)
    for a in range(3):
        for i in (0, 17, 59):
            w_ref, y_ref = naive_rollout(tiny_gru, data[i], 2, 1, float(alphas[a]), 6)
            torch.testing.assert_close(W[a, i], w_ref)
            torch.testing.assert_close(y[a, i], y_ref)


def test_rollout_without_feedback_keeps_data(data, tiny_gru):
    W, _ = R.rollout_with_feedback(tiny_gru, data, t_hat=2, feature=0, alphas=[5.0], t=6, feedback=False)
    expected = data[:, :7].clone()
    expected[:, 2, 0] = 5.0
    torch.testing.assert_close(W[0], expected)


def test_algorithm2_exact_for_quadratic_readout(data):
    """f' quadratic in the window: Eq. 4 with the 1/n rollout moments equals the MC mean exactly."""
    model = R.DelayLineRNN([0.5, -0.4, 0.3], activation=quadratic)
    res = R.interventional_expectation_rnn(model, data, t_hat=3, feature=1, alphas=[-1.0, 0.0, 1.0], t=7, target=1)
    torch.testing.assert_close(res.taylor, res.mc, atol=1e-12, rtol=0)
    # the intervention matters and the second-order term is not negligible
    assert float(res.mc.max() - res.mc.min()) > 0.05
    assert float((res.plug_in - res.mc).abs().max()) > 1e-4


def test_algorithm2_vs_monte_carlo_tiny_gru_with_feedback(data, tiny_gru):
    res = R.interventional_expectation_rnn(tiny_gru, data, t_hat=2, feature=0, alphas=torch.linspace(-1, 1, 5), t=6)
    err_taylor = (res.taylor - res.mc).abs().max()
    err_plugin = (res.plug_in - res.mc).abs().max()
    assert err_taylor < 1e-3
    assert err_taylor < err_plugin  # the second-order term helps
    # intervened entry: mean alpha, zero variance
    idx = 2 * 2 + 0
    torch.testing.assert_close(res.mean[:, idx], torch.linspace(-1, 1, 5, dtype=torch.float64))
    assert float(res.cov[:, idx].abs().max()) == 0.0


def test_batched_features_match_single_calls(data, tiny_gru):
    both = R.interventional_expectation_rnn(tiny_gru, data, t_hat=4, feature=[0, 1], alphas=[0.5, -0.5], t=6, target=1)
    a = R.interventional_expectation_rnn(tiny_gru, data, t_hat=4, feature=0, alphas=[0.5], t=6, target=1)
    b = R.interventional_expectation_rnn(tiny_gru, data, t_hat=4, feature=1, alphas=[-0.5], t=6, target=1)
    torch.testing.assert_close(both.taylor, torch.cat([a.taylor, b.taylor]))
    torch.testing.assert_close(both.mc, torch.cat([a.mc, b.mc]))


def test_taylor_expectation_closed_form():
    """E[sum_j c_j x_j^2] = sum_j c_j (mu_j^2 + Sigma_jj) exactly; a cubic term is not captured."""
    c = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    means = torch.tensor([[0.1, 0.2, -0.3], [1.0, 0.0, 2.0]], dtype=torch.float64)
    B = torch.tensor([[1.0, 0.2, 0.0], [0.2, 0.5, 0.1], [0.0, 0.1, 0.3]], dtype=torch.float64)
    covs = torch.stack([B, 2 * B])
    out = cb.interventions.taylor_expectation(lambda w: (c * w ** 2).sum(1), means, covs)
    expected = (c * (means ** 2 + torch.diagonal(covs, dim1=1, dim2=2))).sum(1)
    torch.testing.assert_close(out, expected)
    # rank-deficient covariance: only one direction
    v = torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)
    low_rank = torch.outer(v, v)[None]
    out = cb.interventions.taylor_expectation(lambda w: (c * w ** 2).sum(1), means[:1], low_rank)
    torch.testing.assert_close(out, (c * means[0] ** 2).sum()[None] + c[0] + c[1])


def test_taylor_expectation_matches_part_two_engine():
    ie = cb.interventions.interventional_expectation
    f = lambda w: torch.tanh(w @ torch.tensor([0.5, -1.0, 0.3], dtype=torch.float64)) ** 2  # noqa: E731
    mean = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)
    cov = torch.tensor([[0.3, 0.1, 0.0], [0.1, 0.2, 0.0], [0.0, 0.0, 0.1]], dtype=torch.float64)
    alphas = torch.tensor([-0.5, 0.5], dtype=torch.float64)
    theirs = torch.as_tensor(ie(f, mean, cov, 1, alphas)).reshape(-1)
    means = mean.repeat(2, 1)
    means[:, 1] = alphas
    c = cov.clone()
    c[1, :] = 0
    c[:, 1] = 0
    ours = cb.interventions.taylor_expectation(f, means, c.repeat(2, 1, 1))
    torch.testing.assert_close(ours, theirs.double(), atol=1e-10, rtol=1e-8)


def test_lag_tau_known_by_construction():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 12, 3, generator=g)
    for taps in ([1.0], [1.0, 0.5], [0.8, -0.5, 0.4, 0.3]):
        model = R.DelayLineRNN(taps)
        for rtol in (0.0, 1e-12):
            tau, per = R.lag_tau(model, x, 10, rtol=rtol)
            assert tau == len(taps) - 1
            assert bool((per == len(taps) - 1).all())


def test_lag_determinants_closed_form():
    """Identity activation: |det dy^t/dx^{t-k}| = |w_k|^channels exactly."""
    taps = [0.9, -0.5, 0.25]
    model = R.DelayLineRNN(taps, activation=lambda z: z)
    x = torch.randn(5, 9, 2)
    dets = R.lag_jacobian_determinants(model, x, 8)
    expected = torch.tensor([0.81, 0.25, 0.0625] + [0.0] * 6, dtype=torch.float64)
    torch.testing.assert_close(dets, expected.expand(5, 9))


def test_lag_tau_gru_matches_finite_differences(data, tiny_gru):
    """The autodiff Jacobian determinant agrees with a central finite-difference Jacobian."""
    dets = R.lag_jacobian_determinants(tiny_gru, data[:3], 5)
    m = R.float64_copy(tiny_gru)
    seq, k, h = data[0, :6].clone(), 2, 1e-6
    J = torch.zeros(2, 2, dtype=torch.float64)
    for i in range(2):
        e = torch.zeros_like(seq)
        e[5 - k, i] = h
        J[:, i] = (m((seq + e)[None])[0][0, 5] - m((seq - e)[None])[0][0, 5]) / (2 * h)
    assert abs(float(torch.linalg.det(J).abs()) - float(dets[0, k])) < 1e-7


def test_attribution_map_exact_and_interpolated_agree(data, tiny_gru):
    am = R.causal_attribution_map(tiny_gru, data, data[:3], t=6, t_hats=[4, 5, 6], grid=41)
    ai = R.causal_attribution_map(tiny_gru, data, data[:3], t=6, t_hats=[4, 5, 6], grid=41, exact=False)
    assert am.ace.shape == (3, 3, 2)
    torch.testing.assert_close(am.ace, ai.ace, atol=2e-4, rtol=0)
    torch.testing.assert_close(am.ace, am.ace_mc, atol=2e-3, rtol=0)
    # baseline is the uniform-doer average: a brute-force check for one (t_hat, channel)
    g = am.grid[1, 0]
    res = R.interventional_expectation_rnn(tiny_gru, data, t_hat=5, feature=0, alphas=g, t=6)
    torch.testing.assert_close(am.baseline[1, 0], torch.trapezoid(res.taylor, g) / (g[-1] - g[0]))


def test_attribution_map_per_sequence_terms(data, tiny_gru):
    """The per-sequence Monte Carlo terms average to the map, and each is one rollout's own contrast."""
    am = R.causal_attribution_map(tiny_gru, data, data[:3], t=6, t_hats=[4, 6], grid=5, per_sequence=True)
    n = data.shape[0]
    assert am.ace_mc_terms.shape == (n, 3, 2, 2) and am.curve_mc_terms.shape == (n, 2, 2, 5)
    torch.testing.assert_close(am.ace_mc_terms.mean(0), am.ace_mc)
    torch.testing.assert_close(am.curve_mc_terms.mean(0), am.curve_mc)
    # one term by brute force: data sequence 2, explained sequence 1, t_hat = 4, channel 1
    g = am.grid[0, 1]
    at = R.interventional_expectation_rnn(tiny_gru, data, t_hat=4, feature=1, alphas=data[1, 4, 1:2], t=6)
    curve = R.interventional_expectation_rnn(tiny_gru, data, t_hat=4, feature=1, alphas=g, t=6)
    expected = at.outputs[0, 2] - torch.trapezoid(curve.outputs[:, 2], g) / (g[-1] - g[0])
    torch.testing.assert_close(am.ace_mc_terms[2, 1, 0, 1], expected)
    assert R.causal_attribution_map(tiny_gru, data, data[:3], t=6, t_hats=[6], grid=5).ace_mc_terms is None
    with pytest.raises(ValueError, match="exact"):
        R.causal_attribution_map(tiny_gru, data, data[:3], t=6, grid=5, exact=False, per_sequence=True)



def test_last_step_output_and_training():
    g = torch.Generator().manual_seed(0)
    seqs = cb.datasets.make_sign_sequences(256, generator=g)
    torch.manual_seed(0)
    model = R.RecurrentRegressor(1, 1, 1, cell="gru", output_activation="sigmoid")
    hist = R.fit_last_step_classifier(model, seqs.x, seqs.lengths, seqs.y, epochs=3, batch_size=32, generator=g)
    assert len(hist) == 3 and hist[-1] < hist[0]
    p = R.last_step_output(model, seqs.x, seqs.lengths, chunk_size=50)
    y, _ = model(seqs.x[:1, : int(seqs.lengths[0])])
    assert p.shape == (256,)
    torch.testing.assert_close(p[0], y[0, -1, 0].detach())
    lstm = R.RecurrentRegressor(2, 4, 2, cell="lstm")
    x = torch.randn(16, 10, 2, generator=g)
    hist = R.fit_next_step(lstm, x, epochs=5, generator=g)
    assert hist[-1] < hist[0]


@pytest.mark.parametrize("kwargs, match", [
    (dict(t_hat=9, feature=0, alphas=[0.0], t=9), "t_hat"),
    (dict(t_hat=-1, feature=0, alphas=[0.0], t=5), "t_hat"),
    (dict(t_hat=3, feature=0, alphas=[0.0], t=2), "t must"),
    (dict(t_hat=3, feature=2, alphas=[0.0], t=5), "feature"),
    (dict(t_hat=3, feature=0.5, alphas=[0.0], t=5), "feature"),
    (dict(t_hat=3, feature=[0, 1, 0], alphas=[0.0, 1.0], t=5), "one per alpha"),
    (dict(t_hat=3, feature=0, alphas=[float("nan")], t=5), "alphas"),
    (dict(t_hat=3, feature=0, alphas=[], t=5), "alphas"),
    (dict(t_hat=3, feature=0, alphas=[0.0], t=5, covariance_window=1), "covariance window"),
    (dict(t_hat=3, feature=0, alphas=[0.0], t=5, covariance_window=6), "covariance_window"),
    (dict(t_hat=3, feature=0, alphas=[0.0], t=5, target=2), "target"),
])
def test_bad_input_algorithm2(data, tiny_gru, kwargs, match):
    with pytest.raises(ValueError, match=match):
        R.interventional_expectation_rnn(tiny_gru, data, **kwargs)


def test_bad_input_shapes(tiny_gru):
    with pytest.raises(ValueError, match="shape"):
        R.interventional_expectation_rnn(tiny_gru, torch.zeros(5, 4), t_hat=0, feature=0, alphas=[0.0], t=1)
    with pytest.raises(ValueError, match="finite"):
        R.rollout_with_feedback(tiny_gru, torch.full((3, 4, 2), float("nan")), t_hat=0, feature=0, alphas=[0.0], t=1)
    with pytest.raises(ValueError, match="torch.Tensor"):
        R.lag_tau(tiny_gru, np.zeros((3, 4, 2)), 1)
    wide = R.RecurrentRegressor(2, 3, 1)
    with pytest.raises(ValueError, match="channels"):
        R.rollout_with_feedback(wide, torch.zeros(3, 4, 2), t_hat=0, feature=0, alphas=[0.0], t=2)
    with pytest.raises(ValueError, match="square"):
        R.lag_tau(wide, torch.zeros(3, 4, 2), 2)
    with pytest.raises(ValueError, match="t must"):
        R.lag_tau(tiny_gru, torch.zeros(3, 4, 2), 4)
    with pytest.raises(ValueError, match="rtol"):
        R.lag_tau(tiny_gru, torch.zeros(3, 4, 2), 2, rtol=1.5)
    with pytest.raises(ValueError, match="sequences"):
        R.causal_attribution_map(tiny_gru, torch.zeros(3, 4, 2), torch.zeros(2, 2, 2), t=3)
    with pytest.raises(ValueError, match="grid"):
        R.causal_attribution_map(tiny_gru, torch.zeros(3, 4, 2), torch.zeros(2, 4, 2), t=3, grid=1)
    with pytest.raises(ValueError, match="lengths"):
        R.last_step_output(tiny_gru, torch.zeros(3, 4, 2), torch.tensor([1, 5, 2]))


def test_bad_input_models_and_taylor():
    with pytest.raises(ValueError, match="cell"):
        R.RecurrentRegressor(1, 1, 1, cell="transformer")
    with pytest.raises(ValueError, match="output_activation"):
        R.RecurrentRegressor(1, 1, 1, output_activation="relu")
    with pytest.raises(ValueError, match="weights"):
        R.DelayLineRNN([])
    f = lambda w: w.sum(1)  # noqa: E731
    with pytest.raises(ValueError, match="covs must have shape"):
        cb.interventions.taylor_expectation(f, torch.zeros(2, 3), torch.zeros(2, 2, 2))
    with pytest.raises(ValueError, match="symmetric"):
        cb.interventions.taylor_expectation(f, torch.zeros(1, 2), torch.tensor([[[1.0, 0.5], [0.0, 1.0]]]))
    with pytest.raises(ValueError, match="semi-definite"):
        cb.interventions.taylor_expectation(f, torch.zeros(1, 2), torch.tensor([[[1.0, 0.0], [0.0, -1.0]]]))


def test_lag_tau_norm_criterion_and_full_lag_window(data, tiny_gru):
    taps = [0.9, -0.5, 0.25]
    model = R.DelayLineRNN(taps, activation=lambda z: z)
    norms = R.lag_jacobian_determinants(model, torch.randn(4, 9, 2), 8, criterion="norm")
    expected = torch.tensor([0.9, 0.5, 0.25] + [0.0] * 6, dtype=torch.float64) * 2 ** 0.5  # ||w_k I_2||_F
    torch.testing.assert_close(norms, expected.expand(4, 9))
    assert R.lag_tau(model, torch.randn(4, 9, 2), 8, rtol=0.0, criterion="norm")[0] == 2
    with pytest.raises(ValueError, match="criterion"):
        R.lag_tau(model, torch.randn(4, 9, 2), 8, criterion="trace")
    full = R.interventional_expectation_rnn(tiny_gru, data, t_hat=3, feature=0, alphas=[0.5], t=6)
    same = R.interventional_expectation_rnn(tiny_gru, data, t_hat=3, feature=0, alphas=[0.5], t=6, covariance_window=6)
    torch.testing.assert_close(full.taylor, same.taylor)
    short = R.interventional_expectation_rnn(tiny_gru, data, t_hat=3, feature=0, alphas=[0.5], t=6, covariance_window=3)
    assert float(short.cov[0, :6].abs().max()) == 0.0 and float(short.cov[0, 6:, 6:].abs().max()) > 0


def test_float64_copy(tiny_gru, data):
    m = R.float64_copy(tiny_gru)
    assert all(p.dtype == torch.float64 and not p.requires_grad for p in m.parameters())
    assert not m.training and next(tiny_gru.parameters()).dtype == torch.float32
    torch.testing.assert_close(m(data[:3])[0], tiny_gru(data[:3].float())[0].double(), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="nn.Module"):
        R.float64_copy(lambda x: x)
