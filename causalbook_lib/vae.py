"""Variational autoencoders: the book's one conditional VAE, its evidence lower bound, and how it is trained.

One class, :class:`ConditionalVAE`, serves every part that needs a VAE:

* :doc:`Chapter 10 </notebooks/10-vae-latents>` (Part III) trains the conditional beta-VAE of
  Chattopadhyay et al. (2019), Sec. 5.4, on the 8x8 digits: one-hot class latents ``c``, continuous
  latents ``z``, a Bernoulli likelihood and two hidden layers
  (:func:`train_conditional_vae`, which logs the KL term of every latent).
* :doc:`Chapter 16 </notebooks/16-causal-generation>` (Part V) conditions it on the binary face
  attributes of the causal controller, with a Gaussian likelihood and one hidden layer
  (:func:`train_vae`), and :class:`causalbook_lib.causalgen.CompetitiveMixture` lets K
  unconditional ones compete for the data.

Part IV's explanation VAE, whose latents are split into causal and noncausal factors and whose loss
carries an information-flow term, lives in :mod:`causalbook_lib.explanations`.

Dtype and device: the model computes in the dtype and on the device of its parameters; noise is
drawn there too (``generator`` must then live on that device).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .utils import as_generator, check_features_labels, check_number, check_positive_int, seeded_init

__all__ = [
    "ConditionalVAE",
    "gaussian_kl",
    "VAETrainingResult",
    "train_conditional_vae",
    "train_vae",
]

_LIKELIHOODS = ("gaussian", "bernoulli")


def _mlp(n_in: int, hidden: int, n_out: int, depth: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(n_in, hidden), nn.ReLU()]
    for _ in range(depth - 1):
        layers += [nn.Linear(hidden, hidden), nn.ReLU()]
    layers.append(nn.Linear(hidden, n_out))
    return nn.Sequential(*layers)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, diag exp(logvar)) || N(0, I))`` per latent dimension, in nats: the shape of ``mu``."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


class ConditionalVAE(nn.Module):
    """A conditional VAE: encoder ``q(z | x, c) = N(mu(x, c), diag sigma^2(x, c))``, prior ``N(0, I)``, decoder ``p(x | z, c)``.

    With ``likelihood="bernoulli"`` the decoder returns one Bernoulli mean per pixel (pixel values in
    [0, 1] are the targets); with ``"gaussian"`` it is ``N(g(z, c), noise_std^2 I)``. The condition
    ``c`` is any real vector of ``cond_dim`` entries (one-hot classes in Part III, binary attributes
    in Part V); ``cond_dim=0`` gives a plain VAE. Encoder and decoder are MLPs with ``depth`` hidden
    layers of width ``hidden`` (ReLU).

    Args:
        x_dim: number of pixels (64 for the 8x8 digits, 144 for the 12x12 faces).
        cond_dim: number of entries of the condition ``c`` (>= 0).
        latent_dim: number of continuous latents ``z``.
        hidden: width of the hidden layers.
        depth: number of hidden layers of the encoder and of the decoder (>= 1).
        likelihood: ``"gaussian"`` or ``"bernoulli"``.
        noise_std: standard deviation of the Gaussian likelihood.

    Raises:
        ValueError: non-positive sizes, an unknown likelihood or a non-positive ``noise_std``.
    """

    def __init__(self, x_dim: int, cond_dim: int = 0, latent_dim: int = 4, hidden: int = 64, *, depth: int = 1,
                 likelihood: str = "gaussian", noise_std: float = 0.1):
        super().__init__()
        self.x_dim = check_positive_int(x_dim, "x_dim")
        self.cond_dim = check_positive_int(cond_dim, "cond_dim", minimum=0)
        self.latent_dim = check_positive_int(latent_dim, "latent_dim")
        hidden = check_positive_int(hidden, "hidden")
        depth = check_positive_int(depth, "depth")
        if likelihood not in _LIKELIHOODS:
            raise ValueError(f"likelihood must be 'gaussian' or 'bernoulli', got {likelihood!r}")
        self.likelihood = likelihood
        self.noise_std = check_number(noise_std, "noise_std", positive=True)
        self.encoder = _mlp(self.x_dim + self.cond_dim, hidden, 2 * self.latent_dim, depth)
        self.decoder = _mlp(self.latent_dim + self.cond_dim, hidden, self.x_dim, depth)

    def _cond(self, c, n: int, like: torch.Tensor) -> torch.Tensor:
        if self.cond_dim == 0:
            return like.new_zeros(n, 0)
        if c is None:
            raise ValueError(f"this VAE is conditional: pass c with shape (n, {self.cond_dim})")
        c = torch.as_tensor(c, dtype=like.dtype, device=like.device)
        if c.shape != (n, self.cond_dim):
            raise ValueError(f"c must have shape ({n}, {self.cond_dim}), got {tuple(c.shape)}")
        return c

    def _check_x(self, x) -> torch.Tensor:
        p = next(self.parameters())
        x = torch.as_tensor(x, dtype=p.dtype, device=p.device)
        if x.dim() != 2 or x.shape[1] != self.x_dim:
            raise ValueError(f"x must have shape (n, {self.x_dim}), got {tuple(x.shape)}")
        return x

    def encode(self, x: torch.Tensor, c=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of ``q(z | x, c)``, each of shape ``(n, latent_dim)``."""
        h = self.encoder(torch.cat([x, self._cond(c, x.shape[0], x)], dim=-1))
        return h[..., : self.latent_dim], h[..., self.latent_dim:]

    def decode_logits(self, z: torch.Tensor, c=None) -> torch.Tensor:
        """The decoder's last layer: Bernoulli logits, or the Gaussian mean, shape ``(n, x_dim)``."""
        return self.decoder(torch.cat([z, self._cond(c, z.shape[0], z)], dim=-1))

    def decode(self, z: torch.Tensor, c=None) -> torch.Tensor:
        """Decoder mean ``E[x | z, c]``: pixel values, or Bernoulli probabilities in (0, 1); shape ``(n, x_dim)``."""
        out = self.decode_logits(z, c)
        return torch.sigmoid(out) if self.likelihood == "bernoulli" else out

    def forward(self, x: torch.Tensor, c, noise: torch.Tensor):
        """Reparameterised pass: ``(decode_logits(z, c), mu, logvar)`` for ``z = mu + exp(logvar / 2) * noise``."""
        mu, logvar = self.encode(x, c)
        z = mu + torch.exp(0.5 * logvar) * noise
        return self.decode_logits(z, c), mu, logvar

    def log_likelihood(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``log p(x | z, c)`` summed over pixels, from the decoder output ``out = decode_logits(z, c)``: shape (n,)."""
        if self.likelihood == "bernoulli":
            return -F.binary_cross_entropy_with_logits(out, x, reduction="none").sum(1)
        s2 = self.noise_std ** 2
        return -0.5 * (((x - out) ** 2) / s2 + math.log(2 * math.pi * s2)).sum(1)

    def elbo(self, x: torch.Tensor, c=None, generator=None) -> torch.Tensor:
        """Per-sample evidence lower bound (nats) with one reparameterised sample: shape (n,).

        ``ELBO(x) = E_q[log p(x | z, c)] - KL(q(z | x, c) || N(0, I))``. ``generator`` draws the
        sample (``None``, an int seed or a ``torch.Generator`` on the device of ``x``;
        :func:`causalbook_lib.utils.as_generator`).
        """
        x = self._check_x(x)
        generator = as_generator(generator, device=x.device)
        c = self._cond(c, x.shape[0], x)
        mu, logvar = self.encode(x, c)
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
        out = self.decode_logits(mu + torch.exp(0.5 * logvar) * eps, c)
        return self.log_likelihood(out, x) - gaussian_kl(mu, logvar).sum(1)

    @torch.no_grad()
    def generate(self, n: int, c=None, generator=None) -> torch.Tensor:
        """Decoder means for ``n`` prior draws ``z ~ N(0, I)`` (and conditions ``c`` of shape ``(n, cond_dim)``);
        ``generator`` as in :meth:`elbo`, on the device of the parameters."""
        n = check_positive_int(n, "n")
        p = next(self.parameters())
        generator = as_generator(generator, device=p.device)
        z = torch.randn(n, self.latent_dim, generator=generator, dtype=p.dtype, device=p.device)
        return self.decode(z, c)


@dataclass
class VAETrainingResult:
    """A trained model and its loss curves (one entry per logged step)."""

    model: nn.Module
    steps: list[int] = field(default_factory=list)
    reconstruction: list[float] = field(default_factory=list)
    kl: list[float] = field(default_factory=list)
    kl_per_latent: torch.Tensor | None = None


def train_conditional_vae(x: torch.Tensor, labels: torch.Tensor, *, n_classes: int = 10, n_latent: int = 10,
                          beta: float = 1.0, steps: int = 3000, batch_size: int = 64, lr: float = 1e-3,
                          hidden: int = 256, generator=None, log_every: int = 100) -> VAETrainingResult:
    """Train the conditional beta-VAE of Part III: minimise ``-E_q[log p(x | z, c)] + beta * KL(q(z|x,c) || N(0, I))``.

    The model is a :class:`ConditionalVAE` with ``cond_dim=n_classes`` (one-hot labels), two hidden
    layers and a Bernoulli likelihood. The reconstruction term is the Bernoulli negative
    log-likelihood summed over pixels, so ``beta = 1`` is the ordinary ELBO and ``beta > 1`` is the
    beta-VAE of Higgins et al. (2017). Each of the ``steps`` Adam steps draws a mini-batch with
    replacement. Book section: :doc:`chapter 10 </notebooks/10-vae-latents>`.

    Args:
        x: images, shape ``(n, n_pixels)``, values in [0, 1].
        labels: integer classes, shape ``(n,)``, values in ``0 .. n_classes - 1``.
        beta: weight of the KL term (> 0).
        generator: ``None``, an int seed or a ``torch.Generator`` (:func:`causalbook_lib.utils.as_generator`);
            it seeds the initial weights (:func:`causalbook_lib.utils.seeded_init`), then draws the
            mini-batches and the reparameterisation noise. Torch's global random state is left as it was.

    Returns:
        A :class:`VAETrainingResult` with the model (in eval mode) and the loss curves; its
        ``kl_per_latent`` holds the average KL of each ``z_k`` on the training set (nats, float64).

    Raises:
        ValueError: on shape mismatches, labels out of range, pixels outside [0, 1], or beta <= 0.
    """
    x, labels = check_features_labels(x, labels, n_classes=n_classes, y_name="labels")
    x = x.float()
    if bool((x < 0).any()) or bool((x > 1).any()):
        raise ValueError("x must hold pixel values in [0, 1] (Bernoulli targets)")
    check_number(beta, "beta", positive=True)
    steps = check_positive_int(steps, "steps")
    batch_size = check_positive_int(batch_size, "batch_size")
    gen = as_generator(generator, device=x.device)
    with seeded_init(gen):
        model = ConditionalVAE(x.shape[1], n_classes, n_latent, hidden, depth=2, likelihood="bernoulli").to(x.device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    onehot = F.one_hot(labels, n_classes).float()
    result = VAETrainingResult(model)
    for step in range(steps):
        idx = torch.randint(0, x.shape[0], (batch_size,), generator=gen, device=x.device)
        noise = torch.randn(batch_size, n_latent, generator=gen, device=x.device)
        logits, mu, logvar = model(x[idx], onehot[idx], noise)
        rec = F.binary_cross_entropy_with_logits(logits, x[idx], reduction="sum") / batch_size
        kl = gaussian_kl(mu, logvar).sum(-1).mean()
        loss = rec + beta * kl
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % log_every == 0 or step == steps - 1:
            result.steps.append(step)
            result.reconstruction.append(rec.item())
            result.kl.append(kl.item())
    model.eval()
    with torch.no_grad():
        mu, logvar = model.encode(x, onehot)
        result.kl_per_latent = gaussian_kl(mu, logvar).mean(0).double()
    return result


def train_vae(model: ConditionalVAE, x: torch.Tensor, c=None, *, epochs: int = 200, batch_size: int = 128,
              lr: float = 3e-3, generator=None) -> list[float]:
    """Fit a :class:`ConditionalVAE` by maximising the mean ELBO with Adam, epoch by epoch; return per-epoch mean -ELBO.

    Each epoch visits every point once, in an order drawn from ``generator`` (``None``, an int seed
    or a ``torch.Generator``, :func:`causalbook_lib.utils.as_generator`), which also draws the ELBO's
    noise. The model is the caller's, built and initialised before the call. Book section:
    :doc:`chapter 16 </notebooks/16-causal-generation>`.

    Raises:
        ValueError: shapes that do not match the model, or non-positive epochs / batch size / lr.
    """
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    check_number(lr, "lr", positive=True)
    x = model._check_x(x)
    c = model._cond(c, x.shape[0], x)
    gen = as_generator(generator, device=x.device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for _ in range(epochs):
        perm = torch.randperm(x.shape[0], generator=gen, device=x.device)
        total = 0.0
        for start in range(0, x.shape[0], batch_size):
            idx = perm[start:start + batch_size]
            loss = -model.elbo(x[idx], c[idx] if model.cond_dim else None, generator=gen).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        history.append(total / x.shape[0])
    return history
