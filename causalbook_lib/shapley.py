"""Shapley values of a model's prediction, exact for a handful of features: interventional and
conditional value functions (see :doc:`chapter 04 </notebooks/04-interventional-expectations>`).

For an input :math:`x` with k features and a value function :math:`v_x(S)` on coalitions
:math:`S \\subseteq \\{1,\\dots,k\\}`, the Shapley value of feature i is

.. math:: \\phi_i(x) = \\sum_{S \\not\\ni i} \\frac{|S|!\\,(k-|S|-1)!}{k!}\\,\\big(v_x(S\\cup\\{i\\}) - v_x(S)\\big),

computed here by enumerating all :math:`2^k` coalitions (k <= 12). Two value functions
(Janzing, Minorics and Bloebaum 2020):

* ``"interventional"``: :math:`v_x(S) = \\frac1n\\sum_s f(x_S, x^{(s)}_{\\bar S})`, the features outside
  S replaced by background rows, i.e. :math:`\\mathbb E[f \\mid do(X_S = x_S)]` (SHAP's independent
  masker; Lundberg and Lee 2017);
* ``"conditional"``: :math:`v_x(S) \\approx \\mathbb E[f(x_S, X_{\\bar S}) \\mid X_S = x_S]`, estimated by
  kernel-weighting the background rows by their closeness to :math:`x` on the features in S
  (a Nadaraya-Watson estimate with a Gaussian product kernel whose bandwidth is ``bandwidth``
  standard deviations of each feature).
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from .feature_effects import _check_inputs, _output
from .utils import check_positive_int

__all__ = ["VALUE_FUNCTIONS", "coalition_masks", "coalition_values", "shapley_values", "shapley_interaction_values"]

#: The value functions of :func:`coalition_values`.
VALUE_FUNCTIONS = ("interventional", "conditional")
_MAX_FEATURES = 12


def coalition_masks(k: int, *, device=None) -> torch.Tensor:
    """All :math:`2^k` coalitions of k features as a boolean (2^k, k) tensor; row m has bit j of m at column j.

    Row 0 is the empty coalition and row :math:`2^k - 1` the full one. See
    :doc:`chapter 04 </notebooks/04-interventional-expectations>`.

    Args:
        k: number of features, 1 <= k <= 12.
        device: device of the result.

    Raises:
        ValueError: k not an integer in [1, 12].
    """
    k = check_positive_int(k, "k")
    if k > _MAX_FEATURES:
        raise ValueError(f"exact Shapley values enumerate 2^k coalitions; k must be at most {_MAX_FEATURES}, got {k}")
    m = torch.arange(2 ** k, device=device)
    return (m[:, None] >> torch.arange(k, device=device)) & 1 == 1


def _check_background(background, inputs) -> torch.Tensor:
    bg = _check_inputs(background, "background")
    if bg.shape[1] != inputs.shape[1]:
        raise ValueError(f"background must have the {inputs.shape[1]} features of inputs, got {bg.shape[1]}")
    return bg.to(dtype=inputs.dtype, device=inputs.device)


def coalition_values(forward_func: Callable, inputs: torch.Tensor, background: torch.Tensor, *, target=None,
                     value_function: str = "interventional", bandwidth: float = 0.3,
                     chunk_size: int | None = None) -> torch.Tensor:
    """Value :math:`v_x(S)` of every coalition S for every input row x.

    ``"interventional"``: :math:`v_x(S) = \\frac1n\\sum_s f(x_S, b^{(s)}_{\\bar S})` over background rows
    :math:`b^{(s)}`. ``"conditional"``: the same average with weights
    :math:`w_s \\propto \\exp\\big(-\\tfrac12\\sum_{j\\in S}((x_j - b^{(s)}_j)/(h\\,\\sigma_j))^2\\big)`, a
    kernel estimate of :math:`\\mathbb E[f(x_S, X_{\\bar S}) \\mid X_S = x_S]` (h = ``bandwidth``,
    :math:`\\sigma_j` the background standard deviation). Both give :math:`v_x(\\emptyset)` = the
    background mean of f and :math:`v_x(\\text{all}) = f(x)`. See
    :doc:`chapter 04 </notebooks/04-interventional-expectations>`.

    Args:
        forward_func: the model, mapping (..., k) to (...) or (..., outputs).
        inputs: (n_x, k) rows to explain, floating point; the result has their dtype and device.
        background: (n, k) rows that stand for the data distribution.
        target: output index when ``forward_func`` returns several outputs per row.
        value_function: ``"interventional"`` or ``"conditional"``.
        bandwidth: kernel bandwidth h (> 0) in standard deviations, for ``"conditional"``.
        chunk_size: number of input rows per batched call (default: all).

    Returns:
        (n_x, 2^k) tensor; column m is the coalition of :func:`coalition_masks` row m.

    Raises:
        ValueError: bad tensors, k > 12, an unknown value function, a non-positive bandwidth, a
            constant background feature (for ``"conditional"``), or a model that does not return
            one number per row.
    """
    x = _check_inputs(inputs)
    bg = _check_background(background, x)
    if value_function not in VALUE_FUNCTIONS:
        raise ValueError(f"value_function must be one of {VALUE_FUNCTIONS}, got {value_function!r}")
    if isinstance(bandwidth, bool) or not isinstance(bandwidth, (int, float)) or not math.isfinite(bandwidth) \
            or bandwidth <= 0:
        raise ValueError(f"bandwidth must be a positive finite number, got {bandwidth!r}")
    f = _output(forward_func, target)
    n_x, k = x.shape
    n = bg.shape[0]
    masks = coalition_masks(k, device=x.device)
    c = n_x if chunk_size is None else check_positive_int(chunk_size, "chunk_size")
    if value_function == "conditional":
        sd = bg.std(dim=0, correction=0)
        if not bool((sd > 0).all()):
            raise ValueError("conditional values need every background feature to vary; a feature is constant")
    out = []
    with torch.no_grad():
        for s in range(0, n_x, c):  # chunks of input rows; each coalition is one batched call
            xs = x[s:s + c]
            vals = []
            for mask in masks:  # 2^k coalitions
                z = torch.where(mask, xs[:, None, :], bg[None, :, :])  # (c, n, k)
                y = f(z.reshape(-1, k))
                if y.shape != (z.shape[0] * n,):
                    raise ValueError(f"forward_func must return one number per row, got shape {tuple(y.shape)}")
                y = y.reshape(-1, n).to(x.dtype)
                if value_function == "interventional" or not bool(mask.any()):
                    vals.append(y.mean(dim=1))
                else:
                    d2 = (((xs[:, None, :] - bg[None, :, :]) / (bandwidth * sd)) ** 2 * mask).sum(-1)
                    w = torch.softmax(-0.5 * d2, dim=1)  # normalised kernel weights, stable
                    vals.append((w * y).sum(dim=1))
            out.append(torch.stack(vals, dim=1))
    return torch.cat(out)


def _shapley_weights(masks: torch.Tensor, dtype) -> torch.Tensor:
    """(2^k, k) matrix W with phi = V @ W: +w(|S|-1) where i in S, -w(|S|) where not."""
    k = masks.shape[1]
    size = masks.sum(1)
    w = torch.tensor([math.factorial(s) * math.factorial(k - s - 1) / math.factorial(k) for s in range(k)]
                     + [0.0], dtype=dtype, device=masks.device)
    return torch.where(masks, w[(size - 1).clamp(min=0)][:, None], -w[size][:, None])


def shapley_values(forward_func: Callable, inputs: torch.Tensor, background: torch.Tensor, *, target=None,
                   value_function: str = "interventional", bandwidth: float = 0.3,
                   chunk_size: int | None = None) -> torch.Tensor:
    """Exact Shapley values of every feature for every input row, by enumerating the 2^k coalitions.

    .. math:: \\phi_i(x) = \\sum_{S \\not\\ni i} \\frac{|S|!\\,(k-|S|-1)!}{k!}\\,\\big(v_x(S\\cup\\{i\\}) - v_x(S)\\big)

    with :math:`v_x` from :func:`coalition_values`. They add up to
    :math:`f(x) - v_x(\\emptyset)` (efficiency). For linear f and the interventional value function,
    :math:`\\phi_i(x) = w_i (x_i - \\bar b_i)`. See :doc:`chapter 04 </notebooks/04-interventional-expectations>`.

    Args:
        forward_func, inputs, background, target, value_function, bandwidth, chunk_size: as in
            :func:`coalition_values`.

    Returns:
        (n_x, k) tensor of Shapley values, in the dtype and on the device of ``inputs``.

    Raises:
        ValueError: as :func:`coalition_values`.
    """
    v = coalition_values(forward_func, inputs, background, target=target, value_function=value_function,
                         bandwidth=bandwidth, chunk_size=chunk_size)
    masks = coalition_masks(inputs.shape[1], device=inputs.device)
    return v @ _shapley_weights(masks, v.dtype)


def shapley_interaction_values(forward_func: Callable, inputs: torch.Tensor, background: torch.Tensor, *,
                               target=None, value_function: str = "interventional", bandwidth: float = 0.3,
                               chunk_size: int | None = None) -> torch.Tensor:
    """Shapley interaction values (Lundberg et al.'s SHAP interaction values), exact.

    Off the diagonal, half the Shapley interaction index (Grabisch 1997):

    .. math:: \\Phi_{ij} = \\tfrac12 \\sum_{S \\subseteq N\\setminus\\{i,j\\}} \\frac{|S|!\\,(k-|S|-2)!}{(k-1)!}
              \\big(v(S\\cup\\{i,j\\}) - v(S\\cup\\{i\\}) - v(S\\cup\\{j\\}) + v(S)\\big),

    and on the diagonal :math:`\\Phi_{ii} = \\phi_i - \\sum_{j\\ne i}\\Phi_{ij}`, so each row of the
    matrix sums to the Shapley value. See :doc:`chapter 04 </notebooks/04-interventional-expectations>`.

    Args:
        forward_func, inputs, background, target, value_function, bandwidth, chunk_size: as in
            :func:`coalition_values` (k >= 2).

    Returns:
        (n_x, k, k) tensor, symmetric in the last two axes.

    Raises:
        ValueError: as :func:`coalition_values`, or fewer than two features.
    """
    x = _check_inputs(inputs)
    k = x.shape[1]
    if k < 2:
        raise ValueError(f"interaction values need at least two features, got {k}")
    v = coalition_values(forward_func, x, background, target=target, value_function=value_function,
                         bandwidth=bandwidth, chunk_size=chunk_size)
    masks = coalition_masks(k, device=x.device)
    idx = torch.arange(2 ** k, device=x.device)
    size = masks.sum(1)
    w = torch.tensor([math.factorial(s) * math.factorial(k - s - 2) / math.factorial(k - 1) for s in range(k - 1)]
                     + [0.0, 0.0], dtype=v.dtype, device=x.device)
    inter = torch.zeros(x.shape[0], k, k, dtype=v.dtype, device=x.device)
    for i in range(k):
        for j in range(i + 1, k):
            free = ~masks[:, i] & ~masks[:, j]  # coalitions S without i and j
            s_idx = idx[free]
            bi, bj = 1 << i, 1 << j
            delta = v[:, s_idx | bi | bj] - v[:, s_idx | bi] - v[:, s_idx | bj] + v[:, s_idx]
            inter[:, i, j] = inter[:, j, i] = 0.5 * delta @ w[size[free]]
    phi = v @ _shapley_weights(masks, v.dtype)
    diag = phi - inter.sum(-1)
    return inter + torch.diag_embed(diag)
