"""Unit tests of causalbook_lib.datasets.flight (the simulated landing SCM)."""
import math

import pytest
import torch

import causalbook_lib as cb

F = cb.datasets


@pytest.fixture(scope="module")
def flights():
    return F.simulate_landings(300, 100, generator=torch.Generator().manual_seed(0))


def test_shapes_labels_and_exogenous_ranges(flights):
    assert flights.x.shape == (400, 48, 5) and flights.channels == F.FLIGHT_CHANNELS
    assert int(flights.is_anomalous.sum()) == 100 and not bool(flights.is_anomalous[:300].any())
    onset, mu = flights.brake_onset, flights.friction
    assert bool(((onset[:300] >= 3) & (onset[:300] <= 8)).all()) and bool(((onset[300:] >= 34) & (onset[300:] <= 38)).all())
    assert bool(((mu[:300] >= 0.75) & (mu[:300] <= 0.95)).all()) and bool(((mu[300:] >= 0.25) & (mu[300:] <= 0.40)).all())


def test_structural_equations_hold(flights):
    """Speed integrates LONG, and ROLL/PTCH follow their equations up to their noise scale."""
    x = flights.x.double()
    latg, long_, ptch, roll, spd = x.unbind(-1)
    torch.testing.assert_close(spd[:, 1:], (spd[:, :-1] + 9.81 * long_[:, :-1]).clamp(min=0), atol=1e-3, rtol=1e-5)
    roll_res = roll[:, 1:] - 0.7 * roll[:, :-1] - 10 * latg[:, :-1]
    ptch_res = ptch[:, 1:] - 0.8 * ptch[:, :-1] - 8 * long_[:, 1:]
    assert abs(float(roll_res.std()) - 0.2) < 0.01 and abs(float(ptch_res.std()) - 0.1) < 0.005


def test_anomaly_is_where_it_was_injected(flights):
    """Before t_b the anomalous flights' LATG is noise; after t_b it carries the skid."""
    latg = flights.x[..., 0].double()
    t = torch.arange(48)[None]
    before = t < flights.brake_onset[:, None]
    after = (t >= flights.brake_onset[:, None] + 1) & (t < flights.brake_onset[:, None] + 7)
    an = flights.is_anomalous
    sd_before = float(latg[an][before[an]].std())
    sd_after = float(latg[an][after[an]].std())
    sd_normal = float(latg[~an][after[~an]].std())
    stationary = 0.01 / math.sqrt(1 - 0.25)  # AR(1) noise of LATG
    assert abs(sd_before - stationary) < 0.002
    assert sd_after > 10 * sd_normal


def test_standardized(flights):
    z = flights.standardized()
    flat = z.reshape(-1, 5).double()
    torch.testing.assert_close(flat.mean(0), torch.zeros(5, dtype=torch.float64), atol=1e-5, rtol=0)
    torch.testing.assert_close(flat.std(0), torch.ones(5, dtype=torch.float64), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="stats"):
        flights.standardized((torch.zeros(4), torch.ones(4)))


@pytest.mark.parametrize("args, kwargs, match", [
    ((0, 1), {}, "n_normal"), ((1, -1), {}, "n_anomalous"), ((1, 1), {"T": 30}, "T must"),
])
def test_bad_input(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        F.simulate_landings(*args, **kwargs)
