"""Tabular data: the iris and digits data that scikit-learn ships, prepared the way the book uses them.

Nothing is downloaded: both data sets are bundled with scikit-learn. Where a source paper used MNIST
(28x28), the book uses the 8x8 handwritten digits of :func:`sklearn.datasets.load_digits` instead,
because MNIST cannot be fetched at run time.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..utils import check_positive_int

__all__ = ["TabularSplit", "load_iris_scaled", "load_digits_split"]


@dataclass
class TabularSplit:
    """A train/test split of features ``x`` (float tensors) and integer labels ``y``."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    feature_names: list[str]
    target_names: list[str]
    low: np.ndarray
    high: np.ndarray

    def unscale(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        """Map min-max scaled features back to the original units."""
        return np.asarray(x) * (self.high - self.low) + self.low


def _split(x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int):
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in [0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    n_test = int(round(test_fraction * len(x)))
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def load_iris_scaled(test_fraction: float = 0.0, seed: int = 0, dtype: torch.dtype = torch.float32) -> TabularSplit:
    """Iris (150 x 4) with every feature min-max scaled to [0, 1], as in Chattopadhyay et al.'s code.

    ``low`` and ``high`` hold the per-feature minimum and maximum in centimetres, so
    ``split.unscale(v)`` maps scaled values back. With ``test_fraction=0`` every row is in the
    training set (the paper trains on all of iris).
    """
    from sklearn.datasets import load_iris

    check_positive_int(seed, "seed", minimum=0)
    data = load_iris()
    x = data.data.astype(np.float64)
    low, high = x.min(axis=0), x.max(axis=0)
    xs = (x - low) / (high - low)
    xtr, ytr, xte, yte = _split(xs, data.target, test_fraction, seed)
    t = lambda a: torch.as_tensor(a, dtype=dtype)  # noqa: E731
    return TabularSplit(t(xtr), torch.as_tensor(ytr), t(xte), torch.as_tensor(yte),
                        list(data.feature_names), list(data.target_names), low, high)


def load_digits_split(test_fraction: float = 0.25, seed: int = 0, classes=None,
                      dtype: torch.dtype = torch.float32) -> TabularSplit:
    """The 8x8 digits (1797 images) as flat vectors in [0, 1] (pixel / 16), split into train and test.

    ``classes`` keeps only the listed digits (for example ``[3, 8]``) and relabels them 0, 1, ...
    in the listed order. Images are rows of 64 values; reshape to (8, 8) to draw them.
    """
    from sklearn.datasets import load_digits

    check_positive_int(seed, "seed", minimum=0)
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
    xtr, ytr, xte, yte = _split(x, y, test_fraction, seed)
    t = lambda a: torch.as_tensor(a, dtype=dtype)  # noqa: E731
    return TabularSplit(t(xtr), torch.as_tensor(ytr), t(xte), torch.as_tensor(yte),
                        [f"pixel_{r}_{c}" for r in range(8) for c in range(8)], names,
                        np.zeros(64), np.full(64, 16.0))
