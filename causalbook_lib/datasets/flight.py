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
gently on a dry runway, so its skid term is about twenty times smaller than an anomaly's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..utils import check_positive_int

__all__ = ["FLIGHT_CHANNELS", "FLIGHT_UNITS", "LandingData", "simulate_landings"]

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
    """

    x: torch.Tensor
    is_anomalous: torch.Tensor
    brake_onset: torch.Tensor
    friction: torch.Tensor

    channels: tuple = FLIGHT_CHANNELS
    units: tuple = FLIGHT_UNITS

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
                      generator: torch.Generator | None = None) -> LandingData:
    """Simulate ``n_normal`` normal and ``n_anomalous`` anomalous landings (normal ones first).

    Every trajectory follows the structural equations of the module docstring; the data are
    **simulated**, not recorded flights.

    Args:
        n_normal: number of normal landings (>= 1).
        n_anomalous: number of late-braking, slippery-runway landings (>= 0).
        T: number of one-second samples from touchdown (>= 44, so that the anomaly window fits).
        generator: a seeded ``torch.Generator``.

    Returns:
        :class:`LandingData` with ``x`` of shape ``(n_normal + n_anomalous, T, 5)`` (float32).

    Raises:
        ValueError: a count is not an integer of the required size.
    """
    n_normal = check_positive_int(n_normal, "n_normal")
    n_anomalous = check_positive_int(n_anomalous, "n_anomalous", minimum=0)
    T = check_positive_int(T, "T", minimum=44)
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    n = n_normal + n_anomalous
    anomalous = torch.arange(n) >= n_normal

    def uniform(low, high):
        return low + (high - low) * torch.rand(n, generator=g, dtype=torch.float64)

    mu = torch.where(anomalous, uniform(0.25, 0.40), uniform(0.75, 0.95))
    onset = torch.where(anomalous, torch.randint(34, 39, (n,), generator=g), torch.randint(3, 9, (n,), generator=g))
    b_max = torch.where(anomalous, torch.ones(n, dtype=torch.float64), uniform(0.4, 0.6))
    side = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0).double()
    v = 70.0 + 2.0 * torch.randn(n, generator=g, dtype=torch.float64)
    pitch = 4.0 + 0.5 * torch.randn(n, generator=g, dtype=torch.float64)
    latg = torch.zeros(n, dtype=torch.float64)
    roll = torch.zeros(n, dtype=torch.float64)
    noise = torch.randn(T, 4, n, generator=g, dtype=torch.float64)
    out = torch.empty(n, T, 5, dtype=torch.float64)
    for t in range(T):  # a loop over time only; every flight is updated at once
        b = b_max * ((t - onset + 1).double() / 3.0).clamp(0.0, 1.0)
        slow = (v / 10.0).clamp(max=1.0)
        long_ = -(0.02 * (v / 70.0) ** 2 + 0.4 * mu * b) * slow + 0.01 * noise[t, 0]
        skid = 0.3 * (1 - mu) * b ** 2 * side * torch.sin(2 * math.pi * (t - onset).double() / 6.0) \
            * (v / 20.0).clamp(max=1.0)
        roll = 0.7 * roll + 10.0 * latg + 0.2 * noise[t, 2]
        latg = 0.5 * latg + skid + 0.01 * noise[t, 1]
        pitch = 0.8 * pitch + 8.0 * long_ + 0.1 * noise[t, 3]
        out[:, t] = torch.stack([latg, long_, pitch, roll, v], dim=1)
        v = (v + 9.81 * long_).clamp(min=0.0)
    return LandingData(out.float(), anomalous, onset, mu)
