"""Generative models and the causal effects of their latents (Part III).

:doc:`Chapter 10 </notebooks/10-vae-latents>`: a conditional beta-VAE on the 8x8 digits with ten
one-hot class latents ``c`` and ten continuous latents ``z``, and the average causal effect (ACE) of
each latent on every decoded pixel, computed by Monte Carlo from the interventional expectation
(Chattopadhyay et al. 2019, Sec. 5.4 and App. A.6.2). Part IV's explanation VAE of O'Shaughnessy et
al. (2020) lives in :mod:`causalbook_lib.explanations`; the VAE itself and its training, in
:mod:`causalbook_lib.vae`.

A *decoder* here is any callable ``decoder(z, c)`` mapping ``z`` of shape ``(batch, n_latent)`` and
one-hot ``c`` of shape ``(batch, n_classes)`` to Bernoulli pixel means of shape ``(batch, n_pixels)``.

All Monte Carlo estimates are batched (one decoder call per estimate, no Python loop over samples)
and accumulated in float64.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .models import eval_mode
from .utils import as_generator, check_finite, check_positive_int

__all__ = [
    # Part III: the ACE of a conditional VAE's latents
    "class_interventional_means",
    "class_ace",
    "LatentACE",
    "latent_ace",
    "latent_sweeps",
    "sweep_effect_strength",
]

Decoder = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check_decoder_output(theta: torch.Tensor, batch: int) -> None:
    if theta.dim() != 2 or theta.shape[0] != batch:
        raise ValueError(f"decoder must return shape (batch, n_pixels) with batch={batch}, got {tuple(theta.shape)}")
    check_finite(theta, "decoder output")


def class_interventional_means(decoder: Decoder, n_classes: int, n_latent: int, n_samples: int, *,
                               other_classes: str = "sample",
                               generator=None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Interventional pixel means ``E[x | do(c_k = 1)]`` and ``E[x | do(c_k = 0)]`` for every class ``k``.

    The two cases of Chattopadhyay et al. (2019), App. A.6.2, by Monte Carlo over the prior:

    * ``do(c_k = 1)``: the one-hot constraint forces every other ``c_i`` to 0, so
      :math:`E[x \mid do(c_k=1)] = E_{z \sim N(0, I)}[\theta(z, e_k)]`.
    * ``do(c_k = 0)``: the class is then uniform over the other ``n_classes - 1`` digits,
      :math:`E[x \mid do(c_k=0)] = E_{z \sim N(0, I),\, j \sim U(\{0..9\} \setminus k)}[\theta(z, e_j)]`.
      With ``other_classes="sample"`` the class ``j`` is drawn once per sample (the paper's
      estimator); with ``"enumerate"`` every ``j != k`` is used with weight ``1/(n_classes-1)``
      (exact in ``c``, Monte Carlo only in ``z``).

    All ``n_classes`` interventions are evaluated in one batched decoder call per case.
    Book section: :doc:`chapter 10 </notebooks/10-vae-latents>`.

    Args:
        decoder: ``decoder(z, c) -> theta``, shapes ``(B, n_latent)``, ``(B, n_classes)`` -> ``(B, n_pixels)``.
        n_samples: Monte Carlo samples of ``z`` per class.

    Returns:
        ``(mean_do1, mean_do0)``, each float64 of shape ``(n_classes, n_pixels)``.

    Raises:
        ValueError: on non-positive sizes, an unknown ``other_classes`` or a decoder output of the wrong shape.
    """
    n_classes = check_positive_int(n_classes, "n_classes", minimum=2)
    n_latent = check_positive_int(n_latent, "n_latent")
    n_samples = check_positive_int(n_samples, "n_samples")
    if other_classes not in ("sample", "enumerate"):
        raise ValueError(f"other_classes must be 'sample' or 'enumerate', got {other_classes!r}")
    gen = as_generator(generator)
    eye = torch.eye(n_classes)
    z = torch.randn(n_classes, n_samples, n_latent, generator=gen, device=gen.device)
    k = torch.arange(n_classes).repeat_interleave(n_samples)
    with torch.no_grad():
        theta1 = decoder(z.reshape(-1, n_latent), eye[k])
        _check_decoder_output(theta1, n_classes * n_samples)
        do1 = theta1.double().reshape(n_classes, n_samples, -1).mean(1)
        if other_classes == "sample":
            j = torch.randint(0, n_classes - 1, (n_classes, n_samples), generator=gen, device=gen.device)
            j = j + (j >= torch.arange(n_classes)[:, None]).long()     # skip class k itself
            theta0 = decoder(z.reshape(-1, n_latent), eye[j.reshape(-1)]).double()
            do0 = theta0.reshape(n_classes, n_samples, -1).mean(1)
        else:
            # theta(z, e_j) for every j on the same z draws; average over j != k exactly.
            theta_all = decoder(z.reshape(-1, n_latent).repeat(n_classes, 1),
                                eye.repeat_interleave(n_classes * n_samples, 0)).double()
            theta_all = theta_all.reshape(n_classes, n_classes, n_samples, -1).mean(2)  # (j, k, pixels)
            off = 1.0 - torch.eye(n_classes, dtype=torch.float64)                     # (k, j) weights
            do0 = torch.einsum("kj,jkp->kp", off, theta_all) / (n_classes - 1)
    return do1, do0


def class_ace(decoder: Decoder, n_classes: int, n_latent: int, n_samples: int, *, other_classes: str = "sample",
              generator=None) -> torch.Tensor:
    r"""ACE of every class latent on every pixel: :math:`E[x \mid do(c_k=1)] - E[x \mid do(c_k=0)]`.

    The baseline for a binary latent is the ``do(c_k = 0)`` expectation (Chattopadhyay et al. 2019,
    Sec. 5.4); see :func:`class_interventional_means` for both cases. Returns float64
    ``(n_classes, n_pixels)``. Raises ``ValueError`` as :func:`class_interventional_means`.
    """
    do1, do0 = class_interventional_means(decoder, n_classes, n_latent, n_samples,
                                          other_classes=other_classes, generator=generator)
    return do1 - do0


@dataclass
class LatentACE:
    """ACE of continuous latents under ``do(z_k = alpha), do(c_l = 1)``.

    Attributes:
        alphas: the intervention values, shape ``(n_alpha,)``.
        expectations: ``E[x | do(z_k = alpha), do(c_l = 1)]``, shape ``(n_latent, n_alpha, n_pixels)``.
        baseline: the mean of the expectations over a uniform ``alpha`` on the grid's range,
            shape ``(n_latent, n_pixels)``.
        ace: ``expectations - baseline``, shape ``(n_latent, n_alpha, n_pixels)``.
    """

    alphas: torch.Tensor
    expectations: torch.Tensor
    baseline: torch.Tensor
    ace: torch.Tensor

    def strength(self) -> torch.Tensor:
        """Root-mean-square ACE over alphas and pixels, one number per latent (``(n_latent,)``)."""
        return self.ace.pow(2).mean(dim=(1, 2)).sqrt()


def latent_ace(decoder: Decoder, label: int, n_classes: int, n_latent: int, alphas, n_samples: int, *,
               generator=None) -> LatentACE:
    r"""ACE of every continuous latent ``z_k`` on every pixel, with ``do(c_l = 1)`` for the class ``l = label``.

    Following Chattopadhyay et al. (2019), App. A.6.2: under ``do(z_k = alpha), do(c_l = 1)`` the
    other latents keep their prior ``N(0, I)`` and every ``c_{i != l}`` is 0, so

    .. math:: E[x \mid do(z_k=\alpha), do(c_l=1)] \approx \frac{1}{S}\sum_{s=1}^S
              \theta(z^{(s)}_{\setminus k}, z_k=\alpha, e_l).

    The baseline (their Sec. 4.1) averages this expectation over ``alpha`` uniform on
    ``[min(alphas), max(alphas)]``; with an evenly spaced grid it is the mean over the grid. The same
    ``S`` draws of ``z`` are reused for every ``alpha`` and every ``k`` (common random numbers), so
    the differences across ``alpha`` carry less Monte Carlo noise. One decoder call evaluates all
    ``n_latent * n_alpha * S`` latents. Book section: :doc:`chapter 10 </notebooks/10-vae-latents>`.

    Args:
        label: the class ``l`` that is switched on.
        alphas: 1-D increasing grid of intervention values (the paper uses [-3, 3]).
        n_samples: Monte Carlo samples ``S``.

    Returns:
        A :class:`LatentACE` (float64).

    Raises:
        ValueError: for a label out of range, an alpha grid that is not 1-D, finite and increasing,
            or a decoder output of the wrong shape.
    """
    n_classes = check_positive_int(n_classes, "n_classes", minimum=2)
    n_latent = check_positive_int(n_latent, "n_latent")
    n_samples = check_positive_int(n_samples, "n_samples")
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or not 0 <= label < n_classes:
        raise ValueError(f"label must be an integer in [0, {n_classes - 1}], got {label!r}")
    alphas = torch.as_tensor(alphas, dtype=torch.float32)
    if alphas.dim() != 1 or alphas.numel() < 2:
        raise ValueError(f"alphas must be a 1-D grid of at least 2 values, got shape {tuple(alphas.shape)}")
    check_finite(alphas, "alphas")
    if not bool((alphas[1:] > alphas[:-1]).all()):
        raise ValueError("alphas must be strictly increasing")
    gen = as_generator(generator)
    n_alpha = alphas.numel()
    z = torch.randn(n_samples, n_latent, generator=gen, device=gen.device)
    zz = z.expand(n_latent, n_alpha, n_samples, n_latent).clone()
    ks = torch.arange(n_latent)
    zz[ks, :, :, ks] = alphas[None, :, None].expand(n_latent, n_alpha, n_samples)
    c = torch.zeros(zz.shape[:-1] + (n_classes,))
    c[..., int(label)] = 1.0
    with torch.no_grad():
        theta = decoder(zz.reshape(-1, n_latent), c.reshape(-1, n_classes))
    _check_decoder_output(theta, zz[..., 0].numel())
    expect = theta.double().reshape(n_latent, n_alpha, n_samples, -1).mean(2)
    baseline = expect.mean(1)
    return LatentACE(alphas.double(), expect, baseline, expect - baseline[:, None, :])


def latent_sweeps(decode: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor, alphas) -> torch.Tensor:
    """Decoded latent sweeps: for each row of ``z`` and each latent ``k``, set ``z_k = alpha`` for every alpha.

    This is the picture of Chattopadhyay et al. (2019), Fig. 7 and O'Shaughnessy et al. (2020),
    Figs. 3 and 13 (there the sweep starts from an encoded data point). One batched call of ``decode``.

    An ``nn.Module`` or a bound method of one (``vae.decode``) is evaluated in eval mode and its
    training flags are restored afterwards; a plain function is called as it is.

    Args:
        decode: maps latents ``(B, n_latent)`` to images ``(B, n_pixels)`` (fix the class first, e.g.
            ``lambda z: vae.decode(z, onehot.expand(len(z), -1))``).
        z: starting latents, shape ``(n, n_latent)``.
        alphas: 1-D tensor of values, shape ``(n_alpha,)``.

    Returns:
        Images of shape ``(n, n_latent, n_alpha, n_pixels)``.

    Raises:
        ValueError: if ``z`` is not 2-D or ``alphas`` not 1-D, or either is not finite.
    """
    z = torch.as_tensor(z, dtype=torch.float32)
    alphas = torch.as_tensor(alphas, dtype=torch.float32)
    if z.dim() != 2:
        raise ValueError(f"z must have shape (n, n_latent), got {tuple(z.shape)}")
    if alphas.dim() != 1 or alphas.numel() < 1:
        raise ValueError(f"alphas must be a non-empty 1-D tensor, got shape {tuple(alphas.shape)}")
    check_finite(z, "z")
    check_finite(alphas, "alphas")
    n, d = z.shape
    m = alphas.numel()
    zz = z[:, None, None, :].expand(n, d, m, d).clone()
    ks = torch.arange(d)
    zz[:, ks, :, ks] = alphas[None, None, :].expand(d, n, m)
    with torch.no_grad(), eval_mode(decode):
        out = decode(zz.reshape(-1, d))
    if out.dim() != 2 or out.shape[0] != n * d * m:
        raise ValueError(f"decode must return shape (batch, n_pixels), got {tuple(out.shape)}")
    return out.reshape(n, d, m, -1)


def sweep_effect_strength(sweeps: torch.Tensor) -> torch.Tensor:
    """How much each latent changes the image in a sweep: the RMS over pixels of the per-pixel
    standard deviation along the sweep, averaged over starting points.

    Args:
        sweeps: output of :func:`latent_sweeps`, shape ``(n, n_latent, n_alpha, n_pixels)``.

    Returns:
        float64 tensor of shape ``(n_latent,)``.

    Raises:
        ValueError: if ``sweeps`` is not 4-D or has fewer than 2 sweep values.
    """
    sweeps = torch.as_tensor(sweeps)
    if sweeps.dim() != 4 or sweeps.shape[2] < 2:
        raise ValueError(f"sweeps must have shape (n, n_latent, n_alpha >= 2, n_pixels), got {tuple(sweeps.shape)}")
    s = sweeps.double().std(dim=2, unbiased=False)        # (n, n_latent, n_pixels)
    return s.pow(2).mean(-1).sqrt().mean(0)
