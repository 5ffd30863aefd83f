"""Independent mechanisms as competing experts (Parascandolo et al., 2018; Part V, :doc:`chapter 15 </notebooks/15-ood-generalisation>`).

* :func:`train_competing_experts`: experts (3x3 convolutions) compete through a discriminator to
  undo unknown transformations of digits; each image trains only the expert that wins it.
* :func:`assign_experts`, :func:`specialisation_matrix`: which expert wins which image, and the
  share of each transformation's images won by each expert.
* :func:`restore_with_experts`, :func:`restoration_error_ratio`: how well the winners undo the
  transformations, measured against the ground truth (the original images).

Invariant risk minimisation, the other chapter 15 method, is in :mod:`causalbook_lib.irm`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .models import StackedMLP
from .utils import check_finite, check_number, check_positive_int, seed_from

__all__ = [
    "ExpertsFit",
    "train_competing_experts",
    "assign_experts",
    "specialisation_matrix",
    "restore_with_experts",
    "restoration_error_ratio",
]


@dataclass
class ExpertsFit:
    """Result of :func:`train_competing_experts`.

    Attributes:
        kernels: the experts' 3x3 convolution kernels, shape ``(E, 3, 3)``.
        biases: the experts' biases, shape ``(E,)``.
        discriminator: a one-model :class:`~causalbook_lib.models.StackedMLP` scoring how "clean" an image looks (a logit).
        wins: int64 tensor of shape ``(steps, E)``: how many inputs each expert won at each step.
    """

    kernels: torch.Tensor
    biases: torch.Tensor
    discriminator: StackedMLP
    wins: torch.Tensor


def _check_index_tensor(v, name: str) -> torch.Tensor:
    """``v`` (a tensor, array or list of integers) as an int64 tensor; floats and bools are refused."""
    try:
        t = torch.as_tensor(v)
    except (TypeError, ValueError, RuntimeError) as e:
        raise ValueError(f"{name} must hold integers, got {type(v).__name__}") from e
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise ValueError(f"{name} must hold integers, got dtype {t.dtype}")
    return t.long()


def _check_images(x, name: str) -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.dim() != 2 or x.shape[1] != 64 or not x.is_floating_point() or len(x) == 0:
        raise ValueError(f"{name} must be a non-empty floating tensor of 8x8 images, shape (n, 64), got {tuple(x.shape)}")
    check_finite(x, name)
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
                            generator=0) -> ExpertsFit:
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
        generator: every initialisation: ``None``, an int seed or a ``torch.Generator``
            (:func:`causalbook_lib.utils.as_generator`; an int ``s`` draws the kernels' noise from a
            stream seeded with ``s`` and seeds the discriminator with ``s + 1``).

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
    lr = check_number(lr, "lr", positive=True)
    discriminator_lr = check_number(discriminator_lr, "discriminator_lr", positive=True)
    init_noise = check_number(init_noise, "init_noise", nonnegative=True)
    seed = seed_from(generator)
    g = torch.Generator().manual_seed(seed)
    identity = torch.zeros(n_experts, 3, 3, dtype=xt.dtype, device=xt.device)
    identity[:, 1, 1] = 1.0
    noise = torch.randn(n_experts, 3, 3, generator=g, dtype=torch.float64, device=g.device).to(xt.dtype)  # the same draws on every device
    kernels = (identity + init_noise * noise.to(xt.device))
    kernels.requires_grad_(True)
    biases = torch.zeros(n_experts, dtype=xt.dtype, device=xt.device, requires_grad=True)
    disc = StackedMLP(1, 64, hidden, 1, n_hidden_layers=1, seeds=[seed + 1], dtype=xt.dtype).to(xt.device)
    opt_d = torch.optim.Adam(disc.parameters(), lr=discriminator_lr)
    for _ in range(discriminator_steps):  # D first learns clean digits against the transformed ones
        _discriminator_step(disc, opt_d, xc, xt)
    opt_e = torch.optim.Adam([kernels, biases], lr=lr)
    wins = torch.zeros((steps, n_experts), dtype=torch.int64, device=xt.device)
    rows = torch.arange(len(xt))
    for step in range(steps):
        out = _expert_outputs(kernels, biases, xt)  # (E, n, 64)
        with torch.no_grad():
            winner = disc(out.reshape(1, -1, 64)).reshape(n_experts, -1).argmax(0)  # (n,)
        wins[step] = torch.bincount(winner, minlength=n_experts)
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


def specialisation_matrix(winner, index, n_experts: int, n_transforms: int) -> torch.Tensor:
    """Share of the inputs of each transformation won by each expert, shape ``(T, E)``.

    Entry :math:`(t, j)` is :math:`\\#\\{i : \\text{index}_i = t, \\text{winner}_i = j\\} / \\#\\{i : \\text{index}_i = t\\}`;
    each row sums to one. A perfectly specialised set of experts has a single 1 per row.

    Raises:
        ValueError: mismatched lengths, out-of-range entries or a transformation with no inputs.
    """
    n_experts = check_positive_int(n_experts, "n_experts")
    n_transforms = check_positive_int(n_transforms, "n_transforms")
    w, t = _check_index_tensor(winner, "winner"), _check_index_tensor(index, "index")
    if w.dim() != 1 or w.shape != t.shape:
        raise ValueError(f"winner and index must be 1-D and of equal length, got {tuple(w.shape)} and {tuple(t.shape)}")
    if len(w) and (int(w.min()) < 0 or int(w.max()) >= n_experts or int(t.min()) < 0 or int(t.max()) >= n_transforms):
        raise ValueError("winner entries must lie in 0..n_experts-1 and index entries in 0..n_transforms-1")
    counts = torch.zeros((n_transforms, n_experts), dtype=torch.float64, device=w.device)
    counts.index_put_((t.to(w.device), w), torch.ones(len(w), dtype=torch.float64, device=w.device), accumulate=True)
    totals = counts.sum(1, keepdim=True)
    if bool((totals == 0).any()):
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
                            index, n_transforms: int) -> torch.Tensor:
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
        a float64 tensor of shape ``(T,)``, on the device of ``restored``.

    Raises:
        ValueError: mismatched shapes, an index out of range, a transformation without inputs or
            one whose inputs equal their originals (a zero denominator).
    """
    n_transforms = check_positive_int(n_transforms, "n_transforms")
    r, xt, x0 = (torch.as_tensor(v) for v in (restored, transformed, original))
    if r.dim() != 2 or r.shape != xt.shape or r.shape != x0.shape:
        raise ValueError(f"restored, transformed and original must be 2-D of equal shape, got "
                         f"{tuple(r.shape)}, {tuple(xt.shape)} and {tuple(x0.shape)}")
    t = _check_index_tensor(index, "index").to(r.device)
    if t.shape != (len(r),):
        raise ValueError(f"index must have shape ({len(r)},), got {tuple(t.shape)}")
    if len(t) and (int(t.min()) < 0 or int(t.max()) >= n_transforms):
        raise ValueError(f"index entries must lie in 0..{n_transforms - 1}")
    after = torch.zeros(n_transforms, dtype=torch.float64, device=r.device).index_add_(0, t, ((r - x0) ** 2).sum(1).double())
    before = torch.zeros(n_transforms, dtype=torch.float64, device=r.device).index_add_(0, t, ((xt - x0) ** 2).sum(1).double())
    if bool((before == 0).any()):
        raise ValueError("every transformation needs at least one input that differs from its original")
    return after / before
