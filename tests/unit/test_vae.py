"""Unit tests for causalbook_lib.vae: the one conditional VAE of Parts III and V and its two training loops."""
import math

import pytest
import torch
from torch import nn

from causalbook_lib import vae as V


def test_elbo_closed_form_with_zero_weights():
    """With all weights zero: q = N(0, I) = prior (KL = 0) and the decoder outputs its bias b,
    so the ELBO is exactly log N(x; b, s^2 I) (Gaussian) or the Bernoulli log-likelihood."""
    torch.manual_seed(0)
    x = torch.rand(7, 6)
    c = torch.randint(0, 2, (7, 2)).float()
    for lik in ("gaussian", "bernoulli"):
        vae = V.ConditionalVAE(6, cond_dim=2, latent_dim=3, hidden=5, likelihood=lik, noise_std=0.3)
        with torch.no_grad():
            for p in vae.parameters():
                p.zero_()
            b = torch.linspace(-1, 1, 6)
            vae.decoder[-1].bias.copy_(b)
        elbo = vae.elbo(x, c, generator=torch.Generator().manual_seed(1))
        if lik == "gaussian":
            expect = -0.5 * (((x - b) ** 2) / 0.09 + math.log(2 * math.pi * 0.09)).sum(1)
        else:
            pb = torch.sigmoid(b)
            expect = (x * torch.log(pb) + (1 - x) * torch.log(1 - pb)).sum(1)
        torch.testing.assert_close(elbo, expect, atol=1e-5, rtol=1e-5)


def test_train_vae_lowers_the_loss_and_generates():
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    c = torch.randint(0, 2, (256, 1)).float()
    x = c * torch.ones(1, 4) + 0.05 * torch.randn(256, 4, generator=g)
    vae = V.ConditionalVAE(4, cond_dim=1, latent_dim=1, hidden=16, noise_std=0.3)
    hist = V.train_vae(vae, x, c, epochs=100, batch_size=64, generator=g)
    assert hist[-1] < hist[0]
    on = vae.generate(200, torch.ones(200, 1), g)
    off = vae.generate(200, torch.zeros(200, 1), g)
    assert on.shape == (200, 4)
    assert float(on.mean()) == pytest.approx(1.0, abs=0.15)  # follows the condition
    assert float(off.mean()) == pytest.approx(0.0, abs=0.15)


def test_vae_rejects_bad_input():
    with pytest.raises(ValueError):
        V.ConditionalVAE(0)
    with pytest.raises(ValueError):
        V.ConditionalVAE(4, likelihood="poisson")
    with pytest.raises(ValueError):
        V.ConditionalVAE(4, noise_std=0.0)
    vae = V.ConditionalVAE(4, cond_dim=2)
    with pytest.raises(ValueError, match="conditional"):
        vae.elbo(torch.zeros(3, 4))
    with pytest.raises(ValueError):
        vae.elbo(torch.zeros(3, 5), torch.zeros(3, 2))
    with pytest.raises(ValueError):
        vae.elbo(torch.zeros(3, 4), torch.zeros(3, 3))
    with pytest.raises(ValueError):
        V.train_vae(vae, torch.zeros(3, 4), torch.zeros(3, 2), epochs=0)
    with pytest.raises(ValueError):
        V.train_vae(vae, torch.zeros(3, 4), torch.zeros(3, 2), lr=-1.0)


def test_train_conditional_vae_learns_and_beta_shrinks_the_kl():
    # four class prototypes plus one continuous direction: something to reconstruct and to encode
    g = torch.Generator().manual_seed(0)
    protos = (torch.rand(4, 16, generator=g) > 0.5).float()
    v = torch.randn(16, generator=g)
    y = torch.arange(80) % 4
    x = torch.sigmoid(3 * (2 * protos[y] - 1) + 2 * torch.randn(80, 1, generator=g) * v)
    res = {beta: V.train_conditional_vae(x, y, n_classes=4, n_latent=2, steps=200, hidden=16, beta=beta,
                                         log_every=20, generator=torch.Generator().manual_seed(1))
           for beta in (1.0, 8.0)}
    r = res[1.0]
    assert r.kl_per_latent.shape == (2,) and not r.model.training
    assert r.model.decode(torch.zeros(3, 2), torch.eye(4)[:3]).shape == (3, 16)
    # training works: the Bernoulli reconstruction loss falls (about 11 -> 7 nats here)
    assert r.reconstruction[-1] < 0.8 * r.reconstruction[0]
    # the beta of the beta-VAE acts: a KL weight of 8 leaves far less information in the latents
    kl1, kl8 = float(res[1.0].kl_per_latent.sum()), float(res[8.0].kl_per_latent.sum())
    assert kl8 < 0.25 * kl1
    g = torch.Generator().manual_seed(0)
    x = torch.rand(40, 16, generator=g)
    y = torch.arange(40) % 4
    with pytest.raises(ValueError):
        V.train_conditional_vae(x * 2, y, n_classes=4)
    with pytest.raises(ValueError):
        V.train_conditional_vae(x, y + 4, n_classes=4)
    with pytest.raises(ValueError):
        V.train_conditional_vae(x, y, n_classes=4, beta=0.0)


def test_part_three_and_part_five_configurations():
    # Part III (chapter 10): two hidden layers, Bernoulli; Part V (chapter 16): one hidden layer, Gaussian
    deep = V.ConditionalVAE(64, 10, 10, 32, depth=2, likelihood="bernoulli")
    shallow = V.ConditionalVAE(144, 5, 2, 32)
    assert sum(isinstance(m, nn.Linear) for m in deep.encoder) == 3
    assert sum(isinstance(m, nn.Linear) for m in deep.decoder) == 3
    assert sum(isinstance(m, nn.Linear) for m in shallow.decoder) == 2
    z, c = torch.zeros(4, 10), torch.eye(10)[:4]
    theta = deep.decode(z, c)
    assert theta.shape == (4, 64) and bool(((theta > 0) & (theta < 1)).all())
    torch.testing.assert_close(theta, torch.sigmoid(deep.decode_logits(z, c)))
    # forward() is the reparameterised pass that train_conditional_vae uses: with zero noise z = mu
    x = torch.rand(4, 64)
    out, mu, logvar = deep(x, c, torch.zeros(4, 10))
    torch.testing.assert_close(out, deep.decode_logits(mu, c))
    with pytest.raises(ValueError):
        V.ConditionalVAE(4, depth=0)


def test_vae_computes_in_the_dtype_of_its_parameters():
    vae = V.ConditionalVAE(5, cond_dim=2, latent_dim=3, hidden=8).double()
    x = torch.rand(6, 5, dtype=torch.float64)
    c = torch.ones(6, 2, dtype=torch.float64)
    assert vae.elbo(x, c, generator=torch.Generator().manual_seed(0)).dtype == torch.float64
    assert vae.generate(3, torch.ones(3, 2), torch.Generator().manual_seed(0)).dtype == torch.float64


def test_gaussian_kl_against_torch_distributions():
    mu = torch.tensor([[0.3, -1.2]], dtype=torch.float64)
    logvar = torch.tensor([[0.5, -0.7]], dtype=torch.float64)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    torch.testing.assert_close(V.gaussian_kl(mu, logvar), torch.distributions.kl_divergence(q, p))
