"""Information flow from latent factors to a classifier's output (Part IV).

O'Shaughnessy et al. (2020) explain a classifier :math:`f` with a generative map :math:`g` whose
latent factors split into causal factors :math:`\\alpha \\in \\mathbb{R}^K` and noncausal factors
:math:`\\beta \\in \\mathbb{R}^L`, drawn independently from :math:`\\mathcal{N}(0, I)`. Their causal
objective is the information flow :math:`I(\\alpha \\to Y)`, which equals the mutual information

.. math::

    I(\\alpha; Y) = H(Y) - \\mathbb{E}_\\alpha\\, H(Y \\mid \\alpha),\\qquad
    p(y \\mid \\alpha) = \\mathbb{E}_{\\beta}\\, f_y\\big(g(\\alpha, \\beta)\\big),

because the latents are independent (their Prop. 2; :doc:`chapter 11 </notebooks/11-information-flow>`).

This module provides

* :func:`information_flow`: the plug-in Monte Carlo estimate of :math:`I(\\alpha; Y)` (their
  App. D, Algorithm 2), computed in **one** batched forward pass of all
  :math:`N_\\alpha N_\\beta` latent vectors, accumulated in float64, with the classifier in eval mode;
* :func:`information_flow_objective`: the same estimate as a differentiable torch scalar, the
  training objective :math:`\\mathcal{C}` (gradients flow into the decoder);
* :func:`latent_information_flow`: the general form :math:`I(z_S; Y \\mid z_C)` for any subset
  :math:`S` of latent factors (the others are averaged as noise), optionally conditioned on a
  disjoint subset :math:`C`; this gives per-factor flows (Fig. 5a) and the objective variants
  :math:`\\mathcal{C}_{iu}, \\mathcal{C}_{ic}, \\mathcal{C}_{jc}` of their App. A;
* :func:`per_factor_information_flow`: :math:`I(z_i; Y)` for every latent factor at once;
* :func:`plugin_information_flow`: the estimator itself, from a table of classifier probabilities;
* :func:`linear_gaussian_information_flow`: the exact value for a probit classifier and a
  linear-Gaussian decoder (their Lemmas 7-8), by 1-D quadrature (chapter
  :doc:`12 </notebooks/12-linear-gaussian-explanations>`);
* :func:`bias_corrected_information_flow`: the plug-in estimate minus its first-order bias from too
  few :math:`\beta` draws (:doc:`chapter 11 </notebooks/11-information-flow>`);
* :func:`normal_quadrature_grid`, :func:`quadrature_conditional_mutual_information`,
  :func:`quadrature_conditional_dependence`: exact references for the sampling estimators, by
  tensor-product quadrature over the latents, for any joint weights on the grid;
* :func:`common_random_probabilities`: classifier probabilities for a batch of linear-Gaussian
  decoders on shared latents and noise (common random numbers);
* :func:`fit_linear_gaussian_explanation`: the optimal linear explanation of Prop. 3 by L-BFGS
  (:doc:`chapter 12 </notebooks/12-linear-gaussian-explanations>`);
* :class:`LinearGaussianDecoder`, :class:`HyperplaneClassifier`: the small models of Sec. 4.

Conventions: a *decoder* is a callable mapping latents of shape ``(batch, K + L)`` (causal factors
first) to inputs of shape ``(batch, ...)``; a *classifier* maps those inputs to class
probabilities of shape ``(batch, M)`` (rows on the simplex, not logits). Information is in nats.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .models import eval_mode
from .utils import accumulation_dtype, as_float_tensor, as_floating, as_generator, parameter_dtype, check_positive_int

__all__ = [
    "plugin_information_flow",
    "information_flow",
    "information_flow_objective",
    "latent_information_flow",
    "per_factor_information_flow",
    "linear_gaussian_information_flow",
    "linear_gaussian_information_flow_tensor",
    "gaussian_kl_from_standard",
    "latent_conditional_dependence",
    "information_flow_from_tables",
    "mutual_information",
    "binary_entropy",
    "normal_quadrature_grid",
    "quadrature_conditional_mutual_information",
    "quadrature_conditional_dependence",
    "bias_corrected_information_flow",
    "FLOW_ESTIMATORS",
    "common_random_probabilities",
    "fit_linear_gaussian_explanation",
    "LinearGaussianDecoder",
    "HyperplaneClassifier",
]

_TINY = 1e-300  # clamp inside log so that 0 log 0 = 0 with finite gradients (float64)


# ----------------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------------
def _entropy(p: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (nats) along the last axis; ``0 log 0 = 0`` and gradients stay finite."""
    return -(p * torch.log(p.clamp_min(_TINY))).sum(-1)


def binary_entropy(p) -> torch.Tensor:
    """Binary entropy :math:`h_b(p) = -p\\ln p - (1-p)\\ln(1-p)` in nats, elementwise, with :math:`0 \\ln 0 = 0`.

    Args:
        p: probabilities in [0, 1]: a tensor (its floating dtype and device are kept), a number or
            an array-like (float64).

    Returns:
        A tensor of the shape of ``p``.

    Raises:
        ValueError: an entry lies outside [0, 1] or is not finite.
    """
    p = p if isinstance(p, torch.Tensor) else torch.as_tensor(p, dtype=torch.float64)
    if not p.is_floating_point():
        p = p.to(torch.float64)
    if not bool(torch.isfinite(p).all()) or bool(((p < 0) | (p > 1)).any()):
        raise ValueError("binary_entropy needs probabilities in [0, 1]")
    return 0.0 - (torch.xlogy(p, p) + torch.xlogy(1 - p, 1 - p))  # 0.0 - (...): no -0.0 at p = 0 or 1


def _latent_dtype(decoder) -> torch.dtype:
    """The floating dtype of the decoder's first parameter, or float64 for parameter-free callables."""
    return parameter_dtype(decoder, torch.float64)


def _latent_generator(generator, decoder) -> torch.Generator:
    """``generator`` in the library's one meaning (:func:`causalbook_lib.utils.as_generator`); a new
    stream lives on the device of the decoder's first parameter (the CPU for plain callables), and
    the latents are drawn on the stream's device."""
    device = None
    if isinstance(decoder, nn.Module):
        device = next((p.device for p in decoder.parameters()), None)
    return as_generator(generator, device=device)


def _declared_latent_dim(decoder) -> int | None:
    """The latent size a decoder declares: a ``latent_dim`` attribute, or a leading ``nn.Linear``."""
    dim = getattr(decoder, "latent_dim", None)
    if isinstance(dim, (int, np.integer)) and not isinstance(dim, bool):
        return int(dim)
    if isinstance(decoder, nn.Sequential) and len(decoder) > 0 and isinstance(decoder[0], nn.Linear):
        return int(decoder[0].in_features)
    if isinstance(decoder, nn.Linear):
        return int(decoder.in_features)
    return None


def _check_subset(idx, name: str, n_latents: int) -> list[int]:
    try:
        out = [int(i) for i in idx]
    except TypeError as exc:
        raise ValueError(f"{name} must be a sequence of latent indices, got {idx!r}") from exc
    for i, raw in zip(out, idx):
        if isinstance(raw, bool) or not 0 <= i < n_latents or float(raw) != i:
            raise ValueError(f"{name} must hold integer indices in [0, {n_latents - 1}], got {list(idx)!r}")
    if len(set(out)) != len(out):
        raise ValueError(f"{name} must not repeat an index, got {out}")
    return out


#: Rows per decoder/classifier call when no gradient is needed: the estimates below draw up to
#: ~10^6 latents, and one batch of that size would hold gigabytes of activations.
DEFAULT_CHUNK_SIZE = 8192


def _forward(decoder, classifier, z: torch.Tensor, n_latents: int, chunk_size: int | None = None) -> torch.Tensor:
    """Run ``classifier(decoder(z))`` on a flat batch, validate, and return probabilities in the accumulation dtype (float64; float32 on MPS).

    Without gradients the batch goes through in chunks of ``chunk_size`` rows (one call with
    gradients, since the graph would hold every chunk anyway). ``None``: :data:`DEFAULT_CHUNK_SIZE`."""
    chunk_size = DEFAULT_CHUNK_SIZE if chunk_size is None else chunk_size
    if torch.is_grad_enabled() or z.shape[0] <= chunk_size:
        return _forward_once(decoder, classifier, z, n_latents)
    return torch.cat([_forward_once(decoder, classifier, part, n_latents) for part in z.split(chunk_size)])


def _forward_once(decoder, classifier, z: torch.Tensor, n_latents: int) -> torch.Tensor:
    declared = _declared_latent_dim(decoder)
    if declared is not None and declared != n_latents:
        raise ValueError(f"the decoder takes {declared} latent factors, but n_causal + n_noncausal = {n_latents}")
    try:
        x = decoder(z)
    except RuntimeError as exc:
        raise ValueError(f"the decoder failed on latents of shape {tuple(z.shape)} (K + L = {n_latents}); "
                         f"do the latent sizes match the decoder? ({exc})") from exc
    if not isinstance(x, torch.Tensor) or x.dim() < 1 or x.shape[0] != z.shape[0]:
        raise ValueError(f"the decoder must return a tensor with batch size {z.shape[0]}, "
                         f"got {type(x).__name__} of shape {tuple(getattr(x, 'shape', ()))}")
    with eval_mode(classifier):
        p = classifier(x)
    if not isinstance(p, torch.Tensor) or p.dim() != 2 or p.shape[0] != z.shape[0]:
        raise ValueError(f"the classifier must return probabilities of shape ({z.shape[0]}, M), "
                         f"got shape {tuple(getattr(p, 'shape', ()))}")
    p = p.to(accumulation_dtype(p))
    _check_probability_rows(p.detach())
    return p


def _check_probability_rows(p: torch.Tensor, atol: float = 1e-4) -> None:
    """Cheap check that the rows of ``p`` are probability vectors (finite, >= 0, sum to 1)."""
    lo = float(p.min())
    if not math.isfinite(lo) or not math.isfinite(float(p.max())):
        raise ValueError("the classifier outputs must be finite probabilities")
    if lo < -atol:
        raise ValueError(f"the classifier outputs must be probabilities, but one entry is {lo:.3g} < 0 "
                         f"(pass softmax probabilities, not logits)")
    err = float((p.sum(1) - 1.0).abs().max())
    if err > atol:
        raise ValueError(f"the classifier outputs must be probabilities whose rows sum to 1, but a row is off "
                         f"by {err:.3g} (pass softmax probabilities, not logits)")


# ----------------------------------------------------------------------------------------------
# the estimator
# ----------------------------------------------------------------------------------------------
def plugin_information_flow(probabilities: torch.Tensor) -> torch.Tensor:
    """The plug-in estimate of Algorithm 2 from a table of classifier probabilities.

    For one outer sample :math:`c` (the conditioning factors, if any), ``probabilities[c, i, j]`` is
    :math:`f(g(\\alpha^{(i)}, \\beta^{(j)}))`, the classifier's probability vector when the factors of
    interest take their ``i``-th value and the remaining factors their ``j``-th value. Then

    .. math::

        \\hat p(y\\mid\\alpha^{(i)}) = \\tfrac1{N_\\beta}\\sum_j p_{ij}(y),\\quad
        \\hat p(y) = \\tfrac1{N_\\alpha}\\sum_i \\hat p(y\\mid\\alpha^{(i)}),\\quad
        \\hat I = H(\\hat p(y)) - \\tfrac1{N_\\alpha}\\sum_i H(\\hat p(y\\mid\\alpha^{(i)})),

    averaged over the outer axis. Book: :doc:`chapter 11 </notebooks/11-information-flow>`, section on the estimator.

    Args:
        probabilities: tensor of shape ``(N_alpha, N_beta, M)`` or ``(N_c, N_alpha, N_beta, M)``.

    Returns:
        A scalar tensor in float64 (float32 on MPS, :func:`causalbook_lib.utils.accumulation_dtype`) (differentiable when the input requires grad).

    Raises:
        ValueError: wrong number of dimensions, or rows that are not probability vectors.
    """
    p = torch.as_tensor(probabilities)
    if p.dim() == 3:
        p = p.unsqueeze(0)
    if p.dim() != 4 or min(p.shape) < 1:
        raise ValueError(f"probabilities must have shape (N_alpha, N_beta, M) or (N_c, N_alpha, N_beta, M), "
                         f"got {tuple(p.shape)}")
    p = p.to(accumulation_dtype(p))
    _check_probability_rows(p.detach().reshape(-1, p.shape[-1]))
    p_y_given_alpha = p.mean(dim=2)                  # (N_c, N_alpha, M)
    p_y = p_y_given_alpha.mean(dim=1)                # (N_c, M)
    flow = _entropy(p_y) - _entropy(p_y_given_alpha).mean(dim=1)
    return flow.mean()


def _sample_latents(n_latents: int, factors: list[int], given: list[int], n_given: int, n_alpha: int,
                    n_beta: int, dtype: torch.dtype, generator: torch.Generator,
                    crossed: bool = False) -> torch.Tensor:
    """Latents of shape ``(n_given, n_alpha, n_beta, D)``: ``factors`` vary along axes 0-1 (along
    axis 1 only when ``crossed``), ``given`` along axis 0 only, the rest independently in every cell."""
    rest = [i for i in range(n_latents) if i not in factors and i not in given]
    kw = dict(generator=generator, dtype=dtype, device=generator.device)
    parts = [torch.randn(1 if crossed else n_given, n_alpha, 1, len(factors), **kw).expand(n_given, -1, n_beta, -1)]
    parts.append(torch.randn(n_given, n_alpha, n_beta, len(rest), **kw))
    if given:
        parts.append(torch.randn(n_given, 1, 1, len(given), **kw).expand(-1, n_alpha, n_beta, -1))
    z = torch.cat(parts, dim=-1)
    order = factors + rest + given
    if order != list(range(n_latents)):
        inverse = torch.empty(n_latents, dtype=torch.long, device=z.device)
        inverse[torch.tensor(order, device=z.device)] = torch.arange(n_latents, device=z.device)
        z = z[..., inverse]
    return z


def latent_information_flow(decoder: Callable, classifier: Callable, n_latents: int, factors: Sequence[int],
                            n_alpha: int, n_beta: int, *, given: Sequence[int] = (), n_given: int = 1,
                            generator=None, differentiable: bool = False,
                            estimator: str = "plugin"):
    """Information flow :math:`I(z_S \\to Y \\mid do(z_C)) = I(z_S; Y \\mid z_C)` from a subset of latents.

    All latents are independent :math:`\\mathcal{N}(0, 1)`. The factors ``S = factors`` are the
    "causes" of interest; the factors ``C = given`` are imposed (held fixed, then averaged over
    ``n_given`` draws, Def. 5 / Prop. 6 of O'Shaughnessy et al.); every other factor is averaged
    as noise. With ``S`` = the causal factors and ``C`` empty this is :func:`information_flow`;
    with ``S = [i]`` it is the flow of a single factor (Fig. 5a); with ``C`` = the noncausal factors
    it is :math:`\\mathcal{C}_{jc} = I(\\alpha; Y \\mid \\beta)`. When no factor is left as noise,
    ``n_beta`` counts repeated decoder calls (the paper's :math:`N_x`, useful for noisy decoders).

    One batch of ``n_given * n_alpha * n_beta`` latents goes through the decoder and the classifier
    (the classifier in eval mode, its modes restored afterwards); the estimate is accumulated in
    float64 by :func:`plugin_information_flow`. Book: chapters :doc:`11 </notebooks/11-information-flow>` and
    :doc:`12 </notebooks/12-linear-gaussian-explanations>`.

    Args:
        decoder: callable, latents ``(batch, n_latents)`` -> inputs ``(batch, ...)``.
        classifier: callable, inputs -> probabilities ``(batch, M)``.
        n_latents: total number of latent factors ``K + L``.
        factors: indices of the factors whose flow is measured (non-empty).
        n_alpha, n_beta: samples of the factors of interest, and of the noise factors per value.
        given: indices of imposed (conditioning) factors, disjoint from ``factors``.
        n_given: draws of the imposed factors (ignored when ``given`` is empty).
        generator: the latent draws: ``None``, an int seed or a ``torch.Generator``
            (:func:`causalbook_lib.utils.as_generator`), drawn on the generator's device.
        differentiable: return a torch scalar with gradients (else a Python float, under no_grad).
        estimator: ``"plugin"`` (:func:`plugin_information_flow`, the paper's) or ``"bias_corrected"``
            (:func:`bias_corrected_information_flow`, which needs ``n_beta >= 2``).

    Raises:
        ValueError: counts below 1, bad or overlapping index sets, latent sizes that do not match
            the decoder, classifier outputs that are not probabilities, or an unknown estimator.
    """
    n_latents = check_positive_int(n_latents, "n_latents")
    n_alpha = check_positive_int(n_alpha, "n_alpha")
    n_beta = check_positive_int(n_beta, "n_beta")
    estimate = _estimator(estimator, n_beta)
    factors = _check_subset(factors, "factors", n_latents)
    given = _check_subset(given, "given", n_latents)
    if not factors:
        raise ValueError("factors must name at least one latent factor")
    if set(factors) & set(given):
        raise ValueError(f"factors and given must be disjoint, both contain {sorted(set(factors) & set(given))}")
    n_given = check_positive_int(n_given, "n_given") if given else 1
    gen = _latent_generator(generator, decoder)
    z = _sample_latents(n_latents, factors, given, n_given, n_alpha, n_beta, _latent_dtype(decoder), gen)
    flat = z.reshape(-1, n_latents)
    if differentiable:
        p = _forward(decoder, classifier, flat, n_latents)
        return estimate(p.reshape(n_given, n_alpha, n_beta, -1))
    with torch.no_grad():
        p = _forward(decoder, classifier, flat, n_latents)
        return float(estimate(p.reshape(n_given, n_alpha, n_beta, -1)))


#: Estimators of the information flow from a table of probabilities.
FLOW_ESTIMATORS = ("plugin", "bias_corrected")


def _estimator(name: str, n_beta: int) -> Callable:
    if name not in FLOW_ESTIMATORS:
        raise ValueError(f"estimator must be one of {FLOW_ESTIMATORS}, got {name!r}")
    if name == "bias_corrected" and n_beta < 2:
        raise ValueError(f"the bias-corrected estimator needs n_beta >= 2 (a variance), got {n_beta}")
    return plugin_information_flow if name == "plugin" else bias_corrected_information_flow


def _causal_args(n_causal, n_noncausal):
    k = check_positive_int(n_causal, "n_causal")
    l_ = check_positive_int(n_noncausal, "n_noncausal", minimum=0)
    return k, l_


def information_flow(decoder: Callable, classifier: Callable, n_causal: int, n_noncausal: int, n_alpha: int,
                     n_beta: int, *, generator=None) -> float:
    """Plug-in estimate of the information flow :math:`I(\\alpha \\to Y) = I(\\alpha; Y)` in nats.

    Draws :math:`\\alpha^{(i)} \\sim \\mathcal{N}(0, I_K)` (``n_alpha`` of them) and, for every one,
    ``n_beta`` fresh :math:`\\beta^{(ij)} \\sim \\mathcal{N}(0, I_L)`; decodes all
    :math:`N_\\alpha N_\\beta` latents ``concat(alpha, beta)`` in one batch; averages the classifier
    probabilities over :math:`\\beta` to get :math:`\\hat p(y\\mid\\alpha^{(i)})` and returns
    :math:`H(\\hat p(y)) - \\frac1{N_\\alpha}\\sum_i H(\\hat p(y\\mid\\alpha^{(i)}))` (App. D, Algorithm 2
    of O'Shaughnessy et al. 2020 with :math:`N_x = 1`). The classifier runs in eval mode (dropout
    off; its modes are restored afterwards), without gradients, and the estimate is accumulated in
    float64. The estimator is biased upwards for small ``n_beta`` (see chapter
    :doc:`11 </notebooks/11-information-flow>`). For a training objective use :func:`information_flow_objective`.

    Args:
        decoder: callable, latents ``(batch, K + L)`` (causal factors first) -> inputs ``(batch, ...)``.
        classifier: callable, inputs -> class probabilities ``(batch, M)``.
        n_causal: K >= 1; n_noncausal: L >= 0.
        n_alpha, n_beta: Monte Carlo sample sizes :math:`N_\\alpha, N_\\beta` (>= 1).
        generator: as in :func:`latent_information_flow` (``None``, an int seed or a ``torch.Generator``).

    Returns:
        The estimate in nats, a Python float.

    Raises:
        ValueError: ``n_alpha`` or ``n_beta`` below 1, latent sizes that do not match the decoder,
            or classifier outputs that are not probabilities (negative, or rows not summing to 1).
    """
    k, l_ = _causal_args(n_causal, n_noncausal)
    return latent_information_flow(decoder, classifier, k + l_, list(range(k)), n_alpha, n_beta,
                                   generator=generator)


def information_flow_objective(decoder: Callable, classifier: Callable, n_causal: int, n_noncausal: int,
                               n_alpha: int, n_beta: int, *, factors: Sequence[int] | None = None,
                               generator=None, estimator: str = "plugin") -> torch.Tensor:
    """Differentiable :math:`\\hat I(\\alpha; Y)`: the causal term :math:`\\mathcal{C}` of objective (3).

    Same estimator and sampling as :func:`information_flow`, but the forward pass keeps the
    autograd graph, so ``loss = -(C + lam * D)``, ``loss.backward()`` sends gradients into the
    decoder's parameters (the latents are drawn from the prior, so no reparameterisation is needed).
    The classifier is put in eval mode during the call and restored afterwards; freeze its
    parameters (``requires_grad_(False)``) so that only the decoder is trained.

    Args:
        decoder, classifier, n_causal, n_noncausal, n_alpha, n_beta, generator: as in
            :func:`information_flow`.
        factors: optional subset of latent indices (into ``0 .. K+L-1``) whose flow is measured,
            the others treated as noise; default: the K causal factors. ``factors=[i]`` gives the
            flow of factor ``i`` alone.
        estimator: ``"plugin"`` (the paper's) or ``"bias_corrected"`` (``n_beta >= 2``), as in
            :func:`latent_information_flow`.

    Returns:
        A scalar tensor in nats, float64 (float32 on MPS).

    Raises:
        ValueError: as :func:`information_flow`.
    """
    k, l_ = _causal_args(n_causal, n_noncausal)
    chosen = list(range(k)) if factors is None else factors
    return latent_information_flow(decoder, classifier, k + l_, chosen, n_alpha, n_beta, generator=generator,
                                   differentiable=True, estimator=estimator)


def per_factor_information_flow(decoder: Callable, classifier: Callable, n_latents: int, n_alpha: int,
                                n_beta: int, *, generator=None) -> torch.Tensor:
    """:math:`I(z_i; Y)` for every latent factor ``i``, all other factors averaged as noise (Fig. 5a).

    Builds one batch of ``n_latents * n_alpha * n_beta`` latents (for block ``i``, factor ``i`` is
    shared along the ``n_beta`` axis and every other factor is fresh), runs one forward pass and
    applies :func:`plugin_information_flow` block by block.

    Args:
        decoder, classifier: as in :func:`information_flow`.
        n_latents: ``K + L``.
        n_alpha, n_beta: sample sizes per factor.
        generator: as in :func:`latent_information_flow`.

    Returns:
        A tensor (float64; float32 on MPS) of shape ``(n_latents,)``, in nats.

    Raises:
        ValueError: as :func:`information_flow`.
    """
    d = check_positive_int(n_latents, "n_latents")
    n_alpha = check_positive_int(n_alpha, "n_alpha")
    n_beta = check_positive_int(n_beta, "n_beta")
    gen = _latent_generator(generator, decoder)
    kw = dict(generator=gen, dtype=_latent_dtype(decoder), device=gen.device)
    z = torch.randn(d, n_alpha, n_beta, d, **kw)
    shared = torch.randn(d, n_alpha, 1, **kw).expand(-1, -1, n_beta)
    eye = torch.eye(d, dtype=torch.bool, device=gen.device)[:, None, None, :]          # block i replaces column i
    z = torch.where(eye, shared[..., None], z)
    with torch.no_grad():
        p = _forward(decoder, classifier, z.reshape(-1, d), d).reshape(d, n_alpha, n_beta, -1)
        return torch.stack([plugin_information_flow(p[i]) for i in range(d)])


# ----------------------------------------------------------------------------------------------
# linear-Gaussian ground truth (Sec. 4, Lemmas 7-8)
# ----------------------------------------------------------------------------------------------
def linear_gaussian_information_flow(a, w_alpha, W_beta, gamma: float) -> float:
    """Exact :math:`I(\\alpha; Y)` for a probit classifier and a linear-Gaussian decoder (Lemmas 7-8).

    Model: :math:`P(Y=1\\mid x) = \\Phi(a^\\top x)`, :math:`x = W_\\alpha\\alpha + W_\\beta\\beta +
    \\varepsilon`, :math:`\\alpha\\sim\\mathcal{N}(0,I_K)`, :math:`\\beta\\sim\\mathcal{N}(0,I_L)`,
    :math:`\\varepsilon\\sim\\mathcal{N}(0,\\gamma I)`. Then :math:`H(Y) = \\ln 2` (Lemma 7) and

    .. math::

        p(Y{=}1\\mid\\alpha) = \\Phi\\!\\Big(\\frac{a^\\top W_\\alpha\\alpha}{\\sqrt{1 + a^\\top W_\\beta
        W_\\beta^\\top a + \\gamma\\|a\\|^2}}\\Big),

    which depends on :math:`\\alpha` only through :math:`t = a^\\top W_\\alpha\\alpha / \\|W_\\alpha^\\top
    a\\| \\sim \\mathcal{N}(0,1)` (for :math:`K = 1`, :math:`W_\\alpha = w_\\alpha` and this is Lemma 8).
    Hence :math:`I = \\ln 2 - \\int \\varphi(t)\\, h_b(\\Phi(s t))\\,dt` with
    :math:`s = \\|W_\\alpha^\\top a\\| / \\sqrt{1 + a^\\top W_\\beta W_\\beta^\\top a + \\gamma\\|a\\|^2}`,
    integrated by adaptive 1-D quadrature (``scipy.integrate.quad``, log-CDFs for stability).
    Book: :doc:`chapter 11 </notebooks/11-information-flow>`, the closed form.

    Args:
        a: decision normal, shape ``(N,)``.
        w_alpha: causal directions, shape ``(N,)`` (K = 1) or ``(N, K)``.
        W_beta: noncausal directions, shape ``(N, L)``; ``(N, 0)`` or ``None`` when L = 0; a vector
            ``(N,)`` is read as one column.
        gamma: decoder noise variance, > 0.

    Returns:
        The exact information flow in nats (a float in ``[0, ln 2]``).

    Raises:
        ValueError: ``gamma <= 0``, shapes that do not agree, or non-finite entries.
    """
    from scipy import integrate, special

    if isinstance(gamma, bool) or not isinstance(gamma, (int, float, np.floating, np.integer)) \
            or not math.isfinite(float(gamma)) or float(gamma) <= 0:
        raise ValueError(f"gamma (the decoder noise variance) must be a finite number > 0, got {gamma!r}")
    a_t = as_float_tensor(a, "a")
    if a_t.dim() != 1 or a_t.numel() < 1:
        raise ValueError(f"a must be a vector of shape (N,), got {tuple(a_t.shape)}")
    n = a_t.numel()
    wa = as_float_tensor(w_alpha, "w_alpha")
    if wa.dim() == 1:
        wa = wa[:, None]
    if wa.dim() != 2 or wa.shape[0] != n or wa.shape[1] < 1:
        raise ValueError(f"w_alpha must have shape ({n},) or ({n}, K), got {tuple(torch.as_tensor(w_alpha).shape)}")
    if W_beta is None:
        wb = torch.zeros(n, 0, dtype=torch.float64, device=a_t.device)
    else:
        wb = as_float_tensor(W_beta, "W_beta")
        if wb.dim() == 1:
            wb = wb[:, None]
        if wb.dim() != 2 or wb.shape[0] != n:
            raise ValueError(f"W_beta must have shape ({n}, L), got {tuple(torch.as_tensor(W_beta).shape)}")
    signal = float(torch.linalg.vector_norm(wa.T @ a_t))
    spread = 1.0 + float((wb.T @ a_t).pow(2).sum()) + float(gamma) * float(a_t.pow(2).sum())
    s = signal / math.sqrt(spread)
    if s == 0.0:
        return 0.0

    def integrand(t: float) -> float:
        lp, lq = special.log_ndtr(s * t), special.log_ndtr(-s * t)
        h = -(math.exp(lp) * lp + math.exp(lq) * lq)
        return math.exp(-0.5 * t * t) / math.sqrt(2 * math.pi) * h

    # h_b(Phi(s t)) is even in t: integrate on [0, inf), split where the integrand changes fast.
    knot = min(8.0, 4.0 / s)
    head, _ = integrate.quad(integrand, 0.0, knot, epsabs=1e-13, epsrel=1e-12, limit=200)
    tail, _ = integrate.quad(integrand, knot, np.inf, epsabs=1e-13, epsrel=1e-12, limit=200)
    return float(max(0.0, math.log(2.0) - 2.0 * (head + tail)))


def _probit_snr(a, W_alpha, W_beta, gamma):
    """Torch version of the effective slope s of Lemma 8 (differentiable in W_alpha and W_beta)."""
    signal = torch.linalg.vector_norm(W_alpha.T @ a)
    spread = 1.0 + (W_beta.T @ a).pow(2).sum() + gamma * a.pow(2).sum()
    return signal / torch.sqrt(spread)


def linear_gaussian_information_flow_tensor(a, W_alpha, W_beta, gamma: float, n_nodes: int = 400) -> torch.Tensor:
    r"""Differentiable :func:`linear_gaussian_information_flow` (torch, float64), for optimising W.

    Same model and formula, :math:`I = \ln 2 - 2\int_0^{T} \varphi(t)\, h_b(\Phi(s t))\,dt`, with
    the integral done by Gauss-Legendre quadrature on ``n_nodes`` nodes over ``[0, T]``,
    ``T = 9`` (the tail beyond is below 1e-18). It agrees with the adaptive quadrature to about 1e-8; the
    book compares it with the adaptive-quadrature value (:doc:`chapter 12 </notebooks/12-linear-gaussian-explanations>`).

    Args:
        a: ``(N,)``; W_alpha: ``(N, K)`` or ``(N,)``; W_beta: ``(N, L)`` (L may be 0); tensors
            (gradients flow into them); gamma > 0; n_nodes >= 8.

    Raises:
        ValueError: ``gamma <= 0``, too few nodes or shapes that do not agree.
    """
    if not math.isfinite(float(gamma)) or float(gamma) <= 0:
        raise ValueError(f"gamma (the decoder noise variance) must be a finite number > 0, got {gamma!r}")
    n_nodes = check_positive_int(n_nodes, "n_nodes", minimum=8)
    a = torch.as_tensor(a, dtype=torch.float64)
    W_alpha = torch.as_tensor(W_alpha, dtype=torch.float64)
    W_beta = torch.as_tensor(W_beta, dtype=torch.float64)
    W_alpha = W_alpha[:, None] if W_alpha.dim() == 1 else W_alpha
    W_beta = W_beta[:, None] if W_beta.dim() == 1 else W_beta
    if a.dim() != 1 or W_alpha.dim() != 2 or W_beta.dim() != 2 or W_alpha.shape[0] != a.numel() \
            or W_beta.shape[0] != a.numel():
        raise ValueError(f"shapes do not agree: a {tuple(a.shape)}, W_alpha {tuple(W_alpha.shape)}, "
                         f"W_beta {tuple(W_beta.shape)}; expected (N,), (N, K), (N, L)")
    x, w = np.polynomial.legendre.leggauss(n_nodes)
    top = 9.0
    t = torch.as_tensor(0.5 * top * (x + 1.0), dtype=torch.float64)
    w = torch.as_tensor(0.5 * top * w, dtype=torch.float64)
    s = _probit_snr(a, W_alpha, W_beta, float(gamma))
    u = s * t
    lp, lq = torch.special.log_ndtr(u), torch.special.log_ndtr(-u)
    h = -(lp.exp() * lp + lq.exp() * lq)
    phi = torch.exp(-0.5 * t * t) / math.sqrt(2.0 * math.pi)
    return math.log(2.0) - 2.0 * (w * phi * h).sum()


def gaussian_kl_from_standard(cov: torch.Tensor) -> torch.Tensor:
    r""":math:`D_{KL}(\mathcal{N}(0, I)\,\|\,\mathcal{N}(0, \Sigma)) = \tfrac12(\operatorname{tr}
    \Sigma^{-1} + \ln|\Sigma| - N)`, the data-fidelity term of Prop. 3 (Lemma 9), differentiable.

    Args:
        cov: ``(N, N)`` symmetric positive-definite tensor (for the linear-Gaussian decoder,
            :math:`\Sigma = WW^\top + \gamma I`).

    Raises:
        ValueError: ``cov`` not square, or not positive definite.
    """
    cov = torch.as_tensor(cov, dtype=torch.float64)
    if cov.dim() != 2 or cov.shape[0] != cov.shape[1]:
        raise ValueError(f"cov must be a square matrix, got shape {tuple(cov.shape)}")
    chol, info = torch.linalg.cholesky_ex(cov)
    if int(info) != 0:
        raise ValueError("cov must be symmetric positive definite (its Cholesky factorisation failed)")
    n = cov.shape[0]
    inv_trace = torch.cholesky_inverse(chol).diagonal().sum()
    logdet = 2.0 * torch.log(chol.diagonal()).sum()
    return 0.5 * (inv_trace + logdet - n)


def latent_conditional_dependence(decoder: Callable, classifier: Callable, n_latents: int, first: Sequence[int],
                                  second: Sequence[int], n_first: int, n_second: int, n_rest: int, *,
                                  generator=None) -> float:
    r""":math:`I(z_A; z_B \mid Y)` between two disjoint groups of a-priori independent latents.

    Given :math:`Y` the latents become dependent ("explaining away"). Because :math:`z_A \perp z_B`,

    .. math::

        I(z_A; z_B \mid Y) = \mathbb{E}_{z_A, z_B}\sum_y p(y\mid z_A, z_B)
        \ln\frac{p(y\mid z_A, z_B)\, p(y)}{p(y\mid z_A)\, p(y\mid z_B)}.

    Estimated on a crossed design: ``n_first`` draws of :math:`z_A` times ``n_second`` draws of
    :math:`z_B`, and ``n_rest`` fresh draws of all other latents per pair (the decoder's noise
    replicates when no latent is left); one batched forward pass. This is the adjustment term of
    Prop. 4(c)-(d) of O'Shaughnessy et al., computed independently of the flows it relates
    (:doc:`chapter 12 </notebooks/12-linear-gaussian-explanations>`).

    Args:
        decoder, classifier: as in :func:`information_flow`.
        n_latents: ``K + L``; first, second: disjoint non-empty lists of latent indices.
        n_first, n_second, n_rest: sample sizes (>= 1).
        generator: as in :func:`latent_information_flow`.

    Returns:
        The estimate in nats (float).

    Raises:
        ValueError: bad counts, empty or overlapping groups, or outputs that are not probabilities.
    """
    d = check_positive_int(n_latents, "n_latents")
    na, nb, nr = (check_positive_int(n_first, "n_first"), check_positive_int(n_second, "n_second"),
                  check_positive_int(n_rest, "n_rest"))
    A, B = _check_subset(first, "first", d), _check_subset(second, "second", d)
    if not A or not B or set(A) & set(B):
        raise ValueError(f"first and second must be non-empty and disjoint, got {A} and {B}")
    # reuse the sampler: axis 0 = z_B (the 'given' slot), axis 1 = z_A, axis 2 = the rest
    gen = _latent_generator(generator, decoder)
    z = _sample_latents(d, A, B, nb, na, nr, _latent_dtype(decoder), gen, crossed=True)
    with torch.no_grad():
        p = _forward(decoder, classifier, z.reshape(-1, d), d).reshape(nb, na, nr, -1).mean(2)  # (nb, na, M)
    p_b = p.mean(1, keepdim=True)                 # p(y | z_B)
    p_a = p.mean(0, keepdim=True)                 # p(y | z_A)
    p_y = p.mean((0, 1), keepdim=True)            # p(y)
    log = lambda q: torch.log(q.clamp_min(_TINY))  # noqa: E731
    log_ratio = log(p) + log(p_y) - log(p_a) - log(p_b)
    return float((p * log_ratio).sum(-1).mean())


# ----------------------------------------------------------------------------------------------
# discrete ground truth (Def. 1, Prop. 2)
# ----------------------------------------------------------------------------------------------
def information_flow_from_tables(p_u, p_v_do_u) -> float:
    r"""Ay and Polani's information flow :math:`I(U \to V)` (Def. 1) for discrete variables.

    .. math::

        I(U\to V) = \sum_u p(u) \sum_v p(v\mid do(u))
        \ln\frac{p(v\mid do(u))}{\sum_{u'} p(u')\, p(v\mid do(u'))}.

    Args:
        p_u: ``(|U|,)`` probabilities of the cause (its observational marginal).
        p_v_do_u: ``(|U|, |V|)``, row ``u`` the interventional distribution :math:`p(v\mid do(u))`.

    Returns:
        The flow in nats.

    Raises:
        ValueError: entries outside [0, 1], rows not summing to 1, or shapes that do not agree.
    """
    pu = np.asarray(p_u, dtype=float)
    pv = np.asarray(p_v_do_u, dtype=float)
    if pu.ndim != 1 or pv.ndim != 2 or pv.shape[0] != pu.shape[0]:
        raise ValueError(f"p_u must be (|U|,) and p_v_do_u (|U|, |V|), got {pu.shape} and {pv.shape}")
    for arr, name in ((pu[None, :], "p_u"), (pv, "p_v_do_u")):
        if not np.all(np.isfinite(arr)) or np.any(arr < 0) or not np.allclose(arr.sum(-1), 1.0, atol=1e-9):
            raise ValueError(f"the rows of {name} must be probability vectors")
    mix = pu @ pv
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(pv > 0, pv * np.log(np.where(pv > 0, pv, 1.0) / np.where(mix > 0, mix, 1.0)), 0.0)
    return float(pu @ terms.sum(1))


def mutual_information(joint) -> float:
    """Mutual information :math:`I(U; V)` in nats of a discrete joint table ``joint[u, v]``.

    Raises:
        ValueError: negative entries, or a table that does not sum to 1.
    """
    j = np.asarray(joint, dtype=float)
    if j.ndim != 2 or not np.all(np.isfinite(j)) or np.any(j < 0) or abs(j.sum() - 1.0) > 1e-9:
        raise ValueError("joint must be a 2-D table of probabilities summing to 1")
    outer = j.sum(1, keepdims=True) * j.sum(0, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.where(j > 0, j * np.log(np.where(j > 0, j, 1.0) / np.where(outer > 0, outer, 1.0)), 0.0).sum())


# ----------------------------------------------------------------------------------------------
# exact references by quadrature on a latent grid, the bias-corrected plug-in estimator, and the
# linear-Gaussian explanation fit (chapters 11-12)
# ----------------------------------------------------------------------------------------------
def normal_quadrature_grid(n_nodes: int = 64, n_dims: int = 1, half_width: float = 7.0):
    r"""Tensor-product Gauss-Legendre grid for expectations over :math:`z \sim \mathcal{N}(0, I_d)`.

    Each axis uses ``n_nodes`` Gauss-Legendre nodes on ``[-half_width, half_width]``, weighted by the
    standard normal density and normalised to sum to one; the ``n_dims``-dimensional weights are
    the outer product of the axis weights. Then :math:`\mathbb{E} f(z) \approx \sum w\, f(\text{points})`.
    Book: :doc:`chapter 12 </notebooks/12-linear-gaussian-explanations>`, Prop. 4 on a grid.

    Args:
        n_nodes: nodes per axis (>= 2).
        n_dims: number of latent axes (>= 1).
        half_width: finite number > 0, the half-width of the integration box.

    Returns:
        ``(points, weights)``: float64 tensors of shapes ``(n_nodes,) * n_dims + (n_dims,)`` and
        ``(n_nodes,) * n_dims``.

    Raises:
        ValueError: too few nodes or dimensions, or a half-width that is not a finite number > 0.
    """
    n_nodes = check_positive_int(n_nodes, "n_nodes", minimum=2)
    n_dims = check_positive_int(n_dims, "n_dims", minimum=1)
    try:
        half_width = float(half_width)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"half_width must be a finite number > 0, got {half_width!r}") from exc
    if not math.isfinite(half_width) or half_width <= 0:
        raise ValueError(f"half_width must be a finite number > 0, got {half_width!r}")
    x, w = np.polynomial.legendre.leggauss(n_nodes)
    nodes = torch.as_tensor(half_width * x, dtype=torch.float64)
    weights = torch.as_tensor(half_width * w, dtype=torch.float64) * torch.exp(-0.5 * nodes ** 2) \
        / math.sqrt(2.0 * math.pi)
    weights = weights / weights.sum()
    points = torch.stack(torch.meshgrid(*([nodes] * n_dims), indexing="ij"), -1)
    grid_weights = weights
    for _ in range(n_dims - 1):
        grid_weights = grid_weights[..., None] * weights
    return points, grid_weights


def _check_grid(probabilities, weights):
    """Validate a table ``p(y | z)`` on a latent grid and its joint weights; return float64 tensors."""
    p = as_float_tensor(probabilities, "probabilities")
    w = as_float_tensor(weights, "weights")
    if w.dim() < 1 or p.dim() != w.dim() + 1 or tuple(p.shape[:-1]) != tuple(w.shape) or p.shape[-1] < 1:
        raise ValueError(f"probabilities must have shape weights.shape + (M,) = (*grid, M), got probabilities "
                         f"{tuple(p.shape)} and weights {tuple(w.shape)}")
    _check_probability_rows(p.reshape(-1, p.shape[-1]))
    if bool((w < 0).any()) or float(w.sum()) <= 0:
        raise ValueError("weights must be non-negative with a positive sum (a joint distribution over the grid)")
    return p, w / w.sum()


def _grid_axes(idx, name: str, n_axes: int, allow_empty: bool = True) -> list[int]:
    idx = _check_subset(idx, name, n_axes)
    if not idx and not allow_empty:
        raise ValueError(f"{name} must name at least one latent axis (integers in 0..{n_axes - 1})")
    return idx


def _grid_conditional(p: torch.Tensor, w: torch.Tensor, keep: Sequence[int]) -> torch.Tensor:
    """:math:`p(y \\mid z_{keep}) = \\sum_{rest} w\\,p(y\\mid z) / \\sum_{rest} w` (joint weights), as size-1 axes."""
    rest = tuple(i for i in range(w.dim()) if i not in keep)
    if not rest:
        return p
    num = (p * w[..., None]).sum(rest, keepdim=True)
    den = w.sum(rest, keepdim=True)[..., None]
    return num / den.clamp_min(_TINY)


def _grid_entropy(p: torch.Tensor) -> torch.Tensor:
    return -torch.special.xlogy(p, p).sum(-1)


def quadrature_conditional_mutual_information(probabilities, weights, factors: Sequence[int],
                                              given: Sequence[int] = ()) -> torch.Tensor:
    r"""Exact-reference :math:`I(z_S; Y \mid z_C)` from a table of :math:`p(y \mid z)` on a latent grid.

    The latents :math:`z` take the grid's points with joint probabilities ``weights`` (any joint
    distribution, e.g. the product weights of :func:`normal_quadrature_grid`, or a reweighting that
    correlates axes). Conditioning uses the joint weights,
    :math:`p(y \mid z_K) = \sum_{\text{rest}} w\, p(y\mid z) / \sum_{\text{rest}} w`, and

    .. math::

        I(z_S; Y \mid z_C) = \mathbb{E}_w\big[H(p(y \mid z_C))\big] - \mathbb{E}_w\big[H(p(y \mid z_S, z_C))\big],

    the axes outside :math:`S \cup C` being averaged as noise. With ``given=()`` this is the
    information flow :math:`I(z_S; Y)` that :func:`latent_information_flow` estimates by sampling,
    so the two can be compared. Book: :doc:`chapter 12 </notebooks/12-linear-gaussian-explanations>`.

    Args:
        probabilities: ``(*grid, M)``, rows on the simplex (``probabilities[..., y]`` is :math:`p(y\mid z)`).
        weights: ``(*grid,)``, non-negative (normalised here to sum to one).
        factors: the axes :math:`S` (non-empty).
        given: the axes :math:`C`, disjoint from ``factors``.

    Returns:
        A float64 scalar tensor (nats).

    Raises:
        ValueError: shapes that do not agree, rows that are not probabilities, negative weights, or
            axes that are out of range, repeated or shared between ``factors`` and ``given``.
    """
    p, w = _check_grid(probabilities, weights)
    S = _grid_axes(factors, "factors", w.dim(), allow_empty=False)
    C = _grid_axes(given, "given", w.dim())
    if set(S) & set(C):
        raise ValueError(f"factors {S} and given {C} must be disjoint")
    h_c = _grid_entropy(_grid_conditional(p, w, C))
    h_sc = _grid_entropy(_grid_conditional(p, w, S + C))
    return (w * (h_c.expand(w.shape) - h_sc.expand(w.shape))).sum()


def quadrature_conditional_dependence(probabilities, weights, first: Sequence[int],
                                      second: Sequence[int]) -> torch.Tensor:
    r"""Exact-reference :math:`I(z_A; z_B \mid Y)` ("explaining away") from :math:`p(y \mid z)` on a grid.

    By Bayes' rule, with :math:`p(y \mid z_K)` conditioned with the joint weights as in
    :func:`quadrature_conditional_mutual_information`,

    .. math::

        I(z_A; z_B \mid Y) = \mathbb{E}\Big[\ln\frac{p(y\mid z_A, z_B)\, p(y)}{p(y\mid z_A)\, p(y\mid z_B)}\Big]
        + I(z_A; z_B),

    where the second term, the dependence of the latents themselves under ``weights``, vanishes for
    product weights. The sampling counterpart is :func:`latent_conditional_dependence`.
    Book: :doc:`chapter 12 </notebooks/12-linear-gaussian-explanations>`, Prop. 4(c-d).

    Args:
        probabilities: ``(*grid, M)``, as in :func:`quadrature_conditional_mutual_information`.
        weights: ``(*grid,)``, as in :func:`quadrature_conditional_mutual_information`.
        first, second: disjoint, non-empty lists of axes :math:`A` and :math:`B`.

    Returns:
        A float64 scalar tensor (nats).

    Raises:
        ValueError: as for :func:`quadrature_conditional_mutual_information`.
    """
    p, w = _check_grid(probabilities, weights)
    A = _grid_axes(first, "first", w.dim(), allow_empty=False)
    B = _grid_axes(second, "second", w.dim(), allow_empty=False)
    if set(A) & set(B):
        raise ValueError(f"first {A} and second {B} must be disjoint")
    p_ab, p_a = _grid_conditional(p, w, A + B), _grid_conditional(p, w, A)
    p_b, p_y = _grid_conditional(p, w, B), _grid_conditional(p, w, [])
    log = lambda q: torch.log(q.clamp_min(_TINY))
    log_ratio = log(p_ab) + log(p_y) - log(p_a) - log(p_b)
    ratio_term = (w * (p_ab * log_ratio).sum(-1).expand(w.shape)).sum()
    rest = tuple(i for i in range(w.dim()) if i not in A + B)
    w_ab = w.sum(rest, keepdim=True) if rest else w
    w_a, w_b = w_ab.sum(tuple(B), keepdim=True), w_ab.sum(tuple(A), keepdim=True)
    latent_mi = torch.special.xlogy(w_ab, w_ab / (w_a * w_b).clamp_min(_TINY)).sum()
    return ratio_term + latent_mi


def bias_corrected_information_flow(probabilities: torch.Tensor) -> torch.Tensor:
    r""":func:`plugin_information_flow` minus its first-order bias from too few :math:`\beta` draws.

    A second-order expansion of the entropy around :math:`p(y \mid \alpha)` gives the upward bias
    :math:`\frac1{N_\beta}\mathbb{E}_\alpha \sum_y v_{\alpha y} / (2 p(y\mid\alpha))`, with
    :math:`v_{\alpha y} = \operatorname{Var}_\beta f_y(g(\alpha, \beta))`; for two classes this is
    :math:`\frac1{N_\beta}\mathbb{E}_\alpha [v_\alpha / (2 p_\alpha (1-p_\alpha))]`
    (:doc:`chapter 11 </notebooks/11-information-flow>`, Eq. ``ch11-eq-bias``). The estimator
    subtracts this term with plug-in values: :math:`\hat p` the mean and :math:`\hat v` the unbiased
    sample variance of the :math:`N_\beta` probabilities of each :math:`\alpha^{(i)}`. The
    downward :math:`1/N_\alpha` term is left in.

    Args:
        probabilities: ``(N_alpha, N_beta, M)`` or ``(N_c, N_alpha, N_beta, M)`` as for
            :func:`plugin_information_flow`, with ``N_beta >= 2``.

    Returns:
        A scalar tensor (nats; float64, float32 on MPS); it can be negative when the flow is near zero.

    Raises:
        ValueError: wrong shape, ``N_beta < 2``, or rows that are not probability vectors.
    """
    p = torch.as_tensor(probabilities)
    if p.dim() == 3:
        p = p.unsqueeze(0)
    if p.dim() != 4 or min(p.shape) < 1 or p.shape[2] < 2:
        raise ValueError(f"probabilities must have shape (N_alpha, N_beta, M) or (N_c, N_alpha, N_beta, M) "
                         f"with N_beta >= 2 (the variance needs two draws), got {tuple(p.shape)}")
    p = p.to(accumulation_dtype(p))
    plain = plugin_information_flow(p)
    n_beta = p.shape[2]
    if p.shape[-1] == 2:
        p1 = p[..., 1]
        pa, va = p1.mean(2), p1.var(2)
        correction = (va / (2 * (pa * (1 - pa)).clamp_min(1e-12))).mean()
    else:
        pa, va = p.mean(2), p.var(2)
        correction = (va / (2 * pa.clamp_min(1e-12))).sum(-1).mean()
    return plain - correction / n_beta


def common_random_probabilities(W, gamma: float, classifier: Callable, latents: torch.Tensor, *,
                                generator=None) -> torch.Tensor:
    r"""Classifier probabilities for many linear-Gaussian decoders on the **same** latents and noise.

    For every decoder :math:`W_g` (columns: the latent directions) the input is
    :math:`x = W_g z + \varepsilon` with :math:`\varepsilon \sim \mathcal{N}(0, \gamma I)`, and one
    draw of :math:`\varepsilon` per latent vector serves every decoder (common random numbers), so
    differences between decoders are not drowned by sampling noise. All decoders go through the
    classifier in one batched call. Book: :doc:`chapter 12 </notebooks/12-linear-gaussian-explanations>`,
    the landscapes of Fig. 8.

    Args:
        W: ``(G, N, D)`` decoder matrices (or ``(N, D)`` for one decoder).
        gamma: finite noise variance >= 0.
        classifier: maps ``(batch, N)`` inputs to ``(batch, M)`` probabilities.
        latents: ``(..., D)`` latent vectors, typically with the structure that
            :func:`plugin_information_flow` expects (e.g. ``(N_alpha, N_beta, D)``).
        generator: the noise: ``None``, an int seed or a ``torch.Generator`` on the device of ``W``
            (:func:`causalbook_lib.utils.as_generator`).

    Returns:
        float64 tensor of shape ``(G, ..., M)`` (``G = 1`` for a single decoder).

    Raises:
        ValueError: shapes that do not agree, a bad ``gamma`` or generator, or outputs that are not
            probabilities.
    """
    W = as_float_tensor(W, "W")
    W = W.unsqueeze(0) if W.dim() == 2 else W
    z = as_float_tensor(latents, "latents")
    if W.dim() != 3 or z.dim() < 1 or z.shape[-1] != W.shape[-1]:
        raise ValueError(f"W must have shape (G, N, D) or (N, D) and latents (..., D) with the same D, got W "
                         f"{tuple(W.shape)} and latents {tuple(z.shape)}")
    try:
        gamma = float(gamma)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"gamma must be a finite number >= 0, got {gamma!r}") from exc
    if not math.isfinite(gamma) or gamma < 0:
        raise ValueError(f"gamma (the decoder noise variance) must be a finite number >= 0, got {gamma!r}")
    gen = as_generator(generator, device=W.device)
    n = W.shape[1]
    noise = math.sqrt(gamma) * torch.randn(*z.shape[:-1], n, generator=gen, dtype=torch.float64, device=W.device)
    x = torch.einsum("gnd,...d->g...n", W, z) + noise
    with torch.no_grad():
        p = torch.as_tensor(classifier(x.reshape(-1, n))).to(torch.float64)
    if p.dim() != 2 or p.shape[0] != x.numel() // n:
        raise ValueError(f"the classifier must return (batch, M) probabilities, got shape {tuple(p.shape)}")
    _check_probability_rows(p)
    return p.reshape(*x.shape[:-1], p.shape[-1])


def fit_linear_gaussian_explanation(a, lam: float, gamma: float, *, constrained: bool = True,
                                    generator=0, max_iter: int = 100,
                                    n_nodes: int = 200) -> torch.Tensor:
    r"""Maximise :math:`\mathcal{C} + \lambda\mathcal{D}` over an :math:`N \times N` linear-Gaussian decoder.

    The model of Prop. 3: a probit classifier :math:`\Phi(a^\top x)`, :math:`x = W z + \varepsilon`,
    :math:`K = 1` causal factor (the first column of :math:`W`) and :math:`L = N - 1` noncausal
    ones. :math:`\mathcal{C}` is :func:`linear_gaussian_information_flow_tensor` and
    :math:`\mathcal{D} = -D_{KL}` (:func:`gaussian_kl_from_standard` of :math:`WW^\top + \gamma I`).
    From a random start, L-BFGS (strong Wolfe line search) optimises :math:`V`, with
    :math:`W = \sqrt{1-\gamma}\, V / \lVert V\rVert_{\text{columns}}` when ``constrained`` (the norm
    assumption of Prop. 3) and :math:`W = V` otherwise. Book:
    :doc:`chapter 12 </notebooks/12-linear-gaussian-explanations>`, Prop. 3.

    Args:
        a: ``(N,)`` classifier normal, N >= 2.
        lam: finite weight >= 0 of the fidelity term.
        gamma: decoder noise variance in (0, 1).
        constrained: fix the column norms at :math:`\sqrt{1-\gamma}`.
        generator: the random start (``None``, an int seed or a ``torch.Generator``, as in
            :func:`causalbook_lib.utils.as_generator`).
        max_iter: L-BFGS iterations.
        n_nodes: quadrature nodes of :math:`\mathcal{C}`.

    Returns:
        The fitted ``W`` (float64, ``(N, N)``, detached).

    Raises:
        ValueError: bad shapes, ``lam``, ``gamma``, ``max_iter`` or generator.
    """
    a = as_float_tensor(a, "a")
    if a.dim() != 1 or a.numel() < 2:
        raise ValueError(f"a must be a vector of length N >= 2, got shape {tuple(a.shape)}")
    for name, value, low_ok in (("lam", lam, True), ("gamma", gamma, False)):
        try:
            ok = not isinstance(value, bool) and math.isfinite(float(value)) and (float(value) > 0 or
                                                                                 (low_ok and float(value) == 0))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"{name} must be a finite number {'>= 0' if low_ok else '> 0'}, got {value!r}")
    lam, gamma = float(lam), float(gamma)
    if gamma >= 1:
        raise ValueError(f"gamma must be < 1 (the columns have norm sqrt(1 - gamma)), got {gamma!r}")
    max_iter = check_positive_int(max_iter, "max_iter")
    gen = as_generator(generator)
    n = a.numel()
    V = torch.randn(n, n, generator=gen, dtype=torch.float64, device=gen.device).requires_grad_()
    scale = math.sqrt(1 - gamma)
    to_W = (lambda V: scale * V / V.norm(dim=0)) if constrained else (lambda V: V)
    eye = torch.eye(n, dtype=torch.float64, device=gen.device)
    opt = torch.optim.LBFGS([V], max_iter=max_iter, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-12, tolerance_change=1e-14)

    def closure():
        opt.zero_grad()
        W = to_W(V)
        C = linear_gaussian_information_flow_tensor(a, W[:, 0], W[:, 1:], gamma, n_nodes=n_nodes)
        D = -gaussian_kl_from_standard(W @ W.T + gamma * eye)
        loss = -(C + lam * D)
        loss.backward()
        return loss

    opt.step(closure)
    return to_W(V).detach()


# ----------------------------------------------------------------------------------------------
# the small models of Sec. 4
# ----------------------------------------------------------------------------------------------
class LinearGaussianDecoder(nn.Module):
    """The linear-Gaussian generative map :math:`g(z) = W z + \\varepsilon`, :math:`\\varepsilon\\sim
    \\mathcal{N}(0, \\gamma I)` of Sec. 4 (columns of ``W``: causal directions first).

    Args:
        W: matrix of shape ``(N, K + L)``.
        gamma: noise variance (>= 0; 0 gives a deterministic decoder).
        generator: the noise's random stream, with the library's one meaning
            (:func:`causalbook_lib.utils.as_generator`): ``None`` (a stream seeded from torch's global
            state when the decoder is made), an int seed, or a ``torch.Generator`` on the device of ``W``.
            Each forward pass draws fresh noise from it.

    Raises:
        ValueError: ``W`` not a finite matrix, ``gamma`` negative, or a bad ``generator``.
    """

    def __init__(self, W, gamma: float = 0.0, generator=None):
        super().__init__()
        W = as_float_tensor(W, "W")
        if W.dim() != 2:
            raise ValueError(f"W must be a matrix of shape (N, K + L), got {tuple(W.shape)}")
        if not math.isfinite(float(gamma)) or float(gamma) < 0:
            raise ValueError(f"gamma must be a finite number >= 0, got {gamma!r}")
        self.W = nn.Parameter(W)
        self.gamma = float(gamma)
        self.generator = as_generator(generator, device=W.device)
        self.latent_dim = int(W.shape[1])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = z.to(self.W.dtype) @ self.W.T
        if self.gamma > 0:
            x = x + math.sqrt(self.gamma) * torch.randn(x.shape, generator=self.generator, dtype=x.dtype,
                                                        device=x.device)
        return x


class HyperplaneClassifier(nn.Module):
    """Binary classifier :math:`P(Y=1\\mid x) = \\prod_k \\sigma(c\\, a_k^\\top x)` of Sec. 4.

    One normal gives the linear classifier; two orthogonal normals give the "and" classifier.
    Returns probabilities ``[P(Y=0|x), P(Y=1|x)]`` of shape ``(batch, 2)``.

    Args:
        normals: decision normals, shape ``(N,)`` or ``(n_planes, N)``.
        steepness: slope ``c`` > 0 (the paper uses 5 for one plane, 100 for the "and" classifier).
        link: ``"logistic"`` (sigmoid) or ``"probit"`` (the normal CDF of Prop. 3).

    Raises:
        ValueError: bad normals, a non-positive steepness or an unknown link.
    """

    def __init__(self, normals, steepness: float = 1.0, link: str = "logistic"):
        super().__init__()
        A = as_floating(normals, "normals")
        if A.dim() == 1:
            A = A[None, :]
        if A.dim() != 2 or A.shape[0] < 1:
            raise ValueError(f"normals must have shape (N,) or (n_planes, N), got {tuple(A.shape)}")
        if not math.isfinite(float(steepness)) or float(steepness) <= 0:
            raise ValueError(f"steepness must be a finite number > 0, got {steepness!r}")
        if link not in ("logistic", "probit"):
            raise ValueError(f"link must be 'logistic' or 'probit', got {link!r}")
        self.register_buffer("normals", A)
        self.steepness = float(steepness)
        self.link = link

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.steepness * (x.to(self.normals.dtype) @ self.normals.T)
        if self.link == "logistic":
            log_p1 = torch.nn.functional.logsigmoid(u).sum(-1)
        else:
            log_p1 = torch.special.log_ndtr(u).sum(-1)
        p1 = log_p1.exp()
        return torch.stack([1.0 - p1, p1], dim=-1)
