"""Recurrent networks as SCMs: Algorithm 2 with outputs fed back, and the lag tau heuristic (Part III).

Chattopadhyay et al. (2019, Sec. 3, Sec. 4.5, App. A.4.2, Prop. 3) unfold a recurrent network in
time. After the hidden states are marginalised out, the output ``y^t`` is a function
``f'(x^0, ..., x^t)`` of the inputs up to time ``t`` (the *reduced SCM*). When the network's outputs
are fed back as its next inputs, an intervention ``do(x_i^{t_hat} = alpha)`` changes the distribution
of every later input, so the interventional means and covariances needed by Eq. 4 cannot be taken
from the data: Algorithm 2 estimates them from rollouts of the model under the intervention.

The book explains this module in :doc:`chapter 07 </notebooks/07-recurrent-networks>` and uses it in chapters
:doc:`08 </notebooks/08-synthetic-gru>` and :doc:`09 </notebooks/09-flight-series>`.

Conventions:

* a *recurrent model* is a ``torch.nn.Module`` called as ``model(x, state) -> (y, state)`` with
  ``x`` of shape ``(batch, time, k_in)``, ``y`` of shape ``(batch, time, k_out)`` and ``state`` the
  hidden state to continue from (``None`` starts afresh), like ``torch.nn.GRU`` / ``LSTM``;
  :class:`RecurrentRegressor` and :class:`DelayLineRNN` follow it;
* data sets of sequences have shape ``(n, T, k)``; time indices start at 0;
* numerical estimates run on a float64 copy of the model (float32 on Apple's MPS, which has no
  float64: :func:`causalbook_lib.utils.accumulation_dtype`).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .attribution import uniform_doer_average
from .interventions import taylor_expectation
from .utils import accumulation_dtype, as_generator, parameter_dtype, check_finite, check_positive_int

__all__ = [
    "RecurrentRegressor",
    "DelayLineRNN",
    "fit_last_step_classifier",
    "fit_next_step",
    "float64_copy",
    "last_step_output",
    "rollout_with_feedback",
    "RecurrentInterventionalExpectation",
    "interventional_expectation_rnn",
    "AttributionMap",
    "causal_attribution_map",
    "lag_jacobian_determinants",
    "lag_tau",
]


# --------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------
class RecurrentRegressor(nn.Module):
    """A one-layer GRU, LSTM or Elman RNN with a linear read-out at every step.

    ``h^t = cell(x^t, h^{t-1})`` and ``y^t = act(W h^t + b)``, where ``act`` is the identity or a
    sigmoid. ``RecurrentRegressor(1, 1, 1, cell="gru", output_activation="sigmoid")`` is the 1-1-1
    GRU of Sec. 5.2 (the authors' ``nn.GRU(1, 1)`` + ``Linear(1, 1)`` + sigmoid).

    Args:
        input_size, hidden_size, output_size: layer widths (>= 1).
        cell: ``"gru"``, ``"lstm"`` or ``"rnn"``.
        output_activation: ``None`` (identity) or ``"sigmoid"``.

    Call: ``model(x, state=None) -> (y, state)`` with ``x`` of shape ``(batch, time, input_size)``.
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int, *, cell: str = "gru",
                 output_activation: str | None = None):
        super().__init__()
        cells = {"gru": nn.GRU, "lstm": nn.LSTM, "rnn": nn.RNN}
        if cell not in cells:
            raise ValueError(f"cell must be one of {sorted(cells)}, got {cell!r}")
        if output_activation not in (None, "sigmoid"):
            raise ValueError(f"output_activation must be None or 'sigmoid', got {output_activation!r}")
        self.input_size = check_positive_int(input_size, "input_size")
        self.output_size = check_positive_int(output_size, "output_size")
        self.rnn = cells[cell](self.input_size, check_positive_int(hidden_size, "hidden_size"), batch_first=True)
        self.readout = nn.Linear(hidden_size, self.output_size)
        self.output_activation = output_activation

    def forward(self, x: torch.Tensor, state=None):
        h, state = self.rnn(x, state)
        y = self.readout(h)
        return (torch.sigmoid(y) if self.output_activation == "sigmoid" else y), state


class DelayLineRNN(nn.Module):
    """A recurrent model whose lag is known by construction: ``y^t = act(sum_{k=0}^{L} w_k x^{t-k})``.

    The hidden state is a delay line holding the last ``L`` inputs, so ``y^t`` depends on
    ``x^{t-k}`` exactly for ``k <= L`` (when ``w_k != 0``) and not at all for ``k > L``: the lag of
    Prop. 3 is ``L``. The map acts channel by channel, so ``dy^t / dx^{t-k} = act'(.) w_k I`` is
    square and ``|det| = |act'(.) w_k|^{channels}``.

    Args:
        weights: the taps ``w_0, ..., w_L`` (1-D, finite, at least one entry).
        activation: an elementwise callable (default ``torch.tanh``).

    Call: ``model(x, state=None) -> (y, state)``; ``state`` holds the last ``L`` inputs.
    """

    def __init__(self, weights: Sequence[float] | torch.Tensor, activation: Callable = torch.tanh):
        super().__init__()
        w = torch.as_tensor(weights, dtype=torch.float64)
        if w.dim() != 1 or w.numel() == 0:
            raise ValueError(f"weights must be a non-empty 1-D sequence, got shape {tuple(w.shape)}")
        check_finite(w, "weights")
        self.register_buffer("weights", w)
        self.activation = activation

    @property
    def lag(self) -> int:
        """The number of past steps ``L`` the output depends on."""
        return self.weights.numel() - 1

    def forward(self, x: torch.Tensor, state=None):
        if x.dim() != 3:
            raise ValueError(f"x must have shape (batch, time, channels), got {tuple(x.shape)}")
        lag = self.lag
        if state is None:
            state = x.new_zeros(x.shape[0], lag, x.shape[2])
        buf = torch.cat([state, x], dim=1)                       # (B, L + T, k)
        T = x.shape[1]
        windows = torch.stack([buf[:, j:j + T] for j in range(lag + 1)], dim=-1)  # (B, T, k, L + 1); last = newest
        y = self.activation((windows * self.weights.flip(0).to(x.dtype)).sum(-1))
        return y, buf[:, buf.shape[1] - lag:]


# --------------------------------------------------------------------------------------------------
# Training and prediction helpers
# --------------------------------------------------------------------------------------------------
def _check_sequences(x, name: str = "data") -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (n, T, k), got {type(x).__name__}")
    if x.dim() != 3 or min(x.shape) < 1:
        raise ValueError(f"{name} must have shape (n, T, k) with n, T, k >= 1, got {tuple(x.shape)}")
    check_finite(x, name)
    return x


def _check_lengths(lengths, n: int, t_max: int) -> torch.Tensor:
    if not isinstance(lengths, torch.Tensor) or lengths.shape != (n,):
        raise ValueError(f"lengths must be a tensor of shape ({n},), got "
                         f"{tuple(lengths.shape) if isinstance(lengths, torch.Tensor) else type(lengths).__name__}")
    if bool((lengths < 1).any()) or bool((lengths > t_max).any()):
        raise ValueError(f"lengths must lie in [1, {t_max}], got values in [{int(lengths.min())}, {int(lengths.max())}]")
    return lengths.long()


def last_step_output(model: nn.Module, x: torch.Tensor, lengths: torch.Tensor, *, target: int = 0,
                     chunk_size: int = 1 << 20) -> torch.Tensor:
    """The output channel ``target``, ``y^{L-1}[target]``, of each sequence at its last real step ``L - 1``.

    A causal recurrent model never sees the padding after ``L - 1``. Runs without gradients in
    chunks of ``chunk_size`` sequences (so a million sequences fit in memory).

    Args:
        model: a recurrent model (see the module docstring).
        x: padded sequences, shape ``(n, T_max, k)``; lengths: shape ``(n,)``, in ``[1, T_max]``.

    Returns: shape ``(n,)``.
    """
    x = _check_sequences(x, "x")
    lengths = _check_lengths(lengths, x.shape[0], x.shape[1])
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    outs = []
    with torch.no_grad():
        for start in range(0, x.shape[0], chunk_size):
            xb, lb = x[start:start + chunk_size], lengths[start:start + chunk_size]
            y, _ = model(xb[:, : int(lb.max())])
            outs.append(y[torch.arange(len(lb), device=y.device), lb - 1, target])
    return torch.cat(outs)


def _minibatches(n: int, batch_size: int, generator: torch.Generator):
    order = torch.randperm(n, generator=generator, device=generator.device)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def _adam_epochs(model: nn.Module, n: int, batch_loss, epochs: int, batch_size: int, lr: float,
                 generator) -> list[float]:
    """Adam over shuffled mini-batches of ``n`` rows; ``batch_loss(idx)`` gives a batch's mean loss.

    Returns the mean training loss of every epoch.
    """
    epochs, batch_size = check_positive_int(epochs, "epochs"), check_positive_int(batch_size, "batch_size")
    g = as_generator(generator)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for _ in range(epochs):
        total = 0.0
        for idx in _minibatches(n, batch_size, g):
            loss = batch_loss(idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        history.append(total / n)
    return history


def fit_last_step_classifier(model: nn.Module, x: torch.Tensor, lengths: torch.Tensor, y: torch.Tensor, *,
                             epochs: int = 20, batch_size: int = 64, lr: float = 1e-2,
                             generator=None) -> list[float]:
    """Train a sigmoid-output recurrent model on labels read at each sequence's last step (BCE, Adam).

    ``generator`` (``None``, an int seed or a ``torch.Generator``, :func:`causalbook_lib.utils.as_generator`)
    draws the mini-batch order; the model is the caller's, built and initialised before the call.

    Returns the mean training loss of every epoch. Raises ``ValueError`` on inconsistent shapes.
    """
    x = _check_sequences(x, "x")
    lengths = _check_lengths(lengths, x.shape[0], x.shape[1])
    if y.shape != (x.shape[0],):
        raise ValueError(f"y must have shape ({x.shape[0]},), got {tuple(y.shape)}")

    def batch_loss(idx):
        out, _ = model(x[idx])
        p = out[torch.arange(len(idx), device=out.device), lengths[idx] - 1, 0].clamp(1e-7, 1 - 1e-7)
        return nn.functional.binary_cross_entropy(p, y[idx].to(p.dtype))

    return _adam_epochs(model, x.shape[0], batch_loss, epochs, batch_size, lr, generator)


def fit_next_step(model: nn.Module, x: torch.Tensor, *, epochs: int = 30, batch_size: int = 32, lr: float = 1e-2,
                  generator=None) -> list[float]:
    """Train a recurrent model to predict ``x^{t+1}`` from ``x^0..x^t`` (teacher forcing, MSE, Adam).

    ``generator`` draws the mini-batch order, as in :func:`fit_last_step_classifier`.

    Returns the mean training loss of every epoch. Raises ``ValueError`` if ``x`` is not ``(n, T, k)``
    with ``T >= 2``.
    """
    x = _check_sequences(x, "x")
    if x.shape[1] < 2:
        raise ValueError(f"x needs at least 2 time steps, got {x.shape[1]}")

    def batch_loss(idx):
        out, _ = model(x[idx, :-1])
        return nn.functional.mse_loss(out, x[idx, 1:])

    return _adam_epochs(model, x.shape[0], batch_loss, epochs, batch_size, lr, generator)


# --------------------------------------------------------------------------------------------------
# Algorithm 2: rollouts under an intervention, interventional moments, Eq. 4
# --------------------------------------------------------------------------------------------------
def _check_time(t, name: str, low: int, high: int) -> int:
    if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not low <= t <= high:
        raise ValueError(f"{name} must be an integer time index in [{low}, {high}], got {t!r}")
    return int(t)


def _as_interventions(feature, alphas, k: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(features, alphas)`` as (A,) tensors on the device of ``like``, alphas in its accumulation dtype."""
    a = torch.as_tensor(alphas, dtype=accumulation_dtype(like), device=like.device)
    if a.dim() == 0:
        a = a[None]
    if a.dim() != 1 or a.numel() == 0:
        raise ValueError(f"alphas must be a non-empty 1-D sequence of values, got shape {tuple(a.shape)}")
    check_finite(a, "alphas")
    f = torch.as_tensor(feature)
    if f.is_floating_point() or f.dtype == torch.bool:
        raise ValueError(f"feature must be an integer or a 1-D integer sequence, got {feature!r}")
    f = f.long().to(like.device)
    if f.dim() == 0:
        f = f.expand(a.numel())
    if f.shape != a.shape:
        raise ValueError(f"feature must be one integer or one per alpha (shape {tuple(a.shape)}), got {tuple(f.shape)}")
    if bool((f < 0).any()) or bool((f >= k).any()):
        raise ValueError(f"feature indices must lie in [0, {k - 1}], got {f.tolist()}")
    return f, a


def float64_copy(model: nn.Module) -> nn.Module:
    """A frozen float64 copy of ``model`` in eval mode (parameters do not require gradients).

    Every estimate of this module runs on such a copy, so float32 training never leaks into the
    numerics of Eq. 4 or of the lag determinants.
    """
    return _frozen_copy(model, torch.float64)


def _frozen_copy(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    m = copy.deepcopy(model).to(dtype)
    m.eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def _estimation_copy(model: nn.Module) -> nn.Module:
    """:func:`float64_copy`, or a float32 copy on a device without float64 (MPS): the copy every
    estimate of this module runs on (:func:`causalbook_lib.utils.accumulation_dtype`)."""
    return _frozen_copy(model, accumulation_dtype(model))


def rollout_with_feedback(model: nn.Module, data: torch.Tensor, *, t_hat: int, feature, alphas, t: int,
                          feedback: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Roll a recurrent model out over every sequence of ``data`` under ``do(x_i^{t_hat} = alpha)``.

    Inputs ``x^0, ..., x^{t_hat}`` come from each data sequence, with ``x_i^{t_hat}`` replaced by
    ``alpha``. With ``feedback=True`` every later input is the model's previous output,
    ``x^{s+1} = y^s`` for ``s >= t_hat`` (sequence prediction, App. A.4.2); with ``feedback=False``
    later inputs are taken from the data (the unfolded network treated as a feedforward one).

    Args:
        model: a recurrent model whose output has as many channels as its input when ``feedback``.
        data: training sequences, shape ``(n, T, k)``; ``T > t`` is needed when ``feedback=False``.
        t_hat: the intervened time, ``0 <= t_hat < T``.
        feature: the intervened channel ``i``: one integer, or one per alpha (shape ``(A,)``).
        alphas: intervention values, shape ``(A,)``.
        t: the last time to roll out to, ``t >= t_hat``.
        feedback: whether outputs are fed back as the next inputs.

    Returns:
        ``(windows, y_t)``: the inputs ``x^0..x^t`` of every rollout, shape ``(A, n, t + 1, k)``, and
        the outputs ``y^t``, shape ``(A, n, k_out)``, all float64. Batched over alphas and sequences:
        one model call per time step.

    Raises:
        ValueError: bad shapes, time indices or feature indices, or an output width that cannot be
            fed back.
    """
    data = _check_sequences(data)
    n, T, k = data.shape
    t_hat = _check_time(t_hat, "t_hat", 0, T - 1)
    t = _check_time(t, "t", t_hat, 10**9 if feedback else T - 1)
    m = _estimation_copy(model)
    dt = parameter_dtype(m, accumulation_dtype(data))
    feats, a = _as_interventions(feature, alphas, k, data)
    A = a.numel()
    with torch.no_grad():
        if feedback:
            x = data[:, : t_hat + 1].to(dt).unsqueeze(0).repeat(A, 1, 1, 1)
        else:
            x = data[:, : t + 1].to(dt).unsqueeze(0).repeat(A, 1, 1, 1)
        x[torch.arange(A, device=x.device), :, t_hat, feats] = a[:, None].to(dt)
        x = x.reshape(A * n, x.shape[2], k)
        if not feedback:
            y, _ = m(x)
            return x.reshape(A, n, t + 1, k), y[:, -1].reshape(A, n, -1)
        y, state = m(x)
        if y.shape[-1] != k:
            raise ValueError(f"feedback needs outputs with as many channels as inputs ({k}), got {y.shape[-1]}")
        steps = [x]
        for _ in range(t - t_hat):  # a loop over time; all rollouts advance together
            nxt = y[:, -1:]
            steps.append(nxt)
            y, state = m(nxt, state)
        windows = torch.cat(steps, dim=1)
    return windows.reshape(A, n, t + 1, k), y[:, -1].reshape(A, n, -1)


@dataclass
class RecurrentInterventionalExpectation:
    """Result of :func:`interventional_expectation_rnn` for ``A`` interventions.

    Attributes:
        alphas, features: the interventions, shape ``(A,)``.
        taylor: Eq. 4 with the rollout moments, shape ``(A,)``.
        plug_in: ``f'(mu)`` alone (Eq. 4 without its second-order term), shape ``(A,)``.
        mc: brute-force Monte Carlo, the mean of ``y^t`` over the same rollouts, shape ``(A,)``.
        outputs: ``y_output^t`` of every rollout, shape ``(A, n)`` (``mc`` is its mean over the rollouts).
        mean: interventional means of the input window, shape ``(A, (t + 1) k)``.
        cov: interventional covariances of the input window, shape ``(A, (t + 1) k, (t + 1) k)``.
    """

    alphas: torch.Tensor
    features: torch.Tensor
    taylor: torch.Tensor
    plug_in: torch.Tensor
    mc: torch.Tensor
    mean: torch.Tensor
    cov: torch.Tensor
    outputs: torch.Tensor


def interventional_expectation_rnn(model: nn.Module, data: torch.Tensor, *, t_hat: int, feature, alphas, t: int,
                                   target: int = 0, feedback: bool = True, covariance_window: int | None = None,
                                   chunk_size: int = 8192) -> RecurrentInterventionalExpectation:
    """Algorithm 2 of Chattopadhyay et al. (App. A.4.2): ``E[y_target^t | do(x_i^{t_hat} = alpha)]``.

    For every alpha (batched): roll the model out over every sequence of ``data`` with the
    intervention and, if ``feedback``, its outputs fed back (:func:`rollout_with_feedback`);
    estimate the mean ``mu`` and covariance ``Sigma`` of the input window ``(x^0, ..., x^t)`` from
    the rollouts (the empirical moments, with a 1/n covariance, so that Eq. 4 is exact on the
    rollouts whenever ``f'`` is quadratic); apply Eq. 4, ``f'(mu) + 1/2 tr(H_{f'}(mu) Sigma)``, where ``f'`` maps a window to
    ``y_target^t`` (:func:`causalbook_lib.interventions.taylor_expectation`). The Monte Carlo mean of ``y^t`` over the same
    rollouts is returned next to it as the ground truth of the Taylor step.

    ``covariance_window`` is this book's shortcut, not the paper's: with ``covariance_window=w`` only the
    inputs at times ``t - w, ..., t`` enter the second-order term (the covariance of earlier inputs is set
    to zero, as if they were fixed at their means). The paper's lag tau (Prop. 3) limits which times
    ``t_hat`` are attributed; it never truncates a covariance. Leave it at ``None`` for the paper's Eq. 4
    (:doc:`chapter 07 </notebooks/07-recurrent-networks>`, exercise 3, measures what the window changes).

    Args:
        model: a recurrent model (module docstring); a float64 copy is used.
        data: training sequences, shape ``(n, T, k)``.
        t_hat: the intervened time; t: the output time (``t >= t_hat``).
        feature: intervened channel, one integer or one per alpha; alphas: shape ``(A,)``.
        target: which output channel is explained (Captum's ``target``).
        feedback: outputs fed back as inputs (True) or later inputs from the data (False).
        covariance_window: optional window length ``w`` (ours, see above), ``0 <= w <= t`` and
            ``t - w <= t_hat``.
        chunk_size: Hessian-vector products per batch.

    Raises:
        ValueError: bad shapes, time indices, window, feature or target index.
    """
    data = _check_sequences(data)
    n, T, k = data.shape
    windows, y_t = rollout_with_feedback(model, data, t_hat=t_hat, feature=feature, alphas=alphas, t=t,
                                         feedback=feedback)
    feats, a = _as_interventions(feature, alphas, k, data)
    if isinstance(target, bool) or not isinstance(target, (int, np.integer)) or not 0 <= target < y_t.shape[-1]:
        raise ValueError(f"target must be an integer output channel in [0, {y_t.shape[-1] - 1}], got {target!r}")
    L = t + 1
    window = covariance_window
    if window is not None:
        window = _check_time(window, "covariance_window", 0, t)
        if t - window > t_hat:
            raise ValueError(f"t_hat = {t_hat} lies outside the covariance window [{t - window}, {t}]; "
                             "increase covariance_window")
    A = a.numel()
    flat = windows.reshape(A, n, L * k)
    mean = flat.mean(1)
    centred = flat - mean[:, None]
    cov = centred.transpose(1, 2) @ centred / n     # 1/n: Eq. 4 is then exact on the rollouts for quadratic f'
    if window is not None:
        outside = torch.arange(L * k, device=cov.device) < (t - window) * k
        cov[:, outside, :] = 0.0
        cov[:, :, outside] = 0.0
    m = _estimation_copy(model)

    def f_prime(w):
        return m(w.reshape(w.shape[0], L, k))[0][:, -1, target]

    taylor, plug_in, _ = taylor_expectation(f_prime, mean, cov, chunk_size=chunk_size, return_terms=True)
    outputs = y_t[..., target]
    return RecurrentInterventionalExpectation(a, feats, taylor, plug_in, outputs.mean(1), mean, cov, outputs)


@dataclass
class AttributionMap:
    """Causal attributions ``ACE_{do(x_i^{t_hat} = x_i^{t_hat}(seq))}^{y^t}`` of some sequences.

    Attributes:
        ace: Eq. 1 with Eq. 4 (Algorithm 2), shape ``(m, len(t_hats), k)``.
        ace_mc: the same with Monte Carlo interventional expectations, same shape.
        baseline: Taylor baselines ``E_alpha E[y^t | do(x_i^{t_hat} = alpha)]``, shape ``(len(t_hats), k)``.
        t_hats: the intervened times, shape ``(len(t_hats),)``.
        grid: the alphas of the uniform doer, shape ``(len(t_hats), k, grid)``.
        curve: Eq. 4 on the grid, shape ``(len(t_hats), k, grid)``; curve_mc: its Monte Carlo twin.
        ace_mc_terms, curve_mc_terms: with ``per_sequence=True``, the contribution of each of the ``n``
            rolled-out data sequences, shapes ``(n, m, len(t_hats), k)`` and ``(n, len(t_hats), k, grid)``:
            ``ace_mc`` and ``curve_mc`` are their means over the first axis (for bootstraps over the
            data sequences, or another doer grid through
            :func:`~causalbook_lib.attribution.uniform_doer_average`); otherwise None.
    """

    ace: torch.Tensor
    ace_mc: torch.Tensor
    baseline: torch.Tensor
    t_hats: torch.Tensor
    grid: torch.Tensor
    curve: torch.Tensor
    curve_mc: torch.Tensor
    ace_mc_terms: torch.Tensor | None = None
    curve_mc_terms: torch.Tensor | None = None


def _interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear interpolation of ``(xp, fp)`` (increasing ``xp``) at ``x``, clamped at the ends."""
    x = x.clamp(xp[0], xp[-1])
    j = torch.searchsorted(xp, x).clamp(1, len(xp) - 1)
    w = (x - xp[j - 1]) / (xp[j] - xp[j - 1])
    return fp[j - 1] + w * (fp[j] - fp[j - 1])


def causal_attribution_map(model: nn.Module, data: torch.Tensor, sequences: torch.Tensor, *, t: int,
                           target: int = 0, feedback: bool = True, t_hats: Sequence[int] | None = None,
                           grid: int = 21, exact: bool = True, covariance_window: int | None = None,
                           per_sequence: bool = False, chunk_size: int = 8192) -> AttributionMap:
    """Saliency maps from causal attributions (Sec. 5.2-5.3): ACE of each input value of each sequence.

    For every intervened time ``t_hat`` and channel ``i``, the interventional expectation curve
    ``alpha -> E[y^t | do(x_i^{t_hat} = alpha)]`` is computed with Algorithm 2 on ``grid`` evenly spaced
    alphas over the range of ``data[:, t_hat, i]``; its average (trapezoid rule) is the baseline of
    Eq. 1 under a uniform doer. The attribution of a sequence is the curve at the sequence's own
    value minus the baseline: evaluated exactly (the values are added as extra alphas) when
    ``exact``, or by linear interpolation of the curve (for many sequences) otherwise.
    Batched over channels and alphas; one call of Algorithm 2 per intervened time.

    Args:
        model, data, t, target, feedback: as in :func:`interventional_expectation_rnn`.
        sequences: the sequences to explain, shape ``(m, >= t + 1, k)``.
        t_hats: intervened times (default ``0, ..., t``), each in ``[0, t]``.
        grid: number of alphas of the uniform doer (>= 2).
        exact: evaluate at the sequences' values (True) or interpolate (False).
        covariance_window: passed to :func:`interventional_expectation_rnn` (this book's shortcut, not the
            paper's; every ``t_hat`` must then lie in ``[t - covariance_window, t]``).
        per_sequence: also return each data sequence's Monte Carlo terms (``ace_mc_terms``,
            ``curve_mc_terms``); needs ``exact=True``.

    Raises:
        ValueError: bad shapes, times or grid size, ``per_sequence`` without ``exact``.
    """
    data = _check_sequences(data)
    n, T, k = data.shape
    sequences = _check_sequences(sequences, "sequences")
    if sequences.shape[2] != k or sequences.shape[1] < t + 1:
        raise ValueError(f"sequences must have shape (m, >= {t + 1}, {k}), got {tuple(sequences.shape)}")
    grid = check_positive_int(grid, "grid", minimum=2)
    t = _check_time(t, "t", 0, 10**9 if feedback else T - 1)
    t_hats = list(range(t + 1)) if t_hats is None else [_check_time(s, "t_hats entry", 0, min(t, T - 1)) for s in t_hats]
    if per_sequence and not exact:
        raise ValueError("per_sequence=True needs exact=True (the terms are the rollouts at the sequences' values)")
    m_seq = sequences.shape[0]
    acc = accumulation_dtype(data)
    out = {key: [] for key in ("ace", "ace_mc", "baseline", "grid", "curve", "curve_mc", "ace_terms", "curve_terms")}
    for s in t_hats:  # a loop over time; every channel and alpha is one batched call
        low, high = data[:, s].to(acc).min(0).values, data[:, s].to(acc).max(0).values
        high = torch.where(high > low, high, low + 1e-6)
        g = low[:, None] + (high - low)[:, None] * torch.linspace(0, 1, grid, dtype=acc, device=data.device)  # (k, grid)
        alphas = [g.reshape(-1)]
        feats = [torch.arange(k, device=data.device).repeat_interleave(grid)]
        if exact:
            alphas.append(sequences[:, s].to(acc).T.reshape(-1))
            feats.append(torch.arange(k, device=data.device).repeat_interleave(m_seq))
        res = interventional_expectation_rnn(model, data, t_hat=s, feature=torch.cat(feats),
                                             alphas=torch.cat(alphas), t=t, target=target, feedback=feedback,
                                             covariance_window=covariance_window, chunk_size=chunk_size)
        curves = {"taylor": res.taylor, "mc": res.mc}
        if per_sequence:
            curve_n = res.outputs[: k * grid].reshape(k, grid, n).permute(2, 0, 1)          # (n, k, grid)
            at_n = res.outputs[k * grid:].reshape(k, m_seq, n).permute(2, 1, 0)            # (n, m, k)
            out["curve_terms"].append(curve_n)
            out["ace_terms"].append(at_n - uniform_doer_average(curve_n)[:, None])
        for name, val in curves.items():
            curve = val[: k * grid].reshape(k, grid)
            base = uniform_doer_average(curve)
            if exact:
                at = val[k * grid:].reshape(k, m_seq).T
            else:
                at = torch.stack([_interp(sequences[:, s, i].to(acc), g[i], curve[i]) for i in range(k)], 1)
            out["ace" if name == "taylor" else "ace_mc"].append(at - base)
            out["curve" if name == "taylor" else "curve_mc"].append(curve)
            if name == "taylor":
                out["baseline"].append(base)
        out["grid"].append(g)
    terms = ((torch.stack(out["ace_terms"], 2), torch.stack(out["curve_terms"], 1)) if per_sequence
             else (None, None))
    return AttributionMap(torch.stack(out["ace"], 1), torch.stack(out["ace_mc"], 1), torch.stack(out["baseline"]),
                          torch.tensor(t_hats, device=data.device), torch.stack(out["grid"]), torch.stack(out["curve"]),
                          torch.stack(out["curve_mc"]), *terms)


# --------------------------------------------------------------------------------------------------
# The lag tau (Prop. 3)
# --------------------------------------------------------------------------------------------------
def lag_jacobian_determinants(model: nn.Module, x: torch.Tensor, t: int, *, criterion: str = "det") -> torch.Tensor:
    """``|det(d y^t / d x^{t-l})|`` for every sequence and every lag ``l = 0, ..., t`` (Prop. 3).

    The inputs are treated as free variables of the unfolded network (teacher forcing, no feedback),
    as in the reduced SCM: this is the partial derivative with the other inputs held fixed, not the
    total derivative through fed-back outputs (chapter 07 computes that variant). One backward pass
    per output channel gives the gradient of ``y^t`` with respect to every earlier input of every
    sequence at once (sequences do not interact, so the gradient of the batch sum is the batch of
    gradients); the ``k_out x k`` Jacobian blocks are then stacked and their determinants taken in
    one batched call.

    Args:
        model: a recurrent model with as many output channels as input channels (square Jacobians).
        x: sequences, shape ``(n, T, k)``; t: output time in ``[0, T - 1]``.
        criterion: ``"det"`` (the default) or ``"norm"`` (the Frobenius norm of each block instead).

    Returns: shape ``(n, t + 1)``; column ``l`` is the lag ``l`` (float64).

    Raises:
        ValueError: bad shapes or time index, or non-square Jacobians.
    """
    x = _check_sequences(x, "x")
    n, T, k = x.shape
    t = _check_time(t, "t", 0, T - 1)
    m = _estimation_copy(model)
    xx = x[:, : t + 1].to(accumulation_dtype(m)).clone().requires_grad_(True)
    y, _ = m(xx)
    y_t = y[:, t]
    if y_t.shape[-1] != k:
        raise ValueError(f"the Jacobian d y^t / d x^(t-k) must be square: the model has {y_t.shape[-1]} outputs "
                         f"and {k} inputs")
    rows = [torch.autograd.grad(y_t[:, j].sum(), xx, retain_graph=j < k - 1)[0] for j in range(k)]
    J = torch.stack(rows, dim=2)                                     # (n, t+1, k_out, k_in), time forward
    if criterion not in ("det", "norm"):
        raise ValueError(f"criterion must be 'det' or 'norm', got {criterion!r}")
    dets = torch.linalg.det(J).abs() if criterion == "det" else torch.linalg.matrix_norm(J)  # (n, t+1), time s
    return dets.flip(1)                                              # index = lag k = t - s


def lag_tau(model: nn.Module, x: torch.Tensor, t: int, *, rtol: float = 1e-3,
            criterion: str = "det") -> tuple[float, torch.Tensor]:
    """The lag tau of Prop. 3 (a heuristic): ``tau = E_x[max{l : |det(d y^t / d x^{t-l})| > 0}]``.

    Prop. 3 is not a theorem, and its literal criterion is degenerate for the networks it targets:
    for an analytic recurrent net (tanh / sigmoid GRU or LSTM) the determinant is a real-analytic
    function of the inputs that is not identically zero (for generic weights), so it is nonzero
    almost everywhere and the literal tau equals ``t`` for almost every input. That is mathematics,
    not round-off (floating point can only shorten tau, by underflow). Two choices of this book, not
    of the paper, make tau usable: "> 0" is read as ``> rtol * max_l |det_l|`` per sequence
    (``rtol = 0`` is the literal criterion), and ``criterion="norm"`` replaces the determinant by
    the Frobenius norm of the Jacobian block (the determinant of a ``k x k`` block is a product of
    ``k`` singular values and vanishes as soon as one channel stops mattering, the norm does not).
    For a model with a finite memory (:class:`DelayLineRNN`) the blocks beyond its lag are exactly
    zero, and every ``rtol`` in ``[0, 1)`` small enough returns the true lag.

    Args:
        model, x, t: as in :func:`lag_jacobian_determinants`.
        rtol: relative threshold in ``[0, 1)``.
        criterion: ``"det"`` (Prop. 3) or ``"norm"``.

    Returns:
        ``(tau, tau_x)``: the average over sequences (float) and the per-sequence lags ``(n,)``.

    Raises:
        ValueError: bad shapes, time index, ``rtol`` or ``criterion``.
    """
    if isinstance(rtol, bool) or not isinstance(rtol, (int, float)) or not 0 <= rtol < 1:
        raise ValueError(f"rtol must be a number in [0, 1), got {rtol!r}")
    if criterion not in ("det", "norm"):
        raise ValueError(f"criterion must be 'det' or 'norm', got {criterion!r}")
    dets = lag_jacobian_determinants(model, x, t, criterion=criterion)
    big = dets > rtol * dets.amax(dim=1, keepdim=True)
    lags = torch.arange(dets.shape[1], device=dets.device)
    tau_x = torch.where(big, lags, torch.full_like(lags, -1)).amax(dim=1).clamp(min=0)
    return float(tau_x.to(accumulation_dtype(tau_x)).mean()), tau_x
