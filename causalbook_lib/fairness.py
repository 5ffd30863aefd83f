"""Counterfactual fairness on the loan SCM (Kusner et al.; Part V, :doc:`chapter 17 </notebooks/17-robustness-fairness>`).

:func:`loan_abduct`, :func:`loan_counterfactual` and :func:`counterfactual_gap` implement the
counterfactual-fairness test by abduction, action and prediction, on the loan SCM of
:func:`causalbook_lib.datasets.synthetic.loan_scm` (the model's one encoding, which
:func:`causalbook_lib.datasets.synthetic.sample_loan_data` samples).
"""
from __future__ import annotations

from typing import Callable

import torch

from .datasets.synthetic import LoanSCMParameters, loan_feature_scm
from .utils import check_binary, check_finite

__all__ = ["loan_abduct", "loan_counterfactual", "counterfactual_gap"]


def _check_loan_features(features) -> torch.Tensor:
    f = torch.as_tensor(features, dtype=torch.float64)
    if f.dim() != 2 or f.shape[1] != 4:
        raise ValueError(f"features must have shape (n, 4) with columns group, age, education, income; "
                         f"got {tuple(f.shape)}")
    check_finite(f, "features")
    check_binary(f[:, 0], "the group column of features")
    return f


def loan_abduct(features, params: LoanSCMParameters | None = None) -> torch.Tensor:
    """Abduction in the loan SCM: recover the exogenous terms of each applicant exactly.

    With additive noise every noise is the observed value minus its mechanism:
    ``U_Edu = Edu - b_EA A`` and ``U_Inc = Inc - (b_IA A + b_IE Edu + b_Iage Age)``;
    ``U_Age = Age``. The mechanisms are those of :func:`causalbook_lib.datasets.synthetic.loan_scm` (each
    variable's ``abduct``), the book's one encoding of the model.

    Args:
        features: (n, 4) columns group, age, education, income (as ``LoanData.features()``).
    Returns:
        An (n, 3) float64 tensor with columns ``U_Age, U_Edu, U_Inc``.
    Raises:
        ValueError: wrong shape, non-finite values or a group other than 0/1.
    """
    f = _check_loan_features(features)
    a, age, edu, inc = f.unbind(1)
    v = loan_feature_scm(params).variables
    u_edu = v["education"].abduct({"group": a}, edu)
    u_inc = v["income"].abduct({"group": a, "education": edu, "age": age}, inc)
    return torch.stack([age, u_edu, u_inc], dim=1)


def loan_counterfactual(features, group, params: LoanSCMParameters | None = None) -> torch.Tensor:
    """Counterfactual features under ``do(A = group)`` by abduction, action and prediction.

    1. Abduction: recover ``U`` (:func:`loan_abduct`). 2. Action: replace ``A`` by ``group``.
    3. Prediction: recompute ``Edu`` and ``Inc`` from their mechanisms with the same ``U``. This is
    :meth:`causalbook_lib.scm.SCM.counterfactual` of :func:`causalbook_lib.datasets.synthetic.loan_feature_scm`.

    Args:
        features: (n, 4) as in :func:`loan_abduct`.
        group: 0 or 1, or an (n,) tensor of 0/1 (for example ``1 - features[:, 0]`` to flip every group).
    Returns:
        (n, 4) float64 counterfactual features (group, age, education, income).
    Raises:
        ValueError: bad features or a group value other than 0/1.
    """
    f = _check_loan_features(features)
    g = torch.as_tensor(group, dtype=torch.float64)
    if g.dim() == 0:
        g = g.expand(len(f))
    if g.shape != (len(f),):
        raise ValueError(f"group must be 0, 1 or an ({len(f)},) tensor of 0/1 values, got shape {tuple(g.shape)}")
    check_binary(g, "group")
    names = ("group", "age", "education", "income")
    cf = loan_feature_scm(params).counterfactual({k: f[:, i] for i, k in enumerate(names)}, {"group": g})
    return torch.stack([cf[k].expand(len(f)) for k in names], dim=1)


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
