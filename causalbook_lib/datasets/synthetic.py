"""Data generators for the survey's generation, robustness and fairness chapters (Part V).

* :func:`render_faces` draws 12x12 cartoon "faces" whose pixels are fixed by five binary
  attributes (Young, Male, Bald, Mustache, Smiling), plus pixel noise. Each attribute owns its own
  block of pixels, so an attribute can be read back from an image by construction
  (:func:`judge_face_attributes`). :doc:`Chapter 16 </notebooks/16-causal-generation>` (causal generation) trains a conditional generator
  on these images.
* :func:`sample_face_attributes` samples the attributes from the book's small binary SCM
  (Male -> Mustache, Male -> Bald, Young -> Bald, Young -> Mustache; Smiling is a root).
* :func:`sample_loan_data` samples the loan-style linear SCM of :doc:`chapter 17 </notebooks/17-robustness-fairness>` (counterfactual
  fairness) and returns every exogenous term so that counterfactuals can be checked exactly.

Everything is seeded through an explicit ``torch.Generator``; nothing is downloaded.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import scm
from ..utils import as_generator, check_binary, check_positive_int

__all__ = [
    "FACE_ATTRIBUTES",
    "FACE_SIZE",
    "FACE_PARENTS",
    "FACE_CPTS",
    "face_templates",
    "render_faces",
    "face_images",
    "ENTANGLED_OVERLAP",
    "judge_face_attributes",
    "sample_face_attributes",
    "LoanSCMParameters",
    "LoanData",
    "sample_loan_data",
    "loan_scm",
    "loan_feature_scm",
]

#: Names of the binary face attributes, in topological order of the book's attribute SCM.
FACE_ATTRIBUTES = ("Young", "Male", "Bald", "Mustache", "Smiling")
#: Side length of a face image in pixels (images are 12 x 12 = 144 pixels).
FACE_SIZE = 12
#: Parents of each attribute in the causal graph of chapter 16.
FACE_PARENTS = {"Young": (), "Male": (), "Bald": ("Young", "Male"), "Mustache": ("Young", "Male"),
                "Smiling": ()}
#: The conditional probability tables P(attribute = 1 | parents), keyed by the tuple of parent values.
FACE_CPTS = {
    "Young": {(): 0.6},
    "Male": {(): 0.5},
    # (Young, Male) -> P(Bald = 1)
    "Bald": {(0, 0): 0.02, (0, 1): 0.45, (1, 0): 0.0, (1, 1): 0.10},
    # (Young, Male) -> P(Mustache = 1)
    "Mustache": {(0, 0): 0.0, (0, 1): 0.50, (1, 0): 0.0, (1, 1): 0.30},
    "Smiling": {(): 0.5},
}


def face_templates() -> dict[str, torch.Tensor]:
    """The pixel masks (12 x 12 float64 tensors, values 0/1) the faces are drawn from.

    Keys: ``"eyes"`` (always drawn), ``"top_hair"`` (drawn when not Bald), ``"side_hair"``
    (long hair, drawn when not Male), ``"wrinkles"`` (drawn when not Young), ``"mustache"``,
    ``"smile"`` (mouth corners, drawn when Smiling) and ``"mouth"`` (always drawn). The masks
    do not overlap, which is what makes :func:`judge_face_attributes` exact up to noise.
    """
    s = FACE_SIZE
    t = {k: torch.zeros(s, s, dtype=torch.float64) for k in ("eyes", "top_hair", "side_hair", "wrinkles", "mustache", "smile", "mouth")}
    t["top_hair"][0:2, 2:10] = 1
    t["side_hair"][2:10, 0:2] = 1
    t["side_hair"][2:10, 10:12] = 1
    t["wrinkles"][3, 3:9] = 1
    t["eyes"][5, 3:5] = 1
    t["eyes"][5, 7:9] = 1
    t["mustache"][8, 3:9] = 1
    t["mouth"][10, 4:8] = 1
    t["smile"][9, 3] = 1
    t["smile"][9, 8] = 1
    t["smile"][10, 3] = 1
    t["smile"][10, 8] = 1
    return t


def _check_attributes(attributes) -> torch.Tensor:
    a = torch.as_tensor(attributes)
    if a.dim() != 2 or a.shape[1] != len(FACE_ATTRIBUTES):
        raise ValueError(f"attributes must have shape (n, {len(FACE_ATTRIBUTES)}) with columns "
                         f"{FACE_ATTRIBUTES}, got {tuple(a.shape)}")
    return check_binary(a, "attributes").to(torch.float64)


#: The pixels (row, column) where the mustache of an *entangled* face (``render_faces(...,
#: entangled=True)``) overlaps the long side hair: the two outermost pixels of row 8 on each side.
ENTANGLED_OVERLAP = ((8, 0), (8, 1), (8, 10), (8, 11))


def face_images(attributes, *, entangled: bool = False) -> torch.Tensor:
    """The noise-free template image of each row of attributes (intensity 1): shape (n, 144), float64.

    Default: the sum ``eyes + mouth + (1 - Bald) top_hair + (1 - Male) side_hair + (1 - Young)
    wrinkles + Mustache mustache + Smiling smile`` of the disjoint masks of :func:`face_templates`,
    so every attribute acts on pixels of its own and their effects simply add. With
    ``entangled=True`` the mustache spans the whole of row 8 and so covers the side hair at
    :data:`ENTANGLED_OVERLAP`, and a pixel is lit (1) when any part covers it: the effects of
    Mustache and Male no longer add where they meet (one, not two, where both are drawn).

    Raises:
        ValueError: wrong shape or values other than 0/1.
    """
    a = _check_attributes(attributes)
    t = {k: v.ravel() for k, v in face_templates().items()}
    if entangled:
        m = torch.zeros(FACE_SIZE, FACE_SIZE, dtype=torch.float64)
        m[8, :] = 1
        t["mustache"] = m.ravel()
    young, male, bald, mustache, smiling = (a[:, i:i + 1] for i in range(5))
    img = (t["eyes"] + t["mouth"] + (1 - bald) * t["top_hair"] + (1 - male) * t["side_hair"]
           + (1 - young) * t["wrinkles"] + mustache * t["mustache"] + smiling * t["smile"])
    return img.clamp(max=1.0) if entangled else img


def render_faces(attributes, generator=None, noise_std: float = 0.1,
                 dtype: torch.dtype = torch.float32, *, entangled: bool = False) -> torch.Tensor:
    """Draw one 12x12 face per row of binary attributes, as flat vectors of 144 pixels.

    Pixel image = intensity * :func:`face_images` (by default eyes + mouth + (1 - Bald) top_hair
    + (1 - Male) side_hair + (1 - Young) wrinkles + Mustache mustache + Smiling smile) + noise, with
    a per-image intensity drawn uniformly from [0.8, 1] and i.i.d. Gaussian noise of standard
    deviation ``noise_std``. Used in :doc:`chapter 16 </notebooks/16-causal-generation>` (causal
    generation), section "An attribute-controlled image set".

    Args:
        attributes: (n, 5) array of 0/1 values, columns in the order of :data:`FACE_ATTRIBUTES`.
        generator: the intensity and the noise: ``None``, an int seed or a ``torch.Generator``
            (:func:`causalbook_lib.utils.as_generator`).
        noise_std: pixel noise standard deviation, >= 0.
        entangled: draw the entangled faces of :func:`face_images`, whose mustache overlaps the
            side hair.
    Returns:
        (n, 144) tensor of ``dtype``.
    Raises:
        ValueError: wrong shape, values other than 0/1, or a negative / non-finite ``noise_std``.
    """
    a = _check_attributes(attributes)
    if not isinstance(noise_std, (int, float)) or not np.isfinite(noise_std) or noise_std < 0:
        raise ValueError(f"noise_std must be a finite number >= 0, got {noise_std!r}")
    img = face_images(a, entangled=entangled)
    n = a.shape[0]
    gen = as_generator(generator)
    intensity = 0.8 + 0.2 * torch.rand(n, 1, generator=gen, dtype=torch.float64, device=gen.device)
    noise = noise_std * torch.randn(n, FACE_SIZE * FACE_SIZE, generator=gen, dtype=torch.float64, device=gen.device)
    return (intensity * img + noise).to(dtype)


def judge_face_attributes(images, threshold: float = 0.5) -> torch.Tensor:
    """Read the five attributes back from face images by construction (mean intensity per mask).

    An attribute is judged present when the mean pixel value on its mask crosses ``threshold``
    (for Young, Male and Bald, whose masks are drawn when the attribute is *absent*, the reading
    is inverted). This is the "attribute classifier" of :doc:`chapter 16 </notebooks/16-causal-generation>`: it needs no training and is
    exact on noiseless images.

    Args:
        images: (n, 144) tensor.
        threshold: intensity threshold in (0, 1).
    Returns:
        (n, 5) float64 tensor of 0/1 judgements, columns as :data:`FACE_ATTRIBUTES`.
    Raises:
        ValueError: wrong shape, non-finite pixels, or a threshold outside (0, 1).
    """
    x = torch.as_tensor(images, dtype=torch.float64)
    if x.dim() != 2 or x.shape[1] != FACE_SIZE * FACE_SIZE:
        raise ValueError(f"images must have shape (n, {FACE_SIZE * FACE_SIZE}), got {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("images must be finite")
    if not (isinstance(threshold, (int, float)) and 0 < threshold < 1):
        raise ValueError(f"threshold must lie in (0, 1), got {threshold!r}")
    t = face_templates()

    def mean_on(mask):
        m = torch.as_tensor(mask.ravel(), dtype=torch.float64)
        return (x * m).sum(1) / m.sum()

    young = mean_on(t["wrinkles"]) < threshold
    male = mean_on(t["side_hair"]) < threshold
    bald = mean_on(t["top_hair"]) < threshold
    mustache = mean_on(t["mustache"]) > threshold
    smiling = mean_on(t["smile"]) > threshold
    return torch.stack([young, male, bald, mustache, smiling], dim=1).to(torch.float64)


def sample_face_attributes(n: int, generator=None) -> torch.Tensor:
    """Sample n attribute vectors from the book's attribute SCM (:data:`FACE_PARENTS`, :data:`FACE_CPTS`).

    Each attribute is ``1[U_i < p_i(parents)]`` with independent ``U_i ~ Uniform(0, 1)``: the
    :func:`causalbook_lib.scm.binary_scm` of these tables.
    The same SCM, with a learnable table, is the causal controller of
    :class:`causalbook_lib.causalgen.CausalController`.

    Returns:
        (n, 5) float64 tensor of 0/1 values, columns as :data:`FACE_ATTRIBUTES`.
    Raises:
        ValueError: ``n`` is not a positive integer.
    """
    n = check_positive_int(n, "n")
    values = scm.binary_scm(FACE_PARENTS, FACE_CPTS).sample(n, generator)
    return torch.stack([values[name].to(torch.float64).expand(n) for name in FACE_ATTRIBUTES], dim=1)


@dataclass(frozen=True)
class LoanSCMParameters:
    """Coefficients of the loan-style linear SCM of :doc:`chapter 17 </notebooks/17-robustness-fairness>` (counterfactual fairness).

    Structural equations (all noises independent):

    * ``A := U_A``, ``U_A ~ Bernoulli(p_group)``                       protected group
    * ``Age := U_Age``, ``U_Age ~ N(0, 1)``                              standardised age
    * ``Edu := edu_from_group * A + U_Edu``, ``U_Edu ~ N(0, 1)``         education
    * ``Inc := inc_from_group * A + inc_from_edu * Edu + inc_from_age * Age + U_Inc``,
      ``U_Inc ~ N(0, noise_inc**2)``                                    income
    * ``Repay := 1[rep_from_edu * Edu + rep_from_inc * Inc + rep_from_age * Age + U_Rep > rep_threshold]``,
      ``U_Rep ~ Logistic(0, 1)``                                        repays the loan
    """

    p_group: float = 0.4
    edu_from_group: float = -1.0
    inc_from_group: float = -0.8
    inc_from_edu: float = 0.7
    inc_from_age: float = 0.5
    noise_inc: float = 0.6
    rep_from_edu: float = 0.6
    rep_from_inc: float = 1.0
    rep_from_age: float = 0.3
    rep_threshold: float = -0.5


@dataclass
class LoanData:
    """A sample of the loan SCM: observed columns and every exogenous term (float64 tensors, shape (n,))."""

    group: torch.Tensor
    age: torch.Tensor
    education: torch.Tensor
    income: torch.Tensor
    repay: torch.Tensor
    u_education: torch.Tensor
    u_income: torch.Tensor
    u_repay: torch.Tensor
    params: LoanSCMParameters

    def features(self) -> torch.Tensor:
        """The observed features as an (n, 4) matrix: columns group, age, education, income."""
        return torch.stack([self.group, self.age, self.education, self.income], dim=1)


def _check_loan_parameters(params: LoanSCMParameters | None) -> LoanSCMParameters:
    p = params or LoanSCMParameters()
    if not 0 < p.p_group < 1:
        raise ValueError(f"p_group must lie in (0, 1), got {p.p_group}")
    if not p.noise_inc > 0:
        raise ValueError(f"noise_inc must be positive, got {p.noise_inc}")
    return p


def _logistic_noise(n: int, generator: torch.Generator) -> torch.Tensor:
    """Standard logistic draws, log(V) - log(1 - V) for uniform V (kept away from 0 and 1)."""
    uni = torch.rand(n, generator=generator, dtype=torch.float64, device=generator.device).clamp(1e-12, 1 - 1e-12)
    return torch.log(uni) - torch.log1p(-uni)


_logistic_noise.description = "Logistic(0, 1)"


def loan_scm(params: LoanSCMParameters | None = None, *, label: bool = True):
    """The loan SCM of :class:`LoanSCMParameters` as a :class:`causalbook_lib.scm.SCM`: the book's one encoding of it.

    Group is a Bernoulli root; age, education and income are additive-noise variables, so
    :meth:`causalbook_lib.scm.SCM.counterfactual` can abduct their noises exactly; ``repay`` is the
    threshold of a linear score plus logistic noise (not invertible, and not needed for a
    counterfactual of the features). :func:`sample_loan_data` samples it and
    :mod:`causalbook_lib.fairness` computes its counterfactuals. :doc:`Chapter 17 </notebooks/17-robustness-fairness>`.

    Args:
        params: the coefficients (default :class:`LoanSCMParameters`).
        label: include ``repay`` (``False`` gives the features only, :func:`loan_feature_scm`).

    Raises:
        ValueError: ``p_group`` outside (0, 1) or ``noise_inc`` not positive.
    """
    return _loan_scm(_check_loan_parameters(params), label)


def _loan_scm(p: LoanSCMParameters, label: bool):
    f64 = torch.float64
    variables = {
        "group": scm.bernoulli((), p.p_group, description=f"1[U_A < {p.p_group}]"),
        "age": scm.additive((), lambda pa: torch.zeros((), dtype=f64), scm.normal_noise(1.0), description="U_Age"),
        "education": scm.additive(("group",), lambda pa: p.edu_from_group * pa["group"], scm.normal_noise(1.0),
                                  description=f"{p.edu_from_group} A + U_Edu"),
        "income": scm.additive(("group", "education", "age"),
                               lambda pa: (p.inc_from_group * pa["group"] + p.inc_from_edu * pa["education"]
                                           + p.inc_from_age * pa["age"]),
                               scm.normal_noise(p.noise_inc),
                               description=f"{p.inc_from_group} A + {p.inc_from_edu} Edu + {p.inc_from_age} Age + U_Inc"),
    }
    if label:
        variables["repay"] = scm.Variable(
            ("education", "income", "age"),
            mechanism=lambda pa, u: ((p.rep_from_edu * pa["education"] + p.rep_from_inc * pa["income"]
                                      + p.rep_from_age * pa["age"] + u) > p.rep_threshold).to(f64),
            noise=_logistic_noise,
            description=(f"1[{p.rep_from_edu} Edu + {p.rep_from_inc} Inc + {p.rep_from_age} Age + U_Rep "
                         f"> {p.rep_threshold}], U_Rep ~ Logistic(0, 1)"))
    return scm.SCM(variables)


def loan_feature_scm(params: LoanSCMParameters | None = None):
    """The feature part of the loan SCM (group, age, education, income): :func:`loan_scm` without ``repay``.

    Raises:
        ValueError: ``p_group`` outside (0, 1) or ``noise_inc`` not positive.
    """
    return loan_scm(params, label=False)


def sample_loan_data(n: int, generator=None,
                     params: LoanSCMParameters | None = None) -> LoanData:
    """Sample ``n`` applicants from :func:`loan_scm` (:doc:`chapter 17 </notebooks/17-robustness-fairness>`).

    Raises:
        ValueError: ``n`` is not a positive integer, or ``p_group`` is outside (0, 1), or
            ``noise_inc`` is not positive.
    """
    n = check_positive_int(n, "n")
    p = _check_loan_parameters(params)
    values, noise = _loan_scm(p, label=True).sample(n, generator, return_noise=True)
    return LoanData(values["group"], values["age"], values["education"], values["income"], values["repay"],
                    noise["education"], noise["income"], noise["repay"], p)
