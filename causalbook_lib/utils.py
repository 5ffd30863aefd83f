"""Small shared utilities: seeding, devices, dtypes and argument validation.

Every public function of :mod:`causalbook_lib` validates its inputs with the helpers here, so
that bad input fails early with a :class:`ValueError` that says what was wrong and what was
expected.
"""
from __future__ import annotations

import os
import random
import time
from contextlib import contextmanager
from typing import Iterable, Sequence

import numpy as np
import torch

__all__ = [
    "seed_everything",
    "default_device",
    "as_float_tensor",
    "check_finite",
    "check_shape",
    "check_psd",
    "check_interval",
    "check_positive_int",
    "check_index",
    "check_probabilities",
    "timer",
]


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and PyTorch, and return a fresh seeded ``torch.Generator``.

    Call it once at the top of every chapter so the same numbers appear on every run.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def default_device() -> torch.device:
    """The device chapters compute on: the CPU (the book needs no GPU)."""
    return torch.device("cpu")


def as_float_tensor(x, name: str, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Convert ``x`` to a floating tensor of ``dtype`` and check that it is finite."""
    try:
        t = torch.as_tensor(x, dtype=dtype)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{name} must be convertible to a numeric tensor, got {type(x).__name__}") from exc
    check_finite(t, name)
    return t


def check_finite(t: torch.Tensor | np.ndarray, name: str) -> None:
    """Raise ``ValueError`` if ``t`` holds NaN or infinity."""
    t = torch.as_tensor(t)
    if t.is_floating_point() or t.is_complex():
        bad = ~torch.isfinite(t)
        if bool(bad.any()):
            raise ValueError(f"{name} must be finite, but it holds {int(bad.sum())} NaN or infinite value(s)")


def check_shape(t: torch.Tensor, name: str, shape: Sequence[int | None]) -> None:
    """Check ``t.shape`` against ``shape``, where ``None`` matches any size."""
    ok = t.dim() == len(shape) and all(s is None or s == d for s, d in zip(shape, t.shape))
    if not ok:
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name} must have shape {want}, got {tuple(t.shape)}")


def check_psd(cov: torch.Tensor, name: str = "cov", size: int | None = None, tol: float = 1e-8) -> None:
    """Check that ``cov`` is a finite, square, symmetric positive semi-definite matrix."""
    cov = torch.as_tensor(cov)
    if cov.dim() != 2 or cov.shape[0] != cov.shape[1]:
        raise ValueError(f"{name} must be a square matrix, got shape {tuple(cov.shape)}")
    if size is not None and cov.shape[0] != size:
        raise ValueError(f"{name} must be {size}x{size} to match the input size, got {tuple(cov.shape)}")
    check_finite(cov, name)
    c = cov.to(torch.float64)
    scale = max(1.0, float(c.abs().max()))
    if not torch.allclose(c, c.T, atol=tol * scale, rtol=0.0):
        raise ValueError(f"{name} must be symmetric (max |C - C^T| = {float((c - c.T).abs().max()):.3g})")
    min_eig = float(torch.linalg.eigvalsh(c).min())
    if min_eig < -1e-6 * scale:
        raise ValueError(f"{name} must be positive semi-definite, but its smallest eigenvalue is {min_eig:.3g}")


def check_interval(low: float, high: float, name: str = "interval") -> None:
    """Check that ``low < high`` and both are finite numbers."""
    for v, n in ((low, "low"), (high, "high")):
        if not isinstance(v, (int, float, np.floating, np.integer)) or not np.isfinite(v):
            raise ValueError(f"{name}: {n} must be a finite number, got {v!r}")
    if not low < high:
        raise ValueError(f"{name}: low must be smaller than high, got low={low} and high={high}")


def check_positive_int(n, name: str, minimum: int = 1) -> int:
    """Check that ``n`` is an integer of at least ``minimum`` and return it as ``int``."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {n!r}")
    return int(n)


def check_index(i, name: str, size: int) -> int:
    """Check that ``i`` is an integer index into a dimension of length ``size``."""
    if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < size:
        raise ValueError(f"{name} must be an integer in [0, {size - 1}], got {i!r}")
    return int(i)


def check_probabilities(p: torch.Tensor, name: str = "probabilities", atol: float = 1e-5) -> None:
    """Check that the rows of ``p`` (shape (batch, M)) are probability vectors."""
    p = torch.as_tensor(p)
    check_finite(p, name)
    if p.dim() != 2:
        raise ValueError(f"{name} must have shape (batch, M), got {tuple(p.shape)}")
    if bool((p < -atol).any()):
        raise ValueError(f"{name} must be non-negative, but the smallest entry is {float(p.min()):.3g}")
    sums = p.sum(dim=1)
    if not torch.allclose(sums, torch.ones_like(sums), atol=atol, rtol=0):
        raise ValueError(f"the rows of {name} must sum to 1, but one sums to {float(sums[(sums - 1).abs().argmax()]):.6g}")


@contextmanager
def timer():
    """Context manager that yields a dict whose ``"seconds"`` key is set on exit."""
    out = {"seconds": float("nan")}
    start = time.perf_counter()
    try:
        yield out
    finally:
        out["seconds"] = time.perf_counter() - start
