"""A small conditional GAN with CausalGAN's labeller and anti-labeller (Part V,
:doc:`chapter 16 </notebooks/16-causal-generation>`).

The generator :class:`ConditionalGenerator` maps noise ``z ~ N(0, I)`` and a binary attribute vector
``c`` to a flat image ``G(z, c)``; the discriminator :class:`ConditionalDiscriminator` scores a pair
``(x, c)`` as real or generated (Mirza and Osindero's conditional GAN, with the attributes
concatenated to the input or, as in Miyato and Koyama, projected onto the image features).
:func:`train_conditional_gan` trains both with Adam on the non-saturating GAN loss.

Two options come from CausalGAN (Kocaoglu et al., Sec. 4):

* the **labeller** ``L``, a network trained on *real* images to predict their attributes; its
  cross-entropy on *generated* images, ``BCE(L(G(z, c)), c)``, is added to the generator's loss with
  weight ``labeller_weight``, so the generator is pushed to draw the labels it was asked for;
* the **anti-labeller** ``A``, trained on *generated* images to predict the labels they were
  generated from; the generator *subtracts* ``anti_labeller_weight * BCE(A(G(z, c)), c)`` from its
  loss, so it is pushed to make the anti-labeller's job hard. Kocaoglu et al. show that, at the
  optimum, this term removes the generator's incentive to draw, for each label, only the few most
  easily labelled images (label-conditioned mode collapse).

What is simplified here: CausalGAN's discriminator sees images only (the labels enter through the
labeller), its networks are convolutional, and its losses are weighted by schedules tuned for
CelebA; here the networks are one-hidden-layer MLPs for small flat images, the discriminator may be
conditional (``conditioning="concat"`` or ``"projection"``) or image-only (``"none"``, CausalGAN's
choice), and the weights are constants. The causal controller that supplies the labels at
generation time lives in :mod:`causalbook_lib.causalgen`; a trained generator here is fed its
samples exactly as the conditional VAE there is.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from .utils import as_generator, check_binary, check_finite, check_number, check_positive_int, seeded_init

__all__ = [
    "ConditionalGenerator",
    "ConditionalDiscriminator",
    "make_labeller",
    "GANResult",
    "train_conditional_gan",
    "within_label_spread",
]

_CONDITIONINGS = ("concat", "projection", "none")


def _check_images_and_labels(x, c, x_dim: int | None = None, cond_dim: int | None = None):
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() != 2:
        raise ValueError(f"x must be a floating tensor of shape (n, d), got "
                         f"{type(x).__name__} {tuple(getattr(x, 'shape', ()))}")
    if not isinstance(c, torch.Tensor) or c.dim() != 2 or c.shape[0] != x.shape[0]:
        raise ValueError(f"c must be a tensor of shape ({x.shape[0]}, a) matching x, got "
                         f"{type(c).__name__} {tuple(getattr(c, 'shape', ()))}")
    if x_dim is not None and x.shape[1] != x_dim:
        raise ValueError(f"x must have {x_dim} columns, got {x.shape[1]}")
    if cond_dim is not None and c.shape[1] != cond_dim:
        raise ValueError(f"c must have {cond_dim} columns, got {c.shape[1]}")
    check_finite(x, "x")
    check_binary(c, "c (binary attributes)")
    return x, c.to(dtype=x.dtype, device=x.device)


class ConditionalGenerator(nn.Module):
    """The generator ``G(z, c)``: an MLP from noise and attributes to a flat image (chapter 16).

    ``G(z, c) = W_2 relu(W_1 [z, c] + b_1) + b_2`` with ``z ~ N(0, I_noise_dim)``; the output is
    linear (pixel values of any sign, as in the faces of chapter 16).

    Args:
        x_dim: number of pixels ``d``.
        cond_dim: number of binary attributes ``a``.
        noise_dim: dimension of ``z``.
        hidden: width of the hidden layer.

    Raises:
        ValueError: a size that is not a positive integer.
    """

    def __init__(self, x_dim: int, cond_dim: int, noise_dim: int = 8, hidden: int = 128):
        super().__init__()
        self.x_dim = check_positive_int(x_dim, "x_dim")
        self.cond_dim = check_positive_int(cond_dim, "cond_dim")
        self.noise_dim = check_positive_int(noise_dim, "noise_dim")
        hidden = check_positive_int(hidden, "hidden")
        self.net = nn.Sequential(nn.Linear(noise_dim + cond_dim, hidden), nn.ReLU(), nn.Linear(hidden, x_dim))

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Images for noise ``z`` (n, noise_dim) and attributes ``c`` (n, cond_dim): shape (n, x_dim)."""
        return self.net(torch.cat([z, c.to(z.dtype)], dim=1))

    @torch.no_grad()
    def generate(self, c, generator=None) -> torch.Tensor:
        """One image per row of the binary attributes ``c`` (n, cond_dim), with fresh noise.

        Args:
            c: binary attributes, shape (n, cond_dim); the labels a causal controller supplies.
            generator: None, an int seed or a ``torch.Generator`` (see :func:`causalbook_lib.utils.as_generator`).

        Returns:
            (n, x_dim) images in the generator's dtype and on its device.

        Raises:
            ValueError: ``c`` of the wrong shape or not binary.
        """
        p = next(self.parameters())
        c = torch.as_tensor(c)
        if c.dim() != 2 or c.shape[1] != self.cond_dim or c.shape[0] == 0:
            raise ValueError(f"c must have shape (n, {self.cond_dim}) with n >= 1, got {tuple(c.shape)}")
        check_binary(c, "c (binary attributes)")
        g = as_generator(generator, device=p.device)
        z = torch.randn(c.shape[0], self.noise_dim, generator=g, dtype=p.dtype, device=p.device)
        return self(z, c.to(dtype=p.dtype, device=p.device))


class ConditionalDiscriminator(nn.Module):
    """The discriminator ``D(x, c)``: a logit that ``x`` is a real image with attributes ``c``.

    With ``phi(x) = leaky_relu(W_1 x + b_1)`` (or of ``[x, c]``):

    * ``"concat"``: ``D(x, c) = w^T phi([x, c]) + b`` (Mirza and Osindero);
    * ``"projection"``: ``D(x, c) = w^T phi(x) + b + (2c - 1)^T V phi(x)`` (Miyato and Koyama's
      projection, with each binary attribute embedded as -1 or +1);
    * ``"none"``: ``D(x) = w^T phi(x) + b``, an image-only discriminator as in CausalGAN, where the
      labels must be enforced by the labeller.

    Args:
        x_dim: number of pixels; cond_dim: number of attributes; hidden: width of the hidden layer.
        conditioning: ``"concat"``, ``"projection"`` or ``"none"``.

    Raises:
        ValueError: a non-positive size or an unknown conditioning.
    """

    def __init__(self, x_dim: int, cond_dim: int, hidden: int = 128, conditioning: str = "concat"):
        super().__init__()
        self.x_dim = check_positive_int(x_dim, "x_dim")
        self.cond_dim = check_positive_int(cond_dim, "cond_dim")
        hidden = check_positive_int(hidden, "hidden")
        if conditioning not in _CONDITIONINGS:
            raise ValueError(f"conditioning must be one of {_CONDITIONINGS}, got {conditioning!r}")
        self.conditioning = conditioning
        self.features = nn.Linear(x_dim + (cond_dim if conditioning == "concat" else 0), hidden)
        self.out = nn.Linear(hidden, 1)
        self.embed = nn.Linear(cond_dim, hidden, bias=False) if conditioning == "projection" else None

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Real-versus-generated logits, shape (n,)."""
        c = c.to(x.dtype)
        inp = torch.cat([x, c], dim=1) if self.conditioning == "concat" else x
        h = F.leaky_relu(self.features(inp), 0.2)
        logit = self.out(h).squeeze(1)
        if self.embed is not None:
            logit = logit + (self.embed(2 * c - 1) * h).sum(1)
        return logit


def make_labeller(x_dim: int, cond_dim: int, hidden: int = 64) -> nn.Module:
    """CausalGAN's labeller (or anti-labeller) network: an MLP from an image to attribute logits.

    ``L(x) = W_2 relu(W_1 x + b_1) + b_2``, shape (n, cond_dim); ``sigmoid(L(x))_j`` estimates
    ``P(c_j = 1 | x)``.

    Raises:
        ValueError: a size that is not a positive integer.
    """
    x_dim = check_positive_int(x_dim, "x_dim")
    cond_dim = check_positive_int(cond_dim, "cond_dim")
    hidden = check_positive_int(hidden, "hidden")
    return nn.Sequential(nn.Linear(x_dim, hidden), nn.ReLU(), nn.Linear(hidden, cond_dim))


@dataclass
class GANResult:
    """What :func:`train_conditional_gan` returns.

    Attributes:
        generator: the trained :class:`ConditionalGenerator` (call ``generator.generate(c)``).
        discriminator: the trained :class:`ConditionalDiscriminator`.
        labeller: the labeller trained on real images, or None when ``labeller_weight`` was 0.
        anti_labeller: the anti-labeller trained on generated images, or None when
            ``anti_labeller_weight`` was 0.
        history: per-step losses, keys ``"discriminator"``, ``"generator"`` (the adversarial part
            only) and, when present, ``"labeller_real"``, ``"labeller_fake"`` and ``"anti_labeller"``.
    """

    generator: ConditionalGenerator
    discriminator: ConditionalDiscriminator
    labeller: nn.Module | None = None
    anti_labeller: nn.Module | None = None
    history: dict = field(default_factory=dict)


def train_conditional_gan(x: torch.Tensor, c: torch.Tensor, *, noise_dim: int = 8, hidden: int = 128,
                          conditioning: str = "concat", labeller_weight: float = 0.0,
                          anti_labeller_weight: float = 0.0, steps: int = 600, batch_size: int = 128,
                          lr: float = 2e-3, generator=None) -> GANResult:
    """Train a conditional GAN on images ``x`` with binary attributes ``c``, optionally with CausalGAN's
    labeller and anti-labeller (chapter 16, section "A conditional GAN behind the controller").

    Each step draws a minibatch of real pairs ``(x, c)`` and fresh noise, then updates, with Adam
    (betas 0.5, 0.999):

    1. the discriminator on ``BCE(D(x, c), 1) + BCE(D(G(z, c), c), 0)``;
    2. the labeller (if used) on ``BCE(L(x), c)`` over the *real* images;
    3. the anti-labeller (if used) on ``BCE(A(G(z, c)), c)`` over the *generated* images;
    4. the generator on the non-saturating loss
       ``BCE(D(G(z, c), c), 1) + labeller_weight * BCE(L(G(z, c)), c) - anti_labeller_weight * BCE(A(G(z, c)), c)``.

    The generator's labels are the labels of the real minibatch, so generated and real pairs share
    one label distribution. Parameters are initialised from ``generator`` (through
    :func:`causalbook_lib.utils.seeded_init`), so one seed gives one result. The networks are built
    in the dtype and on the device of ``x``.

    Args:
        x: real images, floating tensor (n, d).
        c: their binary attributes, (n, a).
        noise_dim, hidden: sizes of the generator and discriminator (the labellers have ``hidden // 2`` units).
        conditioning: how the discriminator sees ``c``: ``"concat"``, ``"projection"`` or ``"none"``.
        labeller_weight: weight (>= 0) of the labeller term; 0 trains no labeller.
        anti_labeller_weight: weight (>= 0) of the anti-labeller term; 0 trains no anti-labeller.
        steps: number of minibatch steps; batch_size: minibatch size; lr: Adam learning rate (> 0).
        generator: None, an int seed or a ``torch.Generator``.

    Returns:
        a :class:`GANResult`.

    Raises:
        ValueError: non-floating or non-finite ``x``, ``c`` not binary or of the wrong shape, an
            unknown conditioning, a negative weight, or non-positive steps, batch size or lr.
    """
    x, c = _check_images_and_labels(x, c)
    if x.shape[0] < 2:
        raise ValueError(f"x must hold at least 2 images, got {x.shape[0]}")
    if conditioning not in _CONDITIONINGS:
        raise ValueError(f"conditioning must be one of {_CONDITIONINGS}, got {conditioning!r}")
    lw = check_number(labeller_weight, "labeller_weight")
    aw = check_number(anti_labeller_weight, "anti_labeller_weight")
    if lw < 0 or aw < 0:
        raise ValueError(f"labeller_weight and anti_labeller_weight must be >= 0, got {lw} and {aw}")
    if conditioning == "none" and lw == 0:
        raise ValueError("an image-only discriminator (conditioning='none') ignores the labels; "
                         "pass labeller_weight > 0 so that the labeller enforces them")
    steps = check_positive_int(steps, "steps")
    batch_size = check_positive_int(batch_size, "batch_size")
    lr = check_number(lr, "lr", positive=True)
    n, d = x.shape
    a = c.shape[1]
    g = as_generator(generator, device=x.device)
    with seeded_init(g):
        gen = ConditionalGenerator(d, a, noise_dim, hidden)
        disc = ConditionalDiscriminator(d, a, hidden, conditioning)
        lab = make_labeller(d, a, max(hidden // 2, 1)) if lw > 0 else None
        anti = make_labeller(d, a, max(hidden // 2, 1)) if aw > 0 else None
    for mod in (gen, disc, lab, anti):
        if mod is not None:
            mod.to(dtype=x.dtype, device=x.device)
    adam = lambda m: torch.optim.Adam(m.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_g, opt_d = adam(gen), adam(disc)
    opt_l = adam(lab) if lab is not None else None
    opt_a = adam(anti) if anti is not None else None
    bce = F.binary_cross_entropy_with_logits
    history = {"discriminator": [], "generator": []}
    if lab is not None:
        history["labeller_real"], history["labeller_fake"] = [], []
    if anti is not None:
        history["anti_labeller"] = []
    m = min(batch_size, n)
    for _ in range(steps):
        idx = torch.randint(0, n, (m,), generator=g, device=x.device)
        xr, cr = x[idx], c[idx]
        z = torch.randn(m, gen.noise_dim, generator=g, dtype=x.dtype, device=x.device)
        xf = gen(z, cr)
        # 1. discriminator
        lr_, lf_ = disc(xr, cr), disc(xf.detach(), cr)
        loss_d = bce(lr_, torch.ones_like(lr_)) + bce(lf_, torch.zeros_like(lf_))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        history["discriminator"].append(float(loss_d.detach()))
        # 2. labeller on real images, 3. anti-labeller on generated images
        if lab is not None:
            loss_l = bce(lab(xr), cr)
            opt_l.zero_grad()
            loss_l.backward()
            opt_l.step()
            history["labeller_real"].append(float(loss_l.detach()))
        if anti is not None:
            loss_a = bce(anti(xf.detach()), cr)
            opt_a.zero_grad()
            loss_a.backward()
            opt_a.step()
            history["anti_labeller"].append(float(loss_a.detach()))
        # 4. generator
        out = disc(xf, cr)
        loss_adv = bce(out, torch.ones_like(out))
        loss_g = loss_adv
        if lab is not None:
            loss_lf = bce(lab(xf), cr)
            loss_g = loss_g + lw * loss_lf
            history["labeller_fake"].append(float(loss_lf.detach()))
        if anti is not None:
            loss_g = loss_g - aw * bce(anti(xf), cr)
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        history["generator"].append(float(loss_adv.detach()))
    return GANResult(gen, disc, lab, anti, history)


def within_label_spread(x: torch.Tensor, c: torch.Tensor, min_count: int = 20) -> float:
    """Mean pixel standard deviation among images that share one label vector.

    ``spread = mean over label vectors l of mean_j std({x_ij : c_i = l})``, over the label vectors
    that occur at least ``min_count`` times. A generator that draws, for each label vector, nearly
    the same image (label-conditioned mode collapse, which CausalGAN's anti-labeller is meant to
    fight) has a spread far below that of real images with the same labels.

    Args:
        x: images, floating tensor (n, d).
        c: binary attributes, (n, a).
        min_count: label vectors with fewer images are skipped (>= 2).

    Returns:
        the spread, a float.

    Raises:
        ValueError: bad shapes, non-binary ``c``, or no label vector with ``min_count`` images.
    """
    x, c = _check_images_and_labels(x, c)
    min_count = check_positive_int(min_count, "min_count", minimum=2)
    groups, inverse, counts = torch.unique(c, dim=0, return_inverse=True, return_counts=True)
    spreads = [x[inverse == k].std(0).mean() for k in range(groups.shape[0]) if counts[k] >= min_count]
    if not spreads:
        raise ValueError(f"no label vector occurs at least min_count={min_count} times")
    return float(torch.stack(spreads).mean())
