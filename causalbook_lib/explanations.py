"""Generative causal explanations (Part IV): O'Shaughnessy et al. (2020).

:doc:`Chapter 13 </notebooks/13-generative-causal-explanations>`: the explanation VAE, whose decoder
maps causal factors ``alpha`` and noncausal factors ``beta`` to images and is trained to maximise the
information flow ``C = I(alpha; Y)`` plus ``lambda`` times the evidence lower bound; the frozen
classifier it explains; and the evaluation tools of the paper's Sec. 5 (accuracy after re-sampling
one factor, latent counterfactuals). A decoder here maps one concatenated latent vector
``(batch, K + L)`` to images ``(batch, n_pixels)``, the interface of
:func:`causalbook_lib.infoflow.information_flow`. Latent sweeps are in
:func:`causalbook_lib.generative.latent_sweeps`.

All Monte Carlo estimates are batched and accumulated in float64.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .models import eval_mode
from .utils import as_generator, check_features_labels, check_finite, check_positive_int, check_shape, seeded_init
from .vae import gaussian_kl

__all__ = [
    "DigitCNN",
    "train_digit_classifier",
    "ExplanationVAE",
    "negative_elbo",
    "ExplainerHistory",
    "train_explainer",
    "FactorRemoval",
    "resampled_factor_accuracy",
    "single_factor_counterfactuals",
    "latent_counterfactuals",
]


class DigitCNN(nn.Module):
    """A small CNN for 8x8 digits that returns class *probabilities* (softmax), like the paper's Table 1.

    Layers: conv 3x3 (8 channels), ReLU, conv 3x3 (16), 2x2 max-pool, dropout, flatten, ReLU,
    linear (32), ReLU, dropout, linear (``n_classes``), softmax. The architecture mirrors
    O'Shaughnessy et al. (2020), App. E.1, Table 1, scaled down from 28x28 to 8x8 inputs. Inputs are
    flat rows of 64 pixels (or ``(batch, 1, 8, 8)`` images). Call :meth:`logits` for training.

    Two choices keep Captum's DeepLIFT / DeepSHAP exact on this network (their attributions sum to
    ``f(x) - f(baseline)``, tested in ``tests/unit/test_deepshap_completeness.py``):

    * The second ReLU comes after the max-pool, dropout and flatten, not before the max-pool as in
      Table 1. It is the same function (``max`` commutes with the increasing ReLU, and dropout scales
      by a non-negative factor), and training is the same too. But Captum 0.9 mishandles a supported
      nonlinearity that feeds another one directly (ReLU into max-pool): the upstream layer's rule
      sees the plain gradient instead of the downstream layer's DeepLIFT multiplier (Captum issue
      #1104), which breaks the summation property.
    * The softmax is a layer, ``self.softmax = nn.Softmax(dim=-1)``, so that DeepLIFT applies its
      softmax rule; a functional ``torch.softmax`` would be passed with its plain, saturated gradient.
      Captum's softmax rule itself is only approximately complete, so explain :meth:`logits` (see
      :meth:`logit_network`) when the sums matter.
    """

    def __init__(self, n_classes: int, dropout: float = 0.5):
        super().__init__()
        self.n_classes = check_positive_int(n_classes, "n_classes", minimum=2)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        self.features = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Conv2d(8, 16, 3),
                                      nn.MaxPool2d(2), nn.Dropout(dropout), nn.Flatten(), nn.ReLU(),
                                      nn.Linear(16 * 2 * 2, 32), nn.ReLU(), nn.Dropout(dropout),
                                      nn.Linear(32, n_classes))
        self.softmax = nn.Softmax(dim=-1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Unnormalised class scores, shape ``(batch, n_classes)``."""
        return self.features(x.reshape(-1, 1, 8, 8))

    def logit_network(self) -> nn.Module:
        """:meth:`logits` as a module of flat rows ``(batch, 64)``, for Captum's layer-wise explainers.

        It shares this network's layers (no copy), so explaining it with ``DeepLiftShap`` gives
        attributions that sum to the change of the logit (DeepLIFT's summation-to-delta).
        """
        return nn.Sequential(nn.Unflatten(1, (1, 8, 8)), self.features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities, shape ``(batch, n_classes)``."""
        return self.softmax(self.logits(x))


def train_digit_classifier(x, y, n_classes: int, *, steps: int = 1500, batch_size: int = 64, lr: float = 3e-3,
                           dropout: float = 0.5, generator=None) -> DigitCNN:
    """Train a :class:`DigitCNN` with Adam on cross-entropy, then freeze it and put it in eval mode.

    The returned classifier is the black box of :doc:`chapter 13 </notebooks/13-generative-causal-explanations>`: its
    parameters have ``requires_grad=False`` and dropout is off, so every later call is deterministic
    (O'Shaughnessy et al.'s code leaves dropout on while explaining).

    ``generator`` (``None``, an int seed or a ``torch.Generator``, :func:`causalbook_lib.utils.as_generator`)
    seeds the initial weights and the dropout masks (training runs under
    :func:`causalbook_lib.utils.seeded_init`) and draws the mini-batches, so one seed gives one model
    and torch's global random state is left as it was. The network is built on the device of ``x``.

    Args:
        x: images ``(n, 64)`` in [0, 1]; y: labels ``(n,)`` in ``0 .. n_classes - 1``.

    Raises:
        ValueError: on bad shapes or labels.
    """
    x, y = check_features_labels(x, y, n_classes=n_classes)
    x = x.float()
    steps = check_positive_int(steps, "steps")
    batch_size = check_positive_int(batch_size, "batch_size")
    gen = as_generator(generator, device=x.device)
    with seeded_init(gen):  # the initial weights and the dropout masks
        model = DigitCNN(n_classes, dropout).to(x.device)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        model.train()
        for _ in range(steps):
            idx = torch.randint(0, x.shape[0], (batch_size,), generator=gen, device=x.device)
            loss = F.cross_entropy(model.logits(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    model.requires_grad_(False)
    return model


class ExplanationVAE(nn.Module):
    """The generative map ``g`` of O'Shaughnessy et al. (2020): latents ``(alpha, beta)`` -> images.

    ``n_causal = K`` causal factors come first, then ``n_noncausal = L`` noncausal factors; both have
    the prior ``N(0, I)``. ``decoder`` is an ``nn.Sequential`` (linear, ReLU, linear, ReLU, linear,
    sigmoid) mapping ``(batch, K + L)`` to pixel means ``(batch, n_pixels)``, which is the decoder
    interface of :func:`causalbook_lib.infoflow.information_flow`. The encoder is the matching MLP
    returning the mean and log-variance of ``q(alpha, beta | x)``. The paper uses convolutional
    networks for 28x28 MNIST (their Table 2); for 8x8 digits two hidden layers suffice.
    """

    def __init__(self, n_causal: int, n_noncausal: int, n_pixels: int = 64, hidden: int = 128):
        super().__init__()
        self.n_causal = check_positive_int(n_causal, "n_causal", minimum=0)
        self.n_noncausal = check_positive_int(n_noncausal, "n_noncausal", minimum=0)
        self.latent_dim = self.n_causal + self.n_noncausal
        if self.latent_dim < 1:
            raise ValueError("n_causal + n_noncausal must be at least 1")
        self.n_pixels = check_positive_int(n_pixels, "n_pixels")
        hidden = check_positive_int(hidden, "hidden")
        d = self.latent_dim
        self.encoder = nn.Sequential(nn.Linear(n_pixels, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                     nn.Linear(hidden, 2 * d))
        self.decoder = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                     nn.Linear(hidden, n_pixels), nn.Sigmoid())

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of ``q(alpha, beta | x)``, each ``(batch, K + L)``."""
        h = self.encoder(x)
        return h[..., : self.latent_dim], h[..., self.latent_dim:]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images ``g(alpha, beta)`` of shape ``(batch, n_pixels)``."""
        return self.decoder(z)


def negative_elbo(vae: ExplanationVAE, x: torch.Tensor, noise: torch.Tensor,
                  pixel_weight: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The data-fidelity loss ``-D`` of the explanation VAE: weighted squared error plus KL, per sample.

    With a Gaussian likelihood of variance ``1 / (2 * pixel_weight)`` the negative ELBO is, up to a
    constant, :math:`w\\,\\|x - g(z)\\|^2 + \\mathrm{KL}(q(z\\mid x)\\,\\|\\,N(0, I))` with one
    reparameterised draw ``z = mu + sigma * noise``. With ``pixel_weight = 1`` this is the loss of
    O'Shaughnessy et al.'s code (sum of squared errors over pixels plus KL, averaged over the batch).
    On smaller images the squared-error sum shrinks with the pixel count while the KL does not;
    ``pixel_weight = 784 / n_pixels`` restores the balance the authors had on MNIST.

    Args:
        vae: an :class:`ExplanationVAE`; x: ``(batch, n_pixels)``; noise: ``(batch, K + L)`` standard normal.
        pixel_weight: weight ``w > 0`` of the squared error.

    Returns:
        ``(loss, kl)``: scalar tensors, the mean over the batch of SSE + KL, and of KL alone.

    Raises:
        ValueError: if ``noise`` does not have shape ``(batch, K + L)``.
    """
    check_shape(noise, "noise", (x.shape[0], vae.latent_dim))
    if not (isinstance(pixel_weight, (int, float)) and pixel_weight > 0 and math.isfinite(pixel_weight)):
        raise ValueError(f"pixel_weight must be a positive number, got {pixel_weight!r}")
    mu, logvar = vae.encode(x)
    z = mu + torch.exp(0.5 * logvar) * noise
    sse = pixel_weight * (vae.decode(z) - x).pow(2).sum(-1)
    kl = gaussian_kl(mu, logvar).sum(-1)
    return (sse + kl).mean(), kl.mean()


@dataclass
class ExplainerHistory:
    """Training curves of :func:`train_explainer`: the step, the estimate of ``C = I(alpha; Y)`` used
    in that step's objective (nats) and the data-fidelity loss ``-D`` (SSE + KL), plus wall seconds."""

    steps: list[int] = field(default_factory=list)
    information_flow: list[float] = field(default_factory=list)
    data_loss: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)


def train_explainer(vae: ExplanationVAE, classifier: nn.Module, x, *, lam: float, steps: int, batch_size: int = 64,
                    lr: float = 5e-4, n_alpha: int = 100, n_beta: int = 25,
                    pixel_weight: float = 1.0, generator=None, log_every: int = 10,
                    history: ExplainerHistory | None = None, estimator: str = "plugin") -> ExplainerHistory:
    """Maximise ``C(alpha, Y) + lam * D`` (objective (3) of O'Shaughnessy et al. 2020) with Adam.

    Each step draws a mini-batch for the ELBO term and ``n_alpha * n_beta`` prior latents for the
    information-flow term, estimated by :func:`causalbook_lib.infoflow.information_flow_objective`
    (one batched forward pass, float64 accumulation, classifier in eval mode). The loss minimised is
    ``-C + lam * (SSE + KL)``, as in the authors' code. With ``n_causal = 0`` only the data term is
    trained (Step 1 of their Algorithm 1). Book section:
    :doc:`chapter 13 </notebooks/13-generative-causal-explanations>`.

    Args:
        vae: the :class:`ExplanationVAE` to train (modified in place).
        classifier: the frozen classifier returning probabilities.
        x: training images ``(n, n_pixels)`` in [0, 1].
        lam: weight ``lambda >= 0`` of the data-fidelity term.
        steps: number of Adam steps; the paper uses 8000 with batch 64 and lr 5e-4.
        pixel_weight: weight of the squared error in ``-D`` (see :func:`negative_elbo`).
        history: pass a previous history to continue training (its step counter continues).
        estimator: the estimate of ``C``: ``"plugin"`` (the paper's, biased upwards by about
            :math:`1/N_\\beta`) or ``"bias_corrected"`` (``n_beta >= 2``; see
            :func:`causalbook_lib.infoflow.bias_corrected_information_flow`).

    Returns:
        An :class:`ExplainerHistory`.

    Raises:
        ValueError: on bad shapes, a negative ``lam`` or non-positive counts.
    """
    from . import infoflow
    import time

    x = torch.as_tensor(x, dtype=torch.float32)
    if x.dim() != 2 or x.shape[1] != vae.n_pixels:
        raise ValueError(f"x must have shape (n, {vae.n_pixels}), got {tuple(x.shape)}")
    check_finite(x, "x")
    if not isinstance(lam, (int, float)) or lam < 0 or not math.isfinite(lam):
        raise ValueError(f"lam must be a finite number >= 0, got {lam!r}")
    steps = check_positive_int(steps, "steps")
    batch_size = check_positive_int(batch_size, "batch_size")
    n_alpha = check_positive_int(n_alpha, "n_alpha")
    n_beta = check_positive_int(n_beta, "n_beta")
    infoflow._estimator(estimator, n_beta)  # an unknown estimator, or n_beta = 1 with the corrected one
    gen = as_generator(generator)
    hist = history if history is not None else ExplainerHistory()
    first = hist.steps[-1] + 1 if hist.steps else 0
    opt = torch.optim.Adam(vae.parameters(), lr=lr)
    classifier.requires_grad_(False)
    vae.train()
    start = time.perf_counter() - (hist.seconds[-1] if hist.seconds else 0.0)
    # chapter 13 shows the training step from here (literalinclude marker)
    for step in range(first, first + steps):
        idx = torch.randint(0, x.shape[0], (batch_size,), generator=gen, device=gen.device)
        noise = torch.randn(batch_size, vae.latent_dim, generator=gen, device=gen.device)
        data_loss, _ = negative_elbo(vae, x[idx], noise, pixel_weight)
        if vae.n_causal > 0:
            c = infoflow.information_flow_objective(vae.decoder, classifier, vae.n_causal, vae.n_noncausal,
                                                    n_alpha, n_beta, generator=gen, estimator=estimator)
        else:
            c = torch.zeros((), dtype=torch.float64)
        loss = -c + lam * data_loss.double() if vae.n_causal > 0 else data_loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        # chapter 13 shows the training step up to here (literalinclude marker)
        if (step - first) % log_every == 0 or step == first + steps - 1:
            hist.steps.append(step)
            hist.information_flow.append(c.item())
            hist.data_loss.append(data_loss.item())
            hist.seconds.append(time.perf_counter() - start)
    vae.eval()
    return hist


@dataclass
class FactorRemoval:
    """Classifier accuracy when one latent factor is re-drawn from the prior (Fig. 5b).

    Attributes:
        original: accuracy on the data as given.
        reencoded: accuracy on ``g(mu(x))`` (encoded and decoded, nothing changed).
        per_factor: accuracy after replacing factor ``i`` of ``mu(x)`` by a fresh ``N(0, 1)`` draw,
            a float64 tensor of shape ``(K + L,)`` on the device of the inputs.
    """

    original: float
    reencoded: float
    per_factor: torch.Tensor


def resampled_factor_accuracy(vae: ExplanationVAE, classifier: Callable, x, y, *,
                              generator=None) -> FactorRemoval:
    """Accuracy drop when the aspect controlled by one latent factor is removed (O'Shaughnessy et al. 2020, Sec. 5).

    Each image is encoded to its posterior mean ``mu(x)``; for every factor ``i`` the ``i``-th entry
    is replaced by an independent draw from ``N(0, 1)`` and the result decoded and classified. All
    ``(K + L) * n`` modified latents go through the decoder and classifier in one batch. The VAE and
    the classifier (when it is an ``nn.Module``) run in eval mode, so dropout is off; their training
    flags are restored afterwards. To keep dropout on, pass a plain function, ``lambda x: clf(x)``.

    Args:
        vae: trained :class:`ExplanationVAE`; classifier: returns probabilities; x: ``(n, n_pixels)``;
        y: labels ``(n,)``.

    Returns:
        A :class:`FactorRemoval`; its ``per_factor`` is a float64 tensor on the device of ``x``.

    Raises:
        ValueError: on bad shapes or labels.
    """
    x, y = check_features_labels(x, y)
    x = x.float()
    if x.shape[1] != vae.n_pixels:
        raise ValueError(f"x must have {vae.n_pixels} columns, got {x.shape[1]}")
    gen = as_generator(generator)
    d, n = vae.latent_dim, x.shape[0]
    with torch.no_grad(), eval_mode(vae, classifier):
        mu, _ = vae.encode(x)
        z = mu.expand(d, n, d).clone()
        ks = torch.arange(d)
        z[ks, :, ks] = torch.randn(d, n, generator=gen, device=gen.device).to(z)
        pred = classifier(vae.decode(z.reshape(-1, d))).argmax(-1).reshape(d, n)
        per = (pred == y[None, :].to(pred.device)).double().mean(1)
        re = float((classifier(vae.decode(mu)).argmax(-1) == y).double().mean())
        orig = float((classifier(x).argmax(-1) == y).double().mean())
    return FactorRemoval(orig, re, per)


def single_factor_counterfactuals(decode: Callable, classifier: Callable, z, *, max_shift: float = 4.0,
                                  n_grid: int = 161) -> tuple[torch.Tensor, torch.Tensor]:
    """Smallest change of ONE latent factor that flips the classifier's decision, by grid search.

    For each starting latent ``z[n]`` and factor ``i`` the shifts ``delta`` on an even grid over
    ``[-max_shift, max_shift]`` are tried (one batched decoder + classifier call for all
    ``n * (K+L) * n_grid`` candidates); the answer is the ``delta`` of smallest magnitude whose decoded
    image gets a different predicted class than ``decode(z[n])``. This is the counterfactual use of
    the learned latent space that O'Shaughnessy et al. (2020) suggest in their conclusion. A classifier
    or decoder that is an ``nn.Module`` (or a bound method of one) runs in eval mode, with its training
    flags restored afterwards; to keep dropout on, pass a plain function, ``lambda x: clf(x)``.

    Args:
        decode: latents ``(B, d)`` -> images; classifier: images -> probabilities ``(B, M)``.
        z: starting latents ``(n, d)``.
        max_shift: largest shift tried (> 0); n_grid: odd number of grid points (>= 3).

    Returns:
        ``(shift, new_class)``: float64 ``(n, d)`` with ``inf`` where no shift in range flips the
        decision, and the class reached (``-1`` where none).

    Raises:
        ValueError: for a bad ``z``, a non-positive ``max_shift`` or an even or too small ``n_grid``.
    """
    z = torch.as_tensor(z, dtype=torch.float32)
    if z.dim() != 2:
        raise ValueError(f"z must have shape (n, d), got {tuple(z.shape)}")
    check_finite(z, "z")
    if not (isinstance(max_shift, (int, float)) and max_shift > 0 and math.isfinite(max_shift)):
        raise ValueError(f"max_shift must be a positive number, got {max_shift!r}")
    n_grid = check_positive_int(n_grid, "n_grid", minimum=3)
    if n_grid % 2 == 0:
        raise ValueError(f"n_grid must be odd so that the grid contains 0, got {n_grid}")
    n, d = z.shape
    shifts = torch.linspace(-max_shift, max_shift, n_grid)
    cand = z[:, None, None, :].expand(n, d, n_grid, d).clone()
    ks = torch.arange(d)
    cand[:, ks, :, ks] += shifts[None, None, :]
    with torch.no_grad(), eval_mode(decode, classifier):
        base = classifier(decode(z)).argmax(-1)
        pred = classifier(decode(cand.reshape(-1, d))).argmax(-1).reshape(n, d, n_grid)
    flipped = pred != base[:, None, None]
    mag = shifts.abs().double().expand(n, d, n_grid)
    mag = torch.where(flipped, mag, torch.full_like(mag, math.inf))
    best, where = mag.min(-1)
    new_class = torch.where(torch.isfinite(best), pred.gather(-1, where[..., None])[..., 0], torch.full_like(base[:, None].expand(n, d), -1))
    signed = torch.where(torch.isfinite(best), shifts.double()[where], best)
    return signed, new_class


def latent_counterfactuals(decode: Callable, classifier: Callable, z, target, *, steps: int = 300, lr: float = 0.05,
                           confidence: float = 0.6, penalty: float = 10.0) -> torch.Tensor:
    """Small latent changes that make the classifier predict ``target``, by batched gradient descent.

    Minimises :math:`\\|\\delta\\|^2 + \\text{penalty}\\cdot\\max(0,\\; \\log c - \\log f_{t}(g(z+\\delta)))`
    over ``delta`` for every row at once (Adam), where ``c = confidence``: the change stops growing
    once the target class has probability ``c``. Unlike :func:`single_factor_counterfactuals` all
    factors may move, so the result shows *which* factors the smallest change uses. As there, modules
    run in eval mode and get their training flags back afterwards.

    Args:
        decode, classifier: as in :func:`single_factor_counterfactuals` (both differentiable).
        z: starting latents ``(n, d)``; target: desired classes ``(n,)``.
        steps, lr: Adam iterations and step size; confidence in (0, 1); penalty > 0.

    Returns:
        ``delta`` of shape ``(n, d)`` (detached).

    Raises:
        ValueError: on bad shapes or parameters out of range.
    """
    z = torch.as_tensor(z, dtype=torch.float32)
    if z.dim() != 2:
        raise ValueError(f"z must have shape (n, d), got {tuple(z.shape)}")
    check_finite(z, "z")
    target = torch.as_tensor(target).long()
    check_shape(target, "target", (z.shape[0],))
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if not penalty > 0:
        raise ValueError(f"penalty must be positive, got {penalty}")
    steps = check_positive_int(steps, "steps")
    delta = torch.zeros_like(z, requires_grad=True)
    opt = torch.optim.Adam([delta], lr=lr)
    log_c = math.log(confidence)
    with eval_mode(decode, classifier):
        for _ in range(steps):
            p = classifier(decode(z + delta))
            log_pt = torch.log(p.gather(-1, target[:, None])[:, 0].clamp_min(1e-12))
            loss = (delta.pow(2).sum(-1) + penalty * torch.relu(log_c - log_pt)).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return delta.detach()
