"""Verified robustness by interval bound propagation (Part V, :doc:`chapter 17 </notebooks/17-robustness-fairness>`).

An attack such as :func:`causalbook_lib.attacks.pgd` can only show that a decision *can* be
changed; when it fails, the decision may still be changeable by a stronger attack. A *certificate*
goes the other way: it proves that no input in the ball changes the decision.

Interval bound propagation (IBP; Gowal et al., 2018, after the interval arithmetic of earlier
verification work) pushes the box ``[x - eps, x + eps]`` (intersected with the input domain)
through the network layer by layer. A linear layer maps a box with centre ``c`` and radius ``r`` to
the box with centre ``W c + b`` and radius ``|W| r``; a ReLU maps ``[l, u]`` to
``[relu(l), relu(u)]``. Every input of the ball lands inside the output box, so the bounds are
*sound*; they are loose because each layer forgets how its outputs depend on one another.

* :func:`interval_bounds` returns lower and upper bounds of every logit over the ball.
* :func:`margin_lower_bound` bounds ``z_y - max_{j != y} z_j`` from below, propagating the
  difference of logits through the last linear layer (tighter than subtracting logit bounds).
* :func:`certified` is ``margin_lower_bound > 0``: no input of the ball changes the decision.

Supported models: :class:`torch.nn.Sequential` of :class:`~torch.nn.Linear`, :class:`~torch.nn.ReLU`,
:class:`~torch.nn.Flatten` and :class:`~torch.nn.Identity`, such as
:func:`causalbook_lib.models.make_mlp` with ``"relu"`` and
:func:`causalbook_lib.models.train_mlp_classifier`.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["interval_bounds", "margin_lower_bound", "certified"]

_SUPPORTED = (nn.Linear, nn.ReLU, nn.Flatten, nn.Identity)


def _check_model(model) -> list[nn.Module]:
    if not isinstance(model, nn.Sequential):
        raise ValueError(f"model must be an nn.Sequential, got {type(model).__name__}")
    layers = list(model)
    bad = [type(m).__name__ for m in layers if not isinstance(m, _SUPPORTED)]
    if bad:
        raise ValueError(f"model may contain only Linear, ReLU, Flatten and Identity layers, got {bad}")
    if not any(isinstance(m, nn.Linear) for m in layers):
        raise ValueError("model must contain at least one nn.Linear layer")
    return layers


def _domain(value, name: str, x: torch.Tensor) -> torch.Tensor | None:
    if value is None:
        return None
    t = torch.as_tensor(value, dtype=x.dtype, device=x.device)
    try:
        t = torch.broadcast_to(t, x.shape)
    except RuntimeError as exc:
        raise ValueError(f"{name} must broadcast to the shape of x, {tuple(x.shape)}, got {tuple(t.shape)}") from exc
    if bool(torch.isnan(t).any()):
        raise ValueError(f"{name} must not contain NaN")
    return t


def _input_box(x, eps, lower, upper) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.as_tensor(x)
    if not x.is_floating_point() or x.dim() < 2:
        raise ValueError(f"x must be a floating tensor of shape (n, ...), got dtype {x.dtype} and shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x must be finite")
    e = torch.as_tensor(eps, dtype=x.dtype, device=x.device)
    if e.dim() == 0:
        e = e.expand(len(x))
    if e.shape != (len(x),) or not bool(torch.isfinite(e).all()) or bool((e < 0).any()):
        raise ValueError(f"eps must be a finite number >= 0 or one per input (shape ({len(x)},)), got {eps!r}")
    e = e.reshape(-1, *([1] * (x.dim() - 1)))
    lo, hi = x - e, x + e
    lower, upper = _domain(lower, "lower", x), _domain(upper, "upper", x)
    if lower is not None and upper is not None and bool((lower > upper).any()):
        raise ValueError("lower must not exceed upper")
    if lower is not None:
        if bool((x < lower).any()):
            raise ValueError("x must lie inside the domain: some x < lower")
        lo, hi = torch.maximum(lo, lower), torch.maximum(hi, lower)
    if upper is not None:
        if bool((x > upper).any()):
            raise ValueError("x must lie inside the domain: some x > upper")
        lo, hi = torch.minimum(lo, upper), torch.minimum(hi, upper)
    return lo, hi


def _propagate(layers, lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    for layer in layers:
        if isinstance(layer, nn.Linear):
            w = layer.weight.detach().to(lo.dtype)
            b = layer.bias.detach().to(lo.dtype) if layer.bias is not None else None
            centre, radius = (hi + lo) / 2, (hi - lo) / 2
            centre, radius = nn.functional.linear(centre, w, b), nn.functional.linear(radius, w.abs())
            lo, hi = centre - radius, centre + radius
        elif isinstance(layer, nn.ReLU):
            lo, hi = lo.clamp_min(0), hi.clamp_min(0)
        elif isinstance(layer, nn.Flatten):
            lo, hi = layer(lo), layer(hi)
    return lo, hi


@torch.no_grad()
def interval_bounds(model: nn.Sequential, x, eps, *, lower=None, upper=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Interval bounds on every output of ``model`` over the L-infinity ball of radius ``eps`` around each input.

    The ball ``{x' : |x' - x|_inf <= eps}`` is first intersected with the domain
    ``lower <= x' <= upper`` (e.g. ``lower=0, upper=1`` for images), then propagated layer by layer
    (see the module docstring). For every ``x'`` of the clipped ball, ``lo <= model(x') <= hi``.

    Args:
        model: an ``nn.Sequential`` of ``Linear``, ``ReLU``, ``Flatten`` and ``Identity`` layers.
        x: (n, ...) floating inputs; the bounds are computed in their dtype and on their device.
        eps: the radius, a number >= 0 or one per input (shape (n,)).
        lower: optional lower end of the input domain, a number or a tensor broadcastable to ``x``.
        upper: optional upper end of the input domain, likewise.

    Returns:
        ``(lo, hi)``, each of shape (n, outputs).

    Raises:
        ValueError: an unsupported model, non-finite inputs, a negative eps, or inputs outside the domain.
    """
    layers = _check_model(model)
    lo, hi = _input_box(x, eps, lower, upper)
    return _propagate(layers, lo, hi)


@torch.no_grad()
def margin_lower_bound(model: nn.Sequential, x, y, eps, *, lower=None, upper=None) -> torch.Tensor:
    """Lower bound on the worst-case margin ``min_{x'} (z_y(x') - max_{j != y} z_j(x'))`` over the clipped ball.

    When the last layer is ``Linear`` (weights ``W``, bias ``b``), the bounds of its *input* ``h``
    are propagated through the rows ``W_y - W_j``, giving
    ``(W_y - W_j) c + b_y - b_j - |W_y - W_j| r`` for the box of ``h`` with centre ``c`` and radius
    ``r``. This is never looser, and usually much tighter, than ``lo_y - hi_j`` from
    :func:`interval_bounds`. Otherwise the logit bounds are subtracted. A positive value proves that
    no input of the ball changes the decision away from ``y``; a negative value proves nothing.

    Args:
        model, x, eps, lower, upper: as in :func:`interval_bounds`.
        y: (n,) integer labels in ``[0, outputs)``.

    Returns:
        (n,) lower bounds, in the dtype of ``x``.

    Raises:
        ValueError: as :func:`interval_bounds`, or labels of the wrong shape or out of range.
    """
    layers = _check_model(model)
    lo, hi = _input_box(x, eps, lower, upper)
    y = torch.as_tensor(y, device=lo.device)
    if y.shape != (len(lo),) or y.is_floating_point() or y.dtype == torch.bool:
        raise ValueError(f"y must be a 1-D integer tensor with {len(lo)} labels, got shape {tuple(y.shape)} "
                         f"and dtype {y.dtype}")
    y = y.long()
    tail = len(layers)
    while tail > 0 and isinstance(layers[tail - 1], nn.Identity):
        tail -= 1
    last = layers[tail - 1]
    n_out = last.out_features if isinstance(last, nn.Linear) else None
    if isinstance(last, nn.Linear):
        lo, hi = _propagate(layers[:tail - 1], lo, hi)
        w = last.weight.detach().to(lo.dtype)
        b = last.bias.detach().to(lo.dtype) if last.bias is not None else torch.zeros(n_out, dtype=lo.dtype,
                                                                                       device=lo.device)
        if bool(((y < 0) | (y >= n_out)).any()):
            raise ValueError(f"y must hold labels in [0, {n_out}), got {int(y.min())} to {int(y.max())}")
        dw = w[y][:, None, :] - w[None, :, :]  # (n, C, hidden): rows W_y - W_j
        db = b[y][:, None] - b[None, :]  # (n, C)
        centre, radius = (hi + lo) / 2, (hi - lo) / 2
        bound = (dw @ centre[:, :, None])[..., 0] - (dw.abs() @ radius[:, :, None])[..., 0] + db
    else:
        lo, hi = _propagate(layers, lo, hi)
        n_out = lo.shape[1]
        if bool(((y < 0) | (y >= n_out)).any()):
            raise ValueError(f"y must hold labels in [0, {n_out}), got {int(y.min())} to {int(y.max())}")
        bound = lo.gather(1, y[:, None]) - hi
    if n_out < 2:
        raise ValueError("the model must have at least two outputs to have a margin")
    bound = bound.masked_fill(nn.functional.one_hot(y, n_out).bool(), torch.inf)
    return bound.amin(1)


def certified(model: nn.Sequential, x, y, eps, *, lower=None, upper=None) -> torch.Tensor:
    """Boolean (n,): True where IBP proves that every input of the clipped ball is classified as ``y``.

    That is, :func:`margin_lower_bound` ``> 0``. Sound but incomplete: False does not mean that an
    adversarial example exists. The certified share is a lower bound on the accuracy under *any*
    attack of budget ``eps``, as an attack's accuracy is an upper bound on it.

    Raises:
        ValueError: as :func:`margin_lower_bound`.
    """
    return margin_lower_bound(model, x, y, eps, lower=lower, upper=upper) > 0
