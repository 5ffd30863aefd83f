"""Invariant risk minimisation: ERM against IRMv1 and the worst-environment objective (Part V, :doc:`chapter 15 </notebooks/15-ood-generalisation>`).

* :func:`irmv1_penalty`: the IRMv1 penalty of Arjovsky et al., the squared gradient of an
  environment's risk with respect to a fixed dummy classifier scale :math:`w = 1`.
* :func:`environment_risks`: each model's logistic risk in one environment.
* :func:`fit_invariant_classifiers`: full-batch training of ERM, IRMv1 and the min-max (worst
  environment) objective on a list of environments, for several seeds at once (one
  :class:`causalbook_lib.models.StackedMLP`).
* :func:`leave_one_environment_out`: model selection that never looks at the test environment
  (Gulrajani and Lopez-Paz): each setting is trained once per held-out training environment and
  scored by its accuracy there.

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
    "LinearInvarianceFit",
    "fit_linear_invariant",
    "EnvironmentSelection",
    "leave_one_environment_out",
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
    scale = torch.ones(logits.shape[:-1] + (1,), dtype=logits.dtype, device=logits.device, requires_grad=True)
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


def _objective(risks, penalties, is_irm, is_minmax, lam: float, regulariser) -> torch.Tensor:
    """Each model's training loss from its per-environment risks and penalties, both ``(M, E)``."""
    objective = torch.where(is_irm, risks.mean(1) + lam * penalties.mean(1),
                            torch.where(is_minmax, risks.max(1).values, risks.mean(1)))
    loss = objective + regulariser
    if lam > 1.0:  # rescale the whole IRM loss, as the authors' code does, to keep gradients moderate
        loss = torch.where(is_irm, loss / lam, loss)
    return loss


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
    is_irm = torch.tensor([m == "irm" for m in model_methods], device=envs[0][0].device)
    is_minmax = torch.tensor([m == "minmax" for m in model_methods], device=envs[0][0].device)
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
        loss = _objective(risks, penalties, is_irm, is_minmax, lam, l2 * model.squared_norms())
        optimiser.zero_grad()
        loss.sum().backward()
        optimiser.step()
        risks_hist[step] = risks.detach()
        pen_hist[step] = penalties.detach()
    return InvarianceFit(model, model_methods, model_seeds,
                         {"risk": risks_hist, "penalty": pen_hist, "logit_rms": scale_hist})


@dataclass
class LinearInvarianceFit:
    """Result of :func:`fit_linear_invariant`: one logistic regression per data set.

    Attributes:
        method: the objective (``"erm"``, ``"irm"`` or ``"minmax"``).
        weight: tensor of shape ``(S, D)``, the coefficients of each data set's model.
        bias: tensor of shape ``(S, 1)``.
    """

    method: str
    weight: torch.Tensor
    bias: torch.Tensor


def fit_linear_invariant(x, y, *, method: str = "erm", steps: int = 400, lr: float = 0.05,
                         penalty_weight: float = 1e4, anneal_steps: int = 100) -> LinearInvarianceFit:
    """Train logistic regressions with ERM, IRMv1 or the min-max objective, one per data set, all at once.

    The objectives are those of :func:`fit_invariant_classifiers` (same annealed IRMv1 penalty, no
    L2 term), for linear models :math:`\\Phi(x) = w^\\top x + b` started from zero and trained full
    batch with Adam. Unlike :func:`fit_invariant_classifiers`, which trains many initialisations on
    one data set, each model here has its own data set (for example one per data seed of a
    simulator). :doc:`Chapter 15 </notebooks/15-ood-generalisation>`, the linear SEM.

    Args:
        x: floating tensor of shape ``(S, E, n, D)``: ``S`` data sets of ``E`` environments with
            ``n`` points each.
        y: binary labels of shape ``(S, E, n)``.
        method: one of :data:`INVARIANCE_METHODS`.
        steps, lr: number of Adam steps and learning rate.
        penalty_weight, anneal_steps: :math:`\\lambda` after annealing and the annealing length.

    Returns:
        a :class:`LinearInvarianceFit`, in the dtype and on the device of ``x``.

    Raises:
        ValueError: shapes that do not match, non-binary labels, non-finite inputs, an unknown
            method, or non-positive sizes.
    """
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    if x.dim() != 4 or not x.is_floating_point() or x.numel() == 0:
        raise ValueError(f"x must be a non-empty floating tensor of shape (S, E, n, D), got {tuple(x.shape)}")
    if y.shape != x.shape[:3] or not bool(((y == 0) | (y == 1)).all()):
        raise ValueError(f"y must hold binary labels of shape {tuple(x.shape[:3])}, got {tuple(y.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x must be finite")
    if method not in INVARIANCE_METHODS:
        raise ValueError(f"method must be one of {INVARIANCE_METHODS}, got {method!r}")
    steps = check_positive_int(steps, "steps")
    anneal_steps = check_positive_int(anneal_steps, "anneal_steps", minimum=0)
    lr = check_number(lr, "lr", positive=True)
    penalty_weight = check_number(penalty_weight, "penalty_weight", nonnegative=True)
    y = y.to(x.dtype)
    n_sets = x.shape[0]
    w = torch.zeros(n_sets, x.shape[-1], dtype=x.dtype, device=x.device, requires_grad=True)
    b = torch.zeros(n_sets, 1, dtype=x.dtype, device=x.device, requires_grad=True)
    is_irm = torch.full((n_sets,), method == "irm", device=x.device)
    is_minmax = torch.full((n_sets,), method == "minmax", device=x.device)
    optimiser = torch.optim.Adam([w, b], lr=lr)
    for step in range(steps):
        logits = torch.einsum("send,sd->sen", x, w) + b[..., None]  # (S, E, n)
        lam = penalty_weight if step >= anneal_steps else 1.0
        loss = _objective(environment_risks(logits, y), irmv1_penalty(logits, y), is_irm, is_minmax, lam, 0.0)
        optimiser.zero_grad()
        loss.sum().backward()
        optimiser.step()
    return LinearInvarianceFit(method, w.detach(), b.detach())


#: Keyword arguments of :func:`fit_invariant_classifiers` that a selection setting may set.
_SETTING_KEYS = ("hidden", "steps", "lr", "l2", "penalty_weight", "anneal_steps")


@dataclass
class EnvironmentSelection:
    """Result of :func:`leave_one_environment_out`.

    Attributes:
        settings: the candidate settings, as given.
        methods, seeds: the objectives and initialisation seeds that were trained.
        accuracy: float64 tensor of shape ``(S, E, M, K)``: the accuracy on held-out environment
            ``e`` of the model trained on the other environments with setting ``s``, method ``m``
            and seed ``k``.
        score: float64 tensor of shape ``(S, M)``: ``accuracy`` averaged over held-out
            environments and seeds, the selection criterion.
        selected: for each method, the index of the setting with the highest score (the first
            one on ties).
    """

    settings: list[dict]
    methods: list[str]
    seeds: list[int]
    accuracy: torch.Tensor
    score: torch.Tensor
    selected: dict[str, int]


def leave_one_environment_out(envs, settings, *, methods=("erm", "irm"), seeds=(0, 1, 2)) -> EnvironmentSelection:
    """Select training settings by leave-one-environment-out validation, never using a test environment.

    For every candidate setting and every training environment :math:`e`, trains each method and
    seed with :func:`fit_invariant_classifiers` on the other environments and measures accuracy
    on :math:`e`. A setting's score for a method is that accuracy averaged over the held-out
    environments and the seeds; each method gets the setting with the highest score. This is the
    "leave-one-domain-out" rule of Gulrajani and Lopez-Paz (2021), who then retrain the chosen
    setting on all training environments. :doc:`Chapter 15 </notebooks/15-ood-generalisation>`.

    Args:
        envs: list of at least two training environments, ``(x, y)`` pairs as for
            :func:`fit_invariant_classifiers`. Each fold trains on all but one of them, so with
            two environments each fold trains on a single one.
        settings: non-empty list of dicts of keyword arguments for :func:`fit_invariant_classifiers`
            (any of ``hidden``, ``steps``, ``lr``, ``l2``, ``penalty_weight``, ``anneal_steps``).
        methods, seeds: as for :func:`fit_invariant_classifiers`; every setting and fold trains them all.

    Returns:
        an :class:`EnvironmentSelection`.

    Raises:
        ValueError: fewer than two environments, no settings, a setting that is not a dict or
            sets an unknown key, or any error of :func:`fit_invariant_classifiers`.
    """
    envs = _check_envs(envs)
    if len(envs) < 2:
        raise ValueError(f"leave-one-environment-out needs at least two training environments, got {len(envs)}")
    if not isinstance(settings, (list, tuple)) or len(settings) == 0:
        raise ValueError("settings must be a non-empty list of dicts of training keyword arguments")
    for i, s in enumerate(settings):
        if not isinstance(s, dict):
            raise ValueError(f"settings[{i}] must be a dict, got {type(s).__name__}")
        unknown = sorted(set(s) - set(_SETTING_KEYS))
        if unknown:
            raise ValueError(f"settings[{i}] sets {unknown}; a setting may set only {_SETTING_KEYS}")
    methods = list(methods) if not isinstance(methods, str) else [methods]
    seeds = list(seeds)
    acc = torch.zeros((len(settings), len(envs), len(methods), len(seeds)), dtype=torch.float64,
                      device=envs[0][0].device)
    for i, s in enumerate(settings):  # a loop over a few settings and folds; each fit is batched over models
        for e, held_out in enumerate(envs):
            fit = fit_invariant_classifiers([p for j, p in enumerate(envs) if j != e],
                                            methods=methods, seeds=seeds, **s)
            acc[i, e] = fit.accuracy(*held_out).reshape(len(methods), len(seeds))
    score = acc.mean(dim=(1, 3))
    selected = {m: int(score[:, k].argmax()) for k, m in enumerate(methods)}
    return EnvironmentSelection([dict(s) for s in settings], methods, seeds, acc, score, selected)
