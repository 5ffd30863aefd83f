"""The models that chapters train and explain, and how well they classify.

For now this module holds one concept that three modules used to define each in its own way:
:func:`accuracy`, the share of rows that a classifier labels correctly. It is used by
:doc:`chapter 13 </notebooks/13-generative-causal-explanations>` (the black boxes that generative
causal explanations explain) and :doc:`chapter 17 </notebooks/17-robustness-fairness>` (clean and
attacked accuracy).

The vocabulary follows Captum: the model is ``forward_func``, a callable (often an ``nn.Module``)
mapping inputs ``(n, ...)`` to scores ``(n, M)``, logits or probabilities alike.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .utils import check_finite, check_positive_int

__all__ = ["accuracy"]


def _module_dtype_device(forward_func) -> tuple[torch.dtype | None, torch.device | None]:
    """The dtype and device of ``forward_func``'s first floating parameter (None, None if it has none)."""
    if isinstance(forward_func, nn.Module):
        for p in forward_func.parameters():
            if p.is_floating_point():
                return p.dtype, p.device
    return None, None


def accuracy(forward_func: Callable[[torch.Tensor], torch.Tensor], inputs, labels, *,
             chunk_size: int | None = None) -> float:
    """Share of the rows of ``inputs`` whose largest score under ``forward_func`` is at ``labels``.

    The model is evaluated without gradients and in its own dtype and on its own device: when
    ``forward_func`` is an ``nn.Module`` with floating parameters, floating ``inputs`` are cast to
    their dtype and moved to their device (a float32 network accepts float64 data and the other way
    round). Its training mode is left as it is, so a network with dropout should be put in eval mode
    first.

    Args:
        forward_func: maps ``(n, ...)`` inputs to ``(n, M)`` scores (logits or probabilities).
        inputs: a finite tensor of shape ``(n, ...)``.
        labels: integer class labels, shape ``(n,)``.
        chunk_size: at most this many rows per call of ``forward_func`` (default: all at once).

    Returns:
        the accuracy, a float in [0, 1].

    Raises:
        ValueError: ``inputs`` or ``labels`` of the wrong shape or type, non-finite inputs, or scores
            that are not of shape ``(n, M)``.
    """
    if not callable(forward_func):
        raise ValueError(f"forward_func must be callable, got {type(forward_func).__name__}")
    x = torch.as_tensor(inputs)
    y = torch.as_tensor(labels)
    if x.dim() < 1 or x.shape[0] == 0:
        raise ValueError(f"inputs must have shape (n, ...) with n >= 1, got {tuple(x.shape)}")
    if y.dim() != 1 or y.shape[0] != x.shape[0] or y.is_floating_point() or y.dtype == torch.bool:
        raise ValueError(f"labels must be a 1-D integer tensor with {x.shape[0]} entries, got shape "
                         f"{tuple(y.shape)} and dtype {y.dtype}")
    check_finite(x, "inputs")
    dtype, device = _module_dtype_device(forward_func)
    if x.is_floating_point() and dtype is not None:
        x = x.to(device=device, dtype=dtype)
    step = x.shape[0] if chunk_size is None else check_positive_int(chunk_size, "chunk_size")
    correct = 0
    with torch.no_grad():
        for start in range(0, x.shape[0], step):
            rows = x[start:start + step]
            scores = forward_func(rows)
            if not isinstance(scores, torch.Tensor) or scores.dim() != 2 or scores.shape[0] != rows.shape[0]:
                shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
                raise ValueError(f"forward_func must return scores of shape (n, M), got {shape}")
            correct += int((scores.argmax(-1).cpu() == y[start:start + step].cpu()).sum())
    return correct / x.shape[0]
