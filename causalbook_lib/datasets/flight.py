"""A **simulated** landing data set from a documented SCM (Part III, :doc:`chapter 09 </notebooks/09-flight-series>`).

Chattopadhyay et al. (2019, Sec. 5.3) explain an LSTM trained on NASA DASHlink flight recordings.
Those recordings cannot be redistributed with the book, so :doc:`chapter 09 </notebooks/09-flight-series>` uses this stand-in instead.
Nothing here is real flight data: every number comes from the structural equations below, at one
sample per second from touchdown (``t = 0``) for ``T`` seconds.

Exogenous variables of one flight (all independent):

* touchdown speed ``v_0 ~ N(70, 2^2)`` m/s and flare pitch ``p ~ N(4, 0.5^2)`` deg;
* runway friction ``mu``: ``U(0.75, 0.95)`` for a normal flight, ``U(0.25, 0.40)`` (slippery) for an anomaly;
* brake onset ``t_b``: uniform on ``{3, ..., 8}`` s for a normal flight, on ``{34, ..., 38}`` s for an
  anomaly (late braking);
* brake strength ``b_max``: ``U(0.4, 0.6)`` normally, ``1`` (full, late braking) for an anomaly;
* skid direction ``s`` in {-1, +1} with probability 1/2 each; noises ``e_*`` iid N(0, 1).

Structural equations, for ``t = 0, ..., T - 1`` (with ``LATG_{-1} = ROLL_{-1} = 0`` and ``PTCH_{-1} = p``):

* brake command ``b_t = b_max * clip((t - t_b + 1) / 3, 0, 1)`` (a 3 s ramp);
* ``LONG_t = -(0.02 (v_t / 70)^2 + 0.4 mu b_t) min(1, v_t / 10) + 0.01 e_long`` (g);
* ``v_{t+1} = max(v_t + 9.81 LONG_t, 0)`` (m/s; the channel ``SPD`` is ``v_t``);
* skid ``k_t = 0.3 (1 - mu) b_t^2 s sin(2 pi (t - t_b) / 6) min(1, v_t / 20)`` (g);
* ``LATG_t = 0.5 LATG_{t-1} + k_t + 0.01 e_lat`` (g);
* ``ROLL_t = 0.7 ROLL_{t-1} + 10 LATG_{t-1} + 0.2 e_roll`` (deg);
* ``PTCH_t = 0.8 PTCH_{t-1} + 8 LONG_t + 0.1 e_pitch`` (deg).

So the injected anomaly (late, full braking on a slippery runway) enters ``LONG`` and ``LATG`` at
``t_b`` and reaches ``ROLL``, ``PTCH`` and ``SPD`` through them. A normal flight brakes early and
gently on a dry runway, so its skid term is about twenty times smaller than an anomaly's. The skid's
sine is zero at ``t_b``, so the skid reaches ``LATG`` at ``t_b + 1`` and ``ROLL`` at ``t_b + 2``.

Interventions: :func:`intervene_landings` reruns simulated flights with their exogenous draws kept
and one structural equation replaced, ``do(x_i^{t_hat} = alpha)``, which gives the true
(counterfactual, and averaged over flights the interventional) effects that chapter 09 scores its
attribution maps against. ``ROLL`` and ``PTCH`` cause no other channel, so intervening on them
changes nothing but their own later values.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..utils import as_generator, check_positive_int

__all__ = ["FLIGHT_CHANNELS", "FLIGHT_UNITS", "LandingData", "simulate_landings", "intervene_landings"]

#: Channel names, in the order of the last axis of :attr:`LandingData.x`.
FLIGHT_CHANNELS = ("LATG", "LONG", "PTCH", "ROLL", "SPD")
#: Units of the channels.
FLIGHT_UNITS = ("g", "g", "deg", "deg", "m/s")


@dataclass
class LandingData:
    """Simulated landings (see the module docstring for the SCM).

    Attributes:
        x: channels in physical units, shape ``(n, T, 5)`` in the order of :data:`FLIGHT_CHANNELS`.
        is_anomalous: shape ``(n,)``, True for the late-braking, slippery-runway flights.
        brake_onset: shape ``(n,)``, the brake onset ``t_b`` in seconds after touchdown.
        friction: shape ``(n,)``, the runway friction ``mu``.
        exogenous: the exogenous draws of every flight (``mu``, ``onset``, ``b_max``, ``side``, ``v0``,
            ``pitch0`` of shape ``(n,)`` and ``noise`` of shape ``(n, T, 4)``, float64 except the
            integer onset), for :func:`intervene_landings`; None for data built by hand.
    """

    x: torch.Tensor
    is_anomalous: torch.Tensor
    brake_onset: torch.Tensor
    friction: torch.Tensor

    channels: tuple = FLIGHT_CHANNELS
    units: tuple = FLIGHT_UNITS
    exogenous: dict | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def channel_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel mean and standard deviation over all flights and times, each of shape ``(5,)``."""
        flat = self.x.reshape(-1, self.x.shape[-1]).double()
        return flat.mean(0), flat.std(0)

    def standardized(self, stats: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """``(x - mean) / std`` per channel (float32), with ``stats`` from :meth:`channel_stats` by default."""
        mean, std = stats if stats is not None else self.channel_stats()
        if mean.shape != (self.x.shape[-1],) or std.shape != (self.x.shape[-1],) or bool((std <= 0).any()):
            raise ValueError("stats must be (mean, std), each of shape (5,), with positive std")
        return ((self.x.double() - mean) / std).float()


def simulate_landings(n_normal: int, n_anomalous: int, *, T: int = 48,
                      generator=None) -> LandingData:
    """Simulate ``n_normal`` normal and ``n_anomalous`` anomalous landings (normal ones first).

    Every trajectory follows the structural equations of the module docstring; the data are
    **simulated**, not recorded flights. The exogenous draws are kept in
    :attr:`LandingData.exogenous`, so :func:`intervene_landings` can re-run the same flights under
    an intervention.

    Args:
        n_normal: number of normal landings (>= 1).
        n_anomalous: number of late-braking, slippery-runway landings (>= 0).
        T: number of one-second samples from touchdown (>= 44, so that the anomaly window fits).
        generator: ``None``, an int seed or a ``torch.Generator`` (:func:`causalbook_lib.utils.as_generator`).

    Returns:
        :class:`LandingData` with ``x`` of shape ``(n_normal + n_anomalous, T, 5)`` (float32).

    Raises:
        ValueError: a count is not an integer of the required size.
    """
    n_normal = check_positive_int(n_normal, "n_normal")
    n_anomalous = check_positive_int(n_anomalous, "n_anomalous", minimum=0)
    T = check_positive_int(T, "T", minimum=44)
    g = as_generator(generator)
    n = n_normal + n_anomalous
    anomalous = torch.arange(n) >= n_normal

    def uniform(low, high):
        return low + (high - low) * torch.rand(n, generator=g, dtype=torch.float64, device=g.device)

    mu = torch.where(anomalous, uniform(0.25, 0.40), uniform(0.75, 0.95))
    onset = torch.where(anomalous, torch.randint(34, 39, (n,), generator=g, device=g.device), torch.randint(3, 9, (n,), generator=g, device=g.device))
    b_max = torch.where(anomalous, torch.ones(n, dtype=torch.float64), uniform(0.4, 0.6))
    side = torch.where(torch.rand(n, generator=g, device=g.device) < 0.5, -1.0, 1.0).double()
    v = 70.0 + 2.0 * torch.randn(n, generator=g, dtype=torch.float64, device=g.device)
    pitch = 4.0 + 0.5 * torch.randn(n, generator=g, dtype=torch.float64, device=g.device)
    noise = torch.randn(T, 4, n, generator=g, dtype=torch.float64, device=g.device)
    exogenous = {"mu": mu, "onset": onset, "b_max": b_max, "side": side, "v0": v, "pitch0": pitch,
                 "noise": noise.permute(2, 0, 1).contiguous()}
    out = _structural_equations(exogenous, T, None)[0]
    return LandingData(out.float(), anomalous, onset, mu, exogenous=exogenous)


def _structural_equations(exo: dict, T: int, interventions) -> torch.Tensor:
    """Run the structural equations of the module docstring for the flights of ``exo``.

    ``interventions`` is None or ``(t_hat, channel, alpha)``, three tensors of shape ``(A,)``; the
    result has shape ``(A, n, T, 5)`` (``A = 1`` without interventions), float64, physical units.
    Everything that depends only on the flight (brake command, the skid's sine) is computed per
    flight, so the arithmetic that an intervention can reach is elementwise ``+ - * /``, clamps and
    selections, and a no-op batch reproduces the unintervened flights bit for bit.
    """
    mu, onset, b_max, side = exo["mu"], exo["onset"], exo["b_max"], exo["side"]
    noise = exo["noise"]  # (n, T, 4): e_long, e_lat, e_roll, e_pitch
    n = mu.shape[0]
    if interventions is None:
        t_hat = channel = alpha = None
        A = 1
    else:
        t_hat, channel, alpha = interventions
        A = alpha.shape[0]
    v = exo["v0"].expand(A, n)
    pitch = exo["pitch0"].expand(A, n)
    latg = torch.zeros(A, n, dtype=torch.float64)
    roll = torch.zeros(A, n, dtype=torch.float64)
    out = torch.empty(A, n, T, 5, dtype=torch.float64)

    def do(value, c, t):  # the structural equation of channel c at time t replaced by alpha
        if t_hat is None:
            return value
        hit = (t_hat == t) & (channel == c)
        return torch.where(hit[:, None], alpha[:, None], value) if bool(hit.any()) else value

    for t in range(T):  # a loop over time only; every flight and intervention is updated at once
        b = b_max * ((t - onset + 1).double() / 3.0).clamp(0.0, 1.0)
        wave = 0.3 * (1 - mu) * b ** 2 * side * torch.sin(2 * math.pi * (t - onset).double() / 6.0)
        v = do(v, 4, t)
        slow = (v / 10.0).clamp(max=1.0)
        long_ = do(-(0.02 * (v / 70.0) ** 2 + 0.4 * mu * b) * slow + 0.01 * noise[:, t, 0], 1, t)
        skid = wave * (v / 20.0).clamp(max=1.0)
        roll = do(0.7 * roll + 10.0 * latg + 0.2 * noise[:, t, 2], 3, t)
        latg = do(0.5 * latg + skid + 0.01 * noise[:, t, 1], 0, t)
        pitch = do(0.8 * pitch + 8.0 * long_ + 0.1 * noise[:, t, 3], 2, t)
        out[:, :, t] = torch.stack([latg, long_, pitch, roll, v], dim=-1)
        v = (v + 9.81 * long_).clamp(min=0.0)
    return out


def intervene_landings(flights: LandingData, *, t_hat, channel, alphas, index=None) -> torch.Tensor:
    """Re-run the structural equations of ``flights`` under ``do(x_i^{t_hat} = alpha)``, batched over alphas.

    The flights keep their exogenous draws (friction, brake onset and strength, skid side, touchdown
    speed and pitch, every noise term), so the result is the *counterfactual* trajectory of each
    flight; averaging it over flights gives the interventional one. Intervening on a channel at
    ``t_hat`` replaces that channel's structural equation at ``t_hat`` by the constant ``alpha``
    (physical units) and leaves every other equation alone: the equations that read the channel
    afterwards read ``alpha``. So ``do(SPD)`` sets ``v_{t_hat}`` before ``LONG``, the skid and
    ``v_{t_hat + 1}`` use it; ``do(LONG)`` reaches ``PTCH_{t_hat}`` and the speed from
    ``t_hat + 1``; ``do(LATG)`` reaches ``LATG`` and ``ROLL`` from ``t_hat + 1``; ``ROLL`` and
    ``PTCH`` cause nothing else, so intervening on them changes only their own later values.
    Everything before ``t_hat`` is unchanged.

    Args:
        flights: landings from :func:`simulate_landings` (they carry their exogenous draws).
        t_hat: the intervened second: one integer in ``[0, T - 1]``, or one per alpha (shape ``(A,)``).
        channel: the intervened channel (index into :data:`FLIGHT_CHANNELS`, or its name), or one
            index per alpha.
        alphas: the intervened values in physical units, shape ``(A,)`` (or a scalar).
        index: optional indices of the flights to re-run (default: all).

    Returns:
        Trajectories of shape ``(A, n, T, 5)`` (float64, physical units), one per alpha and flight.

    Raises:
        ValueError: ``flights`` carry no exogenous draws, or a time, channel, value or index is not
            of the documented form.
    """
    if not isinstance(flights, LandingData) or flights.exogenous is None:
        raise ValueError("flights must be LandingData from simulate_landings (with their exogenous draws)")
    exo = flights.exogenous
    n, T = exo["noise"].shape[:2]
    a = torch.as_tensor(alphas, dtype=torch.float64)
    a = a[None] if a.dim() == 0 else a
    if a.dim() != 1 or a.numel() == 0 or not bool(torch.isfinite(a).all()):
        raise ValueError(f"alphas must be a non-empty 1-D sequence of finite values, got shape {tuple(a.shape)}")
    A = a.numel()

    def per_alpha(value, name, high):
        if isinstance(value, str):
            if value not in FLIGHT_CHANNELS or name != "channel":
                raise ValueError(f"{name} must be an integer or one per alpha; channel names are {FLIGHT_CHANNELS}, "
                                 f"got {value!r}")
            value = FLIGHT_CHANNELS.index(value)
        v = torch.as_tensor(value)
        if v.is_floating_point() or v.dtype == torch.bool or v.dim() > 1:
            raise ValueError(f"{name} must be an integer or a 1-D integer sequence, got {value!r}")
        v = v.long().expand(A) if v.dim() == 0 else v.long()
        if v.shape != (A,) or bool((v < 0).any()) or bool((v > high).any()):
            raise ValueError(f"{name} must be one integer in [0, {high}] or one per alpha (shape ({A},)), got {value!r}")
        return v

    t_hat = per_alpha(t_hat, "t_hat", T - 1)
    channel = per_alpha(channel, "channel", len(FLIGHT_CHANNELS) - 1)
    if index is not None:
        idx = torch.as_tensor(index)
        if idx.is_floating_point() or idx.dtype == torch.bool or idx.dim() != 1 or idx.numel() == 0 \
                or bool((idx < -n).any()) or bool((idx >= n).any()):
            raise ValueError(f"index must be a non-empty 1-D sequence of flight indices in [-{n}, {n - 1}], got {index!r}")
        exo = {k: val[idx] for k, val in exo.items()}
    return _structural_equations(exo, T, (t_hat, channel, a))
