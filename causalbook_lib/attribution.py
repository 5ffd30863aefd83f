"""Attribution maps: average causal effects, gradients and Integrated Gradients via Captum (Part II).

Three kinds of attribution of an output function ``f`` (a callable mapping a tensor of shape (..., k) to
(...), one scalar output per input row):

* :func:`gradients`: the saliency :math:`\\partial f/\\partial x_i` at given inputs, an individual causal
  effect of an infinitesimal intervention (:doc:`chapter 03 </notebooks/03-gradients-and-ig>`);
* :func:`integrated_gradients`: Captum's Integrated Gradients (Sundararajan et al., 2017), with the
  quadrature rule exposed so the left Riemann sum used by Chattopadhyay et al. (2019, Sec. 2) and the
  exact Gauss-Legendre rule can both be computed;
* :func:`ace_map` and :func:`local_ace`: the average causal effect
  :math:`\\mathrm{ACE}^y_{do(x_i=\\alpha)} = \\mathbb{E}[y|do(x_i=\\alpha)] - \\text{baseline}_i` of Eq. 1,
  for every feature and every :math:`\\alpha`, or at each input's own values (a local saliency map,
  Sec. 5.2), computed with the engine of :mod:`causalbook_lib.interventions` (chapters
  :doc:`04 </notebooks/04-interventional-expectations>` and :doc:`05 </notebooks/05-causal-regressors>`);
* :class:`CausalACE`: the local ACE as a Captum ``Attribution``
  (``CausalACE(forward_func).attribute(inputs, target=c, data=X)``), for one's own PyTorch models
  and for Captum's metrics and visualisation, and the global ACE curves of every feature
  (``CausalACE(forward_func).global_ace(target=c, data=X)``);
* :func:`ablate_channels`: the outputs of a network when subsets of the channels of one of its
  layers are switched off, an exact intervention on the network's own SCM whose variables are
  that layer's channels (Narendra et al., 2018; :doc:`chapter 17 </notebooks/17-robustness-fairness>`).

The classifiers that Part II explains are built and trained by :mod:`causalbook_lib.models`.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

with warnings.catch_warnings():
    # Captum imports tqdm.auto, which warns in a notebook when ipywidgets is absent ("IProgress not
    # found"): every chapter showed that warning under its first cell.
    warnings.filterwarnings("ignore", message="IProgress not found")
    from captum.attr import Attribution

from .utils import accumulation_dtype, as_float_tensor, as_floating, parameter_dtype, check_finite, check_positive_int

__all__ = ["check_output_function", "gradients", "integrated_gradients", "IG_METHODS", "AceMap",
           "uniform_doer_average", "ace_map", "local_ace", "CausalACE", "ablate_channels"]

#: Quadrature rules Captum offers for the IG path integral.
IG_METHODS = ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gausslegendre")


def _as_batch(x, name: str, *, any_rank: bool = False) -> tuple[torch.Tensor, bool]:
    """``x`` as an (n, k) batch (or, with ``any_rank``, an (n, ...) batch such as (n, T, d) sequences
    or (n, C, H, W) images): a floating tensor keeps its dtype and device, anything else becomes float64.
    A 1-D ``x`` is one input."""
    t = as_floating(x, name)
    if t.dim() == 1:
        return t.unsqueeze(0), True
    if t.dim() != 2 and not (any_rank and t.dim() > 2):
        shapes = "(k,) or (n, ...)" if any_rank else "(k,) or (n, k)"
        raise ValueError(f"{name} must have shape {shapes}, got {tuple(t.shape)}")
    return t, False


def check_output_function(forward_func: Callable, x: torch.Tensor, name: str = "forward_func") -> torch.Tensor:
    """Evaluate ``forward_func`` on the (n, k) batch ``x`` and check it returns one finite scalar per row, shape (n,).

    Raises:
        ValueError: ``forward_func`` returns another shape (for example (n, 1) or (n, classes)) or non-finite values.
    """
    with torch.no_grad():
        y = forward_func(x)
    if not isinstance(y, torch.Tensor) or tuple(y.shape) != (x.shape[0],):
        shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"{name} must map inputs of shape (n, k) to outputs of shape (n,) (one output neuron), "
                         f"got {shape} for an input of shape {tuple(x.shape)}")
    if not bool(torch.isfinite(y).all()):
        raise ValueError(f"{name} returned non-finite values")
    return y


def gradients(forward_func: Callable, x, *, target: int | None = None) -> torch.Tensor:
    """Plain gradients :math:`\\nabla_x f` at each row of ``x`` (saliency; :doc:`chapter 03 </notebooks/03-gradients-and-ig>`).

    Batched with ``torch.func.vmap`` over ``torch.func.grad``; computed in the dtype and on the device
    of ``x`` when it is a floating tensor (float64 for lists and integer tensors), so ``forward_func`` must
    accept that dtype (a float32 network takes float32 inputs).

    Args:
        forward_func: output function, (n, k) -> (n,); it must be composable with ``torch.func`` (plain torch ops
            and ``nn.Module`` calls are).
        x: inputs of shape (k,) or (n, k).
        target: ``None`` when ``forward_func`` already returns one value per row, or the index of
            the output to explain when it returns ``(n, outputs)`` (Captum's ``target``).

    Returns:
        gradients of the same shape as ``x``.

    Raises:
        ValueError: bad ``x`` or an ``forward_func`` that does not return one scalar per row.
    """
    xb, single = _as_batch(x, "x")
    forward_func = _select_target(forward_func, target)
    check_output_function(forward_func, xb)
    g = torch.func.vmap(torch.func.grad(lambda v: forward_func(v.unsqueeze(0)).squeeze(0)))(xb).detach()
    return g[0] if single else g


def integrated_gradients(forward_func: Callable, x, baseline, *, method: str = "gausslegendre", n_steps: int = 50,
                         return_delta: bool = False, target: int | None = None):
    """Integrated Gradients of ``forward_func`` from ``baseline`` to ``x``, computed by Captum.

    .. math:: \\mathrm{IG}_i(x) = (x_i - x'_i) \\int_0^1 \\partial_i f\\big(x' + t(x - x')\\big)\\,dt,

    with the integral replaced by the quadrature rule ``method`` with ``n_steps`` nodes. Chattopadhyay
    et al. (2019, Sec. 2) report a left Riemann sum with 1000 steps (``method="riemann_left"``,
    ``n_steps=1000``); ``"gausslegendre"`` with ``n`` nodes is exact for polynomial paths of degree
    up to ``2n - 1``. See :doc:`chapter 03 </notebooks/03-gradients-and-ig>`. Captum multiplies the gradients by its
    quadrature weights in float32, so results carry a relative error of about 1e-7 unless the weights
    are exact binary fractions (for example Gauss-Legendre with 2 nodes, weights 1/2).

    Args:
        forward_func: output function, (n, ...) -> (n,).
        x: inputs, (k,) or (n, ...): rows (n, k), sequences (n, T, d), images (n, C, H, W); the
            first axis is the batch.
        baseline: baseline(s), broadcastable to ``x``.
        method: one of :data:`IG_METHODS`.
        n_steps: number of quadrature nodes (>= 1 for Gauss-Legendre, >= 2 for Captum's Riemann rules).
        return_delta: also return the completeness gap
            :math:`\\sum_i \\mathrm{IG}_i - (f(x) - f(x'))` per row.
        target: ``None`` when ``forward_func`` already returns one value per row, or the index of
            the output to explain when it returns ``(n, outputs)`` (Captum's ``target``).

    Returns:
        attributions with the shape, dtype and device of ``x`` (float64 unless ``x`` is a floating
        tensor), and the gap, shape (n,) or scalar, if requested.

    Raises:
        ValueError: unknown method, bad shapes, non-finite values, or a wrong-shaped ``forward_func``.
    """
    with warnings.catch_warnings():  # captum imports tqdm.auto, which warns when ipywidgets is absent
        warnings.simplefilter("ignore")
        from captum.attr import IntegratedGradients

    if method not in IG_METHODS:
        raise ValueError(f"method must be one of {IG_METHODS}, got {method!r}")
    n_steps = check_positive_int(n_steps, "n_steps", minimum=1 if method == "gausslegendre" else 2)
    xb, single = _as_batch(x, "x", any_rank=True)
    base = as_float_tensor(baseline, "baseline", dtype=xb.dtype).to(xb.device)
    try:
        base = torch.broadcast_to(base, xb.shape).clone()
    except RuntimeError as exc:
        raise ValueError(f"baseline of shape {tuple(base.shape)} does not broadcast to x {tuple(xb.shape)}") from exc
    forward_func = _select_target(forward_func, target)
    check_output_function(forward_func, xb)
    ig = IntegratedGradients(forward_func)
    out = ig.attribute(xb, baselines=base, method=method, n_steps=n_steps, return_convergence_delta=return_delta)
    attr, delta = (out if return_delta else (out, None))
    attr = attr.detach()
    if single:
        attr = attr[0]
    if not return_delta:
        return attr
    with torch.no_grad():
        gap = attr.reshape(xb.shape[0], -1).sum(dim=1) - (forward_func(xb) - forward_func(base))
    return attr, (gap[0] if single else gap)


@dataclass
class AceMap:
    """Interventional expectations and ACE for every feature and every intervention value.

    Attributes:
        alphas: (k, num) intervention values (row i: a grid on ``[low_i, high_i]``).
        expectations: (k, num) :math:`\\mathbb{E}[y|do(x_i=\\alpha)]`.
        baseline: (k,) the uniform-doer baseline of each feature (trapezoid mean over the grid).
        ace: (k, num) ``expectations - baseline[:, None]``.
    """

    alphas: torch.Tensor
    expectations: torch.Tensor
    baseline: torch.Tensor
    ace: torch.Tensor


def _bounds(low, high, k: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(low, high)`` as (k,) tensors in the accumulation dtype, on the device of ``like``."""
    acc = accumulation_dtype(like)
    lo = torch.broadcast_to(as_float_tensor(low, "low", dtype=acc).to(like.device), (k,))
    hi = torch.broadcast_to(as_float_tensor(high, "high", dtype=acc).to(like.device), (k,))
    if not bool((lo < hi).all()):
        raise ValueError(f"low must be smaller than high for every feature, got low={lo.tolist()} and "
                         f"high={hi.tolist()}")
    return lo, hi


def _expectation(f, feature, alphas, *, mean, cov, data, method, output_range=None, chunk_size=None):
    from . import interventions

    if method == "mc":
        return interventions.interventional_expectation_mc(f, data, feature, alphas, chunk_size=chunk_size)
    return interventions.interventional_expectation(f, mean, cov, feature, alphas, method=method,
                                                    output_range=output_range, chunk_size=chunk_size)


def _in_model_dtype(forward_func, *tensors):
    """``tensors`` (None stays None) in the dtype of ``forward_func``'s parameters when it is a module;
    unchanged for a plain callable, whose model the library cannot see."""
    dt = parameter_dtype(forward_func)
    if dt is None:
        return tensors
    return tuple(None if t is None else as_floating(t, "data").to(dt) for t in tensors)


def _moments(data, mean, cov, method):
    if method == "mc":
        if data is None:
            raise ValueError("method='mc' needs data (the rows to average over, shape (n, k))")
        d = as_floating(data, "data")
        if d.dim() != 2:
            raise ValueError(f"data must have shape (n, k), got {tuple(d.shape)}")
        return d, None, None, d.shape[1]
    if mean is None or cov is None:
        if data is None:
            raise ValueError("give mean and cov, or data to estimate them from")
        d = as_floating(data, "data")
        if d.dim() != 2 or d.shape[0] < 2:
            raise ValueError(f"data must have shape (n, k) with n >= 2, got {tuple(d.shape)}")
        mean, cov = d.mean(dim=0), torch.cov(d.T, correction=0).reshape(d.shape[1], d.shape[1])
    mean = as_floating(mean, "mean")
    return None, mean, as_floating(cov, "cov"), mean.shape[-1]


def uniform_doer_average(curve: torch.Tensor) -> torch.Tensor:
    """The baseline of Eq. 1 under a uniform doer: the trapezoid average of ``curve`` over its last axis.

    ``curve[..., j]`` holds ``E[y | do(x_i = alpha_j)]`` on evenly spaced ``alpha_0 < ... < alpha_{g-1}``;
    the result, of shape ``curve.shape[:-1]``, is the trapezoid rule for the mean of the curve over
    ``[alpha_0, alpha_{g-1}]``: ``(sum_j curve_j - (curve_0 + curve_{g-1}) / 2) / (g - 1)``. Used by
    :func:`ace_map` and :func:`causalbook_lib.recurrent.causal_attribution_map`.

    Raises:
        ValueError: ``curve`` is not a tensor with at least two grid points on its last axis.
    """
    if not isinstance(curve, torch.Tensor) or curve.dim() < 1 or curve.shape[-1] < 2:
        got = tuple(curve.shape) if isinstance(curve, torch.Tensor) else type(curve).__name__
        raise ValueError(f"curve must be a tensor whose last axis has >= 2 grid points, got {got}")
    return torch.trapezoid(curve, dx=1.0 / (curve.shape[-1] - 1), dim=-1)


def ace_map(forward_func: Callable, low, high, *, num: int = 100, data=None, mean=None, cov=None,
            method: str = "hvp", output_range=None, chunk_size: int | None = None,
            target: int | None = None) -> AceMap:
    """Interventional expectations and ACE (Eq. 1) of every input feature on one output, on a grid.

    For each feature i, :math:`\\alpha` runs over ``num`` evenly spaced values on ``[low_i, high_i]``,
    :math:`\\mathbb{E}[y|do(x_i=\\alpha)]` comes from :mod:`causalbook_lib.interventions` (the Taylor
    estimate of Eq. 4 with ``method`` in ``{"hvp", "hessian", "finite_difference"}``, or the empirical
    Eq. 2 with ``method="mc"``) and the baseline is its trapezoid mean over the grid (a uniform doer).
    Each feature is one batched call (all its grid values at once); for models with hundreds of
    features, :func:`causalbook_lib.interventions.interventional_expectation_all` shares one
    factorisation of the covariance between all of them (:doc:`chapter 06 </notebooks/06-scaling>`).
    Chapters :doc:`04 </notebooks/04-interventional-expectations>` and :doc:`05 </notebooks/05-causal-regressors>`.

    Args:
        forward_func: output function, (n, k) -> (n,).
        low, high: scalars or (k,) bounds of the interventions.
        num: grid size (>= 2).
        data: (n, k) rows; needed for ``method="mc"``, else used to estimate ``mean`` and ``cov``.
        mean, cov: (k,) and (k, k) observational moments (Corollary 2.1) for the Taylor methods.
        method: ``"hvp"``, ``"hessian"``, ``"finite_difference"`` or ``"mc"``.
        output_range: optional ``(lo, hi)`` passed to the Taylor engine, which warns
            (``OutOfRangeWarning``) when an estimate leaves it (e.g. ``(0, 1)`` for probabilities).
        chunk_size: at most this many rows per call of ``forward_func`` (see
            :func:`causalbook_lib.interventions.interventional_expectation`); default: batches of
            about 8M input floats. Lower it for convolutional networks.
        target: ``None`` when ``forward_func`` already returns one value per row, or the index of
            the output to explain when it returns ``(n, outputs)`` (Captum's ``target``).

    Returns:
        an :class:`AceMap` of (k, num) tensors.

    Raises:
        ValueError: bad bounds, ``num < 2``, missing data/moments, or any error of the engine.
    """
    num = check_positive_int(num, "num", minimum=2)
    data, mean, cov = _in_model_dtype(forward_func, data, mean, cov)
    forward_func = _select_target(forward_func, target)
    d, mean, cov, k = _moments(data, mean, cov, method)
    like = d if d is not None else mean
    lo, hi = _bounds(low, high, k, like)
    steps = torch.linspace(0.0, 1.0, num, dtype=lo.dtype, device=lo.device)
    alphas = lo[:, None] + (hi - lo)[:, None] * steps
    # filled in place, not stacked from a list: k small results kept alive across the model calls can
    # pin freed blocks of the C heap between the calls' large temporaries (ch06's float64 CNN: +1 GB RSS)
    expect = None
    for i in range(k):
        e = _expectation(forward_func, i, alphas[i], mean=mean, cov=cov, data=d, method=method,
                         output_range=output_range, chunk_size=chunk_size)
        if expect is None:
            expect = e.new_empty((k,) + tuple(e.shape), dtype=lo.dtype)
        expect[i] = e
        del e
    base = uniform_doer_average(expect)
    return AceMap(alphas, expect, base, expect - base[:, None])


def local_ace(forward_func: Callable, x, low, high, *, num: int = 100, data=None, mean=None, cov=None,
              method: str = "hvp", output_range=None, chunk_size: int | None = None,
              target: int | None = None) -> torch.Tensor:
    """Local causal attributions: :math:`\\mathrm{ACE}^y_{do(x_i = u_i)}` at each input's own values.

    For an input row :math:`u`, feature i gets :math:`\\mathbb{E}[y|do(x_i=u_i)] - \\text{baseline}_i`
    (Chattopadhyay et al., 2019, Sec. 5.2), with the baseline of :func:`ace_map` on ``[low, high]``.
    Unlike a gradient or IG, the value depends on the input only through :math:`u_i`.

    Args:
        forward_func, low, high, num, data, mean, cov, method, output_range, chunk_size, target: as
            in :func:`ace_map`.
        x: inputs of shape (k,) or (n, k).

    Returns:
        (n, k) (or (k,)) tensor of local ACE values.
    """
    xb, single = _as_batch(x, "x")
    data, mean, cov = _in_model_dtype(forward_func, data, mean, cov)
    forward_func = _select_target(forward_func, target)
    grid = ace_map(forward_func, low, high, num=num, data=data, mean=mean, cov=cov, method=method,
                   output_range=output_range, chunk_size=chunk_size)
    d, mean_, cov_, k = _moments(data, mean, cov, method)
    if xb.shape[1] != k:
        raise ValueError(f"x must have {k} features, got {xb.shape[1]}")
    out = None
    for i in range(k):  # filled in place, as in ace_map
        c = _expectation(forward_func, i, xb[:, i], mean=mean_, cov=cov_, data=d, method=method,
                         output_range=output_range, chunk_size=chunk_size)
        if out is None:
            out = c.new_empty(tuple(c.shape) + (k,), dtype=grid.baseline.dtype)
        out[:, i] = c
        del c
    out -= grid.baseline
    return out[0] if single else out


def _select_target(forward_func: Callable, target) -> Callable:
    """``forward_func`` itself for ``target=None``, else ``x -> forward_func(x)[..., target]``."""
    if target is None:
        return forward_func
    if isinstance(target, bool) or not isinstance(target, (int, np.integer)):
        raise ValueError(f"target must be None or the integer index of one output, got {target!r}")
    return _target_output(forward_func, int(target))


def _target_output(forward_func: Callable, target) -> Callable:
    """``x -> forward_func(x)[..., target]`` (or the output itself for ``target=None``)."""
    if target is None:
        def f(x):
            out = forward_func(x)
            if out.dim() != x.dim() - 1:
                raise ValueError(f"forward_func returns shape {tuple(out.shape)} for input {tuple(x.shape)}: "
                                 "give target= to choose one output")
            return out
        return f
    return lambda x: forward_func(x)[..., target]


def _range_from_data(low, high, data):
    """``(low, high)``, each taken from the range of ``data`` (per feature) where it is ``None``."""
    if low is None or high is None:
        if data is None:
            raise ValueError("give low and high (the intervention range), or data to take them from")
        d = as_floating(data, "data")
        low = d.min(dim=0).values if low is None else low
        high = d.max(dim=0).values if high is None else high
    return low, high


class CausalACE(Attribution):
    """Local causal attributions (Chattopadhyay et al., 2019, Sec. 5.2) with Captum's contract.

    ``CausalACE(forward_func).attribute(inputs, target=c, data=X)`` returns, for every input row
    :math:`u` and feature i, :math:`\\mathbb{E}[y_c \\mid do(x_i = u_i)] - \\text{baseline}_i`: the
    average causal effect of setting feature i to the row's own value, against the uniform-doer
    baseline on ``[low_i, high_i]`` (the same numbers as :func:`local_ace`). It subclasses Captum's
    ``Attribution``, so Captum's metrics (``infidelity``, ``sensitivity_max``) and visualisation
    take it like any other attribution method.

    Args:
        forward_func: the model, mapping ``(n, k)`` inputs to ``(n, outputs)`` (or ``(n,)``).
    """

    def __init__(self, forward_func: Callable):
        if not callable(forward_func):
            raise ValueError(f"forward_func must be callable, got {type(forward_func).__name__}")
        super().__init__(forward_func)

    def attribute(self, inputs, target=None, *, data=None, mean=None, cov=None, low=None, high=None,
                  num: int = 100, method: str = "hvp", output_range=None,
                  chunk_size: int | None = None) -> torch.Tensor:
        """Local ACE of every feature of every row of ``inputs`` (n, k) on output ``target``.

        Args:
            inputs: (n, k) tensor (or a 1-tuple of it, as Captum passes it; the result is then a
                1-tuple too).
            target: an output index, ``None`` when ``forward_func`` returns one number per row,
                or one index per row (a list or (n,) tensor), as in Captum.
            data: (n_data, k) observational rows: needed for ``method="mc"``, else used to
                estimate ``mean`` and ``cov``; its range is the default ``[low, high]``.
            mean, cov: observational moments for the Taylor methods (instead of ``data``).
            low, high: bounds of the interventions (scalars or (k,)); default the range of ``data``.
            num, method, output_range, chunk_size: as in :func:`ace_map` (``"hvp"``,
                ``"hessian"``, ``"finite_difference"`` or ``"mc"``).

        Returns:
            (n, k) attributions, in the dtype and on the device of ``inputs``.

        Raises:
            ValueError: inputs not (n, k), a target list of the wrong length, missing bounds,
                or any error of :func:`local_ace`.
        """
        as_tuple = isinstance(inputs, tuple)  # Captum passes (inputs,) and expects a tuple back
        if as_tuple:
            if len(inputs) != 1:
                raise ValueError(f"CausalACE explains one input tensor, got a tuple of {len(inputs)}")
            inputs = inputs[0]
        if not isinstance(inputs, torch.Tensor) or inputs.dim() != 2:
            raise ValueError(f"inputs must be an (n, k) tensor, got {getattr(inputs, 'shape', type(inputs))}")
        low, high = _range_from_data(low, high, data)
        # compute in the inputs' dtype: the engine takes its dtype from the data or moments
        data, mean, cov = (None if v is None else as_floating(v, name).to(dtype=inputs.dtype, device=inputs.device)
                           for v, name in ((data, "data"), (mean, "mean"), (cov, "cov")))
        kw = dict(num=num, data=data, mean=mean, cov=cov, method=method, output_range=output_range,
                  chunk_size=chunk_size)
        target = _row_targets(target, inputs.shape[0])
        if isinstance(target, torch.Tensor):                 # one output index per row
            out = torch.empty(inputs.shape, dtype=accumulation_dtype(inputs), device=inputs.device)
            for t in target.unique().tolist():
                rows = (target == t).nonzero()[:, 0].to(inputs.device)
                out[rows] = local_ace(_target_output(self.forward_func, t), inputs[rows].detach(),
                                      low, high, **kw)
        else:
            out = local_ace(_target_output(self.forward_func, target), inputs.detach(), low, high, **kw)
        out = out.to(dtype=inputs.dtype, device=inputs.device)
        return (out,) if as_tuple else out

    def global_ace(self, target=None, *, low=None, high=None, data=None, mean=None, cov=None, num: int = 100,
                   method: str = "hvp", output_range=None, chunk_size: int | None = None) -> AceMap:
        """The global ACE of every feature on output ``target``: :func:`ace_map` of ``forward_func``.

        Where :meth:`attribute` gives one number per input row and feature (the ACE at the row's own
        value, Captum's contract), the global mode gives the whole curve
        :math:`\\alpha \\mapsto \\mathbb{E}[y_c \\mid do(x_i = \\alpha)] - \\text{baseline}_i` on a grid of
        ``num`` values of ``[low_i, high_i]``, for every feature i: Chattopadhyay et al.'s Eq. 1, independent
        of any input.

        Args:
            target: one output index, or ``None`` when ``forward_func`` returns one number per row.
            low, high, data, mean, cov, num, method, output_range, chunk_size: as in :meth:`attribute`.

        Returns:
            an :class:`AceMap` of (k, num) tensors.

        Raises:
            ValueError: a per-row target, missing bounds, or any error of :func:`ace_map`.
        """
        if isinstance(target, (list, tuple)) or (isinstance(target, torch.Tensor) and target.numel() != 1):
            raise ValueError("the global ACE explains one output: give target= as one index (or None)")
        if isinstance(target, torch.Tensor):
            target = int(target)
        low, high = _range_from_data(low, high, data)
        data, mean, cov = _in_model_dtype(self.forward_func, data, mean, cov)
        return ace_map(_target_output(self.forward_func, target), low, high, num=num, data=data, mean=mean, cov=cov,
                       method=method, output_range=output_range, chunk_size=chunk_size)


def _row_targets(target, n: int):
    """``target`` as None, an int, or an (n,) long tensor of per-row output indices."""
    if target is None or (isinstance(target, (int, np.integer)) and not isinstance(target, bool)):
        return target
    if isinstance(target, torch.Tensor) and target.dim() == 0 and not target.is_floating_point():
        return int(target)
    if isinstance(target, (list, tuple, torch.Tensor)):
        t = torch.as_tensor(target)
        if t.dim() == 1 and t.shape[0] == n and not t.is_floating_point() and t.dtype != torch.bool:
            return t.long()
        raise ValueError(f"target must be an int, None, or one integer index per input row ({n}), got shape "
                         f"{tuple(t.shape)} and dtype {t.dtype}")
    raise ValueError(f"target must be an int, None, or a list/tensor of per-row indices, got {type(target).__name__}")


def ablate_channels(forward_func: Callable, layer: nn.Module, inputs: torch.Tensor, off, *, target=None,
                    baseline: float = 0.0, chunk_size: int | None = None) -> torch.Tensor:
    """Outputs of ``forward_func`` with subsets of the channels of ``layer``'s output switched off.

    Read the network as an SCM whose variables are the channels :math:`h_1(x), \\dots, h_C(x)` of
    ``layer``'s output (dimension 1, as in ``(n, C, H, W)`` or ``(n, C)``), with the input ``x`` as
    the exogenous noise and the rest of the network as the mechanism :math:`y = g(h)`. For every
    subset :math:`S` (a row of ``off``) and input row :math:`x`, this returns the exact
    intervention

    .. math:: y_S(x) = g\\big(h(x);\\ do(h_c = b \\text{ for } c \\in S)\\big),

    with ``b = baseline`` at every position of the channel. With ``x`` known, abduction is trivial,
    so :math:`y_S(x)` answers the counterfactual "what would the output have been for this input had
    the filters in S been switched off?" (Narendra et al., 2018: a filter's counterfactual importance).
    Captum's ``LayerFeatureAblation`` switches off the groups of one partition of the channels, one
    group at a time; here the subsets may overlap (top-k, bottom-k, random k-subsets) and are all
    run in one batch of ``len(off) * n`` rows, ``chunk_size`` rows per call. The
    :doc:`chapter </notebooks/17-robustness-fairness>` ranks filters with Captum and validates the
    ranking with this function; ``tests/unit/test_channel_ablation.py`` checks the two agree.

    Args:
        forward_func: the network, mapping inputs ``(n, ...)`` to outputs ``(n,)`` or ``(n, k)``;
            it must call ``layer`` once per forward pass.
        layer: an ``nn.Module`` inside ``forward_func`` whose output has the channels on dimension 1.
        inputs: floating tensor ``(n, ...)``.
        off: boolean (or 0/1) tensor ``(m, C)``, or ``(C,)`` for one subset: entry ``[s, c]`` says
            whether channel ``c`` is switched off in intervention ``s``. A row of zeros gives the
            unchanged output.
        target: output index (int), one index per input row (``(n,)``), or ``None`` to keep the
            whole output, as in Captum.
        baseline: the value an intervened channel is set to (default 0, "switched off").
        chunk_size: at most this many rows per call of ``forward_func`` (default: all at once).

    Returns:
        tensor ``(m, n)`` when ``target`` is given or the output has one value per row, else
        ``(m, n, k)``; in the dtype and on the device of ``forward_func``'s output (``(n, ...)``
        without the leading axis when ``off`` is 1-D).

    Raises:
        ValueError: a non-callable ``forward_func``, a ``layer`` that is not a module or that
            ``forward_func`` never calls, non-finite or non-floating ``inputs``, an ``off`` that is
            not 0/1 or whose width differs from the layer's number of channels, a bad ``target``,
            a non-finite ``baseline`` or a non-positive ``chunk_size``.
    """
    if not callable(forward_func):
        raise ValueError(f"forward_func must be callable, got {type(forward_func).__name__}")
    if not isinstance(layer, nn.Module):
        raise ValueError(f"layer must be an nn.Module inside forward_func, got {type(layer).__name__}")
    if not isinstance(inputs, torch.Tensor) or not inputs.is_floating_point() or inputs.dim() < 1:
        raise ValueError("inputs must be a floating tensor of shape (n, ...), got "
                         f"{getattr(inputs, 'dtype', type(inputs).__name__)}")
    check_finite(inputs, "inputs")
    off_t = torch.as_tensor(off, device=inputs.device)
    single = off_t.dim() == 1
    off_t = off_t[None] if single else off_t
    if off_t.dim() != 2 or off_t.shape[0] == 0 or off_t.shape[1] == 0:
        raise ValueError(f"off must have shape (m, C) or (C,) with m, C >= 1, got {tuple(torch.as_tensor(off).shape)}")
    if not bool(((off_t == 0) | (off_t == 1)).all()):
        raise ValueError("off must hold booleans or 0/1 values (1 = channel switched off), got other values")
    off_t = off_t.bool()
    if not (isinstance(baseline, (int, float)) and math.isfinite(baseline)):
        raise ValueError(f"baseline must be a finite number, got {baseline!r}")
    n, (m, n_channels) = inputs.shape[0], off_t.shape
    tgt = _row_targets(target, n)
    total = m * n
    chunk = total if chunk_size is None else check_positive_int(chunk_size, "chunk_size")
    state = {"keep": None, "calls": 0}

    def hook(module, args, out):
        if not isinstance(out, torch.Tensor) or out.dim() < 2 or out.shape[1] != n_channels:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"off has {n_channels} columns, one per channel, but the layer's output has shape "
                             f"{got}; expected channels on dimension 1")
        state["calls"] += 1
        keep = state["keep"].to(out.device).reshape(out.shape[:2] + (1,) * (out.dim() - 2))
        return torch.where(keep, out, torch.as_tensor(baseline, dtype=out.dtype, device=out.device))

    handle = layer.register_forward_hook(hook)
    outs = []
    try:
        with torch.no_grad():
            for start in range(0, total, chunk):
                rows = torch.arange(start, min(start + chunk, total), device=inputs.device)
                subset, row = rows // n, rows % n
                state["keep"] = ~off_t[subset]
                out = forward_func(inputs[row])
                if state["calls"] == 0:
                    raise ValueError("forward_func never called layer: pass a module that the network uses")
                if isinstance(tgt, torch.Tensor):
                    out = out.gather(1, tgt.to(out.device)[row][:, None])[:, 0]
                elif tgt is not None:
                    out = out[:, tgt]
                outs.append(out)
    finally:
        handle.remove()
    result = torch.cat(outs).reshape(m, n, *outs[0].shape[1:])
    return result[0] if single else result
