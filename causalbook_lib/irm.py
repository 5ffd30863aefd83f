"""Invariant risk minimisation: ERM against IRMv1 and the worst-environment objective (Part V, :doc:`chapter 15 </notebooks/15-ood-generalisation>`).

* :func:`irmv1_penalty`: the IRMv1 penalty of Arjovsky et al., the squared gradient of an
  environment's risk with respect to a fixed dummy classifier scale :math:`w = 1`.
* :func:`environment_risks`: each model's logistic risk in one environment.
* :func:`fit_invariant_classifiers`: full-batch training of ERM, IRMv1 and the min-max (worst
  environment) objective on a list of environments, for several seeds at once (one
  :class:`causalbook_lib.models.StackedMLP`).

Competing experts, the other independent-mechanism method of chapter 15, are in
:mod:`causalbook_lib.experts`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .models import StackedMLP
from .utils import check_number, check_positive_int

__all__ = [
    "irmv1_penalty",
    "environment_risks",
    "INVARIANCE_METHODS",
    "InvarianceFit",
    "fit_invariant_classifiers",
]

#: Training objectives understood by :func:`fit_invariant_classifiers`.
INVARIANCE_METHODS = ("erm", "irm", "minmax")


def _check_logits_labels(logits: torch.Tensor, y: torch.Tensor) -> None:
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point() or logits.dim() < 1:
        raise ValueError("logits must be a floating tensor with at least one dimension (..., n)")
    if logits.shape[-1] == 0:
        raise ValueError("logits must hold at least one example")
    y = torch.as_tensor(y)
    if y.shape != logits.shape[-y.dim():] or y.dim() == 0:
        raise ValueError(f"y must have shape {tuple(logits.shape)} or a suffix of it, got {tuple(y.shape)}")
    if not bool(((y == 0) | (y == 1)).all()):
        raise ValueError("y must hold binary labels 0 or 1")
    if not bool(torch.isfinite(logits).all()):
        raise ValueError("logits must be finite")


def irmv1_penalty(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The IRMv1 penalty of Arjovsky et al. (2019) for one environment, batched over models.

    With the risk :math:`R^e(w \\cdot f) = \\frac1n \\sum_i \\ell(w f(x_i), y_i)` (binary cross-entropy
    on logits), the penalty is :math:`\\| \\nabla_{w \\mid w = 1} R^e(w \\cdot f) \\|^2`: it is zero
    when the fixed "dummy" classifier :math:`w = 1` is already optimal on top of the
    representation :math:`f` in environment :math:`e`. It is computed by automatic
    differentiation, as in the authors' code, and kept differentiable (``create_graph``) so that
    it can be minimised. For this loss the gradient has the closed form
    :math:`\\frac1n \\sum_i (\\sigma(f_i) - y_i) f_i`. :doc:`Chapter 15 </notebooks/15-ood-generalisation>`, eq. ``ch15-eq-irmv1``.

    Args:
        logits: :math:`f(x)`, shape ``(..., n)`` (for example ``(M, n)`` for M models).
        y: binary labels, shape ``(n,)`` or ``(..., n)``.

    Returns:
        the penalty, shape ``(...)`` (a scalar tensor for 1-D logits).

    Raises:
        ValueError: non-floating or non-finite logits, mismatched shapes or non-binary labels.
    """
    _check_logits_labels(logits, y)
    y = torch.as_tensor(y, dtype=logits.dtype).expand_as(logits)
    scale = torch.ones(logits.shape[:-1] + (1,), dtype=logits.dtype, requires_grad=True)
    risk = F.binary_cross_entropy_with_logits(logits * scale, y, reduction="none").mean(-1)
    (grad,) = torch.autograd.grad(risk.sum(), scale, create_graph=True)
    return grad.squeeze(-1).pow(2)


def environment_risks(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy per model: logits ``(M, n)``, labels ``(n,)``; returns ``(M,)``."""
    _check_logits_labels(logits, y)
    y = torch.as_tensor(y, dtype=logits.dtype).expand_as(logits)
    return F.binary_cross_entropy_with_logits(logits, y, reduction="none").mean(-1)


@dataclass
class InvarianceFit:
    """Result of :func:`fit_invariant_classifiers`.

    Attributes:
        model: the :class:`~causalbook_lib.models.StackedMLP` holding every trained classifier (one logit each).
        methods: the objective of each model (``"erm"``, ``"irm"`` or ``"minmax"``).
        seeds: the initialisation seed of each model.
        history: float64 tensors of shape ``(steps, M, E)``: ``"risk"`` and ``"penalty"`` per
            environment, and ``"logit_rms"``, the root-mean-square logit of each model on each
            environment (the IRMv1 penalty also vanishes when the logits shrink towards zero).
    """

    model: StackedMLP
    methods: list[str]
    seeds: list[int]
    history: dict[str, torch.Tensor] = field(default_factory=dict)

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every model on inputs ``x`` of shape ``(n, D)``; returns ``(M, n)``."""
        return self.model(x).squeeze(-1)

    def accuracy(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Accuracy of every model on ``(x, y)`` (the logit thresholded at 0): a float64 tensor of shape ``(M,)``.

        (A method, not a module function: :func:`causalbook_lib.models.accuracy` is the accuracy of
        one classifier.)

        Raises:
            ValueError: shapes that do not match or non-binary labels.
        """
        (x, y), = _check_envs([(x, y)])
        pred = (self.logits(x) > 0).to(y.dtype)
        return (pred == y).to(torch.float64).mean(1)


def _check_envs(envs) -> list[tuple[torch.Tensor, torch.Tensor]]:
    if not isinstance(envs, (list, tuple)) or len(envs) == 0:
        raise ValueError("envs must be a non-empty list of (x, y) pairs")
    out = []
    dim = None
    for k, pair in enumerate(envs):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ValueError(f"envs[{k}] must be an (x, y) pair")
        x, y = torch.as_tensor(pair[0]), torch.as_tensor(pair[1])
        if x.dim() != 2 or not x.is_floating_point() or len(x) == 0:
            raise ValueError(f"envs[{k}]: x must be a non-empty floating tensor of shape (n, D), got {tuple(x.shape)}")
        if dim is not None and x.shape[1] != dim:
            raise ValueError(f"envs[{k}]: x has {x.shape[1]} features, environment 0 has {dim}")
        dim = x.shape[1]
        if y.shape != (len(x),) or not bool(((y == 0) | (y == 1)).all()):
            raise ValueError(f"envs[{k}]: y must hold {len(x)} binary labels, got shape {tuple(y.shape)}")
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"envs[{k}]: x must be finite")
        out.append((x, y.to(x.dtype)))
    return out


def fit_invariant_classifiers(envs, *, methods=("erm", "irm"), seeds=(0, 1, 2), hidden: int = 64,
                              steps: int = 400, lr: float = 1e-3, l2: float = 1e-3,
                              penalty_weight: float = 1e4, anneal_steps: int = 100) -> InvarianceFit:
    """Train binary MLP classifiers on several environments with ERM, IRMv1 and/or min-max risk.

    One model per (method, seed) pair; all train together, full batch, with Adam. With the
    environment risks :math:`R^e` and IRMv1 penalties :math:`P^e` (:func:`irmv1_penalty`) the
    objectives are

    * ``"erm"``: :math:`\\frac1E \\sum_e R^e + \\rho \\|\\theta\\|^2`;
    * ``"irm"``: :math:`\\frac1E \\sum_e (R^e + \\lambda_t P^e) + \\rho \\|\\theta\\|^2`, divided by
      :math:`\\lambda_t` when :math:`\\lambda_t > 1`, where :math:`\\lambda_t = 1` for the first
      ``anneal_steps`` steps and ``penalty_weight`` afterwards (the schedule of the authors'
      Coloured-MNIST code);
    * ``"minmax"``: :math:`\\max_e R^e + \\rho \\|\\theta\\|^2`, the robust (worst-environment)
      objective that the survey uses to describe IRM.

    :doc:`Chapter 15 </notebooks/15-ood-generalisation>`, survey Sec. 3.1.

    Args:
        envs: list of ``(x, y)`` pairs, ``x`` of shape ``(n_e, D)`` and binary ``y`` of shape ``(n_e,)``.
        methods: objectives to train, a subset of :data:`INVARIANCE_METHODS`.
        seeds: initialisation seeds; every method is trained once per seed.
        hidden: width of the two hidden layers.
        steps, lr, l2: number of full-batch Adam steps, learning rate, L2 weight :math:`\\rho`.
        penalty_weight, anneal_steps: :math:`\\lambda` after annealing and the annealing length.

    Returns:
        an :class:`InvarianceFit`.

    Raises:
        ValueError: malformed environments, unknown methods, non-positive sizes or negative weights.
    """
    envs = _check_envs(envs)
    methods = list(methods) if not isinstance(methods, str) else [methods]
    if not methods or any(m not in INVARIANCE_METHODS for m in methods):
        raise ValueError(f"methods must be a non-empty subset of {INVARIANCE_METHODS}, got {methods}")
    seeds = [check_positive_int(s, "seed", minimum=0) for s in seeds]
    if not seeds:
        raise ValueError("seeds must hold at least one seed")
    steps = check_positive_int(steps, "steps")
    anneal_steps = check_positive_int(anneal_steps, "anneal_steps", minimum=0)
    lr = check_number(lr, "lr", positive=True)
    l2 = check_number(l2, "l2", nonnegative=True)
    penalty_weight = check_number(penalty_weight, "penalty_weight", nonnegative=True)

    model_methods = [m for m in methods for _ in seeds]
    model_seeds = [s for _ in methods for s in seeds]
    model = StackedMLP(len(model_methods), envs[0][0].shape[1], check_positive_int(hidden, "hidden"), 1,
                       seeds=model_seeds, dtype=envs[0][0].dtype)
    is_irm = torch.tensor([m == "irm" for m in model_methods])
    is_minmax = torch.tensor([m == "minmax" for m in model_methods])
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    risks_hist = torch.zeros((steps, len(model_methods), len(envs)), dtype=torch.float64, device=envs[0][0].device)
    pen_hist = torch.zeros_like(risks_hist)
    scale_hist = torch.zeros_like(risks_hist)
    for step in range(steps):
        risks, penalties = [], []
        for e, (x, y) in enumerate(envs):  # a loop over the few environments, never over samples
            logits = model(x).squeeze(-1)
            risks.append(environment_risks(logits, y))
            penalties.append(irmv1_penalty(logits, y))
            scale_hist[step, :, e] = logits.detach().pow(2).mean(1).sqrt()
        risks, penalties = torch.stack(risks, 1), torch.stack(penalties, 1)  # (M, E)
        lam = penalty_weight if step >= anneal_steps else 1.0
        objective = torch.where(is_irm, risks.mean(1) + lam * penalties.mean(1),
                                torch.where(is_minmax, risks.max(1).values, risks.mean(1)))
        loss = objective + l2 * model.squared_norms()
        if lam > 1.0:  # rescale the whole IRM loss, as the authors' code does, to keep gradients moderate
            loss = torch.where(is_irm, loss / lam, loss)
        optimiser.zero_grad()
        loss.sum().backward()
        optimiser.step()
        risks_hist[step] = risks.detach()
        pen_hist[step] = penalties.detach()
    return InvarianceFit(model, model_methods, model_seeds,
                         {"risk": risks_hist, "penalty": pen_hist, "logit_rms": scale_hist})
