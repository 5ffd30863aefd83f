"""Robustness and fairness: analysis by synthesis, gradient attacks, counterfactual fairness (Part V, :doc:`chapter 17 </notebooks/17-robustness-fairness>`).

* :class:`GaussianGenerativeClassifier` models the generative direction label -> image with one
  probabilistic-PCA Gaussian per class and classifies by ``argmax_y log p(x | y) + log p(y)``: a
  small, exact-likelihood stand-in for the analysis-by-synthesis (ABS) model of Schott et al.
* :func:`train_mlp_classifier` trains the discriminative baseline.
* :func:`fgsm`, :func:`pgd`, :func:`minimal_perturbation` and :func:`line_search_attack` attack any
  model that maps images in [0, 1] to logits. The line search uses only decisions, so gradient
  masking cannot fool it.
* :func:`loan_abduct`, :func:`loan_counterfactual` and :func:`counterfactual_gap` implement the
  counterfactual-fairness test of Kusner et al. on the loan SCM of
  :func:`causalbook_lib.datasets.synthetic.sample_loan_data` by abduction, action and prediction.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from .datasets.synthetic import LoanSCMParameters
from .models import accuracy, make_mlp
from .utils import as_generator, check_number, check_positive_int, seeded_init

__all__ = [
    "GaussianGenerativeClassifier",
    "train_mlp_classifier",
    "margin_loss",
    "fgsm",
    "pgd",
    "accuracy_under_attack",
    "minimal_perturbation",
    "line_search_attack",
    "adversarial_training",
    "loan_abduct",
    "loan_counterfactual",
    "counterfactual_gap",
]


def _check_xy(x, y, d: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.as_tensor(x)
    y = torch.as_tensor(y)
    if x.dim() != 2 or (d is not None and x.shape[1] != d):
        raise ValueError(f"x must have shape (n, {d if d is not None else 'd'}), got {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x must be finite")
    if y.dim() != 1 or len(y) != len(x) or y.is_floating_point():
        raise ValueError(f"y must be a 1-D integer tensor with {len(x)} labels, got shape {tuple(y.shape)} "
                         f"and dtype {y.dtype}")
    return x, y.long()


# --------------------------------------------------------------------------------------------
# Analysis by synthesis: a class-conditional Gaussian generative classifier
# --------------------------------------------------------------------------------------------
class GaussianGenerativeClassifier(nn.Module):
    """Classify by Bayes' rule with one probabilistic-PCA Gaussian per class (:doc:`chapter 17 </notebooks/17-robustness-fairness>`).

    Math: ``p(x | y) = N(x; mu_y, W_y W_y^T + s_y^2 I)`` with ``W_y`` the top ``q`` principal
    directions of class ``y`` scaled by ``sqrt(lambda_k - s_y^2)`` and ``s_y^2`` the mean of the
    discarded eigenvalues (the form of Tipping and Bishop's maximum-likelihood solution), floored at
    ``min_variance``. Eigenvalues are those of the class's sample covariance with the 1/(n - 1)
    normalisation, as in scikit-learn's ``PCA.score_samples``, which computes the same density; the
    maximum-likelihood estimate proper would use 1/n, so these are the unbiased-covariance version of
    it. The logits are ``log p(x | y) + log p(y)``; their softmax is ``p(y | x)``.
    It is the analysis-by-synthesis idea (model label -> image, then invert with Bayes) with an
    exact likelihood instead of the ABS model's VAE lower bound. Computations are in float64.

    Args:
        x: (n, d) training images; y: (n,) integer labels 0..C-1.
        n_components: ``q``, the latent dimension of each class model (1 <= q < d).
        min_variance: floor on ``s_y^2`` (> 0), which keeps the covariances invertible.
    Raises:
        ValueError: bad shapes, a class with fewer than ``q + 2`` examples, or bad hyper-parameters.
    """

    def __init__(self, x, y, n_components: int = 8, min_variance: float = 1e-2):
        super().__init__()
        x, y = _check_xy(x, y)
        x = x.to(torch.float64)
        d = x.shape[1]
        q = check_positive_int(n_components, "n_components")
        if q >= d:
            raise ValueError(f"n_components must be smaller than the dimension {d}, got {q}")
        if not min_variance > 0:
            raise ValueError(f"min_variance must be positive, got {min_variance!r}")
        classes = int(y.max()) + 1
        means, precisions, logdets, priors = [], [], [], []
        for c in range(classes):
            xc = x[y == c]
            if len(xc) < q + 2:
                raise ValueError(f"class {c} has {len(xc)} examples; it needs at least n_components + 2 = {q + 2}")
            mu = xc.mean(0)
            cov = torch.cov(xc.T, correction=1)
            evals, evecs = torch.linalg.eigh(cov)
            evals, evecs = evals.flip(0), evecs.flip(1)
            s2 = max(float(evals[q:].mean()), min_variance)
            w = evecs[:, :q] * torch.sqrt((evals[:q] - s2).clamp_min(0.0))
            c_mat = w @ w.T + s2 * torch.eye(d, dtype=torch.float64)
            means.append(mu)
            precisions.append(torch.linalg.cholesky(torch.linalg.inv(c_mat)))
            logdets.append(torch.linalg.slogdet(c_mat)[1])
            priors.append(len(xc) / len(x))
        self.register_buffer("means", torch.stack(means))
        #: Cholesky factors L_y of the precision matrices, C_y^{-1} = L_y L_y^T: shape (C, d, d).
        self.register_buffer("precision_factors", torch.stack(precisions))
        self.register_buffer("logdets", torch.stack(logdets))
        self.register_buffer("log_priors", torch.log(torch.tensor(priors, dtype=torch.float64)))
        self.dim = d

    def log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(x | y)`` for every class: shape (n, C), float64."""
        x = torch.as_tensor(x).to(torch.float64)
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (n, {self.dim}), got {tuple(x.shape)}")
        diff = x[:, None, :] - self.means[None]                      # (n, C, d)
        quad = torch.einsum("ncd,cde->nce", diff, self.precision_factors).square().sum(2)  # diff^T C^-1 diff
        return -0.5 * (quad + self.logdets + self.dim * math.log(2 * math.pi))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``log p(x | y) + log p(y)``: shape (n, C), float64."""
        return self.log_likelihood(x) + self.log_priors


# --------------------------------------------------------------------------------------------
# Discriminative baseline
# --------------------------------------------------------------------------------------------
def train_mlp_classifier(x, y, *, hidden: int = 128, epochs: int = 150, batch_size: int = 64, lr: float = 1e-3,
                         weight_decay: float = 1e-4, generator: torch.Generator | None = None) -> nn.Sequential:
    """Train a one-hidden-layer ReLU network ``d -> hidden -> classes`` (:func:`causalbook_lib.models.make_mlp`,
    float64) with cross-entropy and Adam on mini-batches drawn with ``generator``; return it in eval mode.

    Raises:
        ValueError: bad shapes or non-positive hyper-parameters.
    """
    x, y = _check_xy(x, y)
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    if not lr > 0 or weight_decay < 0:
        raise ValueError(f"lr must be positive and weight_decay >= 0, got {lr!r} and {weight_decay!r}")
    x = x.to(torch.float64)
    hidden = check_positive_int(hidden, "hidden")
    n_classes = int(y.max()) + 1
    if n_classes < 2:
        raise ValueError(f"y must hold labels of at least two classes (0, 1, ...), got only {n_classes}")
    model = make_mlp([x.shape[1], hidden, n_classes], "relu", dtype=torch.float64)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch_size):
            idx = perm[start:start + batch_size]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


# --------------------------------------------------------------------------------------------
# Attacks
# --------------------------------------------------------------------------------------------
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


def _check_attack(x, y, eps, loss: str, norm: str | None = None):
    x, y = _check_xy(x, y)
    if loss not in ("margin", "ce"):
        raise ValueError(f"loss must be 'margin' or 'ce', got {loss!r}")
    if norm is not None and norm not in ("linf", "l2"):
        raise ValueError(f"norm must be 'linf' or 'l2', got {norm!r}")
    e = torch.as_tensor(eps, dtype=torch.float64)
    if e.dim() == 0:
        e = e.expand(len(x))
    if e.shape != (len(x),) or not bool(torch.isfinite(e).all()) or bool((e < 0).any()):
        raise ValueError(f"eps must be a finite number >= 0 or one per sample (shape ({len(x)},)), got {eps!r}")
    if float(x.min()) < 0 or float(x.max()) > 1:
        raise ValueError("x must lie in [0, 1] (attacks clip to the image range)")
    return x.to(torch.float64), y, e.clone()


def fgsm(forward_func: Callable, x, y, eps, *, loss: str = "margin", loss_dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Fast gradient sign method (Goodfellow et al.): ``x + eps * sign(grad_x loss)``, clipped to [0, 1].

    Args:
        forward_func: maps (n, d) float64 images to (n, C) logits.
        x: (n, d) images in [0, 1]; y: (n,) labels; eps: L-infinity budget (scalar or (n,)).
        loss: ``"margin"`` (default, see :func:`margin_loss`) or ``"ce"`` (cross-entropy).
        loss_dtype: dtype in which the loss is computed; float32 with ``"ce"`` shows how a
            saturated softmax masks the gradient.
    Returns:
        (n, d) float64 adversarial images.
    Raises:
        ValueError: bad shapes, images outside [0, 1], negative eps or an unknown loss.
    """
    x, y, e = _check_attack(x, y, eps, loss)
    xa = x.clone().requires_grad_(True)
    grad, = torch.autograd.grad(_loss(forward_func, xa, y, loss, loss_dtype).sum(), xa)
    return (x + e[:, None] * grad.sign()).clamp(0.0, 1.0).detach()


def _project(delta: torch.Tensor, eps: torch.Tensor, norm: str) -> torch.Tensor:
    if norm == "linf":
        return torch.maximum(torch.minimum(delta, eps[:, None]), -eps[:, None])
    n = delta.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return delta * torch.clamp(eps[:, None] / n, max=1.0)


def pgd(forward_func: Callable, x, y, eps, *, norm: str = "linf", steps: int = 40, step_size: float | None = None,
        loss: str = "margin", loss_dtype: torch.dtype = torch.float64, restarts: int = 1,
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
        (n, d) float64 adversarial images.
    Raises:
        ValueError: bad shapes or arguments.
    """
    x, y, e = _check_attack(x, y, eps, loss, norm)
    steps = check_positive_int(steps, "steps")
    restarts = check_positive_int(restarts, "restarts")
    alpha = 2.5 / steps if step_size is None else float(step_size)
    if not alpha > 0:
        raise ValueError(f"step_size must be positive, got {step_size!r}")
    gen = as_generator(generator) if restarts > 1 else None
    best, best_margin = x.clone(), torch.full((len(x),), -torch.inf, dtype=torch.float64)
    for run in range(restarts):
        if run == 0:
            delta = torch.zeros_like(x)
        elif norm == "linf":
            delta = (2 * torch.rand(x.shape, generator=gen, dtype=x.dtype) - 1) * e[:, None]
        else:  # uniform in the L2 ball: a uniform direction, radius eps * U^(1/d)
            d = torch.randn(x.shape, generator=gen, dtype=x.dtype)
            r = torch.rand(len(x), generator=gen, dtype=x.dtype) ** (1.0 / x.shape[1])
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
            m = margin_loss(forward_func(xa).to(torch.float64), y)
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
    return torch.tensor(out, dtype=torch.float64)


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
        ``(sizes, examples)``: (n,) float64 perturbation norms and (n, d) adversarial images.
    Raises:
        ValueError: bad shapes or arguments.
    """
    x, y, _ = _check_attack(x, y, 0.0, loss, norm)
    bisections = check_positive_int(bisections, "bisections")
    restarts = check_positive_int(restarts, "restarts")
    if not eps_max > 0:
        raise ValueError(f"eps_max must be positive, got {eps_max!r}")
    with torch.no_grad():
        wrong = forward_func(x).argmax(1) != y
    lo = torch.zeros(len(x), dtype=torch.float64)
    hi = torch.full((len(x),), float(eps_max), dtype=torch.float64)
    gen = as_generator(generator) if restarts > 1 else None
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
                       chunk: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """A decision-based attack: walk in a straight line from ``x`` towards images of other classes.

    For every pair (test image, one of its ``nearest`` closest candidates of another class) the points ``x + t (c - x)``,
    ``t`` on a grid in (0, 1], are classified, and the smallest L2 distance at which the
    decision leaves ``y`` is kept. It needs no gradients, so gradient masking cannot fool it;
    its sizes are upper bounds on the minimal L2 perturbation.

    Args:
        x: (n, d) images; y: (n,) labels; candidates: (m, d) images; candidate_labels: (m,).
        nearest: lines per test image (its closest candidates from other classes, in L2).
        grid: number of steps on the line; chunk: test images handled at once (memory bound).
    Returns:
        ``(sizes, examples)``: (n,) L2 norms (``inf`` if no candidate line flips the decision)
        and (n, d) the closest adversarial images found.
    Raises:
        ValueError: bad shapes.
    """
    x, y = _check_xy(x, y)
    cand, cy = _check_xy(candidates, candidate_labels, x.shape[1])
    grid = check_positive_int(grid, "grid")
    nearest = min(check_positive_int(nearest, "nearest"), len(cand))
    chunk = check_positive_int(chunk, "chunk")
    x, cand = x.to(torch.float64), cand.to(torch.float64)
    ts = torch.arange(1, grid + 1, dtype=torch.float64) / grid
    sizes = torch.full((len(x),), float("inf"), dtype=torch.float64)
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
        chosen = pts_flat[torch.arange(len(xb)), arg]
        examples[s:s + chunk] = torch.where(found[:, None], chosen, xb)
    return sizes, examples


# --------------------------------------------------------------------------------------------
# Counterfactual fairness on the loan SCM
# --------------------------------------------------------------------------------------------
def _check_loan_features(features) -> torch.Tensor:
    f = torch.as_tensor(features).to(torch.float64)
    if f.dim() != 2 or f.shape[1] != 4:
        raise ValueError(f"features must have shape (n, 4) with columns group, age, education, income; "
                         f"got {tuple(f.shape)}")
    if not bool(torch.isfinite(f).all()):
        raise ValueError("features must be finite")
    if not bool(((f[:, 0] == 0) | (f[:, 0] == 1)).all()):
        raise ValueError("the group column of features must hold only 0 and 1")
    return f


def loan_abduct(features, params: LoanSCMParameters | None = None) -> torch.Tensor:
    """Abduction in the loan SCM: recover the exogenous terms of each applicant exactly.

    With additive noise every noise is the observed value minus its mechanism:
    ``U_Edu = Edu - b_EA A`` and ``U_Inc = Inc - (b_IA A + b_IE Edu + b_Iage Age)``;
    ``U_Age = Age`` (see :class:`causalbook_lib.datasets.synthetic.LoanSCMParameters`).

    Args:
        features: (n, 4) columns group, age, education, income (as ``LoanData.features()``).
    Returns:
        An (n, 3) float64 tensor with columns ``U_Age, U_Edu, U_Inc``.
    Raises:
        ValueError: wrong shape, non-finite values or a group other than 0/1.
    """
    p = params or LoanSCMParameters()
    f = _check_loan_features(features)
    a, age, edu, inc = f.unbind(1)
    u_edu = edu - p.edu_from_group * a
    u_inc = inc - (p.inc_from_group * a + p.inc_from_edu * edu + p.inc_from_age * age)
    return torch.stack([age, u_edu, u_inc], dim=1)


def loan_counterfactual(features, group, params: LoanSCMParameters | None = None) -> torch.Tensor:
    """Counterfactual features under ``do(A = group)`` by abduction, action and prediction.

    1. Abduction: ``U = loan_abduct(features)``. 2. Action: replace ``A`` by ``group``.
    3. Prediction: recompute ``Edu`` and ``Inc`` from their mechanisms with the same ``U``.

    Args:
        features: (n, 4) as in :func:`loan_abduct`.
        group: 0 or 1, or an (n,) tensor of 0/1 (for example ``1 - features[:, 0]`` to flip every group).
    Returns:
        (n, 4) float64 counterfactual features (group, age, education, income).
    Raises:
        ValueError: bad features or a group value other than 0/1.
    """
    p = params or LoanSCMParameters()
    f = _check_loan_features(features)
    g = torch.as_tensor(group, dtype=torch.float64)
    if g.dim() == 0:
        g = g.expand(len(f))
    if g.shape != (len(f),) or not bool(((g == 0) | (g == 1)).all()):
        raise ValueError(f"group must be 0, 1 or an ({len(f)},) tensor of 0/1 values, got {group!r}")
    u_age, u_edu, u_inc = loan_abduct(f, p).unbind(1)
    edu = p.edu_from_group * g + u_edu
    inc = p.inc_from_group * g + p.inc_from_edu * edu + p.inc_from_age * u_age + u_inc
    return torch.stack([g, u_age, edu, inc], dim=1)


def counterfactual_gap(forward_func: Callable[[torch.Tensor], torch.Tensor], features, cf_features) -> torch.Tensor:
    """Per-applicant change of a predictor between the factual and the counterfactual world: shape (n,).

    Kusner et al.'s criterion asks ``P(Yhat_{A<-a}(U) | X, A) = P(Yhat_{A<-a'}(U) | X, A)``; for a
    deterministic SCM and predictor this is ``forward_func(features) == forward_func(cf_features)`` for
    every applicant, so the returned ``|forward_func(features) - forward_func(cf_features)|`` must be 0.

    Raises:
        ValueError: the two feature matrices differ in shape, or ``forward_func`` returns the wrong shape.
    """
    f = _check_loan_features(features)
    fc = _check_loan_features(cf_features)
    if f.shape != fc.shape:
        raise ValueError(f"features and cf_features must have the same shape, got {tuple(f.shape)} and {tuple(fc.shape)}")
    a = torch.as_tensor(forward_func(f), dtype=torch.float64)
    b = torch.as_tensor(forward_func(fc), dtype=torch.float64)
    if a.shape != (len(f),) or b.shape != (len(f),):
        raise ValueError(f"predict must return one value per applicant, shape ({len(f)},), got {tuple(a.shape)}")
    return (a - b).abs()


# --------------------------------------------------------------------------------------------
# Adversarial training (appended; see chapter 17, "Adversarial training and a certificate")
# --------------------------------------------------------------------------------------------
def adversarial_training(x, y, eps: float, *, hidden: int = 128, epochs: int = 30, batch_size: int = 128,
                         lr: float = 1e-3, weight_decay: float = 1e-4, steps: int = 5, step_size: float | None = None,
                         warmup_epochs: int = 0, generator=None) -> nn.Sequential:
    """PGD adversarial training (Madry et al.): fit ``min_theta E max_{|delta|_inf <= eps} CE(f(x + delta), y)``.

    The network is the one of :func:`train_mlp_classifier` (``d -> hidden -> classes``, ReLU,
    float64), initialised with :func:`causalbook_lib.utils.seeded_init` from ``generator``. Each
    mini-batch is replaced by its :func:`pgd` adversarial examples (L-infinity, ``steps`` steps of
    the cross-entropy, the inner maximisation, computed with the current weights), and Adam takes one
    step on their cross-entropy, the outer minimisation. During the first ``warmup_epochs`` epochs the
    training budget grows linearly from ``eps / warmup_epochs`` to ``eps``, which helps small
    networks start. Mini-batches are drawn with ``generator`` (None, an int seed or a
    ``torch.Generator``, see :func:`causalbook_lib.utils.as_generator`).

    Args:
        x: (n, d) training images in [0, 1]; y: (n,) integer labels.
        eps: the L-infinity training budget, a number >= 0 (0 gives plain training).
        hidden, epochs, batch_size, lr, weight_decay: as in :func:`train_mlp_classifier`.
        steps: PGD steps per mini-batch; step_size: as in :func:`pgd` (default ``2.5 / steps``).
        warmup_epochs: epochs over which the budget ramps up (0: the full budget from the start).
        generator: seeds the initialisation and the mini-batch order.

    Returns:
        The trained ``nn.Sequential`` in eval mode.

    Raises:
        ValueError: bad shapes, images outside [0, 1], a negative budget or bad hyper-parameters.
    """
    x, y = _check_xy(x, y)
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
    x = x.to(torch.float64)
    with seeded_init(gen):
        model = make_mlp([x.shape[1], hidden, n_classes], "relu", dtype=torch.float64)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    for epoch in range(epochs):
        e = float(eps) * min(1.0, (epoch + 1) / warmup_epochs) if warmup_epochs else float(eps)
        perm = torch.randperm(len(x), generator=gen)
        for start in range(0, len(x), batch_size):
            idx = perm[start:start + batch_size]
            xb = pgd(model, x[idx], y[idx], e, steps=steps, step_size=step_size, loss="ce") if e > 0 else x[idx]
            loss = nn.functional.cross_entropy(model(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()

