"""Small shared utilities: seeding, devices, dtypes and argument validation.

Every public function of ``causalbook_lib`` validates its inputs with the helpers here, so
that bad input fails early with a :class:`ValueError` that says what was wrong and what was
expected.

Randomness. A ``generator=`` argument anywhere in the library means one thing, through
:func:`as_generator`: ``None`` draws from torch's global random state (so :func:`seed_everything`
or ``torch.manual_seed`` makes the call reproducible, and two calls give different draws), an int is
a seed (the same int gives the same draws), and a ``torch.Generator`` is used as it is and advanced.
:func:`seeded_init` seeds parameter initialisation from the same argument without touching the
global state.

Devices and dtypes. Functions compute on the device and in the dtype of their floating inputs (a
model's parameters count as inputs); lists and integer tensors become float64. Estimates that sum
many terms (Monte Carlo means, information flows, second-order corrections) are accumulated in
float64 on the inputs' device: :func:`accumulation_dtype` is that dtype. Apple's MPS has no float64,
so there it is float32, the one fallback rule (:func:`has_float64`): the estimates then carry
float32's round-off (relative errors near 1e-6 instead of 1e-15), which the book's tolerances for
float32 models allow. :func:`default_device` is CUDA, else MPS, else the CPU; the chapters run on
the CPU.
"""
from __future__ import annotations

import math
import os
import random
import time
from contextlib import contextmanager
from typing import Iterable, Sequence

import numpy as np
import torch

__all__ = [
    "SEED_ENV",
    "book_seed",
    "seed_everything",
    "glue",
    "default_device",
    "NO_FLOAT64_DEVICE_TYPES",
    "has_float64",
    "accumulation_dtype",
    "parameter_dtype",
    "as_generator",
    "seed_from",
    "seeded_init",
    "as_float_tensor",
    "as_floating",
    "check_finite",
    "check_shape",
    "check_psd",
    "check_interval",
    "check_positive_int",
    "check_number",
    "check_probability",
    "check_index",
    "check_probabilities",
    "timer",
]


#: The environment variable that sets every chapter's seed (default 0).
SEED_ENV = "CAUSALBOOK_SEED"


def book_seed() -> int:
    """The book's seed: ``$CAUSALBOOK_SEED`` when it is set, else 0.

    Every chapter takes its seed from here in its first cell, so a reader (or ``make robustness``)
    reruns a whole chapter with other random draws by setting one variable. Seeds that a chapter
    needs for further generators are derived from this one (``SEED + 1``, ...).

    Raises:
        ValueError: ``$CAUSALBOOK_SEED`` is set to something other than a non-negative integer.
    """
    raw = os.environ.get(SEED_ENV, "").strip()
    if not raw:
        return 0
    try:
        seed = int(raw)
    except ValueError:
        seed = -1
    if seed < 0:
        raise ValueError(f"{SEED_ENV} must be a non-negative integer, got {raw!r}")
    return seed


def seed_everything(seed: int | None = None) -> torch.Generator:
    """Seed Python, NumPy and PyTorch, and return a fresh seeded ``torch.Generator``.

    ``seed=None`` takes :func:`book_seed` (``$CAUSALBOOK_SEED``, default 0). Call it once at the top
    of every chapter so the same numbers appear on every run with the same seed.
    """
    if seed is None:
        seed = book_seed()
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


def glue(name: str, value):
    """Record ``value`` under ``name`` for the chapter's prose (MyST-NB ``{glue:text}`name:fmt```).

    Every run-dependent number in a chapter's text is glued from the cell that computed it, so the
    page never contradicts its own run. Tensors and NumPy scalars become Python numbers. Returns
    ``value``, and does nothing else where MyST-NB is not installed (Colab, plain Jupyter).
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"glue needs a non-empty string name, got {name!r}")
    plain = value
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"glue {name!r}: a tensor must hold one number, got shape {tuple(value.shape)}")
        plain = value.item()
    elif isinstance(value, np.generic):
        plain = value.item()
    try:
        from myst_nb import glue as _glue
    except ImportError:  # pragma: no cover - the book installs myst-nb; Colab need not
        return value
    _glue(name, plain, display=False)
    return value


def default_device() -> torch.device:
    """The fastest device present: CUDA, else Apple's MPS, else the CPU.

    The chapters compute on the CPU (the book needs no GPU); the library computes wherever its
    inputs are, so pass tensors and models on ``default_device()`` to use an accelerator.
    """
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


#: Device types without float64 (Apple's MPS); accumulation_dtype is float32 on them.
NO_FLOAT64_DEVICE_TYPES = frozenset({"mps"})


def _device_of(where) -> torch.device:
    if where is None:
        return torch.empty(0).device  # torch's default device (torch.get_default_device needs torch 2.3)
    if isinstance(where, torch.Tensor):
        return where.device
    if isinstance(where, torch.nn.Module):
        for t in where.parameters():
            return t.device
        for t in where.buffers():
            return t.device
        return torch.empty(0).device
    try:
        return torch.device(where)
    except (TypeError, RuntimeError) as exc:
        raise ValueError(f"expected a tensor, a module, a torch.device or a device name, got {where!r}") from exc


def has_float64(where=None) -> bool:
    """Whether the device of ``where`` (a tensor, a module's parameters, a device or its name; default:
    torch's default device) computes in float64. Every device does except Apple's MPS."""
    return _device_of(where).type not in NO_FLOAT64_DEVICE_TYPES


def accumulation_dtype(where=None) -> torch.dtype:
    """The dtype in which the library accumulates estimates on the device of ``where`` (as in
    :func:`has_float64`): float64, or float32 on a device without float64 (MPS).

    Monte Carlo means, information flows and second-order corrections sum many terms, so they are
    accumulated in this dtype whatever the model's own dtype is. Example::

        total = values.to(cb.utils.accumulation_dtype(values)).sum()
    """
    return torch.float64 if has_float64(where) else torch.float32


def parameter_dtype(model, default: torch.dtype | None = None) -> torch.dtype | None:
    """The floating dtype of ``model``'s first floating parameter (or buffer) when ``model`` is an
    ``nn.Module`` that has one, else ``default``: the dtype a function computes in when the model it
    is given is visible to it (a plain callable such as ``lambda x: net(x)[:, 0]`` is not)."""
    if isinstance(model, torch.nn.Module):
        for t in model.parameters():
            if t.is_floating_point():
                return t.dtype
        for t in model.buffers():
            if t.is_floating_point():
                return t.dtype
    return default


def as_generator(generator=None, device=None) -> torch.Generator:
    """The library's one meaning of ``generator=``: ``None``, an int seed or a ``torch.Generator``.

    - ``None``: a new generator seeded by one draw from torch's global random state, so the result
      follows :func:`seed_everything` / ``torch.manual_seed`` and differs from call to call;
    - an int ``>= 0``: a new generator seeded with it (the same int, the same draws);
    - a ``torch.Generator``: returned as it is (the caller's stream advances).

    ``device`` (default: torch's default device, normally the CPU) is where a new generator lives;
    it must be the device of the tensors drawn with it.

    Every public function of the library that takes ``generator=`` gives it this meaning, and every
    one that builds a model also seeds the model's initial weights from it
    (:func:`seeded_init`), so one int gives one model.

    Raises:
        ValueError: anything else (a negative int, a bool, a float, a NumPy generator, ...).
    """
    if isinstance(generator, torch.Generator):
        return generator
    if generator is None:
        seed = int(torch.randint(0, 2**62, (1,)))
    elif isinstance(generator, (int, np.integer)) and not isinstance(generator, bool) and generator >= 0:
        seed = int(generator)
    else:
        raise ValueError(f"generator must be None, a non-negative int or a torch.Generator, got {generator!r}")
    if device is None:
        device = _device_of(None)
    return torch.Generator(device=device).manual_seed(seed)


def seed_from(generator=None) -> int:
    """One integer seed from ``generator``, in the meaning of :func:`as_generator`: an int is the
    seed itself, a ``torch.Generator`` gives one draw (its stream advances), and ``None`` takes that
    draw from torch's global random state. For code that needs a plain seed (NumPy, a list of
    per-model seeds, :func:`seeded_init`).

    Raises:
        ValueError: as :func:`as_generator`.
    """
    if isinstance(generator, (int, np.integer)) and not isinstance(generator, bool) and generator >= 0:
        return int(generator)
    gen = as_generator(generator)
    return int(torch.randint(0, 2**62, (1,), generator=gen, device=gen.device))


@contextmanager
def seeded_init(generator=None):
    """Seed parameter initialisation (``nn.Module`` constructors, ``torch.randn`` without a generator)
    from ``generator`` inside the block, and restore torch's global random state afterwards, so
    building a model neither depends on nor disturbs the caller's stream.

    ``generator`` has the meaning of :func:`as_generator`: an int is the seed itself (the block runs
    after ``torch.manual_seed(generator)``), a ``torch.Generator`` gives the seed by one draw (its
    stream advances), and ``None`` takes that draw from torch's global random state.

    Example::

        with cb.utils.seeded_init(3):
            net = cb.models.make_mlp([4, 16, 3])
    """
    seed = seed_from(generator)
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def as_float_tensor(x, name: str, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Convert ``x`` to a floating tensor of ``dtype`` and check that it is finite."""
    try:
        t = torch.as_tensor(x, dtype=dtype)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{name} must be convertible to a numeric tensor, got {type(x).__name__}") from exc
    check_finite(t, name)
    return t


def as_floating(x, name: str) -> torch.Tensor:
    """``x`` as a finite floating tensor under the library's dtype rule: a floating tensor keeps its
    dtype and device (so a float32 model's inputs stay float32, on its GPU); lists, NumPy arrays and
    integer tensors become float64."""
    if isinstance(x, torch.Tensor) and x.is_floating_point():
        check_finite(x, name)
        return x
    if isinstance(x, torch.Tensor):
        return as_float_tensor(x, name, dtype=accumulation_dtype(x)).to(x.device)
    return as_float_tensor(x, name)


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


def check_psd(cov: torch.Tensor, name: str = "cov", size: int | None = None, tol: float = 1e-8, *,
              batched: bool = False) -> None:
    """Check that ``cov`` is a finite, square, symmetric positive semi-definite matrix (with
    ``batched=True``: a stack ``(..., n, n)`` of them, each judged on its own scale).

    Symmetric means ``|C - C^T| <= tol * max(1, max|C|)`` entrywise, and positive semi-definite
    that the smallest eigenvalue is at least ``-1e-6 * max(1, max|C|)`` (round-off in a covariance
    estimated in float32 stays above that).
    """
    cov = torch.as_tensor(cov)
    if cov.dim() < 2 or (cov.dim() != 2 and not batched) or cov.shape[-1] != cov.shape[-2]:
        what = "a stack of square matrices (..., n, n)" if batched else "a square matrix"
        raise ValueError(f"{name} must be {what}, got shape {tuple(cov.shape)}")
    if size is not None and cov.shape[-1] != size:
        raise ValueError(f"{name} must be {size}x{size} to match the input size, got {tuple(cov.shape)}")
    check_finite(cov, name)
    # judged on the CPU (a small matrix; MPS has no eigvalsh), in float64 where the device has it
    c = cov.detach().to(device="cpu", dtype=accumulation_dtype(cov))
    scale = c.abs().amax(dim=(-2, -1)).clamp(min=1.0)
    asym = (c - c.transpose(-2, -1)).abs().amax(dim=(-2, -1))
    if bool((asym > tol * scale).any()):
        raise ValueError(f"{name} must be symmetric (max |C - C^T| = {float(asym.max()):.3g})")
    min_eig = torch.linalg.eigvalsh(c).amin(dim=-1)
    if bool((min_eig < -1e-6 * scale).any()):
        raise ValueError(f"{name} must be positive semi-definite, but its smallest eigenvalue is {float(min_eig.min()):.3g}")


def check_interval(low: float, high: float, name: str = "interval") -> None:
    """Check that ``low < high`` and both are finite numbers."""
    for v, n in ((low, "low"), (high, "high")):
        if not isinstance(v, (int, float, np.floating, np.integer)) or not np.isfinite(v):
            raise ValueError(f"{name}: {n} must be a finite number, got {v!r}")
    if not low < high:
        raise ValueError(f"{name}: low must be smaller than high, got low={low} and high={high}")


def check_number(v, name: str, *, positive: bool = False, nonnegative: bool = False) -> float:
    """Check that ``v`` is a finite real number (not a bool, not a string; ``> 0`` when ``positive``,
    ``>= 0`` when ``nonnegative``) and return it as ``float``."""
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {v!r}")
    if positive and not v > 0:
        raise ValueError(f"{name} must be positive, got {v!r}")
    if nonnegative and not v >= 0:
        raise ValueError(f"{name} must be >= 0, got {v!r}")
    return float(v)


def check_probability(p, name: str) -> float:
    """Check that ``p`` is a number in [0, 1] and return it as ``float``."""
    p = check_number(p, name)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {p!r}")
    return p


def check_binary(t, name: str) -> torch.Tensor:
    """Check that every entry of ``t`` is 0 or 1 (NaN is neither); return it as a tensor, dtype kept.

    Raises:
        ValueError: an entry other than 0 or 1, naming ``name``.
    """
    t = torch.as_tensor(t)
    if not bool(((t == 0) | (t == 1)).all()):
        bad = t[~((t == 0) | (t == 1))].flatten()[0]
        raise ValueError(f"{name} must hold only 0 and 1, got the value {bad.item()!r}")
    return t


def check_positive_int(n, name: str, minimum: int = 1) -> int:
    """Check that ``n`` is an integer of at least ``minimum`` and return it as ``int``."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {n!r}")
    return int(n)


def check_features_labels(x, y, d: int | None = None, *, n_classes: int | None = None,
                          y_name: str = "y") -> tuple[torch.Tensor, torch.Tensor]:
    """Check a finite ``(n, d)`` feature tensor and ``n`` integer class labels; return them, the labels as int64.

    Labels are class indices: non-negative, and below ``n_classes`` when it is given.
    """
    x = torch.as_tensor(x)
    y = torch.as_tensor(y)
    if x.dim() != 2 or (d is not None and x.shape[1] != d):
        raise ValueError(f"x must have shape (n, {d if d is not None else 'd'}), got {tuple(x.shape)}")
    check_finite(x, "x")
    if y.dim() != 1 or len(y) != len(x) or y.is_floating_point():
        raise ValueError(f"{y_name} must be a 1-D integer tensor with {len(x)} labels, got shape {tuple(y.shape)} "
                         f"and dtype {y.dtype}")
    if len(y) and (int(y.min()) < 0 or (n_classes is not None and int(y.max()) >= n_classes)):
        top = "M-1" if n_classes is None else n_classes - 1
        raise ValueError(f"{y_name} must hold integer labels in [0, {top}], got values in "
                         f"[{int(y.min())}, {int(y.max())}]")
    return x, y.long()


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
