"""Data generators for the survey's out-of-distribution chapters (Part V).

* :func:`altitude_temperature_scm`, :func:`altitude_temperature` and :func:`altitude_temperature_conditionals`: the survey's
  altitude -> temperature example (:doc:`chapter 14 </notebooks/14-causal-theory>`), sampled per "country" and with the closed-form
  causal and anticausal conditionals of the linear-Gaussian model.
* :func:`cows_and_camels_scm` and :func:`cows_and_camels`: the cows-and-camels story as a small
  SCM (:doc:`chapter 14 </notebooks/14-causal-theory>`).
* :func:`coloured_digits`: a Coloured-MNIST analogue built from the 8x8 digits, where the colour
  predicts the label in training environments and the correlation flips at test time (:doc:`chapter 15 </notebooks/15-ood-generalisation>`).
* :func:`transform_digits` and :func:`transformed_digits`: fixed transformations of digits
  (shifts, noise, inversion) that competing experts learn to undo (:doc:`chapter 15 </notebooks/15-ood-generalisation>`);
  :func:`expert_digit_splits`: disjoint splits for training them on some digit classes and testing
  them on unseen digits of the same and of the other classes.

Everything is seeded and nothing is downloaded.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..utils import as_generator, check_number, check_positive_int, check_probability

__all__ = [
    "altitude_temperature_scm",
    "altitude_temperature",
    "altitude_temperature_conditionals",
    "cows_and_camels_scm",
    "cows_and_camels",
    "ColouredDigits",
    "coloured_digits",
    "DIGIT_TRANSFORMS",
    "transform_digits",
    "TransformedDigits",
    "transformed_digits",
    "TransformedSet",
    "ExpertDigitSplits",
    "expert_digit_splits",
]


# --------------------------------------------------------------------------------------------
# Altitude -> temperature (chapter 14)
# --------------------------------------------------------------------------------------------

def _altitude_parameters(altitude_mean, altitude_std, lapse_rate, sea_level_temperature, noise_std):
    """Validate the altitude -> temperature parameters; return them as floats in that order."""
    return (check_number(altitude_mean, "altitude_mean"),
            check_number(altitude_std, "altitude_std", positive=True),
            check_number(lapse_rate, "lapse_rate"),
            check_number(sea_level_temperature, "sea_level_temperature"),
            check_number(noise_std, "noise_std", positive=True))


def altitude_temperature_scm(altitude_mean: float, altitude_std: float, *, lapse_rate: float = -6.5,
                             sea_level_temperature: float = 28.0, noise_std: float = 2.0):
    """The SCM altitude -> temperature of one "country" (:doc:`chapter 14 </notebooks/14-causal-theory>`, survey Sec. 2.2), a :class:`causalbook_lib.scm.SCM`.

    The model is :math:`X := \\mu_c + N_X` with :math:`N_X \\sim \\mathcal N(0, \\sigma_c^2)`
    (altitude in km: the country's own distribution) and :math:`Y := T_0 + \\lambda X + N_Y` with
    :math:`N_Y \\sim \\mathcal N(0, \\sigma^2)` (mean annual temperature in degrees Celsius). Only
    :math:`P(X)` depends on the country; the mechanism :math:`P(Y \\mid X)` is shared.

    Args:
        altitude_mean, altitude_std: the country's altitude distribution (km); std > 0.
        lapse_rate: :math:`\\lambda`, degrees per km (about -6.5 in the atmosphere).
        sea_level_temperature: :math:`T_0` in degrees Celsius.
        noise_std: :math:`\\sigma` > 0, the spread of temperature at fixed altitude.

    Returns:
        an SCM with variables ``"altitude"`` and ``"temperature"``.

    Raises:
        ValueError: a non-finite parameter or a non-positive standard deviation.
    """
    from ..scm import linear_gaussian

    mu, sd, lam, t0, sigma = _altitude_parameters(altitude_mean, altitude_std, lapse_rate,
                                                  sea_level_temperature, noise_std)
    return linear_gaussian(["altitude", "temperature"], {("altitude", "temperature"): lam},
                           {"altitude": sd, "temperature": sigma}, {"altitude": mu, "temperature": t0})


def altitude_temperature(n: int, altitude_mean: float, altitude_std: float, *, lapse_rate: float = -6.5,
                         sea_level_temperature: float = 28.0, noise_std: float = 2.0, generator=0,
                         dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample ``n`` cities of one country from :func:`altitude_temperature_scm` (:doc:`chapter 14 </notebooks/14-causal-theory>`).

    Args:
        n: number of cities; the other arguments as in :func:`altitude_temperature_scm`.
        generator: ``None``, an int seed or a ``torch.Generator`` (:func:`causalbook_lib.utils.as_generator`).

    Returns:
        ``(altitude, temperature)``, two tensors of shape ``(n,)``.

    Raises:
        ValueError: ``n`` not a positive integer, a non-finite parameter or a non-positive std.
    """
    n = check_positive_int(n, "n")
    scm = altitude_temperature_scm(altitude_mean, altitude_std, lapse_rate=lapse_rate,
                                   sea_level_temperature=sea_level_temperature, noise_std=noise_std)
    values = scm.sample(n, as_generator(generator))
    return values["altitude"].to(dtype), values["temperature"].to(dtype)


def altitude_temperature_conditionals(altitude_mean: float, altitude_std: float, *, lapse_rate: float = -6.5,
                                      sea_level_temperature: float = 28.0,
                                      noise_std: float = 2.0) -> dict[str, dict[str, float]]:
    """Closed-form conditionals of :func:`altitude_temperature` in both directions.

    Causal direction: :math:`Y \\mid X = x \\sim \\mathcal N(T_0 + \\lambda x, \\sigma^2)` for every
    country. Anticausal direction (Gaussian conditioning): with
    :math:`v_Y = \\lambda^2 \\sigma_c^2 + \\sigma^2`,

    .. math:: X \\mid Y = y \\sim \\mathcal N\\big(\\mu_c + \\tfrac{\\lambda \\sigma_c^2}{v_Y}(y - T_0 - \\lambda \\mu_c),
              \\; \\sigma_c^2 - \\tfrac{\\lambda^2 \\sigma_c^4}{v_Y}\\big),

    which changes with the country's :math:`(\\mu_c, \\sigma_c)`.

    Returns:
        ``{"causal": {...}, "anticausal": {...}}``, each with ``slope``, ``intercept`` and
        ``residual_std`` of the conditional mean line and spread.

    Raises:
        ValueError: a non-finite parameter or a non-positive standard deviation.
    """
    mu, sd, lam, t0, sigma = _altitude_parameters(altitude_mean, altitude_std, lapse_rate,
                                                  sea_level_temperature, noise_std)
    var_y = lam**2 * sd**2 + sigma**2
    slope = lam * sd**2 / var_y
    mean_y = t0 + lam * mu
    return {
        "causal": {"slope": lam, "intercept": t0, "residual_std": sigma},
        "anticausal": {"slope": slope, "intercept": mu - slope * mean_y,
                       "residual_std": math.sqrt(sd**2 - lam**2 * sd**4 / var_y)},
    }


# --------------------------------------------------------------------------------------------
# Cows and camels (chapter 14)
# --------------------------------------------------------------------------------------------

def cows_and_camels_scm(background_match: float, *, creature_noise: float = 1.0, background_noise: float = 0.2):
    """The survey's cows-and-camels story as an SCM (:doc:`chapter 14 </notebooks/14-causal-theory>`, survey Sec. 2.3), a :class:`causalbook_lib.scm.SCM`.

    A creature :math:`C \\sim \\mathrm{Bernoulli}(1/2)` (0 = cow, 1 = camel) is photographed; its
    pixels are summarised by one feature :math:`X := 2C - 1 + N_X`, :math:`N_X \\sim \\mathcal N(0, s_X^2)`
    (a noisy but causal cue). A human labels the creature, :math:`Y := C`, and then picks a
    background for the label: desert (:math:`B = 1`) for a camel and pasture (:math:`B = 0`) for a
    cow with probability ``background_match``, the other one otherwise. The background pixels are
    summarised by :math:`Z := 2B - 1 + N_Z`, :math:`N_Z \\sim \\mathcal N(0, s_Z^2)` (a clean cue).
    Only the human's mechanism :math:`Y \\to B` changes between data sets; ``background_match = 0.5``
    makes the background useless.

    Args:
        background_match: probability that the background agrees with the label, in [0, 1].
        creature_noise, background_noise: the noise scales :math:`s_X, s_Z` (> 0).

    Returns:
        an SCM with variables ``creature``, ``x``, ``label``, ``background``, ``z`` (0/1 floats for
        the discrete ones).

    Raises:
        ValueError: a probability outside [0, 1] or a noise scale <= 0.
    """
    from ..scm import SCM, additive, bernoulli, normal_noise

    p = check_probability(background_match, "background_match")
    sx = check_number(creature_noise, "creature_noise", positive=True)
    sz = check_number(background_noise, "background_noise", positive=True)
    return SCM({
        "creature": bernoulli([], 0.5, description="Bernoulli(1/2)"),
        "x": additive(["creature"], lambda pa: 2 * pa["creature"] - 1, normal_noise(sx),
                      description=f"2*creature - 1 + N(0, {sx:g}^2)"),
        "label": additive(["creature"], lambda pa: pa["creature"], description="creature"),
        "background": bernoulli(["label"], lambda pa: p * pa["label"] + (1 - p) * (1 - pa["label"]),
                                description=f"Bernoulli({p:g} if label else {1 - p:g})"),
        "z": additive(["background"], lambda pa: 2 * pa["background"] - 1, normal_noise(sz),
                      description=f"2*background - 1 + N(0, {sz:g}^2)"),
    })


def cows_and_camels(n: int, background_match: float, *, creature_noise: float = 1.0,
                    background_noise: float = 0.2, generator=0,
                    dtype: torch.dtype = torch.float64) -> dict[str, torch.Tensor]:
    """Sample ``n`` images' summaries from :func:`cows_and_camels_scm` (:doc:`chapter 14 </notebooks/14-causal-theory>`).

    ``generator`` is ``None``, an int seed or a ``torch.Generator`` (:func:`causalbook_lib.utils.as_generator`).

    Returns:
        a dict of tensors of shape ``(n,)``: ``creature``, ``x``, ``label``, ``background``, ``z``.

    Raises:
        ValueError: ``n`` not a positive integer, a probability outside [0, 1] or a noise <= 0.
    """
    n = check_positive_int(n, "n")
    scm = cows_and_camels_scm(background_match, creature_noise=creature_noise, background_noise=background_noise)
    return {k: v.to(dtype) for k, v in scm.sample(n, as_generator(generator)).items()}


# --------------------------------------------------------------------------------------------
# Coloured digits (chapter 15)
# --------------------------------------------------------------------------------------------

def _load_digits_array() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.data.astype(np.float64) / 16.0, data.target.astype(np.int64)


@dataclass
class ColouredDigits:
    """One environment of :func:`coloured_digits`.

    Attributes:
        x: images, shape ``(n, 2, 8, 8)``: channel 0 is "red", channel 1 is "green".
        y: the noisy binary label as a float in {0, 1}, shape ``(n,)``.
        colour: 1 for green, 0 for red, shape ``(n,)``.
        digit: the original digit 0..9, shape ``(n,)``.
        colour_flip: the probability that the colour disagrees with the label.
    """

    x: torch.Tensor
    y: torch.Tensor
    colour: torch.Tensor
    digit: torch.Tensor
    colour_flip: float

    def flat(self) -> torch.Tensor:
        """The images as rows of 128 values, shape ``(n, 128)``."""
        return self.x.reshape(len(self.x), -1)

    def grey(self) -> torch.Tensor:
        """The images without colour (both channels hold the digit), shape ``(n, 128)``."""
        g = self.x.sum(dim=1, keepdim=True).expand(-1, 2, -1, -1)
        return g.reshape(len(self.x), -1)


def coloured_digits(colour_flips=(0.1, 0.2, 0.9), *, label_noise: float = 0.25, generator=0,
                    dtype: torch.dtype = torch.float32) -> list[ColouredDigits]:
    """Coloured digits: the Coloured-MNIST construction of Arjovsky et al. on the 8x8 digits.

    The 1797 digits are shuffled and split into ``len(colour_flips)`` disjoint environments of
    (almost) equal size. In each, the binary label is :math:`\\tilde y = [\\text{digit} \\ge 5]`,
    flipped with probability ``label_noise`` to give :math:`y`; the colour is :math:`y` flipped
    with probability :math:`e` (the environment's ``colour_flip``); the digit is drawn in the
    red channel (colour 0) or the green channel (colour 1). With the defaults the colour agrees
    with the label 90% and 80% of the time in the two training environments and only 10% of the
    time in the test environment, while the shape predicts the label 75% of the time everywhere.
    :doc:`Chapter 15 </notebooks/15-ood-generalisation>`, survey Sec. 3.1.

    Args:
        colour_flips: one probability in [0, 1] per environment (at least one).
        label_noise: the probability of flipping the shape label, in [0, 1].
        generator: the split and the coin flips; ``None``, an int seed or a ``torch.Generator``
            (:func:`causalbook_lib.utils.as_generator`).

    Returns:
        a list of :class:`ColouredDigits`, one per entry of ``colour_flips``.

    Raises:
        ValueError: no environments, more than 100, or a probability outside [0, 1].
    """
    flips = [check_probability(e, "colour_flips entry") for e in np.atleast_1d(np.asarray(colour_flips, dtype=object))]
    if not 1 <= len(flips) <= 100:
        raise ValueError(f"colour_flips must hold between 1 and 100 probabilities, got {len(flips)}")
    noise = check_probability(label_noise, "label_noise")
    g = as_generator(generator)
    images, digits = _load_digits_array()
    n_total = len(digits)
    order = torch.randperm(n_total, generator=g, device=g.device)
    x_all = torch.as_tensor(images, dtype=torch.float64)[order].reshape(n_total, 8, 8)
    d_all = torch.as_tensor(digits)[order]
    shape_label = (d_all >= 5).to(torch.float64)
    label = torch.logical_xor(shape_label.bool(), torch.rand(n_total, generator=g, dtype=torch.float64, device=g.device) < noise)
    u_colour = torch.rand(n_total, generator=g, dtype=torch.float64, device=g.device)
    envs = []
    for idx, e in zip(torch.tensor_split(torch.arange(n_total), len(flips)), flips):
        y = label[idx]
        colour = torch.logical_xor(y, u_colour[idx] < e).to(torch.float64)
        x = torch.stack([(1 - colour)[:, None, None] * x_all[idx], colour[:, None, None] * x_all[idx]], dim=1)
        envs.append(ColouredDigits(x.to(dtype), y.to(dtype), colour.to(dtype), d_all[idx], e))
    return envs


# --------------------------------------------------------------------------------------------
# Transformed digits for competing experts (chapter 15)
# --------------------------------------------------------------------------------------------

#: The fixed transformations of :func:`transform_digits`, in index order.
DIGIT_TRANSFORMS = ("shift_right", "shift_down", "noise", "invert")


def _shift(img: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    out = torch.zeros_like(img)
    h, w = img.shape[-2:]
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[..., yd, xd] = img[..., ys, xs]
    return out


def transform_digits(x: torch.Tensor, index: torch.Tensor, *, noise_std: float = 0.25,
                     generator=0) -> torch.Tensor:
    """Apply transformation ``DIGIT_TRANSFORMS[index[i]]`` to image ``x[i]``, batched.

    The transformations: ``shift_right`` and ``shift_down`` move the 8x8 image by one pixel
    (filling with zeros); ``noise`` adds :math:`\\mathcal N(0, s^2)` noise and clips to [0, 1];
    ``invert`` maps every pixel :math:`v \\mapsto 1 - v`. :doc:`Chapter 15 </notebooks/15-ood-generalisation>` (Parascandolo et al.).

    Args:
        x: images in [0, 1], shape ``(n, 64)`` or ``(n, 8, 8)``.
        index: integers in ``0..len(DIGIT_TRANSFORMS)-1``, shape ``(n,)``.
        noise_std: :math:`s` > 0.
        generator: the noise; ``None``, an int seed or a ``torch.Generator`` (:func:`causalbook_lib.utils.as_generator`).

    Returns:
        the transformed images, same shape and dtype as ``x``.

    Raises:
        ValueError: bad shapes, values outside [0, 1], or an unknown transformation index.
    """
    x = torch.as_tensor(x)
    if not x.is_floating_point():
        raise ValueError(f"x must be a floating tensor of images, got dtype {x.dtype}")
    flat = x.dim() == 2
    if not ((flat and x.shape[1] == 64) or (x.dim() == 3 and tuple(x.shape[1:]) == (8, 8))):
        raise ValueError(f"x must have shape (n, 64) or (n, 8, 8), got {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()) or float(x.min()) < 0 or float(x.max()) > 1:
        raise ValueError("x must hold finite pixel values in [0, 1]")
    index = torch.as_tensor(index)
    if index.dtype.is_floating_point or index.dim() != 1 or len(index) != len(x):
        raise ValueError(f"index must be an integer tensor of shape ({len(x)},), got {tuple(index.shape)} {index.dtype}")
    if len(index) and (int(index.min()) < 0 or int(index.max()) >= len(DIGIT_TRANSFORMS)):
        raise ValueError(f"index entries must lie in 0..{len(DIGIT_TRANSFORMS) - 1}")
    s = check_number(noise_std, "noise_std", positive=True)
    g = as_generator(generator)
    img = x.reshape(-1, 8, 8)
    noisy = (img + s * torch.randn(img.shape, generator=g, dtype=torch.float64, device=g.device).to(img.dtype)).clamp(0, 1)
    candidates = torch.stack([_shift(img, 0, 1), _shift(img, 1, 0), noisy, 1 - img])  # (T, n, 8, 8)
    out = candidates[index, torch.arange(len(img))]
    return out.reshape(x.shape)


@dataclass
class TransformedDigits:
    """Data of :func:`transformed_digits`: clean reference digits and transformed digits.

    Attributes:
        clean: untransformed digits (the "canonical" distribution), shape ``(n_clean, 64)``.
        transformed: transformed digits, shape ``(n_transformed, 64)``.
        original: the transformed digits before transformation, shape ``(n_transformed, 64)``.
        index: which transformation was applied, shape ``(n_transformed,)``.
    """

    clean: torch.Tensor
    transformed: torch.Tensor
    original: torch.Tensor
    index: torch.Tensor


def transformed_digits(*, clean_fraction: float = 0.5, noise_std: float = 0.25, generator=0,
                       dtype: torch.dtype = torch.float32) -> TransformedDigits:
    """Split the 8x8 digits into a clean reference set and a set of randomly transformed digits.

    As in Parascandolo et al., the two sets hold different digits: the experts never see the
    clean version of the images they must undo, and never see which transformation was applied.
    Each transformed digit gets a transformation drawn uniformly from :data:`DIGIT_TRANSFORMS`.

    Args:
        clean_fraction: share of the 1797 digits kept clean, in (0, 1).
        noise_std: noise level of the ``noise`` transformation (> 0).
        generator: the split, the choice of transformation and the noise; ``None``, an int seed or a
            ``torch.Generator`` (:func:`causalbook_lib.utils.as_generator`).

    Raises:
        ValueError: ``clean_fraction`` outside (0, 1), a non-positive ``noise_std`` or a bad generator.
    """
    frac = check_number(clean_fraction, "clean_fraction")
    if not 0 < frac < 1:
        raise ValueError(f"clean_fraction must lie strictly between 0 and 1, got {frac}")
    g = as_generator(generator)
    images, _ = _load_digits_array()
    x = torch.as_tensor(images, dtype=dtype)[torch.randperm(len(images), generator=g, device=g.device)]
    n_clean = int(round(frac * len(x)))
    if not 0 < n_clean < len(x):
        raise ValueError(f"clean_fraction {frac} leaves an empty set")
    clean, rest = x[:n_clean], x[n_clean:]
    index = torch.randint(len(DIGIT_TRANSFORMS), (len(rest),), generator=g, device=g.device)
    transformed = transform_digits(rest, index, noise_std=noise_std,
                                   generator=int(torch.randint(2**31, (1,), generator=g, device=g.device)))
    return TransformedDigits(clean, transformed, rest, index)


@dataclass
class TransformedSet:
    """Transformed digits with their ground truth, one part of :func:`expert_digit_splits`.

    Attributes:
        transformed: the transformed images, shape ``(n, 64)``.
        original: the same digits before transformation, shape ``(n, 64)``.
        index: which transformation of :data:`DIGIT_TRANSFORMS` was applied, shape ``(n,)``.
        labels: the digit classes 0-9, shape ``(n,)``.
    """

    transformed: torch.Tensor
    original: torch.Tensor
    index: torch.Tensor
    labels: torch.Tensor


@dataclass
class ExpertDigitSplits:
    """Disjoint splits of the 8x8 digits for competing experts, made by :func:`expert_digit_splits`.

    Attributes:
        train: the experts' training inputs, transformed digits of the training classes.
        reference: clean digits of the training classes, the discriminator's "real" images,
            shape ``(m, 64)``.
        test_in: transformed digits of the training classes that neither the experts nor the
            discriminator see during training (in distribution).
        test_out: transformed digits of the other classes (out of distribution).
        classifier_x: clean digits of all classes for a downstream classifier, shape ``(k, 64)``:
            the originals of ``train``, ``reference`` and the held-back digits of the other classes,
            disjoint from ``test_in`` and ``test_out``.
        classifier_y: their classes, shape ``(k,)``.
        train_classes: the classes of ``train``, ``reference`` and ``test_in``.
    """

    train: TransformedSet
    reference: torch.Tensor
    test_in: TransformedSet
    test_out: TransformedSet
    classifier_x: torch.Tensor
    classifier_y: torch.Tensor
    train_classes: tuple[int, ...]


def expert_digit_splits(*, train_classes=(0, 1, 2, 3, 4), fractions=(0.4, 0.3, 0.3), test_out_fraction: float = 0.5,
                        noise_std: float = 0.25, generator=0, dtype: torch.dtype = torch.float32) -> ExpertDigitSplits:
    """Split the 1797 8x8 digits into disjoint sets for training and testing competing experts.

    The digits of ``train_classes`` are shuffled and cut, in the proportions ``fractions``, into
    the experts' inputs (``train``, transformed), the discriminator's clean ``reference`` images and
    an in-distribution test set (``test_in``, transformed), so that the referee that picks the
    winning expert never saw a test image. The digits of the other classes are cut into a test set
    (``test_out``, transformed; its share is ``test_out_fraction``) and a clean part held back for a
    downstream classifier. Each transformed digit gets a transformation drawn uniformly from
    :data:`DIGIT_TRANSFORMS` (see :func:`transform_digits`). This is the small-scale analogue of
    Parascandolo et al.'s transfer from MNIST to Omniglot (:doc:`chapter 15 </notebooks/15-ood-generalisation>`).

    Args:
        train_classes: the digit classes the experts and the discriminator are trained on, a
            non-empty proper subset of 0-9.
        fractions: three positive shares of the training classes' digits, summing to 1: experts'
            inputs, reference, in-distribution test.
        test_out_fraction: share of the other classes' digits used as the out-of-distribution test
            set, in (0, 1).
        noise_std: noise level of the ``noise`` transformation (> 0).
        generator: ``None``, an int seed or a ``torch.Generator`` (see :func:`causalbook_lib.utils.as_generator`):
            the split, the choice of transformations and the noise.
        dtype: floating dtype of the images.

    Returns:
        an :class:`ExpertDigitSplits`.

    Raises:
        ValueError: classes outside 0-9, repeated or covering all ten; fractions that are not three
            positive numbers summing to 1; ``test_out_fraction`` outside (0, 1); a non-positive
            ``noise_std``; a non-floating ``dtype``; a bad generator; a split that leaves a set empty.
    """
    try:
        classes = tuple(int(c) for c in train_classes)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"train_classes must be a sequence of digit classes, got {train_classes!r}") from exc
    if not classes or len(set(classes)) != len(classes) or min(classes) < 0 or max(classes) > 9 or len(classes) == 10:
        raise ValueError(f"train_classes must be distinct classes in 0..9, at least one and not all ten, got {train_classes!r}")
    try:
        fr = [check_number(f, "fractions entry", positive=True) for f in fractions]
    except TypeError as exc:
        raise ValueError(f"fractions must be three positive numbers summing to 1, got {fractions!r}") from exc
    if len(fr) != 3 or abs(sum(fr) - 1) > 1e-9:
        raise ValueError(f"fractions must be three positive numbers summing to 1, got {fractions!r}")
    out_frac = check_number(test_out_fraction, "test_out_fraction")
    if not 0 < out_frac < 1:
        raise ValueError(f"test_out_fraction must lie strictly between 0 and 1, got {out_frac}")
    s = check_number(noise_std, "noise_std", positive=True)
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"dtype must be a floating torch dtype, got {dtype!r}")
    g = as_generator(generator)
    images, labels = _load_digits_array()
    perm = torch.randperm(len(images), generator=g, device=g.device)
    x, y = torch.as_tensor(images, dtype=dtype)[perm], torch.as_tensor(labels)[perm]
    inside = torch.isin(y, torch.tensor(classes))
    x_in, y_in, x_out, y_out = x[inside], y[inside], x[~inside], y[~inside]
    n_train, n_ref = int(round(fr[0] * len(x_in))), int(round(fr[1] * len(x_in)))
    n_test_out = int(round(out_frac * len(x_out)))
    if min(n_train, n_ref, len(x_in) - n_train - n_ref, n_test_out, len(x_out) - n_test_out) <= 0:
        raise ValueError("the fractions leave one of the splits empty")

    def transformed_set(xs, ys):
        index = torch.randint(len(DIGIT_TRANSFORMS), (len(xs),), generator=g, device=g.device)
        noise_seed = int(torch.randint(2**31, (1,), generator=g, device=g.device))
        return TransformedSet(transform_digits(xs, index, noise_std=s, generator=noise_seed), xs, index, ys)

    train = transformed_set(x_in[:n_train], y_in[:n_train])
    reference = x_in[n_train:n_train + n_ref]
    test_in = transformed_set(x_in[n_train + n_ref:], y_in[n_train + n_ref:])
    test_out = transformed_set(x_out[:n_test_out], y_out[:n_test_out])
    held_x, held_y = x_out[n_test_out:], y_out[n_test_out:]
    classifier_x = torch.cat([train.original, reference, held_x])
    classifier_y = torch.cat([train.labels, y_in[n_train:n_train + n_ref], held_y])
    return ExpertDigitSplits(train, reference, test_in, test_out, classifier_x, classifier_y, classes)
