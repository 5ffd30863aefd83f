"""Adversarial attacks and adversarial training (Part V, :doc:`chapter 17 </notebooks/17-robustness-fairness>`).

* :func:`margin_loss`: Carlini and Wagner's margin, whose gradient does not vanish on saturated logits.
* :func:`fgsm`, :func:`pgd`, :func:`minimal_perturbation` and :func:`line_search_attack` attack any
  model that maps images in [0, 1] to logits; :func:`accuracy_under_attack` sweeps the budget. The
  line search uses only decisions, so gradient masking cannot fool it.
* :func:`adversarial_training`: PGD adversarial training (Madry et al.) of the MLP of
  :func:`causalbook_lib.models.train_mlp_classifier`.

The models they attack are in :mod:`causalbook_lib.models` (including the analysis-by-synthesis
stand-in :class:`~causalbook_lib.models.GaussianGenerativeClassifier`); certificates are in
:mod:`causalbook_lib.verification`.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .models import accuracy, make_mlp
from .utils import accumulation_dtype, as_generator, parameter_dtype, check_features_labels, check_number, check_positive_int, seeded_init

__all__ = [
    "margin_loss",
    "fgsm",
    "pgd",
    "accuracy_under_attack",
    "minimal_perturbation",
    "line_search_attack",
    "adversarial_training",
]


def margin_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample margin ``max_{j != y} z_j - z_y`` (positive iff misclassified): shape (n,).

    Unlike the cross-entropy, its gradient does not vanish when the softmax saturates, so an
    attack on it is not fooled by over-confident logits (Carlini and Wagner's loss).
    """
    if logits.dim() != 2 or y.shape != (logits.shape[0],):
        raise ValueError(f"logits must be (n, C) and y (n,), got {tuple(logits.shape)} and {tuple(y.shape)}")
    true = logits.gather(1, y[:, None])[:, 0]
    other = logits.masked_fill(nn.functional.one_hot(y, logits.shape[1]).bool(), -torch.inf).amax(1)
    return other - true


def _loss(model, x, y, loss: str, dtype) -> torch.Tensor:
    logits = model(x).to(dtype)
    if loss == "margin":
        return margin_loss(logits, y)
    return nn.functional.cross_entropy(logits, y, reduction="none")


def _compute_dtype(forward_func, x: torch.Tensor) -> torch.dtype:
    """The dtype an attack runs in: that of ``forward_func``'s first floating parameter when it is a
    module, else the accumulation dtype of ``x``'s device (float64; float32 on MPS)."""
    return parameter_dtype(forward_func, accumulation_dtype(x))


def _check_attack(forward_func, x, y, eps, loss: str, norm: str | None = None):
    """Validated ``(x, y, eps)``: ``x`` in the attack's dtype (:func:`_compute_dtype`), ``eps`` one
    budget per sample in the accumulation dtype, both on ``x``'s device."""
    x, y = check_features_labels(x, y)
    if loss not in ("margin", "ce"):
        raise ValueError(f"loss must be 'margin' or 'ce', got {loss!r}")
    if norm is not None and norm not in ("linf", "l2"):
        raise ValueError(f"norm must be 'linf' or 'l2', got {norm!r}")
    e = torch.as_tensor(eps, dtype=accumulation_dtype(x), device=x.device)
    if e.dim() == 0:
        e = e.expand(len(x))
    if e.shape != (len(x),) or not bool(torch.isfinite(e).all()) or bool((e < 0).any()):
        raise ValueError(f"eps must be a finite number >= 0 or one per sample (shape ({len(x)},)), got {eps!r}")
    if float(x.min()) < 0 or float(x.max()) > 1:
        raise ValueError("x must lie in [0, 1] (attacks clip to the image range)")
    return x.to(_compute_dtype(forward_func, x)), y, e.clone()


def fgsm(forward_func: Callable, x, y, eps, *, loss: str = "margin", loss_dtype: torch.dtype | None = None) -> torch.Tensor:
    """Fast gradient sign method (Goodfellow et al.): ``x + eps * sign(grad_x loss)``, clipped to [0, 1].

    Args:
        forward_func: maps (n, d) images to (n, C) logits. The attack runs in the dtype of its
            parameters (a module), else in float64 (float32 on MPS), on the device of ``x``.
        x: (n, d) images in [0, 1]; y: (n,) labels; eps: L-infinity budget (scalar or (n,)).
        loss: ``"margin"`` (default, see :func:`margin_loss`) or ``"ce"`` (cross-entropy).
        loss_dtype: dtype in which the loss is computed (default float64, float32 on MPS:
            :func:`causalbook_lib.utils.accumulation_dtype`); float32 with ``"ce"`` shows how a
            saturated softmax masks the gradient.
    Returns:
        (n, d) adversarial images, in that dtype.
    Raises:
        ValueError: bad shapes, images outside [0, 1], negative eps or an unknown loss.
    """
    x, y, e = _check_attack(forward_func, x, y, eps, loss)
    loss_dtype = accumulation_dtype(x) if loss_dtype is None else loss_dtype
    xa = x.clone().requires_grad_(True)
    grad, = torch.autograd.grad(_loss(forward_func, xa, y, loss, loss_dtype).sum(), xa)
    e = e.to(x.dtype)
    return (x + e[:, None] * grad.sign()).clamp(0.0, 1.0).detach()


def _project(delta: torch.Tensor, eps: torch.Tensor, norm: str) -> torch.Tensor:
    if norm == "linf":
        return torch.maximum(torch.minimum(delta, eps[:, None]), -eps[:, None])
    n = delta.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return delta * torch.clamp(eps[:, None] / n, max=1.0)


def pgd(forward_func: Callable, x, y, eps, *, norm: str = "linf", steps: int = 40, step_size: float | None = None,
        loss: str = "margin", loss_dtype: torch.dtype | None = None, restarts: int = 1,
        generator=None) -> torch.Tensor:
    """Projected gradient ascent on the loss inside an L-inf or L2 ball (Madry et al.).

    Each step moves by ``step_size * eps`` along ``sign(g)`` (L-inf) or ``g / ||g||`` (L2), projects
    back onto the ball of radius ``eps`` around ``x`` and clips to [0, 1]. The per-sample iterate
    with the highest margin seen is returned (so a success is never undone by a later step).
    ``step_size`` defaults to ``2.5 / steps``, a fraction of ``eps``.

    The first run starts at ``x``. With ``restarts > 1`` the others start at uniform random points
    of the ball (Madry et al.'s random restarts), drawn with ``generator`` (see
    :func:`causalbook_lib.utils.as_generator`), and the best iterate over all runs is kept, so more
    restarts never weaken the attack.

    Args: as :func:`fgsm`, plus ``norm`` (``"linf"`` or ``"l2"``), ``steps``, ``restarts``, ``generator``.

    Returns:
        (n, d) adversarial images, in the dtype of :func:`fgsm`.
    Raises:
        ValueError: bad shapes or arguments.
    """
    x, y, e = _check_attack(forward_func, x, y, eps, loss, norm)
    loss_dtype = accumulation_dtype(x) if loss_dtype is None else loss_dtype
    steps = check_positive_int(steps, "steps")
    restarts = check_positive_int(restarts, "restarts")
    alpha = 2.5 / steps if step_size is None else float(step_size)
    if not alpha > 0:
        raise ValueError(f"step_size must be positive, got {step_size!r}")
    gen = as_generator(generator, device=x.device) if restarts > 1 else None
    e = e.to(x.dtype)
    best, best_margin = x.clone(), torch.full((len(x),), -torch.inf, dtype=accumulation_dtype(x), device=x.device)
    for run in range(restarts):
        if run == 0:
            delta = torch.zeros_like(x)
        elif norm == "linf":
            delta = (2 * torch.rand(x.shape, generator=gen, dtype=x.dtype, device=x.device) - 1) * e[:, None]
        else:  # uniform in the L2 ball: a uniform direction, radius eps * U^(1/d)
            d = torch.randn(x.shape, generator=gen, dtype=x.dtype, device=x.device)
            r = torch.rand(len(x), generator=gen, dtype=x.dtype, device=x.device) ** (1.0 / x.shape[1])
            delta = d / d.norm(dim=1, keepdim=True).clamp_min(1e-30) * (r * e)[:, None]
        best, best_margin = _pgd_run(forward_func, x, y, e, delta, steps, alpha, norm, loss, loss_dtype,
                                     best, best_margin)
    return best.detach()


def _pgd_run(forward_func, x, y, e, delta, steps, alpha, norm, loss, loss_dtype, best, best_margin):
    """One PGD run from ``x + delta``; updates and returns the best iterate and margin per sample."""
    for _ in range(steps + 1):
        xa = (x + delta).clamp(0.0, 1.0).requires_grad_(True)
        value = _loss(forward_func, xa, y, loss, loss_dtype)
        grad, = torch.autograd.grad(value.sum(), xa)
        with torch.no_grad():
            m = margin_loss(forward_func(xa).to(best_margin.dtype), y)
            better = m > best_margin
            best[better], best_margin[better] = xa[better], m[better]
            if norm == "linf":
                step = grad.sign()
            else:
                step = grad / grad.norm(dim=1, keepdim=True).clamp_min(1e-30)
            delta = _project(xa - x + alpha * e[:, None] * step, e, norm)
    return best, best_margin


def accuracy_under_attack(forward_func: Callable, x, y, eps_values, attack: str = "pgd", **kwargs) -> torch.Tensor:
    """Accuracy after attacking every test point at each budget in ``eps_values``: shape (len(eps_values),).

    ``attack`` is ``"fgsm"`` or ``"pgd"``; extra keyword arguments go to the attack.

    Raises:
        ValueError: an unknown attack or bad budgets.
    """
    if attack not in ("fgsm", "pgd"):
        raise ValueError(f"attack must be 'fgsm' or 'pgd', got {attack!r}")
    fn = fgsm if attack == "fgsm" else pgd
    out = []
    for eps in eps_values:
        xa = fn(forward_func, x, y, float(eps), **kwargs)
        out.append(accuracy(forward_func, xa, y))
    where = x if isinstance(x, torch.Tensor) else None
    return torch.tensor([float(a) for a in out], dtype=accumulation_dtype(where),
                        device=None if where is None else where.device)


def minimal_perturbation(forward_func: Callable, x, y, *, norm: str = "l2", eps_max: float = 8.0, bisections: int = 12,
                         steps: int = 30, loss: str = "margin", restarts: int = 1,
                         generator=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample smallest budget at which PGD finds an adversarial example, by batched bisection.

    For each sample the interval ``[0, eps_max]`` is bisected: PGD at the mid-point either
    succeeds (upper end moves down) or not (lower end moves up). The returned size is the norm of
    the best adversarial example found (an upper bound on the true minimal perturbation);
    samples already misclassified get 0 and samples never broken get ``inf``. ``restarts`` and
    ``generator`` go to every :func:`pgd` call: more restarts give a tighter upper bound.

    Returns:
        ``(sizes, examples)``: (n,) perturbation norms and (n, d) adversarial images, in the dtype
        of :func:`fgsm`.
    Raises:
        ValueError: bad shapes or arguments.
    """
    x, y, _ = _check_attack(forward_func, x, y, 0.0, loss, norm)
    bisections = check_positive_int(bisections, "bisections")
    restarts = check_positive_int(restarts, "restarts")
    if not eps_max > 0:
        raise ValueError(f"eps_max must be positive, got {eps_max!r}")
    with torch.no_grad():
        wrong = forward_func(x).argmax(1) != y
    lo = torch.zeros(len(x), dtype=accumulation_dtype(x), device=x.device)
    hi = torch.full((len(x),), float(eps_max), dtype=accumulation_dtype(x), device=x.device)
    gen = as_generator(generator, device=x.device) if restarts > 1 else None
    xa = pgd(forward_func, x, y, hi, norm=norm, steps=steps, loss=loss, restarts=restarts, generator=gen)
    with torch.no_grad():
        ok = forward_func(xa).argmax(1) != y
    best = torch.where(ok[:, None], xa, x)
    for _ in range(bisections):
        mid = 0.5 * (lo + hi)
        cand = pgd(forward_func, x, y, mid, norm=norm, steps=steps, loss=loss, restarts=restarts, generator=gen)
        with torch.no_grad():
            succ = forward_func(cand).argmax(1) != y
        hi = torch.where(succ, mid, hi)
        lo = torch.where(succ, lo, mid)
        best = torch.where(succ[:, None], cand, best)
        ok = ok | succ
    p = float("inf") if norm == "linf" else 2
    sizes = torch.linalg.vector_norm(best - x, ord=p, dim=1)
    sizes = torch.where(ok, sizes, torch.full_like(sizes, float("inf")))
    sizes = torch.where(wrong, torch.zeros_like(sizes), sizes)
    return sizes, torch.where(wrong[:, None], x, best)


@torch.no_grad()
def line_search_attack(forward_func: Callable, x, y, candidates, candidate_labels, *, nearest: int = 20, grid: int = 32,
                       chunk_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """A decision-based attack: walk in a straight line from ``x`` towards images of other classes.

    For every pair (test image, one of its ``nearest`` closest candidates of another class) the points ``x + t (c - x)``,
    ``t`` on a grid in (0, 1], are classified, and the smallest L2 distance at which the
    decision leaves ``y`` is kept. It needs no gradients, so gradient masking cannot fool it;
    its sizes are upper bounds on the minimal L2 perturbation.

    Args:
        x: (n, d) images; y: (n,) labels; candidates: (m, d) images; candidate_labels: (m,).
        nearest: lines per test image (its closest candidates from other classes, in L2).
        grid: number of steps on the line; chunk_size: test images handled at once (memory bound).
    Returns:
        ``(sizes, examples)``: (n,) L2 norms (``inf`` if no candidate line flips the decision)
        and (n, d) the closest adversarial images found.
    Raises:
        ValueError: bad shapes.
    """
    x, y = check_features_labels(x, y)
    cand, cy = check_features_labels(candidates, candidate_labels, x.shape[1])
    grid = check_positive_int(grid, "grid")
    nearest = min(check_positive_int(nearest, "nearest"), len(cand))
    chunk = check_positive_int(chunk_size, "chunk_size")
    dtype = _compute_dtype(forward_func, x)
    x, cand = x.to(dtype), cand.to(dtype=dtype, device=x.device)
    cy = cy.to(x.device)
    ts = torch.arange(1, grid + 1, dtype=dtype, device=x.device) / grid
    sizes = torch.full((len(x),), float("inf"), dtype=dtype, device=x.device)
    examples = x.clone()
    for s in range(0, len(x), chunk):
        xb, yb = x[s:s + chunk], y[s:s + chunk]
        dist0 = torch.cdist(xb, cand).masked_fill(cy[None] == yb[:, None], float("inf"))
        pick = dist0.topk(nearest, dim=1, largest=False).indices                # (b, k)
        direction = cand[pick] - xb[:, None]                                   # (b, k, d)
        pts = xb[:, None, None] + ts[None, None, :, None] * direction[:, :, None]   # (b, k, g, d)
        pred = forward_func(pts.reshape(-1, x.shape[1])).argmax(1).reshape(pts.shape[:3])
        flipped = (pred != yb[:, None, None]) & (cy[pick][:, :, None] != yb[:, None, None])
        dist = ts[None, None] * direction.norm(dim=2)[:, :, None]               # (b, m, g)
        dist = torch.where(flipped, dist, torch.full_like(dist, float("inf")))
        flat = dist.reshape(len(xb), -1)
        best, arg = flat.min(1)
        sizes[s:s + chunk] = best
        pts_flat = pts.reshape(len(xb), -1, x.shape[1])
        found = torch.isfinite(best)
        chosen = pts_flat[torch.arange(len(xb), device=x.device), arg]
        examples[s:s + chunk] = torch.where(found[:, None], chosen, xb)
    return sizes, examples


def adversarial_training(x, y, eps: float, *, hidden: int = 128, epochs: int = 30, batch_size: int = 128,
                         lr: float = 1e-3, weight_decay: float = 1e-4, steps: int = 5, step_size: float | None = None,
                         warmup_epochs: int = 0, generator=None) -> nn.Sequential:
    """PGD adversarial training (Madry et al.): fit ``min_theta E max_{|delta|_inf <= eps} CE(f(x + delta), y)``.

    The network is the one of :func:`causalbook_lib.models.train_mlp_classifier`
    (``d -> hidden -> classes``, ReLU, float64), initialised with :func:`causalbook_lib.utils.seeded_init` from ``generator``. Each
    mini-batch is replaced by its :func:`pgd` adversarial examples (L-infinity, ``steps`` steps of
    the cross-entropy, the inner maximisation, computed with the current weights), and Adam takes one
    step on their cross-entropy, the outer minimisation. During the first ``warmup_epochs`` epochs the
    training budget grows linearly from ``eps / warmup_epochs`` to ``eps``, which helps small
    networks start. Mini-batches are drawn with ``generator`` (None, an int seed or a
    ``torch.Generator``, see :func:`causalbook_lib.utils.as_generator`).

    Args:
        x: (n, d) training images in [0, 1]; y: (n,) integer labels.
        eps: the L-infinity training budget, a number >= 0 (0 gives plain training).
        hidden, epochs, batch_size, lr, weight_decay: as in :func:`causalbook_lib.models.train_mlp_classifier`.
        steps: PGD steps per mini-batch; step_size: as in :func:`pgd` (default ``2.5 / steps``).
        warmup_epochs: epochs over which the budget ramps up (0: the full budget from the start).
        generator: seeds the initialisation and the mini-batch order.

    Returns:
        The trained ``nn.Sequential`` in eval mode.

    Raises:
        ValueError: bad shapes, images outside [0, 1], a negative budget or bad hyper-parameters.
    """
    x, y = check_features_labels(x, y)
    if float(x.min()) < 0 or float(x.max()) > 1:
        raise ValueError("x must lie in [0, 1] (PGD clips to the image range)")
    if check_number(eps, "eps") < 0:
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    hidden = check_positive_int(hidden, "hidden")
    steps = check_positive_int(steps, "steps")
    warmup_epochs = check_positive_int(warmup_epochs, "warmup_epochs", minimum=0)
    if not lr > 0 or weight_decay < 0:
        raise ValueError(f"lr must be positive and weight_decay >= 0, got {lr!r} and {weight_decay!r}")
    n_classes = int(y.max()) + 1
    if n_classes < 2:
        raise ValueError(f"y must hold labels of at least two classes (0, 1, ...), got only {n_classes}")
    gen = as_generator(generator)
    x = x.to(accumulation_dtype(x))
    with seeded_init(gen):
        model = make_mlp([x.shape[1], hidden, n_classes], "relu", dtype=x.dtype).to(x.device)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    for epoch in range(epochs):
        e = float(eps) * min(1.0, (epoch + 1) / warmup_epochs) if warmup_epochs else float(eps)
        perm = torch.randperm(len(x), generator=gen, device=gen.device).to(x.device)
        for start in range(0, len(x), batch_size):
            idx = perm[start:start + batch_size]
            xb = pgd(model, x[idx], y[idx], e, steps=steps, step_size=step_size, loss="ce") if e > 0 else x[idx]
            loss = nn.functional.cross_entropy(model(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()
