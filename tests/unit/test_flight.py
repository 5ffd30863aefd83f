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


# ---- intervene_landings: the same flights re-run under do(x_i^t_hat = alpha) ----

@pytest.fixture(scope="module")
def few():
    return F.simulate_landings(6, 4, generator=torch.Generator().manual_seed(1))


def test_intervention_at_the_last_second_on_a_sink_reproduces_the_flights(few):
    """ROLL causes nothing else, so do(ROLL^{T-1}) changes only that cell: the re-run is the simulation, bit for bit."""
    out = F.intervene_landings(few, t_hat=47, channel="ROLL", alphas=[3.0, -2.0])
    assert out.shape == (2, 10, 48, 5) and out.dtype == torch.float64
    for a in range(2):
        assert torch.equal(out[a, :, :47].float(), few.x[:, :47])
        assert torch.equal(out[a, :, 47, [0, 1, 2, 4]].float(), few.x[:, 47, [0, 1, 2, 4]])
    assert bool((out[:, :, 47, 3] == torch.tensor([3.0, -2.0])[:, None]).all())


def test_speed_intervention_leaves_the_past_alone_and_changes_the_future(few):
    t_hat = 36
    out = F.intervene_landings(few, t_hat=t_hat, channel=4, alphas=torch.tensor([5.0, 30.0]))
    for a in range(2):
        assert torch.equal(out[a, :, :t_hat].float(), few.x[:, :t_hat])
    assert bool((out[:, :, t_hat, 4] == torch.tensor([5.0, 30.0])[:, None]).all())
    # the speed feeds LONG at t_hat and the speed after it: both runs differ there
    assert bool((out[0, :, t_hat + 1, 4] != out[1, :, t_hat + 1, 4]).all())
    assert bool((out[0, :, t_hat, 1] != out[1, :, t_hat, 1]).all())


def test_latg_intervention_matches_the_closed_form(few):
    """do(LATG^s = LATG^s + d): LATG moves by 0.5^m d and ROLL by 10 d (0.7^m - 0.5^m) / 0.2 after m s; nothing else."""
    s, d = 30, 0.25
    j = torch.arange(len(few))
    own = F.intervene_landings(few, t_hat=47, channel="ROLL", alphas=[0.0])[0, :, s, 0]  # LATG^s in float64
    # one alpha per flight, and the diagonal (alpha j applied to flight j); do(LATG^s = its own value) is a no-op
    base = F.intervene_landings(few, t_hat=s, channel="LATG", alphas=own)[j, j]
    assert torch.equal(base.float(), few.x)
    diff = F.intervene_landings(few, t_hat=s, channel="LATG", alphas=own + d)[j, j] - base
    m = torch.arange(48 - s, dtype=torch.float64)
    torch.testing.assert_close(diff[:, s:, 0], (d * 0.5 ** m).expand(len(few), -1), atol=1e-12, rtol=0)
    roll = 10 * d * (0.7 ** m - 0.5 ** m) / 0.2
    torch.testing.assert_close(diff[:, s:, 3], roll.expand(len(few), -1), atol=1e-12, rtol=0)
    assert bool((diff[:, :, [1, 2, 4]] == 0).all()) and bool((diff[:, :s] == 0).all())


def test_interventions_batch_over_times_channels_and_flights(few):
    t_hats, channels, alphas = torch.tensor([31, 40, 44]), torch.tensor([0, 3, 4]), torch.tensor([0.1, 2.0, 12.0])
    batched = F.intervene_landings(few, t_hat=t_hats, channel=channels, alphas=alphas, index=[2, 7])
    for a in range(3):
        one = F.intervene_landings(few, t_hat=int(t_hats[a]), channel=int(channels[a]), alphas=alphas[a])
        assert torch.equal(batched[a], one[0, [2, 7]])


@pytest.mark.parametrize("kwargs, match", [
    ({"t_hat": 48}, "t_hat"), ({"t_hat": 1.5}, "t_hat"), ({"channel": 5}, "channel"), ({"channel": "YAW"}, "channel"),
    ({"alphas": []}, "alphas"), ({"alphas": [float("nan")]}, "alphas"), ({"t_hat": [1, 2, 3]}, "t_hat"),
    ({"index": [10]}, "index"), ({"index": [0.5]}, "index"),
])
def test_intervention_bad_input(few, kwargs, match):
    args = {"t_hat": 40, "channel": 0, "alphas": [0.0, 1.0], **kwargs}
    with pytest.raises(ValueError, match=match):
        F.intervene_landings(few, **args)


def test_intervention_needs_exogenous_draws(few):
    bare = F.LandingData(few.x, few.is_anomalous, few.brake_onset, few.friction)
    with pytest.raises(ValueError, match="exogenous"):
        F.intervene_landings(bare, t_hat=40, channel=0, alphas=[0.0])
