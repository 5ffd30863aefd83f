"""Tabular data: the iris and digits data that scikit-learn ships, prepared the way the book uses them,
and the 1973 Berkeley graduate admissions table (six largest departments).

Nothing is downloaded: iris and digits are bundled with scikit-learn, and the Berkeley counts (a
12-row table) are written out below. Where a source paper used MNIST
(28x28), the book uses the 8x8 handwritten digits of :func:`sklearn.datasets.load_digits` instead,
because MNIST cannot be fetched at run time.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..utils import seed_from

__all__ = ["TabularSplit", "load_iris_scaled", "load_digits_split", "BerkeleyAdmissions",
           "load_berkeley_admissions"]


@dataclass
class TabularSplit:
    """A train/test split of features ``x`` (float tensors) and integer labels ``y``; ``low`` and
    ``high`` (float64 tensors) are the per-feature minimum and maximum that the scaling used."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    feature_names: list[str]
    target_names: list[str]
    low: torch.Tensor
    high: torch.Tensor

    def unscale(self, x) -> torch.Tensor:
        """Map min-max scaled features back to the original units (float64, on the device of ``low``)."""
        x = torch.as_tensor(x, dtype=torch.float64, device=self.low.device)
        return x * (self.high - self.low) + self.low


def _split(x: np.ndarray, y: np.ndarray, test_fraction: float, generator):
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in [0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed_from(generator))
    order = rng.permutation(len(x))
    n_test = int(round(test_fraction * len(x)))
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def load_iris_scaled(test_fraction: float = 0.0, generator=0, dtype: torch.dtype = torch.float32) -> TabularSplit:
    """Iris (150 x 4) with every feature min-max scaled to [0, 1], as in Chattopadhyay et al.'s code.

    ``low`` and ``high`` hold the per-feature minimum and maximum in centimetres, so
    ``split.unscale(v)`` maps scaled values back. With ``test_fraction=0`` every row is in the
    training set (the paper trains on all of iris). ``generator`` draws the split: ``None``, an int seed or a ``torch.Generator`` (:func:`causalbook_lib.utils.as_generator`).
    """
    from sklearn.datasets import load_iris

    data = load_iris()
    x = data.data.astype(np.float64)
    low, high = x.min(axis=0), x.max(axis=0)
    xs = (x - low) / (high - low)
    xtr, ytr, xte, yte = _split(xs, data.target, test_fraction, generator)
    t = lambda a: torch.as_tensor(a, dtype=dtype)  # noqa: E731
    return TabularSplit(t(xtr), torch.as_tensor(ytr), t(xte), torch.as_tensor(yte),
                        list(data.feature_names), list(data.target_names),
                        torch.as_tensor(low, dtype=torch.float64), torch.as_tensor(high, dtype=torch.float64))


def load_digits_split(test_fraction: float = 0.25, generator=0, classes=None,
                      dtype: torch.dtype = torch.float32) -> TabularSplit:
    """The 8x8 digits (1797 images) as flat vectors in [0, 1] (pixel / 16), split into train and test.

    ``classes`` keeps only the listed digits (for example ``[3, 8]``) and relabels them 0, 1, ...
    in the listed order. Images are rows of 64 values; reshape to (8, 8) to draw them.
    ``generator`` draws the split: ``None``, an int seed or a ``torch.Generator`` (:func:`causalbook_lib.utils.as_generator`).
    """
    from sklearn.datasets import load_digits

    data = load_digits()
    x = data.data.astype(np.float64) / 16.0
    y = data.target.astype(np.int64)
    names = [str(d) for d in range(10)]
    if classes is not None:
        classes = [int(c) for c in classes]
        if len(classes) < 2 or len(set(classes)) != len(classes) or not all(0 <= c <= 9 for c in classes):
            raise ValueError(f"classes must be at least two distinct digits in 0..9, got {classes}")
        keep = np.isin(y, classes)
        x, y = x[keep], y[keep]
        y = np.array([classes.index(v) for v in y], dtype=np.int64)
        names = [str(c) for c in classes]
    xtr, ytr, xte, yte = _split(x, y, test_fraction, generator)
    t = lambda a: torch.as_tensor(a, dtype=dtype)  # noqa: E731
    return TabularSplit(t(xtr), torch.as_tensor(ytr), t(xte), torch.as_tensor(yte),
                        [f"pixel_{r}_{c}" for r in range(8) for c in range(8)], names,
                        torch.zeros(64, dtype=torch.float64), torch.full((64,), 16.0, dtype=torch.float64))


# ----------------------------------------------------------------------------- Berkeley 1973
# Fall 1973 graduate admissions at UC Berkeley, the six largest departments, as in the standard
# UCBAdmissions table (Bickel, Hammel & O'Connell 1975). Rows: men, women; columns: A..F.
_BERKELEY_DEPARTMENTS = ("A", "B", "C", "D", "E", "F")
_BERKELEY_ADMITTED = ((512, 353, 120, 138, 53, 22), (89, 17, 202, 131, 94, 24))
_BERKELEY_APPLICANTS = ((825, 560, 325, 417, 191, 373), (108, 25, 593, 375, 393, 341))


@dataclass
class BerkeleyAdmissions:
    """Counts of the Berkeley 1973 admissions table: ``admitted[g, d]`` of ``applicants[g, d]``.

    ``g`` indexes ``genders`` (0 = men, 1 = women) and ``d`` indexes ``departments`` (A..F).
    See :doc:`chapter 01 </notebooks/01-structural-causal-models>` for Simpson's paradox on these numbers.
    """

    departments: list[str]
    genders: list[str]
    admitted: torch.Tensor     # int64, shape (2, 6)
    applicants: torch.Tensor   # int64, shape (2, 6)

    def rates(self) -> torch.Tensor:
        """Per-department admission rates :math:`P(A = 1 \\mid G = g, D = d)`: float64, shape (2, 6)."""
        return self.admitted.double() / self.applicants.double()

    def aggregate_rates(self) -> torch.Tensor:
        """Admission rates pooled over departments, :math:`P(A = 1 \\mid G = g)`: float64, shape (2,)."""
        return self.admitted.sum(1).double() / self.applicants.sum(1).double()

    def department_shares(self) -> torch.Tensor:
        """Where each gender applied, :math:`P(D = d \\mid G = g)`: float64, shape (2, 6) (rows sum to 1)."""
        return self.applicants.double() / self.applicants.sum(1, keepdim=True).double()

    def pooled_department_shares(self) -> torch.Tensor:
        """Where all applicants applied, :math:`P(D = d)`: float64, shape (6,) (sums to 1)."""
        return self.applicants.sum(0).double() / self.applicants.sum().double()

    def adjusted_rates(self, weights=None) -> torch.Tensor:
        """Department-standardised rates :math:`\\sum_d P(A = 1 \\mid g, d)\\, w_d`, shape (2,).

        With the default weights :math:`w_d = P(D = d)` (all applicants pooled) this is the
        adjustment formula; read causally it is :math:`\\sum_d P(A=1 \\mid do(G=g), do(D=d)) P(D=d)`,
        the admission rate if department choice were fixed to the pooled mix for both genders.

        Raises ``ValueError`` unless ``weights`` is a probability vector of length 6.
        """
        if weights is None:
            weights = self.pooled_department_shares()
        w = torch.as_tensor(weights, dtype=torch.float64)
        if w.shape != (len(self.departments),) or not bool(torch.isfinite(w).all()) or bool((w < 0).any()) \
                or abs(float(w.sum()) - 1.0) > 1e-8:
            raise ValueError(f"weights must be a probability vector of length {len(self.departments)}, got {weights!r}")
        return self.rates() @ w

    def to_frame(self):
        """A tidy ``pandas.DataFrame``: one row per (department, gender) with counts and rate."""
        import pandas as pd

        rows = [{"department": d, "gender": g, "admitted": int(self.admitted[i, j]),
                 "applicants": int(self.applicants[i, j]), "rate": float(self.rates()[i, j])}
                for j, d in enumerate(self.departments) for i, g in enumerate(self.genders)]
        return pd.DataFrame(rows)

    def scm(self):
        """An SCM fitted to the table: gender -> department -> admitted, gender -> admitted.

        ``gender`` is Bernoulli (1 = woman) with the applicants' share, ``department`` categorical
        (codes 0..5 for A..F) given gender, ``admitted`` Bernoulli with the table's rate for the
        (gender, department) cell. Sampling it reproduces the table's frequencies; intervening on
        ``gender`` or ``department`` answers the questions of :doc:`chapter 01 </notebooks/01-structural-causal-models>`.
        """
        from ..scm import SCM, bernoulli, categorical

        shares, rates = self.department_shares(), self.rates()
        p_woman = float(self.applicants[1].sum() / self.applicants.sum())
        return SCM({
            "gender": bernoulli([], p_woman, description=f"1[u < {p_woman:.4f}]  (1 = woman)"),
            "department": categorical(["gender"], lambda pa: shares[pa["gender"].long()],
                                      description="inverse CDF of P(D | gender)"),
            "admitted": bernoulli(["gender", "department"],
                                  lambda pa: rates[pa["gender"].long(), pa["department"].long()],
                                  description="1[u < P(A = 1 | gender, department)]"),
        })


def load_berkeley_admissions() -> BerkeleyAdmissions:
    """The 1973 Berkeley admissions counts for the six largest departments (Bickel et al. 1975).

    Men: 1198 of 2691 admitted (44.5%); women: 557 of 1835 (30.4%). Per department the women's
    rate is higher in four of the six. Returns a fresh :class:`BerkeleyAdmissions` (int64 tensors).
    """
    return BerkeleyAdmissions(list(_BERKELEY_DEPARTMENTS), ["men", "women"],
                              torch.tensor(_BERKELEY_ADMITTED, dtype=torch.int64),
                              torch.tensor(_BERKELEY_APPLICANTS, dtype=torch.int64))
