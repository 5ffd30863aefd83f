"""Unit tests for causalbook_lib.infoflow (Part IV, chapters 11-12)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, special, stats
from torch import nn

from causalbook_lib import infoflow as inf

LN2 = math.log(2.0)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _probit_setup(wa, wb, gamma=0.01, a=(1.0, 0.0)):
    W = np.column_stack([np.asarray(wa, float), np.asarray(wb, float)])
    dec = inf.LinearGaussianDecoder(W, gamma, generator=_gen(123))
    clf = inf.HyperplaneClassifier(a, 1.0, link="probit")
    return dec, clf


# ---------------------------------------------------------------- plug-in estimator, exact cases
def test_plugin_hand_computed_discrete_case():
    # Two alpha values, two beta values, two classes. p(y|x) table (hand-chosen):
    # alpha_1: [0.9, 0.1], [0.7, 0.3] -> p(y|a1) = [0.8, 0.2]
    # alpha_2: [0.2, 0.8], [0.4, 0.6] -> p(y|a2) = [0.3, 0.7];  p(y) = [0.55, 0.45]
    p = torch.tensor([[[0.9, 0.1], [0.7, 0.3]], [[0.2, 0.8], [0.4, 0.6]]], dtype=torch.float64)
    h = lambda q: -sum(x * math.log(x) for x in q)  # noqa: E731
    expected = h([0.55, 0.45]) - 0.5 * (h([0.8, 0.2]) + h([0.3, 0.7]))
    assert float(inf.plugin_information_flow(p)) == pytest.approx(expected, abs=1e-12)
    # an outer (conditioning) axis averages the per-slice estimates
    both = torch.stack([p, p.flip(-1)])
    assert float(inf.plugin_information_flow(both)) == pytest.approx(expected, abs=1e-12)


def test_plugin_zero_probabilities_are_fine_and_differentiable():
    p = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]], dtype=torch.float64, requires_grad=True)
    out = inf.plugin_information_flow(p)
    assert out.item() == pytest.approx(LN2, abs=1e-12)
    out.backward()
    assert torch.isfinite(p.grad).all()


def test_information_flow_sign_table_classifier():
    # Y depends only on the signs of alpha and beta through a known table; exact I(alpha; Y):
    # p(y=1 | s_a, s_b) = T[s_a][s_b]; alpha, beta ~ N(0,1) so each sign has probability 1/2.
    T = torch.tensor([[0.1, 0.5], [0.6, 0.95]], dtype=torch.float64)

    def decoder(z):
        return z

    def classifier(x):
        sa, sb = (x[:, 0] > 0).long(), (x[:, 1] > 0).long()
        p1 = T[sa, sb]
        return torch.stack([1 - p1, p1], dim=1)

    hb = lambda q: float(inf.binary_entropy(q))  # noqa: E731
    p_given_a = T.mean(1).numpy()
    exact = hb(p_given_a.mean()) - 0.5 * (hb(p_given_a[0]) + hb(p_given_a[1]))
    est = inf.information_flow(decoder, classifier, 1, 1, 4000, 400, generator=_gen(1))
    # alpha enters only through its sign, so p(y|alpha) is estimated with 400 betas: small bias
    assert est == pytest.approx(exact, abs=0.004)
    assert exact > 0.05


# ---------------------------------------------------------------- closed form (Lemmas 7-8)
def test_closed_form_against_direct_quadrature_and_monte_carlo():
    a, wa, wb, gamma = np.array([1.0, 0.5]), np.array([0.8, 0.3]), np.array([[0.2], [0.9]]), 0.05
    s = (a @ wa) / math.sqrt(1 + (wb.T @ a) @ (wb.T @ a) + gamma * a @ a)
    hb = lambda p: special.entr(p) + special.entr(1 - p)  # noqa: E731
    direct = LN2 - integrate.quad(lambda t: stats.norm.pdf(t) * hb(stats.norm.cdf(s * t)), -12, 12,
                                  points=[0.0], limit=200)[0]
    exact = inf.linear_gaussian_information_flow(a, wa, wb, gamma)
    assert exact == pytest.approx(direct, abs=1e-9)
    dec, clf = _probit_setup(wa, wb[:, 0], gamma, a)
    ests = [inf.information_flow(dec, clf, 1, 1, 4000, 400, generator=_gen(k)) for k in range(4)]
    assert np.mean(ests) == pytest.approx(exact, abs=0.01)


def test_closed_form_limits():
    a = [1.0, 0.0]
    assert inf.linear_gaussian_information_flow(a, [0.0, 1.0], [[1.0], [0.0]], 0.1) == 0.0
    big = inf.linear_gaussian_information_flow(a, [1e4, 0.0], None, 1e-3)
    assert LN2 - 1e-3 < big <= LN2
    # K = 2 reduces to the norm of W_alpha^T a
    two = inf.linear_gaussian_information_flow(a, [[0.6, 0.8], [0.0, 0.0]], None, 0.1)
    one = inf.linear_gaussian_information_flow(a, [1.0, 0.0], None, 0.1)
    assert two == pytest.approx(one, abs=1e-12)


def test_lemma7_marginal_entropy_is_ln2():
    # p(Y=1) = 1/2 for any W: H(Y) = ln 2 (Lemma 7), checked through the plug-in marginal
    dec, clf = _probit_setup([0.3, 0.9], [0.7, -0.2])
    z = torch.randn(200000, 2, generator=_gen(5), dtype=torch.float64)
    p1 = clf(dec(z))[:, 1].mean().item()
    assert p1 == pytest.approx(0.5, abs=0.003)


# ---------------------------------------------------------------- subsets, objective, per factor
def test_latent_subsets_and_per_factor_match_closed_form():
    wa, wb, gamma, a = np.array([0.9, 0.2]), np.array([0.3, 0.8]), 0.01, np.array([1.0, 0.0])
    dec, clf = _probit_setup(wa, wb, gamma, a)
    flows = inf.per_factor_information_flow(dec, clf, 2, 3000, 300, generator=_gen(2))
    exact = [inf.linear_gaussian_information_flow(a, wa, wb, gamma),
             inf.linear_gaussian_information_flow(a, wb, wa, gamma)]
    assert isinstance(flows, torch.Tensor) and flows.dtype == torch.float64 and flows.shape == (2,)
    np.testing.assert_allclose(flows, exact, atol=0.01)
    one = inf.latent_information_flow(dec, clf, 2, [1], 3000, 300, generator=_gen(3))
    assert one == pytest.approx(exact[1], abs=0.01)
    # imposing beta: I(alpha; Y | beta) = I(alpha, beta; Y) - I(beta; Y) (chain rule), both closed forms
    cond = inf.latent_information_flow(dec, clf, 2, [0], 400, 20, given=[1], n_given=400, generator=_gen(4))
    joint = inf.linear_gaussian_information_flow(a, np.column_stack([wa, wb]), None, gamma)
    assert cond == pytest.approx(joint - exact[1], abs=0.01)
    assert joint - exact[1] > exact[0]


def test_objective_is_differentiable_and_matches_float_version():
    dec, clf = _probit_setup([0.6, 0.6], [0.6, -0.6])
    obj = inf.information_flow_objective(dec, clf, 1, 1, 200, 50, generator=_gen(7))
    assert obj.dtype == torch.float64 and obj.requires_grad
    dec2, _ = _probit_setup([0.6, 0.6], [0.6, -0.6])  # a fresh decoder replays the same noise stream
    val = inf.information_flow(dec2, clf, 1, 1, 200, 50, generator=_gen(7))
    assert val == pytest.approx(obj.item(), abs=1e-12)
    obj.backward()
    # rotating w_alpha towards a = e1 increases the flow: d C / d W[0, 0] > 0
    assert dec.W.grad is not None and dec.W.grad[0, 0] > 0


def test_bias_corrected_objective_is_the_corrected_estimate_of_the_same_table():
    dec, clf = _probit_setup([0.6, 0.6], [0.6, -0.6])
    obj = inf.information_flow_objective(dec, clf, 1, 1, 300, 3, generator=_gen(8), estimator="bias_corrected")
    assert obj.requires_grad
    # the same draws, through the table: alpha shared along the beta axis, beta fresh
    g = _gen(8)
    z = torch.cat([torch.randn(1, 300, 1, 1, generator=g, dtype=torch.float64).expand(1, 300, 3, 1),
                   torch.randn(1, 300, 3, 1, generator=g, dtype=torch.float64)], -1).reshape(-1, 2)
    dec2, _ = _probit_setup([0.6, 0.6], [0.6, -0.6])  # a fresh decoder replays the same noise stream
    with torch.no_grad():
        p = clf(dec2(z)).reshape(300, 3, -1)
    assert obj.item() == pytest.approx(float(inf.bias_corrected_information_flow(p)), abs=1e-12)
    assert obj.item() < float(inf.plugin_information_flow(p))  # the correction is subtracted
    obj.backward()
    assert dec.W.grad is not None and torch.isfinite(dec.W.grad).all()
    with pytest.raises(ValueError, match="n_beta >= 2"):
        inf.information_flow_objective(dec, clf, 1, 1, 10, 1, estimator="bias_corrected")
    with pytest.raises(ValueError, match="estimator must be one of"):
        inf.information_flow_objective(dec, clf, 1, 1, 10, 2, estimator="jackknife")


def test_classifier_eval_mode_used_and_restored():
    seen = []

    class Clf(nn.Module):
        def __init__(self):
            super().__init__()
            self.drop = nn.Dropout(0.5)

        def forward(self, x):
            seen.append(self.training)
            return torch.softmax(self.drop(x), dim=1)

    clf = Clf().train()
    inf.information_flow(lambda z: z, clf, 1, 1, 10, 5, generator=_gen())
    assert seen == [False] and clf.training and clf.drop.training


def test_seeded_results_repeat():
    dec, clf = _probit_setup([0.6, 0.6], [0.6, -0.6], gamma=0.0)
    v1 = inf.information_flow(dec, clf, 1, 1, 100, 25, generator=_gen(11))
    v2 = inf.information_flow(dec, clf, 1, 1, 100, 25, generator=_gen(11))
    assert v1 == v2


class _Float32Probit(nn.Module):
    """P(Y=1 | x) = Phi(a^T x) computed in float32 by an nn.Linear, like a trained network would."""

    def __init__(self, a):
        super().__init__()
        self.lin = nn.Linear(len(a), 1, bias=False)
        with torch.no_grad():
            self.lin.weight.copy_(torch.tensor([a], dtype=torch.float32))

    def forward(self, x):
        p1 = torch.special.ndtr(self.lin(x))[:, 0]
        return torch.stack([1 - p1, p1], dim=1)


def test_float32_modules_match_the_closed_form():
    # The float32 path (nn.Linear decoder, float32 classifier) against Lemma 8: a deterministic linear
    # decoder x = w_alpha alpha + w_beta beta and P(Y=1|x) = Phi(a^T x). Closed form with gamma -> 0
    # (1e-12 changes s by 1e-12). Monte Carlo: over seeds the estimate spreads by about 0.004 nats with
    # N_alpha = 4000, and the plug-in bias is below 1/(2 N_beta) = 0.00125; tolerance 0.015 (~4 std).
    a, wa, wb = [1.0, -0.5, 0.3], [0.9, 0.1, 0.5], [0.2, 0.8, -0.4]
    dec = nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        dec.weight.copy_(torch.tensor([wa, wb], dtype=torch.float32).T)
    clf = _Float32Probit(a)
    exact = inf.linear_gaussian_information_flow(a, wa, wb, 1e-12)
    est = inf.information_flow(dec, clf, 1, 1, 4000, 400, generator=_gen(8))
    assert est == pytest.approx(exact, abs=0.015)
    # the test has power: exchanging the roles of alpha and beta changes the truth by far more
    assert abs(inf.linear_gaussian_information_flow(a, wb, wa, 1e-12) - exact) > 0.1


def test_four_class_flow_limits():
    # Y = the quadrant of (alpha_1, alpha_2) through a steep float32 softmax: alpha determines Y and the
    # four quadrants are equally likely, so I(alpha; Y) = H(Y) = ln 4 up to the softness of the steps.
    # If instead the quadrant is that of (alpha_1, beta), the two alphas carry only the bit of alpha_1:
    # I = ln 2. A classifier of beta alone gives 0, up to the plug-in bias, about (M - 1)/(2 N_beta).
    signs = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])

    def quadrant(cols):
        lin = nn.Linear(3, 4, bias=False)
        with torch.no_grad():
            lin.weight.zero_()
            lin.weight[:, cols] = 2000.0 * signs
        return nn.Sequential(lin, nn.Softmax(dim=1))

    ident = nn.Linear(3, 3, bias=False)            # a float32 identity decoder
    with torch.no_grad():
        ident.weight.copy_(torch.eye(3))
    q = inf.information_flow(ident, quadrant([0, 1]), 2, 1, 2000, 20, generator=_gen(9))
    assert q == pytest.approx(math.log(4), abs=0.01)
    half = inf.information_flow(ident, quadrant([0, 2]), 2, 1, 2000, 200, generator=_gen(10))
    assert half == pytest.approx(LN2, abs=0.01)
    beta_only = nn.Linear(3, 2, bias=False)
    with torch.no_grad():
        beta_only.weight.copy_(torch.tensor([[0.0, 0.0, 200.0], [0.0, 0.0, -200.0]]))
    none = inf.information_flow(ident, nn.Sequential(beta_only, nn.Softmax(dim=1)), 2, 1, 200, 200,
                                generator=_gen(11))
    assert 0.0 <= none < 2 * 1 / (2 * 200)       # twice the expected bias 1/(2 N_beta) of a fair coin


def test_binary_entropy():
    out = inf.binary_entropy([0.0, 0.5, 1.0])
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), [0.0, LN2, 0.0], atol=1e-15)
    q = torch.tensor([0.1, 0.3], dtype=torch.float32)        # the dtype of a tensor is kept
    expected = -(q.double() * q.double().log() + (1 - q.double()) * (1 - q.double()).log())
    assert inf.binary_entropy(q).dtype == torch.float32
    np.testing.assert_allclose(inf.binary_entropy(q).double().numpy(), expected.numpy(), rtol=1e-6)
    for bad in ([1.2], [-0.1], [float("nan")]):
        with pytest.raises(ValueError):
            inf.binary_entropy(bad)


def test_hyperplane_classifier_and_rule():
    clf = inf.HyperplaneClassifier([[1.0, 0.0], [0.0, 1.0]], steepness=100.0)
    p = clf(torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]], dtype=torch.float64))
    np.testing.assert_allclose(p[:, 1].numpy(), [1.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(p.sum(1).numpy(), 1.0)


# ---------------------------------------------------------------- bad input
def test_bad_input_raises_value_error():
    dec, clf = _probit_setup([1.0, 0.0], [0.0, 1.0])
    for na, nb in ((0, 5), (5, 0), (-1, 5), (2.5, 5)):
        with pytest.raises(ValueError, match="n_alpha|n_beta"):
            inf.information_flow(dec, clf, 1, 1, na, nb)
    with pytest.raises(ValueError, match="latent"):
        inf.information_flow(dec, clf, 2, 1, 5, 5)                 # decoder takes 2 latents
    mlp = nn.Sequential(nn.Linear(3, 4), nn.Softmax(dim=1))
    with pytest.raises(ValueError, match="latent"):
        inf.information_flow(lambda z: mlp(z), lambda x: x, 1, 1, 5, 5)  # no declared size: caught call
    with pytest.raises(ValueError, match="probabilities"):
        inf.information_flow(dec, lambda x: x, 1, 1, 5, 5)          # raw scores, negative entries
    with pytest.raises(ValueError, match="sum to 1"):
        inf.information_flow(dec, lambda x: torch.full((x.shape[0], 2), 0.7), 1, 1, 5, 5)
    with pytest.raises(ValueError, match="gamma"):
        inf.linear_gaussian_information_flow([1.0, 0.0], [1.0, 0.0], None, 0.0)
    with pytest.raises(ValueError, match="gamma"):
        inf.linear_gaussian_information_flow([1.0, 0.0], [1.0, 0.0], None, -1.0)
    with pytest.raises(ValueError, match="w_alpha"):
        inf.linear_gaussian_information_flow([1.0, 0.0], [1.0, 0.0, 0.0], None, 0.1)
    with pytest.raises(ValueError, match="disjoint"):
        inf.latent_information_flow(dec, clf, 2, [0], 5, 5, given=[0])
    with pytest.raises(ValueError, match="factors"):
        inf.latent_information_flow(dec, clf, 2, [2], 5, 5)
    with pytest.raises(ValueError, match="shape"):
        inf.plugin_information_flow(torch.ones(3, 2))
    with pytest.raises(ValueError):
        inf.HyperplaneClassifier([1.0, 0.0], steepness=0.0)
    with pytest.raises(ValueError):
        inf.LinearGaussianDecoder([[1.0, 0.0]], gamma=-1.0)
    with pytest.raises(ValueError, match="generator"):
        inf.LinearGaussianDecoder([[1.0, 0.0]], gamma=1.0, generator=1.5)


def test_linear_gaussian_decoder_generator_has_the_library_meaning():
    """generator= as in cb.utils.as_generator: an int seeds the noise stream (the same int, the same
    noise), a torch.Generator is used as it is, None follows torch.manual_seed at construction."""
    W, z = [[1.0, 0.5], [0.0, 2.0]], torch.zeros(4, 2, dtype=torch.float64)
    noise = lambda dec: dec(z)  # noqa: E731  (z = 0: the output is the noise alone)
    assert torch.equal(noise(inf.LinearGaussianDecoder(W, 0.3, generator=7)),
                       noise(inf.LinearGaussianDecoder(W, 0.3, generator=torch.Generator().manual_seed(7))))
    a = inf.LinearGaussianDecoder(W, 0.3, generator=7)
    assert not torch.equal(noise(a), noise(a))           # each pass draws fresh noise
    torch.manual_seed(3)
    b = noise(inf.LinearGaussianDecoder(W, 0.3))
    torch.manual_seed(3)
    assert torch.equal(b, noise(inf.LinearGaussianDecoder(W, 0.3)))


# ---------------------------------------------------------------- later additions
def test_tensor_closed_form_matches_quadrature_and_has_gradients():
    a = torch.tensor([5.0, 0.0], dtype=torch.float64)
    wa = torch.tensor([0.8, 0.3], dtype=torch.float64, requires_grad=True)
    wb = torch.tensor([[0.2], [0.9]], dtype=torch.float64)
    val = inf.linear_gaussian_information_flow_tensor(a, wa, wb, 0.001)
    ref = inf.linear_gaussian_information_flow(a.numpy(), wa.detach().numpy(), wb.numpy(), 0.001)
    assert val.item() == pytest.approx(ref, abs=1e-7)
    val.backward()
    assert wa.grad[0] > 0  # more alignment with a = e1, more flow
    with pytest.raises(ValueError, match="gamma"):
        inf.linear_gaussian_information_flow_tensor(a, wa, wb, 0.0)


def test_gaussian_kl_from_standard_against_torch_and_monte_carlo():
    cov = torch.tensor([[2.0, 0.3], [0.3, 0.5]], dtype=torch.float64)
    ours = inf.gaussian_kl_from_standard(cov).item()
    p = torch.distributions.MultivariateNormal(torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64))
    q = torch.distributions.MultivariateNormal(torch.zeros(2, dtype=torch.float64), cov)
    # an independent implementation: torch.distributions' registered Gaussian KL
    assert ours == pytest.approx(torch.distributions.kl_divergence(p, q).item(), abs=1e-12)
    # and the definition E_p[log p(x) - log q(x)] by Monte Carlo, within 5 standard errors
    x = torch.randn(200000, 2, generator=_gen(6), dtype=torch.float64)
    ratio = p.log_prob(x) - q.log_prob(x)
    assert ours == pytest.approx(ratio.mean().item(), abs=5 * ratio.std().item() / math.sqrt(len(x)))
    # the direction matters: KL(N(0, S) || N(0, I)) differs by more than the Monte Carlo tolerance
    assert abs(torch.distributions.kl_divergence(q, p).item() - ours) > 10 * ratio.std().item() / math.sqrt(len(x))
    assert inf.gaussian_kl_from_standard(torch.eye(3)).item() == pytest.approx(0.0, abs=1e-14)
    with pytest.raises(ValueError):
        inf.gaussian_kl_from_standard(torch.tensor([[1.0, 2.0], [2.0, 1.0]]))


def test_tables_flow_and_mutual_information():
    # independent cause: flow = mutual information; Y = U copied through a noisy channel
    pu = np.array([0.3, 0.7])
    pv = np.array([[0.9, 0.1], [0.2, 0.8]])
    assert inf.information_flow_from_tables(pu, pv) == pytest.approx(inf.mutual_information(pu[:, None] * pv), abs=1e-14)
    # hand value: I = H(V) - H(V|U)
    pv_marg = pu @ pv
    h = lambda q: -np.sum(q * np.log(q))  # noqa: E731
    assert inf.mutual_information(pu[:, None] * pv) == pytest.approx(h(pv_marg) - pu @ np.array([h(r) for r in pv]))
    with pytest.raises(ValueError):
        inf.information_flow_from_tables([0.5, 0.6], pv)
    with pytest.raises(ValueError):
        inf.mutual_information([[0.5, 0.6]])


def test_latent_conditional_dependence_explaining_away():
    # Y = 1 iff z0 > 0 or z1 > 0 (hard "or"): given Y = 0 both are negative -> dependence given Y.
    def clf(x):
        p1 = ((x[:, 0] > 0) | (x[:, 1] > 0)).double()
        return torch.stack([1 - p1, p1], 1)
    # exact: work with signs s0, s1 (uniform bits); I(s0; s1 | Y) = H(s0|Y) + H(s1|Y) - H(s0,s1|Y)
    # Y=0 (prob 1/4): both bits fixed -> 0; Y=1 (prob 3/4): uniform over 3 states
    h_marg = -(1 / 3 * math.log(1 / 3) + 2 / 3 * math.log(2 / 3))
    exact = 0.75 * (2 * h_marg - math.log(3))
    est = inf.latent_conditional_dependence(lambda z: z, clf, 2, [0], [1], 400, 400, 1, generator=_gen(0))
    assert est == pytest.approx(exact, abs=0.01)
    with pytest.raises(ValueError, match="disjoint"):
        inf.latent_conditional_dependence(lambda z: z, clf, 2, [0], [0], 5, 5, 1)


def test_estimates_are_chunked_without_changing_them(monkeypatch):
    """Without gradients the decoder and classifier see at most DEFAULT_CHUNK_SIZE rows a call, and
    the estimate equals the one-batch estimate on the same draws."""
    torch.manual_seed(0)
    dec = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 5)).double()
    clf_net = nn.Sequential(nn.Linear(5, 3), nn.Softmax(dim=-1)).double()
    sizes = []

    def clf(x):
        sizes.append(x.shape[0])
        return clf_net(x)

    one = inf.per_factor_information_flow(dec, clf, 3, 40, 30, generator=_gen(5))
    assert sizes == [3 * 40 * 30]
    sizes.clear()
    monkeypatch.setattr(inf, "DEFAULT_CHUNK_SIZE", 500)
    chunked = inf.per_factor_information_flow(dec, clf, 3, 40, 30, generator=_gen(5))
    assert max(sizes) == 500 and sum(sizes) == 3 * 40 * 30
    np.testing.assert_allclose(chunked, one, rtol=0, atol=1e-12)
    # the differentiable objective keeps one batch (its graph would hold every chunk anyway)
    sizes.clear()
    inf.information_flow_objective(dec, clf, 1, 2, 40, 30, generator=_gen(5))
    assert sizes == [1200]
