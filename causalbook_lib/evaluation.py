"""Evaluating attribution methods: sanity checks, ground-truth benchmarks and faithfulness curves
(see :doc:`chapter 05 </notebooks/05-causal-regressors>`).

An attribution map gives each input feature of each input row a score. Three questions test whether
the scores deserve trust, and each has a function here:

* does the map depend on the model? :func:`randomisation_check` re-initialises the model's layers
  (Adebayo et al., 2018) and measures with :func:`rank_correlation` how much each map survives;
* does it recover a known answer? :func:`ground_truth_error` scores a map against the true
  per-feature effects of a model whose effects are known in closed form (an additive model);
* does it rank the features the model relies on first? :func:`deletion_curve` and
  :func:`insertion_curve` replace features by a baseline in the order of the attribution
  (Petsiuk et al., 2018) and :func:`area_under_curve` summarises each curve by one number.

The vocabulary follows Captum: the model is ``forward_func``, the output is chosen with ``target``,
baselines are ``baselines``, ``chunk_size`` bounds how many rows one forward call sees, and
randomness comes from ``generator`` (``None``, an int seed or a ``torch.Generator``). Inputs are
tensors of shape (n, k); results are tensors in the dtype and on the device of the inputs.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from .utils import as_generator, check_positive_int

__all__ = ["rank_correlation", "RandomisationCheck", "randomisation_check", "deletion_curve",
           "insertion_curve", "area_under_curve", "ground_truth_error"]


def _check_map(t, name: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if not t.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    if t.dim() < 1:
        raise ValueError(f"{name} must have shape (k,) or (..., k), got a scalar")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite, but it holds NaN or infinite values")
    return t.detach()


def rank_correlation(a: torch.Tensor, b: torch.Tensor, *, absolute: bool = False) -> torch.Tensor:
    """Spearman rank correlation between two attribution maps, one value per row.

    Each row's features are ranked (ties get their average rank, as in ``scipy.stats.spearmanr``)
    and the Pearson correlation of the two rank vectors is returned. With ``absolute=True`` the
    magnitudes are ranked, which ignores the sign of each attribution (Adebayo et al., 2018 report
    both). A row whose attributions are all equal has no ranking, and its correlation is NaN. Used
    by the sanity checks of :doc:`chapter 05 </notebooks/05-causal-regressors>`.

    Args:
        a, b: attribution maps of the same shape (k,) or (..., k); features along the last dimension.
        absolute: rank ``|a|`` and ``|b|`` instead of ``a`` and ``b``.

    Returns:
        tensor of shape ``a.shape[:-1]`` (a scalar tensor for (k,) inputs) in the dtype and on the
        device of ``a``.

    Raises:
        ValueError: non-tensors, integer dtypes, non-finite values, shapes that differ, or fewer
            than two features.
    """
    a, b = _check_map(a, "a"), _check_map(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.shape[-1] < 2:
        raise ValueError(f"a rank correlation needs at least 2 features (last dimension), got {a.shape[-1]}")
    x, y = (t.abs() if absolute else t for t in (a, b))
    from scipy.stats import rankdata  # here, not at import: scipy.stats takes about half a second to import

    rx, ry = (torch.as_tensor(rankdata(t.cpu().numpy(), axis=-1), dtype=torch.float64) for t in (x, y))
    rx, ry = rx - rx.mean(-1, keepdim=True), ry - ry.mean(-1, keepdim=True)
    denom = (rx.square().sum(-1) * ry.square().sum(-1)).sqrt()
    rho = torch.where(denom > 0, (rx * ry).sum(-1) / denom.clamp_min(1e-300), torch.nan)
    return rho.to(dtype=a.dtype, device=a.device)


@dataclass
class RandomisationCheck:
    """The result of :func:`randomisation_check`.

    Attributes:
        layers: names of the randomised modules, from the output layer down (stage order).
        original: (n, k) attributions of the trained model.
        randomised: (stages, n, k) attributions after each randomisation stage.
        rank_correlation: (stages, n) Spearman correlation of each row's trained and randomised map.
    """

    layers: list[str]
    original: torch.Tensor
    randomised: torch.Tensor
    rank_correlation: torch.Tensor


def _layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name or type(m).__name__, m) for name, m in model.named_modules()
            if any(True for _ in m.parameters(recurse=False))]


def randomisation_check(forward_func: nn.Module, explain: Callable, inputs: torch.Tensor, *, target=None,
                        cascade: bool = True, absolute: bool = False, generator=None) -> RandomisationCheck:
    """Model-randomisation sanity check of an attribution method (Adebayo et al., 2018).

    The layers of ``forward_func`` that hold parameters are re-initialised, from the output layer
    down, with their own ``reset_parameters()`` (the distribution they started training from). With
    ``cascade=True`` stage j randomises the top j layers; with ``cascade=False`` stage j randomises
    the j-th layer from the top alone. At every stage the method is rerun and the Spearman rank
    correlation :math:`\\rho_s(\\phi(u), \\tilde\\phi(u))` between the trained and the randomised
    map of each row u is recorded. A method whose map stays correlated with the trained one does not
    depend on what the model learned, and fails the check. :doc:`chapter 05
    </notebooks/05-causal-regressors>` runs it on the Iris network. The model itself is not changed
    (a deep copy is randomised).

    Args:
        forward_func: an ``nn.Module`` with parameters (the model, as in Captum).
        explain: ``explain(model, inputs, target) -> (n, k) tensor``, the attribution method.
        inputs: (n, k) inputs to explain.
        target: passed to ``explain`` unchanged (an output index, per-row indices or None).
        cascade: cumulative (True) or one-layer-at-a-time (False) randomisation.
        absolute: compare magnitudes instead of signed attributions (see :func:`rank_correlation`).
        generator: None, an int seed or a ``torch.Generator``; seeds each re-initialisation.

    Returns:
        a :class:`RandomisationCheck`; its tensors are in the dtype and on the device of ``inputs``.

    Raises:
        ValueError: ``forward_func`` is not an ``nn.Module`` or has no parameters, a layer with
            parameters has no ``reset_parameters()``, ``explain`` is not callable, ``inputs`` is not a
            finite (n, k) tensor, or ``explain`` returns a map of another shape.
    """
    if not isinstance(forward_func, nn.Module):
        raise ValueError(f"forward_func must be an nn.Module (its layers are re-initialised), got "
                         f"{type(forward_func).__name__}")
    layers = _layers(forward_func)
    if not layers:
        raise ValueError("forward_func has no parameters, so there is nothing to randomise; the check "
                         "needs a model with at least one layer that holds parameters")
    missing = [name for name, m in layers if not callable(getattr(m, "reset_parameters", None))]
    if missing:
        raise ValueError(f"layers {missing} hold parameters but have no reset_parameters(); expected "
                         "standard layers (Linear, Conv, ...) that know their initialisation")
    if not callable(explain):
        raise ValueError(f"explain must be callable as explain(model, inputs, target), got {type(explain).__name__}")
    x = _check_inputs(inputs)
    gen = as_generator(generator)

    def run(model):
        out = explain(model, x, target)
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"explain must return a map of the inputs' shape {tuple(x.shape)}, got {shape}")
        return out.detach().to(dtype=x.dtype, device=x.device)

    original = run(forward_func)
    order = list(reversed(range(len(layers))))  # from the output layer down
    seeds = torch.randint(0, 2**62, (len(order),), generator=gen, device=gen.device).tolist()
    maps = []
    model = copy.deepcopy(forward_func)
    for stage, idx in enumerate(order):
        if not cascade:
            model = copy.deepcopy(forward_func)
        module = dict(_layers(model))[layers[idx][0]]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seeds[stage])
            with torch.no_grad():
                module.reset_parameters()
        maps.append(run(model))
    randomised = torch.stack(maps)
    rho = rank_correlation(original.expand_as(randomised), randomised, absolute=absolute)
    return RandomisationCheck([layers[i][0] for i in order], original, randomised, rho)


def _check_inputs(inputs) -> torch.Tensor:
    if not isinstance(inputs, torch.Tensor) or inputs.dim() != 2 or not inputs.is_floating_point():
        shape = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs).__name__
        raise ValueError(f"inputs must be a floating-point tensor of shape (n, k), got {shape}")
    if not bool(torch.isfinite(inputs).all()):
        raise ValueError("inputs must be finite, but they hold NaN or infinite values")
    return inputs.detach()


def _select(out: torch.Tensor, target) -> torch.Tensor:
    if target is None:
        if out.dim() == 2 and out.shape[1] == 1:
            out = out[:, 0]
        if out.dim() != 1:
            raise ValueError(f"forward_func returns shape {tuple(out.shape)}: give target= to choose one output")
        return out
    if out.dim() != 2:
        raise ValueError(f"target needs forward_func to return (rows, outputs), got {tuple(out.shape)}")
    if isinstance(target, torch.Tensor) and target.dim() == 1:
        return out.gather(1, target.to(out.device).long()[:, None])[:, 0]
    return out[:, target]


def _targets(target, n: int, steps: int):
    """Per-row targets repeated over the steps of a curve; ints and None pass through."""
    if target is None or (isinstance(target, (int, np.integer)) and not isinstance(target, bool)):
        return target
    if isinstance(target, torch.Tensor) and target.dim() == 0:
        return int(target)
    if isinstance(target, (list, tuple, torch.Tensor)):
        t = torch.as_tensor(target)
        if t.dim() != 1 or t.shape[0] != n or t.is_floating_point():
            raise ValueError(f"target must be an int, None, or one integer index per input row ({n}), got "
                             f"shape {tuple(t.shape)} and dtype {t.dtype}")
        return t.long().repeat_interleave(steps)
    raise ValueError(f"target must be an int, None, or a list/tensor of per-row indices, got {type(target).__name__}")


def _curve(forward_func, inputs, attributions, *, target, baselines, chunk_size, insertion: bool) -> torch.Tensor:
    if not callable(forward_func):
        raise ValueError(f"forward_func must be callable, got {type(forward_func).__name__}")
    x = _check_inputs(inputs)
    n, k = x.shape
    attr = _check_map(attributions, "attributions")
    if attr.shape != x.shape:
        raise ValueError(f"attributions must have the inputs' shape {tuple(x.shape)}, got {tuple(attr.shape)}")
    if baselines is None:
        base = torch.zeros_like(x)
    else:
        base = torch.as_tensor(baselines, dtype=x.dtype, device=x.device)
        if not bool(torch.isfinite(base).all()):
            raise ValueError("baselines must be finite")
        try:
            base = torch.broadcast_to(base, x.shape)
        except RuntimeError as exc:
            raise ValueError(f"baselines of shape {tuple(base.shape)} do not broadcast to the inputs' shape "
                             f"{tuple(x.shape)}; expected a scalar, (k,) or (n, k)") from exc
    chunk = n * (k + 1) if chunk_size is None else check_positive_int(chunk_size, "chunk_size")
    tgt = _targets(target, n, k + 1)
    # rank[r, i] = position of feature i in row r's order (0 = largest attribution); ties keep index order
    order = torch.argsort(attr.to(x.device), dim=1, descending=True, stable=True)
    rank = torch.argsort(order, dim=1)
    steps = torch.arange(k + 1, device=x.device)
    moved = rank[:, None, :] < steps[None, :, None]  # (n, k + 1, k): features switched after s steps
    batch = torch.where(moved, x[:, None, :], base[:, None, :]) if insertion else \
        torch.where(moved, base[:, None, :], x[:, None, :])
    flat = batch.reshape(n * (k + 1), k)
    outs = []
    with torch.no_grad():
        for start in range(0, flat.shape[0], chunk):
            t = tgt[start:start + chunk] if isinstance(tgt, torch.Tensor) else tgt
            outs.append(_select(forward_func(flat[start:start + chunk]), t))
    return torch.cat(outs).reshape(n, k + 1).to(dtype=x.dtype)


def deletion_curve(forward_func: Callable, inputs: torch.Tensor, attributions: torch.Tensor, *, target=None,
                   baselines=None, chunk_size: int | None = None) -> torch.Tensor:
    """Deletion curve: the output as features are replaced by a baseline, most attributed first.

    For a row u with attributions :math:`\\phi`, sort the features by decreasing :math:`\\phi_i`;
    after s steps the first s of them are set to the baseline b and the output
    :math:`f(u_{\\text{rest}}, b_{\\text{first } s})` is recorded, s = 0, ..., k (Petsiuk et al., 2018).
    A faithful map makes the output of the explained class fall fast, so a small
    :func:`area_under_curve` is good. All k + 1 steps of all rows go through ``forward_func`` as one
    batch (in chunks of ``chunk_size`` rows). :doc:`chapter 05 </notebooks/05-causal-regressors>`.

    Args:
        forward_func: the model, (m, k) -> (m, outputs) or (m,).
        inputs: (n, k) inputs.
        attributions: (n, k) attributions of ``inputs`` (only their order within each row is used;
            ties are broken by feature index).
        target: output index, one index per row (list or (n,) tensor), or None for a model with one
            output.
        baselines: the value a deleted feature takes: scalar, (k,) or (n, k); default zeros.
        chunk_size: at most this many rows per forward call (default: all n(k + 1) at once).

    Returns:
        (n, k + 1) outputs, column s after s deletions, in the dtype of ``inputs``.

    Raises:
        ValueError: inputs not a finite float (n, k) tensor, attributions of another shape,
            baselines that do not broadcast, a bad ``chunk_size`` or ``target``, or a model output
            from which ``target`` cannot select one number per row.
    """
    return _curve(forward_func, inputs, attributions, target=target, baselines=baselines, chunk_size=chunk_size,
                  insertion=False)


def insertion_curve(forward_func: Callable, inputs: torch.Tensor, attributions: torch.Tensor, *, target=None,
                    baselines=None, chunk_size: int | None = None) -> torch.Tensor:
    """Insertion curve: the output as features are restored from a baseline, most attributed first.

    The mirror image of :func:`deletion_curve`: start from the baseline b and, after s steps, give the
    first s features of the attribution order their values in u. A faithful map makes the output rise
    fast, so a large :func:`area_under_curve` is good (Petsiuk et al., 2018;
    :doc:`chapter 05 </notebooks/05-causal-regressors>`).

    Args:
        forward_func, inputs, attributions, target, baselines, chunk_size: as in :func:`deletion_curve`.

    Returns:
        (n, k + 1) outputs, column s after s insertions, in the dtype of ``inputs``.

    Raises:
        ValueError: as :func:`deletion_curve`.
    """
    return _curve(forward_func, inputs, attributions, target=target, baselines=baselines, chunk_size=chunk_size,
                  insertion=True)


def area_under_curve(curve: torch.Tensor) -> torch.Tensor:
    """Area under deletion or insertion curves, with the fraction of features moved on [0, 1].

    The trapezoid rule over the k + 1 equally spaced points s/k, s = 0, ..., k:
    :math:`\\mathrm{AUC} = \\frac1k \\big(\\tfrac12 c_0 + c_1 + \\dots + c_{k-1} + \\tfrac12 c_k\\big)`
    (:doc:`chapter 05 </notebooks/05-causal-regressors>`).

    Args:
        curve: (..., k + 1) curves, as returned by :func:`deletion_curve` or :func:`insertion_curve`.

    Returns:
        tensor of shape ``curve.shape[:-1]``.

    Raises:
        ValueError: not a finite floating tensor, or fewer than two points per curve.
    """
    c = _check_map(curve, "curve")
    if c.shape[-1] < 2:
        raise ValueError(f"a curve needs at least 2 points (last dimension), got {c.shape[-1]}")
    return torch.trapezoid(c, dx=1.0 / (c.shape[-1] - 1), dim=-1)


def ground_truth_error(attributions: torch.Tensor, truth: torch.Tensor, *, centre: bool = True) -> torch.Tensor:
    """Relative error of attributions against known per-feature effects.

    :math:`\\lVert \\Phi - T \\rVert_F / \\lVert T \\rVert_F` over the (n, k) block of evaluated rows,
    where :math:`T_{ri}` is the true effect of feature i at row r. With ``centre=True`` both
    :math:`\\Phi` and :math:`T` first have each feature's mean over the rows subtracted, so a map
    that differs from the truth by a constant per feature (another reference point, such as the
    ACE's uniform-doer baseline against a data-mean baseline) scores zero: for an additive model
    :math:`f(x) = \\sum_i g_i(x_i)` it asks whether the method recovers each :math:`g_i` up to a
    constant. Leading dimensions are batch dimensions (e.g. bootstrap resamples of the rows).
    :doc:`chapter 05 </notebooks/05-causal-regressors>`.

    Args:
        attributions: (..., n, k) attribution maps.
        truth: (..., n, k) true effects, broadcastable against ``attributions``.
        centre: subtract each feature's mean over the n rows first.

    Returns:
        tensor of the broadcast leading shape (a scalar tensor for (n, k) inputs), dtype of
        ``attributions``.

    Raises:
        ValueError: tensors with fewer than 2 dimensions, shapes that do not broadcast, non-finite
            values, or a truth with zero norm (nothing to compare against).
    """
    a, t = _check_map(attributions, "attributions"), _check_map(truth, "truth")
    if a.dim() < 2 or t.dim() < 2:
        raise ValueError(f"attributions and truth must have shape (..., n, k), got {tuple(a.shape)} and "
                         f"{tuple(t.shape)}")
    try:
        a, t = torch.broadcast_tensors(a, t.to(a.dtype))
    except RuntimeError as exc:
        raise ValueError(f"attributions {tuple(a.shape)} and truth {tuple(t.shape)} do not broadcast") from exc
    if centre:
        a, t = a - a.mean(-2, keepdim=True), t - t.mean(-2, keepdim=True)
    norm = t.square().sum((-2, -1)).sqrt()
    if bool((norm == 0).any()):
        raise ValueError("the truth has zero norm (after centring, if centre=True): every feature has the "
                         "same effect on every row, so a relative error is undefined")
    return (a - t).square().sum((-2, -1)).sqrt() / norm
