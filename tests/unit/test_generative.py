"""Unit tests for causalbook_lib.generative (Parts III and IV)."""
import math

import numpy as np
import pytest
import torch

import causalbook_lib as cb
from causalbook_lib import explanations as E
from causalbook_lib import generative as G


# ------------------------------------------------------------------------------------------
# Part III
# ------------------------------------------------------------------------------------------
def linear_decoder(n_classes=4, n_latent=3, n_pixels=5, seed=0):
    """theta(z, c) = W z + V c + b: interventional means have closed forms."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(n_pixels, n_latent, generator=g)
    V = torch.randn(n_pixels, n_classes, generator=g)
    b = torch.randn(n_pixels, generator=g)
    return (lambda z, c: z @ W.T + c @ V.T + b), W, V, b


def test_class_interventional_means_closed_form():
    dec, W, V, b = linear_decoder()
    do1, do0 = G.class_interventional_means(dec, 4, 3, 20000, other_classes="enumerate",
                                            generator=torch.Generator().manual_seed(1))
    exact1 = (V.T + b).double()                                   # E_z[W z] = 0
    exact0 = torch.stack([(V.sum(1) - V[:, k]) / 3 + b for k in range(4)]).double()
    assert torch.allclose(do1, exact1, atol=0.05)
    assert torch.allclose(do0, exact0, atol=0.05)


def test_class_ace_sampled_matches_enumerated_and_closed_form():
    dec, W, V, b = linear_decoder()
    gen = torch.Generator().manual_seed(2)
    ace = G.class_ace(dec, 4, 3, 40000, generator=gen)
    exact = torch.stack([V[:, k] - (V.sum(1) - V[:, k]) / 3 for k in range(4)]).double()
    assert ace.shape == (4, 5)
    assert torch.allclose(ace, exact, atol=0.08)


def test_class_means_bad_input():
    dec, *_ = linear_decoder()
    with pytest.raises(ValueError):
        G.class_interventional_means(dec, 4, 3, 0)
    with pytest.raises(ValueError):
        G.class_interventional_means(dec, 4, 3, 10, other_classes="all")
    with pytest.raises(ValueError):
        G.class_interventional_means(lambda z, c: z[:, :1].T, 4, 3, 10)   # wrong output shape


def test_latent_ace_closed_form_linear():
    dec, W, V, b = linear_decoder()
    alphas = torch.linspace(-3, 3, 7)
    res = G.latent_ace(dec, 2, 4, 3, alphas, 50, generator=torch.Generator().manual_seed(0))
    # common random numbers: E[W z | do(z_k = a)] differs across a exactly by W[:, k] * (a - a')
    expected = W.T[:, None, :].double() * (alphas.double()[None, :, None] - 0.0)   # baseline mean of grid is 0
    assert torch.allclose(res.ace, expected, atol=1e-5)
    assert res.expectations.shape == (3, 7, 5) and res.baseline.shape == (3, 5)
    assert torch.allclose(res.strength(), expected.pow(2).mean(dim=(1, 2)).sqrt(), atol=1e-5)


def test_latent_ace_zero_for_unused_latent():
    dec = lambda z, c: torch.sigmoid(z[:, :1].expand(-1, 4) + c[:, :4])   # only z_0 is used
    res = G.latent_ace(dec, 0, 5, 3, torch.linspace(-3, 3, 5), 30, generator=1)
    s = res.strength()
    # the unused latents' expectations are equal across alpha, so their ACE is the rounding of a
    # float64 mean of equal numbers (exactly 0 for some draws, ~5e-17 for others)
    assert s[0] > 0.1 and float(s[1:].abs().max()) <= 1e-12


def test_latent_ace_bad_input():
    dec, *_ = linear_decoder()
    with pytest.raises(ValueError):
        G.latent_ace(dec, 9, 4, 3, torch.linspace(-3, 3, 5), 10)
    with pytest.raises(ValueError):
        G.latent_ace(dec, 0, 4, 3, torch.tensor([1.0, 0.0]), 10)
    with pytest.raises(ValueError):
        G.latent_ace(dec, 0, 4, 3, torch.tensor([0.0]), 10)


def test_latent_sweeps_and_strength():
    W = torch.tensor([[1.0, 0.0], [0.0, 0.0], [2.0, 0.0]])   # 3 pixels, latent 1 unused
    decode = lambda z: z @ W.T
    z = torch.tensor([[0.5, -1.0], [2.0, 3.0]])
    alphas = torch.tensor([-1.0, 0.0, 1.0])
    sw = G.latent_sweeps(decode, z, alphas)
    assert sw.shape == (2, 2, 3, 3)
    # brute force
    for n in range(2):
        for k in range(2):
            for a in range(3):
                zz = z[n].clone()
                zz[k] = alphas[a]
                assert torch.allclose(sw[n, k, a], decode(zz[None])[0])
    s = G.sweep_effect_strength(sw)
    std = alphas.std(unbiased=False)
    assert math.isclose(float(s[0]), float(std * math.sqrt(5 / 3)), rel_tol=1e-6)
    assert float(s[1]) == 0.0
    with pytest.raises(ValueError):
        G.latent_sweeps(decode, z[0], alphas)
    with pytest.raises(ValueError):
        G.sweep_effect_strength(sw[:, :, :1])


# ------------------------------------------------------------------------------------------
# Part IV
# ------------------------------------------------------------------------------------------
class StepClassifier(torch.nn.Module):
    """p(class 1 | x) = sigmoid(20 * (mean(x) - 0.5)): a hand-made black box on 64 pixels."""

    def forward(self, x):
        p1 = torch.sigmoid(20 * (x.mean(-1) - 0.5))
        return torch.stack([1 - p1, p1], dim=-1)


def test_digit_cnn_and_accuracy():
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.zeros(30, 64), torch.ones(30, 64)]) * 0.8 + 0.1 * torch.rand(60, 64, generator=g)
    y = torch.cat([torch.zeros(30), torch.ones(30)]).long()
    clf = E.train_digit_classifier(x, y, 2, steps=150, generator=g)
    assert not clf.training and not any(p.requires_grad for p in clf.parameters())
    p = clf(x)
    assert torch.allclose(p.sum(-1), torch.ones(60), atol=1e-6)
    assert cb.models.accuracy(clf, x, y) == 1.0
    assert torch.equal(clf(x), clf(x))                   # eval mode: deterministic
    assert cb.models.accuracy(StepClassifier(), x, 1 - y) == 0.0
    with pytest.raises(ValueError):
        cb.models.accuracy(clf, x, y[:5])
    with pytest.raises(ValueError):
        E.train_digit_classifier(x, y + 1, 2)


def test_negative_elbo_matches_hand_computation():
    vae = E.ExplanationVAE(1, 1, n_pixels=4, hidden=3)
    x = torch.rand(5, 4)
    noise = torch.randn(5, 2)
    loss, kl = E.negative_elbo(vae, x, noise)
    mu, logvar = vae.encode(x)
    z = mu + (0.5 * logvar).exp() * noise
    sse = ((vae.decode(z) - x) ** 2).sum(-1)
    kl_hand = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(-1)
    assert torch.allclose(loss, (sse + kl_hand).mean()) and torch.allclose(kl, kl_hand.mean())
    with pytest.raises(ValueError):
        E.negative_elbo(vae, x, noise[:, :1])
    with pytest.raises(ValueError):
        E.ExplanationVAE(0, 0)


def test_train_explainer_increases_information_flow():
    from causalbook_lib import infoflow
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    x = torch.cat([torch.full((20, 64), 0.2), torch.full((20, 64), 0.8)]) + 0.05 * torch.rand(40, 64, generator=g)
    clf = StepClassifier()
    vae = E.ExplanationVAE(1, 1, hidden=16)
    before = infoflow.information_flow(vae.decoder, clf, 1, 1, 200, 20, generator=torch.Generator().manual_seed(3))
    hist = E.train_explainer(vae, clf, x, lam=0.05, steps=60, n_alpha=30, n_beta=10, lr=5e-3, generator=g)
    after = infoflow.information_flow(vae.decoder, clf, 1, 1, 200, 20, generator=torch.Generator().manual_seed(3))
    assert after > before + 0.2 and after <= math.log(2) + 1e-9
    assert len(hist.steps) == len(hist.information_flow) == len(hist.data_loss) and hist.steps[-1] == 59
    with pytest.raises(ValueError):
        E.train_explainer(vae, clf, x, lam=-1.0, steps=2)
    with pytest.raises(ValueError):
        E.train_explainer(vae, clf, x[:, :10], lam=0.1, steps=2)
    with pytest.raises(ValueError, match="n_beta >= 2"):
        E.train_explainer(vae, clf, x, lam=0.1, steps=2, n_beta=1, estimator="bias_corrected")
    with pytest.raises(ValueError, match="estimator must be one of"):
        E.train_explainer(vae, clf, x, lam=0.1, steps=2, estimator="jackknife")


def test_resampled_factor_accuracy_brute_force():
    vae = E.ExplanationVAE(1, 2, hidden=8)
    clf = StepClassifier()
    x = torch.rand(12, 64)
    y = torch.arange(12) % 2
    res = E.resampled_factor_accuracy(vae, clf, x, y, generator=torch.Generator().manual_seed(5))
    gen = torch.Generator().manual_seed(5)
    draws = torch.randn(3, 12, generator=gen)
    with torch.no_grad():
        mu, _ = vae.encode(x)
        for i in range(3):
            z = mu.clone()
            z[:, i] = draws[i]
            acc = float((clf(vae.decode(z)).argmax(-1) == y).double().mean())
            assert math.isclose(acc, float(res.per_factor[i]))
        assert torch.is_tensor(res.per_factor) and res.per_factor.dtype == torch.float64
        assert res.per_factor.shape == (3,) and res.per_factor.device == x.device
        assert math.isclose(res.reencoded, float((clf(vae.decode(mu)).argmax(-1) == y).double().mean()))
    assert math.isclose(res.original, cb.models.accuracy(clf, x, y))
    with pytest.raises(ValueError):
        E.resampled_factor_accuracy(vae, clf, x[:, :8], y)


def test_single_factor_counterfactuals_linear():
    # decode(z) = 0.5 + 0.1 * z_0 on every pixel; the classifier flips at mean 0.5, i.e. z_0 = 0
    decode = lambda z: 0.5 + 0.1 * z[:, :1].expand(-1, 64)
    z = torch.tensor([[-1.0, 0.3], [0.57, -2.0]])
    shift, cls = E.single_factor_counterfactuals(decode, StepClassifier(), z, max_shift=4.0, n_grid=161)
    assert math.isclose(float(shift[0, 0]), 1.05, abs_tol=1e-6)       # smallest grid step past 1.0
    assert math.isclose(float(shift[1, 0]), -0.6, abs_tol=1e-6)
    assert torch.isinf(shift[:, 1]).all() and (cls[:, 1] == -1).all()
    assert cls[0, 0] == 1 and cls[1, 0] == 0
    with pytest.raises(ValueError):
        E.single_factor_counterfactuals(decode, StepClassifier(), z, n_grid=10)
    with pytest.raises(ValueError):
        E.single_factor_counterfactuals(decode, StepClassifier(), z, max_shift=-1.0)


def test_latent_counterfactuals_moves_only_the_causal_factor():
    decode = lambda z: 0.5 + 0.1 * z[:, :1].expand(-1, 64) + 0.0 * z[:, 1:2]
    z = torch.tensor([[-1.0, 0.3], [1.0, -0.5]])
    delta = E.latent_counterfactuals(decode, StepClassifier(), z, torch.tensor([1, 0]), steps=400, lr=0.05)
    assert delta[0, 0] > 0.9 and delta[1, 0] < -0.9
    assert float(delta[:, 1].abs().max()) < 1e-3
    with torch.no_grad():
        assert (StepClassifier()(decode(z + delta)).argmax(-1) == torch.tensor([1, 0])).all()
    with pytest.raises(ValueError):
        E.latent_counterfactuals(decode, StepClassifier(), z, torch.tensor([1]))
    with pytest.raises(ValueError):
        E.latent_counterfactuals(decode, StepClassifier(), z, torch.tensor([1, 0]), confidence=1.5)


def test_negative_elbo_pixel_weight():
    vae = E.ExplanationVAE(1, 1, n_pixels=4, hidden=3)
    x = torch.rand(5, 4)
    noise = torch.randn(5, 2)
    l1, kl = E.negative_elbo(vae, x, noise)
    l3, kl3 = E.negative_elbo(vae, x, noise, pixel_weight=3.0)
    assert torch.allclose(kl, kl3)
    assert torch.allclose(l3 - kl3, 3.0 * (l1 - kl))
    with pytest.raises(ValueError):
        E.negative_elbo(vae, x, noise, pixel_weight=0.0)


def test_train_explainer_lambda_trades_flow_for_data_fidelity():
    # objective (3): -C + lambda * (SSE + KL). lambda = 0 maximises the flow alone and ignores the data;
    # a large lambda buys data fidelity with flow. Same initial VAE, same mini-batches for every lambda.
    from causalbook_lib import infoflow
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.full((20, 64), 0.2), torch.full((20, 64), 0.8)]) + 0.05 * torch.rand(40, 64, generator=g)
    clf = StepClassifier()
    noise = torch.randn(40, 2, generator=torch.Generator().manual_seed(9))
    flow, data = {}, {}
    for lam in (0.0, 0.01, 1.0):
        torch.manual_seed(0)
        vae = E.ExplanationVAE(1, 1, hidden=16)
        E.train_explainer(vae, clf, x, lam=lam, steps=80, n_alpha=30, n_beta=10, lr=5e-3,
                          generator=torch.Generator().manual_seed(0))
        flow[lam] = infoflow.information_flow(vae.decoder, clf, 1, 1, 200, 20,
                                              generator=torch.Generator().manual_seed(3))
        with torch.no_grad():
            data[lam] = E.negative_elbo(vae, x, noise)[0].item()
    # data loss falls as lambda grows (about 18, 3 and 1.5 here) ...
    assert data[0.0] > 2 * data[0.01] and data[0.01] > data[1.0]
    # ... and the flow falls with it (0.64, 0.63, 0.49 nats here; 0.01 nats of slack for Monte Carlo)
    assert flow[0.0] >= flow[0.01] - 0.01 and flow[0.01] >= flow[1.0] - 0.01
    assert flow[1.0] < flow[0.0] - 0.1


class DropoutClassifier(torch.nn.Module):
    """StepClassifier behind a dropout layer; records the training flag it was called with."""

    def __init__(self):
        super().__init__()
        self.drop = torch.nn.Dropout(0.5)
        self.seen = []

    def forward(self, x):
        self.seen.append(self.training)
        return StepClassifier()(self.drop(x))


def test_evaluation_helpers_run_modules_in_eval_mode_and_restore_it():
    # m19: a classifier (or decoder) left in train mode would silently be evaluated with dropout on,
    # a different, random function. The helpers switch to eval mode and give the caller's flags back.
    torch.manual_seed(0)
    vae = E.ExplanationVAE(1, 2, hidden=8)
    x = torch.rand(12, 64)
    y = torch.arange(12) % 2
    z = torch.tensor([[-1.0, 0.3, 0.0], [0.57, -2.0, 0.1]])
    decode = lambda z: 0.5 + 0.1 * z[:, :1].expand(-1, 64)   # noqa: E731
    calls = {
        "resampled": lambda clf: E.resampled_factor_accuracy(vae, clf, x, y,
                                                             generator=torch.Generator().manual_seed(5)).per_factor,
        "single": lambda clf: E.single_factor_counterfactuals(decode, clf, z, n_grid=41)[0],
        "latent": lambda clf: E.latent_counterfactuals(decode, clf, z, torch.tensor([1, 0]), steps=50),
        "explainer": lambda clf: E.train_explainer(E.ExplanationVAE(1, 1, hidden=4), clf, x, lam=0.1, steps=2,
                                                   n_alpha=4, n_beta=3).information_flow,
    }
    for name, call in calls.items():
        reference = DropoutClassifier().eval()
        torch.manual_seed(1)
        expected = call(reference)
        clf = DropoutClassifier().train()
        vae.train()
        torch.manual_seed(1)
        got = call(clf)
        assert clf.seen and not any(clf.seen), name             # every call in eval mode
        assert clf.training and clf.drop.training, name        # the caller's mode is back
        np.testing.assert_array_equal(np.asarray(got), np.asarray(expected), err_msg=name)
    assert vae.training                                          # resampled_factor_accuracy restored the VAE too
    # a decoder module with dropout, passed as a bound method, is switched too (latent_sweeps)
    dec = torch.nn.Sequential(torch.nn.Linear(3, 64), torch.nn.Dropout(0.5)).train()
    sw = G.latent_sweeps(dec.forward, z, torch.linspace(-1, 1, 3))
    assert dec.training and torch.equal(sw, G.latent_sweeps(dec.eval(), z, torch.linspace(-1, 1, 3)))
    # the documented way to keep dropout on, as the authors' code does: wrap the module in a function
    clf = DropoutClassifier().train()
    E.single_factor_counterfactuals(decode, lambda im: clf(im), z, n_grid=41)
    assert clf.seen and all(clf.seen)
