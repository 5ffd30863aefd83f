"""Invariance and independent mechanisms: ERM against IRMv1, competing experts (Part V, :doc:`chapter 15 </notebooks/15-ood-generalisation>`).

* :class:`StackedMLP`: many small independent MLPs evaluated together (one batched matrix product
  per layer), so that several seeds and several training objectives train in a single loop.
* :func:`irmv1_penalty`: the IRMv1 penalty of Arjovsky et al., the squared gradient of an
  environment's risk with respect to a fixed dummy classifier scale :math:`w = 1`.
* :func:`fit_invariant_classifiers`: full-batch training of ERM, IRMv1 and the min-max (worst
  environment) objective on a list of environments, for several seeds at once.
* :func:`train_competing_experts`, :func:`assign_experts`, :func:`specialisation_matrix`:
  independent mechanisms as competing experts (Parascandolo et al.), who compete through a
  discriminator to undo unknown transformations of digits; :func:`restore_with_experts` and
  :func:`restoration_error_ratio` measure, against the ground truth, how well the winners undo them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .utils import check_positive_int

__all__ = [
    "StackedMLP",
    "irmv1_penalty",
    "environment_risks",
    "INVARIANCE_METHODS",
    "InvarianceFit",
    "fit_invariant_classifiers",
    "ExpertsFit",
    "train_competing_experts",
    "assign_experts",
    "specialisation_matrix",
    "restore_with_experts",
    "restoration_error_ratio",
]

#: Training objectives understood by :func:`fit_invariant_classifiers`.
INVARIANCE_METHODS = ("erm", "irm", "minmax")


def _check_float(v, name: str, *, minimum: float | None = None, strictly: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {v!r}")
    if minimum is not None and (v < minimum or (strictly and v == minimum)):
        raise ValueError(f"{name} must be {'>' if strictly else '>='} {minimum}, got {v!r}")
    return float(v)


class StackedMLP(nn.Module):
    """``n_models`` independent ReLU MLPs with identical shapes, evaluated in one batched pass.

    Layer :math:`l` of model :math:`m` computes :math:`h \\mapsto W^{(m)}_l h + b^{(m)}_l`; the
    weights of all models are stored in one tensor of shape ``(n_models, fan_in, fan_out)`` and
    applied with :func:`torch.baddbmm`. Models share nothing, so the gradient of a sum of
    per-model losses gives each model exactly its own gradient, and an element-wise optimiser
    (Adam) then trains each model as if it were alone. Model ``m`` is initialised like
    ``torch.nn.Linear`` (uniform in :math:`\\pm 1/\\sqrt{\\text{fan\\_in}}`) from ``seeds[m]``.

    Args:
        n_models: number of models M.
        in_features, hidden, out_features: layer sizes.
        n_hidden_layers: number of hidden ReLU layers (0 gives affine models).
        seeds: one non-negative integer per model (default ``0..M-1``).
        output: ``"linear"`` (logits) or ``"sigmoid"`` (values in (0, 1)).

    Raises:
        ValueError: non-positive sizes, a wrong number of seeds or an unknown ``output``.
    """

    def __init__(self, n_models: int, in_features: int, hidden: int, out_features: int, *,
                 n_hidden_layers: int = 2, seeds=None, output: str = "linear", dtype: torch.dtype = torch.float32):
        super().__init__()
        self.n_models = check_positive_int(n_models, "n_models")
        sizes = [check_positive_int(in_features, "in_features")]
        sizes += [check_positive_int(hidden, "hidden")] * check_positive_int(n_hidden_layers, "n_hidden_layers", minimum=0)
        sizes += [check_positive_int(out_features, "out_features")]
        if output not in ("linear", "sigmoid"):
            raise ValueError(f"output must be 'linear' or 'sigmoid', got {output!r}")
        self.output = output
        seeds = list(range(self.n_models)) if seeds is None else [check_positive_int(s, "seed", minimum=0) for s in seeds]
        if len(seeds) != self.n_models:
            raise ValueError(f"need one seed per model ({self.n_models}), got {len(seeds)}")
        self.seeds = seeds
        weights = [[] for _ in range(len(sizes) - 1)]
        biases = [[] for _ in range(len(sizes) - 1)]
        for s in seeds:  # a loop over models at construction only, so each model depends on its own seed
            g = torch.Generator().manual_seed(s)
            for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
                bound = 1.0 / math.sqrt(fan_in)
                weights[layer].append((torch.rand(fan_in, fan_out, generator=g, dtype=torch.float64) * 2 - 1) * bound)
                biases[layer].append((torch.rand(1, fan_out, generator=g, dtype=torch.float64) * 2 - 1) * bound)
        self.weights = nn.ParameterList([nn.Parameter(torch.stack(w).to(dtype)) for w in weights])
        self.biases = nn.ParameterList([nn.Parameter(torch.stack(b).to(dtype)) for b in biases])
        self.sizes = sizes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Evaluate every model: ``x`` of shape ``(n, in)`` (shared) or ``(M, n, in)``; returns ``(M, n, out)``."""
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.n_models, -1, -1)
        if x.dim() != 3 or x.shape[0] != self.n_models or x.shape[2] != self.sizes[0]:
            raise ValueError(f"x must have shape (n, {self.sizes[0]}) or ({self.n_models}, n, {self.sizes[0]}), "
                             f"got {tuple(x.shape)}")
        h = x.to(self.weights[0].dtype)
        for layer, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)
            if layer < len(self.weights) - 1:
                h = torch.relu(h)
        return torch.sigmoid(h) if self.output == "sigmoid" else h

    def squared_norms(self) -> torch.Tensor:
        """Sum of squared parameters of each model, shape ``(M,)`` (the L2 regulariser)."""
        return sum(p.pow(2).flatten(1).sum(1) for p in self.parameters())


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
        model: the :class:`StackedMLP` holding every trained classifier (one logit each).
        methods: the objective of each model (``"erm"``, ``"irm"`` or ``"minmax"``).
        seeds: the initialisation seed of each model.
        history: arrays of shape ``(steps, M, E)``: ``"risk"`` and ``"penalty"`` per environment.
    """

    model: StackedMLP
    methods: list[str]
    seeds: list[int]
    history: dict[str, np.ndarray] = field(default_factory=dict)

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every model on inputs ``x`` of shape ``(n, D)``; returns ``(M, n)``."""
        return self.model(x).squeeze(-1)

    def accuracy(self, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
        """Accuracy of every model on ``(x, y)`` (the logit thresholded at 0); shape ``(M,)``.

        (A method, not a module function: :func:`causalbook_lib.models.accuracy` is the accuracy of
        one classifier.)

        Raises:
            ValueError: shapes that do not match or non-binary labels.
        """
        (x, y), = _check_envs([(x, y)])
        pred = (self.logits(x) > 0).to(y.dtype)
        return (pred == y).to(torch.float64).mean(1).numpy()


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
    lr = _check_float(lr, "lr", minimum=0.0, strictly=True)
    l2 = _check_float(l2, "l2", minimum=0.0)
    penalty_weight = _check_float(penalty_weight, "penalty_weight", minimum=0.0)

    model_methods = [m for m in methods for _ in seeds]
    model_seeds = [s for _ in methods for s in seeds]
    model = StackedMLP(len(model_methods), envs[0][0].shape[1], check_positive_int(hidden, "hidden"), 1,
                       seeds=model_seeds, dtype=envs[0][0].dtype)
    is_irm = torch.tensor([m == "irm" for m in model_methods])
    is_minmax = torch.tensor([m == "minmax" for m in model_methods])
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    risks_hist = np.zeros((steps, len(model_methods), len(envs)))
    pen_hist = np.zeros_like(risks_hist)
    for step in range(steps):
        risks, penalties = [], []
        for x, y in envs:  # a loop over the few environments, never over samples
            logits = model(x).squeeze(-1)
            risks.append(environment_risks(logits, y))
            penalties.append(irmv1_penalty(logits, y))
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
        risks_hist[step] = risks.detach().numpy()
        pen_hist[step] = penalties.detach().numpy()
    return InvarianceFit(model, model_methods, model_seeds, {"risk": risks_hist, "penalty": pen_hist})


# --------------------------------------------------------------------------------------------
# Competing experts (Parascandolo et al., 2018)
# --------------------------------------------------------------------------------------------

@dataclass
class ExpertsFit:
    """Result of :func:`train_competing_experts`.

    Attributes:
        kernels: the experts' 3x3 convolution kernels, shape ``(E, 3, 3)``.
        biases: the experts' biases, shape ``(E,)``.
        discriminator: a one-model :class:`StackedMLP` scoring how "clean" an image looks (a logit).
        wins: array of shape ``(steps, E)``: how many inputs each expert won at each step.
    """

    kernels: torch.Tensor
    biases: torch.Tensor
    discriminator: StackedMLP
    wins: np.ndarray


def _check_images(x, name: str) -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.dim() != 2 or x.shape[1] != 64 or not x.is_floating_point() or len(x) == 0:
        raise ValueError(f"{name} must be a non-empty floating tensor of 8x8 images, shape (n, 64), got {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} must be finite")
    return x


def _expert_outputs(kernels: torch.Tensor, biases: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """All experts on all images in one convolution: ``(n, 64)`` -> ``(E, n, 64)``."""
    out = F.conv2d(x.reshape(-1, 1, 8, 8), kernels.unsqueeze(1), padding=1) + biases[None, :, None, None]
    return out.permute(1, 0, 2, 3).reshape(len(kernels), len(x), 64)


def _discriminator_step(disc, opt, real, fake) -> None:
    d_real, d_fake = disc(real).reshape(-1), disc(fake).reshape(-1)
    loss = F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real)) \
        + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
    opt.zero_grad()
    loss.backward()
    opt.step()


def train_competing_experts(transformed: torch.Tensor, clean: torch.Tensor, *, n_experts: int = 5,
                            hidden: int = 64, steps: int = 600, lr: float = 1e-2, discriminator_lr: float = 1e-3,
                            discriminator_steps: int = 200, init_noise: float = 1e-3,
                            seed: int = 0) -> ExpertsFit:
    """Train competing experts that undo unknown transformations of 8x8 digits (Parascandolo et al., 2018).

    Each expert is a 3x3 convolution with a bias, :math:`E_j(x) = k_j * x + b_j` (zero padding),
    initialised at the identity kernel plus :math:`\\epsilon` times standard normal noise: the
    small-scale analogue of the authors' convolutional experts pre-trained to the identity. A
    3x3 kernel can undo a one-pixel shift or an inversion exactly and denoise approximately, but
    no single kernel can do all of these at once, so an expert that tries to serve everyone loses.

    A discriminator :math:`D` (a one-hidden-layer MLP giving a logit) first learns, for
    ``discriminator_steps`` steps, to tell clean digits (label 1) from transformed ones (label 0).
    Then, at every step, the experts compete for each transformed image :math:`x'`: the winner is
    :math:`j^* = \\arg\\max_j D(E_j(x'))`, and only the winner is updated, to raise
    :math:`\\log D(E_{j^*}(x'))` (full batch, Adam); :math:`D` is updated on clean digits against
    the winners' outputs. Nobody is told which transformation produced :math:`x'`, and the clean
    digits are different images. :doc:`Chapter 15 </notebooks/15-ood-generalisation>`.

    Args:
        transformed: transformed images, shape ``(n, 64)``.
        clean: clean reference images, shape ``(m, 64)``.
        n_experts: number of experts E.
        hidden: width of the discriminator's hidden layer.
        steps: competition steps.
        lr, discriminator_lr: learning rates of the experts and of D.
        discriminator_steps: steps that train D alone before the competition starts.
        init_noise: :math:`\\epsilon` >= 0, the size of the random perturbation of the identity.
        seed: seed of every initialisation.

    Returns:
        an :class:`ExpertsFit`.

    Raises:
        ValueError: images that are not finite ``(n, 64)`` tensors, or non-positive settings.
    """
    xt = _check_images(transformed, "transformed")
    xc = _check_images(clean, "clean").to(xt.dtype)
    n_experts = check_positive_int(n_experts, "n_experts")
    hidden = check_positive_int(hidden, "hidden")
    steps = check_positive_int(steps, "steps")
    discriminator_steps = check_positive_int(discriminator_steps, "discriminator_steps", minimum=0)
    lr = _check_float(lr, "lr", minimum=0.0, strictly=True)
    discriminator_lr = _check_float(discriminator_lr, "discriminator_lr", minimum=0.0, strictly=True)
    init_noise = _check_float(init_noise, "init_noise", minimum=0.0)
    seed = check_positive_int(seed, "seed", minimum=0)
    g = torch.Generator().manual_seed(seed)
    identity = torch.zeros(n_experts, 3, 3, dtype=xt.dtype)
    identity[:, 1, 1] = 1.0
    kernels = (identity + init_noise * torch.randn(n_experts, 3, 3, generator=g, dtype=torch.float64).to(xt.dtype))
    kernels.requires_grad_(True)
    biases = torch.zeros(n_experts, dtype=xt.dtype, requires_grad=True)
    disc = StackedMLP(1, 64, hidden, 1, n_hidden_layers=1, seeds=[seed + 1], dtype=xt.dtype)
    opt_d = torch.optim.Adam(disc.parameters(), lr=discriminator_lr)
    for _ in range(discriminator_steps):  # D first learns clean digits against the transformed ones
        _discriminator_step(disc, opt_d, xc, xt)
    opt_e = torch.optim.Adam([kernels, biases], lr=lr)
    wins = np.zeros((steps, n_experts), dtype=np.int64)
    rows = torch.arange(len(xt))
    for step in range(steps):
        out = _expert_outputs(kernels, biases, xt)  # (E, n, 64)
        with torch.no_grad():
            winner = disc(out.reshape(1, -1, 64)).reshape(n_experts, -1).argmax(0)  # (n,)
        wins[step] = np.bincount(winner.numpy(), minlength=n_experts)
        won = out[winner, rows]  # each image, as processed by its winner
        _discriminator_step(disc, opt_d, xc, won.detach())
        d_won = disc(won).reshape(-1)
        loss_e = F.binary_cross_entropy_with_logits(d_won, torch.ones_like(d_won), reduction="sum") / len(xt)
        opt_e.zero_grad()
        loss_e.backward()
        opt_e.step()
    return ExpertsFit(kernels.detach(), biases.detach(), disc, wins)


@torch.no_grad()
def assign_experts(fit: ExpertsFit, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Let the experts of ``fit`` compete for each image of ``x`` (shape ``(n, 64)``).

    Returns:
        ``(winner, outputs)``: the winning expert per image, shape ``(n,)``, and every expert's
        output, shape ``(E, n, 64)``.

    Raises:
        ValueError: ``x`` is not a finite ``(n, 64)`` tensor.
    """
    x = _check_images(x, "x").to(fit.kernels.dtype)
    out = _expert_outputs(fit.kernels, fit.biases, x)
    scores = fit.discriminator(out.reshape(1, -1, 64)).reshape(out.shape[0], -1)
    return scores.argmax(0), out


def specialisation_matrix(winner, index, n_experts: int, n_transforms: int) -> np.ndarray:
    """Share of the inputs of each transformation won by each expert, shape ``(T, E)``.

    Entry :math:`(t, j)` is :math:`\\#\\{i : \\text{index}_i = t, \\text{winner}_i = j\\} / \\#\\{i : \\text{index}_i = t\\}`;
    each row sums to one. A perfectly specialised set of experts has a single 1 per row.

    Raises:
        ValueError: mismatched lengths, out-of-range entries or a transformation with no inputs.
    """
    n_experts = check_positive_int(n_experts, "n_experts")
    n_transforms = check_positive_int(n_transforms, "n_transforms")
    w = np.asarray(winner)
    t = np.asarray(index)
    if w.ndim != 1 or w.shape != t.shape:
        raise ValueError(f"winner and index must be 1-D and of equal length, got {w.shape} and {t.shape}")
    if not (np.issubdtype(w.dtype, np.integer) and np.issubdtype(t.dtype, np.integer)):
        raise ValueError("winner and index must hold integers")
    if len(w) and (w.min() < 0 or w.max() >= n_experts or t.min() < 0 or t.max() >= n_transforms):
        raise ValueError("winner entries must lie in 0..n_experts-1 and index entries in 0..n_transforms-1")
    counts = np.zeros((n_transforms, n_experts))
    np.add.at(counts, (t, w), 1.0)
    totals = counts.sum(1, keepdims=True)
    if np.any(totals == 0):
        raise ValueError("every transformation needs at least one input")
    return counts / totals


@torch.no_grad()
def restore_with_experts(fit: ExpertsFit, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Restore each image of ``x`` with the expert that wins it, clipped to the pixel range [0, 1].

    The winner is the expert whose output the discriminator of ``fit`` scores highest
    (:func:`assign_experts`); the restored image is :math:`\\mathrm{clip}(E_{j^*}(x'), 0, 1)`.

    Args:
        fit: trained experts, from :func:`train_competing_experts`.
        x: transformed images, shape ``(n, 64)``.

    Returns:
        ``(winner, restored)``: the winning expert per image, shape ``(n,)``, and the restored
        images, shape ``(n, 64)``, in the dtype of the experts.

    Raises:
        ValueError: ``x`` is not a finite ``(n, 64)`` tensor.
    """
    winner, out = assign_experts(fit, x)
    return winner, out[winner, torch.arange(out.shape[1])].clamp(0, 1)


def restoration_error_ratio(restored: torch.Tensor, transformed: torch.Tensor, original: torch.Tensor,
                            index, n_transforms: int) -> np.ndarray:
    """Per transformation, the squared error of restored images relative to that of their inputs.

    Entry :math:`t` is :math:`\\sum_{i: t_i = t} \\lVert r_i - x_i \\rVert^2 / \\sum_{i: t_i = t} \\lVert x'_i - x_i \\rVert^2`
    with :math:`r_i` the restored image, :math:`x'_i` the transformed input and :math:`x_i` the
    original: below 1 when restoration brings the images of transformation :math:`t` closer to
    their originals, 0 for a perfect inverse, above 1 when it moves them further away.

    Args:
        restored, transformed, original: images of equal shape ``(n, d)``.
        index: the transformation of each image, integers in ``0..n_transforms-1``, shape ``(n,)``.
        n_transforms: number of transformations T.

    Returns:
        array of shape ``(T,)``.

    Raises:
        ValueError: mismatched shapes, an index out of range, a transformation without inputs or
            one whose inputs equal their originals (a zero denominator).
    """
    n_transforms = check_positive_int(n_transforms, "n_transforms")
    r, xt, x0 = (torch.as_tensor(v) for v in (restored, transformed, original))
    if r.dim() != 2 or r.shape != xt.shape or r.shape != x0.shape:
        raise ValueError(f"restored, transformed and original must be 2-D of equal shape, got "
                         f"{tuple(r.shape)}, {tuple(xt.shape)} and {tuple(x0.shape)}")
    t = torch.as_tensor(np.asarray(index))
    if t.dtype.is_floating_point or t.dtype == torch.bool or t.shape != (len(r),):
        raise ValueError(f"index must hold integers, shape ({len(r)},), got {tuple(t.shape)} {t.dtype}")
    if len(t) and (int(t.min()) < 0 or int(t.max()) >= n_transforms):
        raise ValueError(f"index entries must lie in 0..{n_transforms - 1}")
    after = torch.zeros(n_transforms, dtype=torch.float64).index_add_(0, t, ((r - x0) ** 2).sum(1).double())
    before = torch.zeros(n_transforms, dtype=torch.float64).index_add_(0, t, ((xt - x0) ** 2).sum(1).double())
    if bool((before == 0).any()):
        raise ValueError("every transformation needs at least one input that differs from its original")
    return (after / before).numpy()
