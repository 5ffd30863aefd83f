"""Sequence data: the synthetic sign task of Chattopadhyay et al. (Part III, :doc:`chapter 08 </notebooks/08-synthetic-gru>`).

The generator follows App. A.6.1 of Chattopadhyay et al. (2019), itself modelled on an experiment
of the original LSTM paper:

* a sequence has a length drawn uniformly from the integers ``T, ..., T + extra`` (T = 10, extra = 5);
* with probability 1/2 the first ``n_relevant`` = 3 values are drawn from N(+1, std^2) and the
  label is 1, otherwise from N(-1, std^2) and the label is 0;
* every later value is drawn from N(0, std^2).

The paper writes N(mu, 0.2). We read 0.2 as a **standard deviation** (``std=0.2``, variance 0.04):
that is what ``numpy.random.normal(loc, scale)`` means by its second argument, and what the authors'
public code draws. Sequences are returned zero-padded to the longest possible length; the label is
read at the last real step, so the padding is never seen by a causal recurrent model.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..utils import as_generator, check_number, check_positive_int

__all__ = ["SignSequences", "make_sign_sequences", "impute_step", "make_two_oscillators"]


@dataclass
class SignSequences:
    """A batch of sign-task sequences.

    Attributes:
        x: inputs, shape ``(n, T + extra, 1)``, zero after each sequence's end.
        lengths: integer lengths, shape ``(n,)``, each in ``[T, T + extra]``.
        y: labels in {0., 1.}, shape ``(n,)`` (1 when the first values were drawn around +1).
    """

    x: torch.Tensor
    lengths: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def with_length(self, length: int) -> "SignSequences":
        """The sequences whose length is at least ``length``, truncated to exactly ``length`` steps."""
        length = check_positive_int(length, "length")
        if length > self.x.shape[1]:
            raise ValueError(f"length must be at most {self.x.shape[1]}, got {length}")
        keep = self.lengths >= length
        return SignSequences(self.x[keep, :length].clone(), torch.full((int(keep.sum()),), length),
                             self.y[keep].clone())


def make_sign_sequences(n: int, *, T: int = 10, extra: int = 5, n_relevant: int = 3, mean: float = 1.0,
                        std: float = 0.2, generator=None,
                        dtype: torch.dtype = torch.float32) -> SignSequences:
    """Draw ``n`` sequences of the sign task (App. A.6.1 of Chattopadhyay et al., 2019).

    Args:
        n: number of sequences (>= 1).
        T: shortest length (>= n_relevant + 1); lengths are uniform on ``T, ..., T + extra``.
        extra: how much longer than ``T`` a sequence may be (>= 0).
        n_relevant: how many leading values carry the label (>= 1).
        mean: the leading values are drawn around ``+mean`` (label 1) or ``-mean`` (label 0).
        std: standard deviation of every value (the paper's 0.2, read as a standard deviation).
        generator: ``None``, an int seed or a ``torch.Generator`` (:func:`causalbook_lib.utils.as_generator`).
        dtype: floating dtype of ``x``.

    Returns:
        :class:`SignSequences` with ``x`` of shape ``(n, T + extra, 1)``.

    Raises:
        ValueError: a count is not a positive integer, ``T <= n_relevant`` or ``std <= 0``.
    """
    n = check_positive_int(n, "n")
    n_relevant = check_positive_int(n_relevant, "n_relevant")
    T = check_positive_int(T, "T", minimum=n_relevant + 1)
    extra = check_positive_int(extra, "extra", minimum=0)
    if not (isinstance(std, (int, float)) and std > 0):
        raise ValueError(f"std must be a positive number (a standard deviation), got {std!r}")
    g = as_generator(generator)
    t_max = T + extra
    lengths = torch.randint(T, t_max + 1, (n,), generator=g, device=g.device)
    y = (torch.rand(n, generator=g, device=g.device) < 0.5).to(dtype)
    x = std * torch.randn(n, t_max, generator=g, dtype=torch.float64, device=g.device)
    x[:, :n_relevant] += (2.0 * y.double() - 1.0)[:, None] * mean
    x[torch.arange(t_max)[None, :] >= lengths[:, None]] = 0.0
    return SignSequences(x.to(dtype).unsqueeze(-1), lengths, y)


def impute_step(x: torch.Tensor, lengths: torch.Tensor, step: int, *, mean: float = 0.0, std: float = 0.2,
                generator=None) -> torch.Tensor:
    """Return a copy of ``x`` whose value at time ``step`` is replaced by fresh N(mean, std^2) draws.

    This is the imputation experiment of Sec. 5.2 (Fig. 3c): if the model ignores ``x^step``,
    no prediction changes.

    Args:
        x: sequences, shape ``(n, T_max, 1)``.
        lengths: lengths, shape ``(n,)``; ``step`` must be smaller than every length.
        step: the time index to impute.
        mean, std: the imputation distribution (std > 0).
        generator: ``None``, an int seed or a ``torch.Generator`` (:func:`causalbook_lib.utils.as_generator`).

    Raises:
        ValueError: wrong shapes, ``step`` outside every sequence, or ``std <= 0``.
    """
    if x.dim() != 3 or x.shape[-1] != 1:
        raise ValueError(f"x must have shape (n, T_max, 1), got {tuple(x.shape)}")
    if lengths.shape != (x.shape[0],):
        raise ValueError(f"lengths must have shape ({x.shape[0]},), got {tuple(lengths.shape)}")
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step < int(lengths.min()):
        raise ValueError(f"step must be an integer in [0, {int(lengths.min()) - 1}] (inside every sequence), "
                         f"got {step!r}")
    if not (isinstance(std, (int, float)) and std > 0):
        raise ValueError(f"std must be a positive number, got {std!r}")
    g = as_generator(generator)
    out = x.clone()
    out[:, step, 0] = (mean + std * torch.randn(x.shape[0], generator=g, dtype=torch.float64, device=g.device)).to(x.dtype)
    return out


def make_two_oscillators(n: int, T: int = 40, *, periods: tuple[float, float] = (8.0, 20.0), shift: float | None = None,
                         damping: float = 0.95, noise: float = 0.3, generator=None,
                         dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Draw ``n`` sequences of two independent noisy oscillators, observed side by side (chapter 15).

    Process ``j`` (j = 0, 1) is a damped rotation driven by its own noise,
    ``z_j^{t+1} = damping * R(2 pi / P_j) z_j^t + noise * eps_j^t`` with ``R`` the 2x2 rotation matrix,
    ``P_j`` the period and ``eps_j^t ~ N(0, I_2)`` independent across processes and steps. It starts in its
    stationary law ``N(0, noise^2 / (1 - damping^2) I_2)``, which does not depend on the period. The
    observation is ``x^t = (z_0^t, z_1^t)``: channels 0-1 are process 0, channels 2-3 process 1. The best
    one-step-ahead prediction is ``damping * R z_j^t``, with mean squared error ``noise^2`` per channel.

    Args:
        n: number of sequences (>= 1).
        T: length of each sequence (>= 2).
        periods: the two periods, in steps (each > 0).
        shift: if given, the period of process 1 instead of ``periods[1]`` (a change in one mechanism
            only; process 0 and every marginal distribution stay the same).
        damping: the rotation's radius, in (0, 1).
        noise: standard deviation of the driving noise (> 0).
        generator: ``None``, an int seed or a ``torch.Generator`` (see :func:`causalbook_lib.utils.as_generator`).
        dtype: floating dtype of the result.

    Returns:
        A tensor of shape ``(n, T, 4)``.

    Raises:
        ValueError: a count is not a positive integer, or a period, ``damping`` or ``noise`` is out of range.
    """
    n = check_positive_int(n, "n")
    T = check_positive_int(T, "T", minimum=2)
    if not (isinstance(periods, (tuple, list)) and len(periods) == 2):
        raise ValueError(f"periods must be a pair of positive numbers, got {periods!r}")
    periods = [periods[0], periods[1] if shift is None else shift]
    periods = [check_number(p, name, positive=True)
               for name, p in (("periods[0]", periods[0]), ("periods[1] (or shift)", periods[1]))]
    if not 0 < check_number(damping, "damping") < 1:
        raise ValueError(f"damping must be a number in (0, 1), got {damping!r}")
    noise = check_number(noise, "noise (a standard deviation)", positive=True)
    g = as_generator(generator)
    omega = torch.tensor([2 * math.pi / periods[0], 2 * math.pi / periods[1]], dtype=torch.float64)
    c, s = torch.cos(omega), torch.sin(omega)
    rot = damping * torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)  # (2, 2, 2)
    z = torch.randn(n, 2, 2, generator=g, dtype=torch.float64, device=g.device) * (noise / math.sqrt(1 - damping ** 2))
    eps = noise * torch.randn(T - 1, n, 2, 2, generator=g, dtype=torch.float64, device=g.device)
    out = [z]
    for t in range(T - 1):
        z = torch.einsum("pij,npj->npi", rot, z) + eps[t]
        out.append(z)
    return torch.stack(out, 1).reshape(n, T, 4).to(dtype)
