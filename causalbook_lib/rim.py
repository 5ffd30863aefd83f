"""Recurrent Independent Mechanisms: K small GRU cells that compete for the input (Part V).

Goyal et al. (2019) split a recurrent network into ``K`` small recurrent cells, the *mechanisms*,
each with its own parameters. At every time step:

1. **Input attention.** Each mechanism ``m`` forms a query from its state ``h_m`` and attends over
   two candidates, the input ``x^t`` and a *null* input (a vector of zeros, whose key and value are
   zero). Its attention weight on the input is ``a_m = sigmoid(q_m . k(x^t) / sqrt(d_key))``.
2. **Top-k selection.** The ``k`` mechanisms with the largest ``a_m`` are *active*; the others keep
   their state exactly.
3. **Independent dynamics.** Each active mechanism runs its own GRU cell on its attended input
   ``a_m v(x^t)``.
4. **Sparse communication.** The active mechanisms (and only they) read the states of all mechanisms
   through a second attention step and add what they read to their state (a residual update).

All ``K`` cells are computed in one batched step (``einsum`` over stacked weights, no Python loop over
mechanisms); the selection is a mask. The book runs a small RIM against a GRU of the same size in
:doc:`chapter 15 </notebooks/15-ood-generalisation>`.

A :class:`RIM` follows the recurrent-model convention of :mod:`causalbook_lib.recurrent`:
``model(x, state) -> (y, state)`` with ``x`` of shape ``(batch, time, input_size)``, so
:func:`causalbook_lib.recurrent.fit_next_step` trains it.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .utils import check_positive_int, seeded_init

__all__ = ["RIMCell", "RIM", "next_step_mse"]


def _uniform(shape, bound: float) -> nn.Parameter:
    return nn.Parameter(torch.empty(shape).uniform_(-bound, bound))


class RIMCell(nn.Module):
    """One time step of ``K`` recurrent independent mechanisms (Goyal et al., 2019, Sec. 2).

    Args:
        input_size: width of the input ``x^t`` (>= 1).
        hidden_size: state width of each mechanism (>= 1).
        n_mechanisms: ``K`` (>= 1).
        k_active: ``k``, the number of mechanisms updated at each step (1 <= k <= K).
        key_size: width of the attention keys and queries (>= 1).
        value_size: width of the attended input that each mechanism's GRU cell reads (>= 1).
        communication: whether the active mechanisms read the others' states after their update.
        generator: seeds the initialisation (``None``, an int or a ``torch.Generator``, see
            :func:`causalbook_lib.utils.seeded_init`).

    Call: ``cell(x, h) -> (h_new, active)`` with ``x`` of shape ``(batch, input_size)``, ``h`` of shape
    ``(batch, K, hidden_size)``, and ``active`` a boolean tensor of shape ``(batch, K)`` with exactly
    ``k`` true entries per row. Rows of ``h_new`` whose mechanism is inactive equal those of ``h``.

    Raises:
        ValueError: a size is not a positive integer, or ``k_active > n_mechanisms``.
    """

    def __init__(self, input_size: int, hidden_size: int, n_mechanisms: int = 4, k_active: int = 2, *,
                 key_size: int = 8, value_size: int = 8, communication: bool = True, generator=None):
        super().__init__()
        self.input_size = check_positive_int(input_size, "input_size")
        self.hidden_size = H = check_positive_int(hidden_size, "hidden_size")
        self.n_mechanisms = K = check_positive_int(n_mechanisms, "n_mechanisms")
        self.k_active = check_positive_int(k_active, "k_active")
        if self.k_active > K:
            raise ValueError(f"k_active must be at most n_mechanisms = {K}, got {k_active}")
        self.key_size = dk = check_positive_int(key_size, "key_size")
        self.value_size = dv = check_positive_int(value_size, "value_size")
        if not isinstance(communication, bool):
            raise ValueError(f"communication must be True or False, got {communication!r}")
        self.communication = communication
        with seeded_init(generator):
            # input attention: shared key and value of the input, one query matrix per mechanism
            self.input_key = _uniform((self.input_size, dk), 1 / math.sqrt(self.input_size))
            self.input_value = _uniform((self.input_size, dv), 1 / math.sqrt(self.input_size))
            self.query = _uniform((K, H, dk), 1 / math.sqrt(H))
            # one GRU cell per mechanism, stacked; rows in torch.nn.GRUCell's order (r, z, n)
            b = 1 / math.sqrt(H)
            self.weight_ih = _uniform((K, 3 * H, dv), b)
            self.weight_hh = _uniform((K, 3 * H, H), b)
            self.bias_ih = _uniform((K, 3 * H), b)
            self.bias_hh = _uniform((K, 3 * H), b)
            # communication: per-mechanism query, key and value. Drawn either way, so that a RIM
            # without communication starts from the same weights as one with it; kept only when used.
            comm = (_uniform((K, H, dk), b), _uniform((K, H, dk), b), _uniform((K, H, H), b))
        if communication:
            self.comm_query, self.comm_key, self.comm_value = comm

    def input_attention(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Each mechanism's attention weight on the input (against the null input), shape ``(batch, K)``."""
        q = torch.einsum("bkh,khd->bkd", h, self.query)
        key = x @ self.input_key
        return torch.sigmoid(torch.einsum("bkd,bd->bk", q, key) / math.sqrt(self.key_size))

    def project_inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The state-free part of a step, for inputs ``x`` of shape ``(..., input_size)``.

        Returns the input's key ``(..., key_size)`` and, for each mechanism, its GRU cell's input
        pre-activations on the *unweighted* value ``v(x)`` (shape ``(K, ..., 3 hidden_size)``, without
        bias). A mechanism's attended input is ``a_m v(x)``, so its pre-activations are ``a_m`` times these.
        """
        value = x @ self.input_value
        gi = torch.einsum("...v,kgv->k...g", value, self.weight_ih)
        return x @ self.input_key, gi

    def stacked_weights(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The state-side weights stacked for :meth:`step`: ``(K, H, 3H + key_size)`` and ``(K, H, 2 key_size + H)``
        (None without communication)."""
        return (torch.cat([self.weight_hh.transpose(1, 2), self.query], dim=2),
                torch.cat([self.comm_query, self.comm_key, self.comm_value], dim=2) if self.communication else None)

    def step(self, key: torch.Tensor, gi: torch.Tensor, h: torch.Tensor, weights=None) -> tuple[torch.Tensor, torch.Tensor]:
        """One step from projected inputs (see :meth:`project_inputs`), with ``h`` laid out ``(K, batch, H)``.

        ``weights`` is :meth:`stacked_weights` (computed here if ``None``). Returns ``(h_new, active)``
        in the same layout, ``active`` of shape ``(K, batch)``.
        """
        H, dk = self.hidden_size, self.key_size
        w_h, w_c = self.stacked_weights() if weights is None else weights
        hh = torch.bmm(h, w_h)  # (K, B, 3H + dk)
        gh, q = hh[..., :3 * H] + self.bias_hh.unsqueeze(1), hh[..., 3 * H:]
        att = torch.sigmoid((q * key).sum(-1) / math.sqrt(dk))  # (K, B): weight on the input, not the null
        top = att.topk(self.k_active, dim=0).indices
        active = torch.zeros_like(att, dtype=torch.bool).scatter_(0, top, True)
        gi = att.unsqueeze(-1) * gi + self.bias_ih.unsqueeze(1)
        i_r, i_z, i_n = gi.chunk(3, dim=-1)
        h_r, h_z, h_n = gh.chunk(3, dim=-1)
        r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        h_tilde = torch.where(active.unsqueeze(-1), n + z * (h - n), h)
        if self.communication:
            c = torch.bmm(h_tilde, w_c).transpose(0, 1)  # (B, K, 2 dk + H)
            weights = torch.softmax(c[..., :dk] @ c[..., dk:2 * dk].transpose(1, 2) / math.sqrt(dk), dim=-1)
            h_tilde = torch.where(active.unsqueeze(-1), h_tilde + (weights @ c[..., 2 * dk:]).transpose(0, 1), h)
        return h_tilde, active

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() != 2 or x.shape[1] != self.input_size:
            raise ValueError(f"x must have shape (batch, {self.input_size}), got {tuple(x.shape)}")
        if h.shape != (x.shape[0], self.n_mechanisms, self.hidden_size):
            raise ValueError(f"h must have shape ({x.shape[0]}, {self.n_mechanisms}, {self.hidden_size}), "
                             f"got {tuple(h.shape)}")
        key, gi = self.project_inputs(x)
        h_new, active = self.step(key, gi, h.transpose(0, 1))
        return h_new.transpose(0, 1), active.T


class RIM(nn.Module):
    """A sequence model: a :class:`RIMCell` unrolled in time and a linear read-out of all states.

    ``y^t = W [h_1^t, ..., h_K^t] + b``. Arguments as in :class:`RIMCell`, plus ``output_size``.

    Call: ``model(x, state=None, return_active=False)`` with ``x`` of shape ``(batch, time, input_size)``
    returns ``(y, state)``, or ``(y, state, active)`` with ``active`` of shape ``(batch, time, K)``.
    ``state`` has shape ``(batch, K, hidden_size)``; ``None`` starts from zeros.
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int, n_mechanisms: int = 4,
                 k_active: int = 2, *, key_size: int = 8, value_size: int = 8, communication: bool = True,
                 generator=None):
        super().__init__()
        self.output_size = check_positive_int(output_size, "output_size")
        with seeded_init(generator):
            seed = int(torch.randint(0, 2**62, (1,)))
            self.cell = RIMCell(input_size, hidden_size, n_mechanisms, k_active, key_size=key_size,
                                value_size=value_size, communication=communication, generator=seed)
            self.readout = nn.Linear(n_mechanisms * hidden_size, self.output_size)

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None, return_active: bool = False):
        if x.dim() != 3 or x.shape[2] != self.cell.input_size:
            raise ValueError(f"x must have shape (batch, time, {self.cell.input_size}), got {tuple(x.shape)}")
        B, cell = x.shape[0], self.cell
        if state is not None and state.shape != (B, cell.n_mechanisms, cell.hidden_size):
            raise ValueError(f"state must have shape ({B}, {cell.n_mechanisms}, {cell.hidden_size}), "
                             f"got {tuple(state.shape)}")
        h = x.new_zeros(cell.n_mechanisms, B, cell.hidden_size) if state is None else state.transpose(0, 1)
        keys, gis = cell.project_inputs(x)  # (B, T, dk), (K, B, T, 3H): computed once for all steps
        weights, states, actives = cell.stacked_weights(), [], []
        for t in range(x.shape[1]):
            h, a = cell.step(keys[:, t], gis[:, :, t], h, weights)
            states.append(h)
            actives.append(a)
        y = self.readout(torch.stack(states, 2).permute(1, 2, 0, 3).flatten(2))
        h = h.transpose(0, 1)
        return (y, h, torch.stack(actives, 1).permute(2, 1, 0)) if return_active else (y, h)


def next_step_mse(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Per-channel mean squared error of a recurrent model's one-step-ahead predictions.

    The model reads ``x^0..x^t`` and predicts ``x^{t+1}`` (as trained by
    :func:`causalbook_lib.recurrent.fit_next_step`); the error is averaged over sequences and steps.

    Args:
        model: a recurrent model ``model(x) -> (y, state)`` whose output width is that of ``x``.
        x: sequences, shape ``(n, T, channels)`` with ``T >= 2``.

    Returns:
        A tensor of shape ``(channels,)`` in the dtype of ``x``.

    Raises:
        ValueError: ``x`` is not ``(n, T, channels)`` with ``T >= 2``, or the output has the wrong shape.
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[1] < 2:
        raise ValueError(f"x must be a tensor of shape (n, T, channels) with T >= 2, got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    with torch.no_grad():
        y = model(x[:, :-1])[0]
    if y.shape != x[:, 1:].shape:
        raise ValueError(f"the model's output must have shape {tuple(x[:, 1:].shape)}, got {tuple(y.shape)}")
    return ((y - x[:, 1:]) ** 2).mean(dim=(0, 1)).to(x.dtype)
