"""Tests of the Part V data generators (causalbook_lib.datasets.ood)."""
import numpy as np
import pytest
import torch

import causalbook_lib as cb
from causalbook_lib.datasets import ood


def test_altitude_temperature_moments_and_mechanism():
    a, t = ood.altitude_temperature(200_000, 2.0, 0.6, generator=1)
    assert a.shape == t.shape == (200_000,)
    assert abs(float(a.mean()) - 2.0) < 0.01 and abs(float(a.std()) - 0.6) < 0.01
    slope = float(torch.cov(torch.stack([a, t]))[0, 1] / a.var())
    assert abs(slope - (-6.5)) < 0.05
    resid = t - (28.0 - 6.5 * a)
    assert abs(float(resid.std()) - 2.0) < 0.02


def test_altitude_temperature_conditionals_match_regression():
    truth = ood.altitude_temperature_conditionals(0.4, 0.15)
    a, t = ood.altitude_temperature(400_000, 0.4, 0.15, generator=2)
    slope, intercept = np.polyfit(t.numpy(), a.numpy(), 1)
    resid = a.numpy() - (slope * t.numpy() + intercept)
    assert abs(slope - truth["anticausal"]["slope"]) < 5e-4  # about 5 standard errors
    assert abs(intercept - truth["anticausal"]["intercept"]) < 1.2e-2  # about 5 standard errors
    assert abs(resid.std() - truth["anticausal"]["residual_std"]) < 1e-3
    assert truth["causal"] == {"slope": -6.5, "intercept": 28.0, "residual_std": 2.0}


def test_altitude_temperature_scm_is_an_scm_with_the_right_graph():
    scm = ood.altitude_temperature_scm(1.0, 0.5)
    assert list(scm.graph.edges) == [("altitude", "temperature")]
    mean, _ = cb.scm.linear_gaussian_moments(["altitude", "temperature"], {("altitude", "temperature"): -6.5},
                                             {"altitude": 0.5, "temperature": 2.0},
                                             {"altitude": 1.0, "temperature": 28.0})
    assert torch.allclose(mean, torch.tensor([1.0, 21.5], dtype=torch.float64))


@pytest.mark.parametrize("kwargs", [dict(n=0, altitude_mean=0.0, altitude_std=1.0),
                                    dict(n=10, altitude_mean=0.0, altitude_std=0.0),
                                    dict(n=10, altitude_mean=float("nan"), altitude_std=1.0),
                                    dict(n=10, altitude_mean=0.0, altitude_std=1.0, noise_std=-1.0),
                                    dict(n=10, altitude_mean=0.0, altitude_std=1.0, generator=-1)])
def test_altitude_temperature_bad_input(kwargs):
    with pytest.raises(ValueError):
        ood.altitude_temperature(**kwargs)


def test_altitude_conditionals_bad_input():
    with pytest.raises(ValueError):
        ood.altitude_temperature_conditionals(0.0, -1.0)


def test_cows_and_camels_frequencies():
    d = ood.cows_and_camels(100_000, 0.9, generator=3)
    assert set(d) == {"creature", "x", "label", "background", "z"}
    assert torch.equal(d["label"], d["creature"])
    match = float((d["background"] == d["label"]).double().mean())
    assert abs(match - 0.9) < 0.005
    assert abs(float(d["x"][d["creature"] == 1].mean()) - 1.0) < 0.02
    assert abs(float(d["z"][d["background"] == 0].std()) - 0.2) < 0.005


def test_cows_and_camels_scm_graph():
    g = ood.cows_and_camels_scm(0.5).graph
    assert set(g.edges) == {("creature", "x"), ("creature", "label"), ("label", "background"), ("background", "z")}


@pytest.mark.parametrize("kwargs", [dict(background_match=1.5), dict(background_match=0.5, creature_noise=0.0),
                                    dict(background_match=0.5, n=-3)])
def test_cows_and_camels_bad_input(kwargs):
    kwargs = {"n": 10, **kwargs}
    with pytest.raises(ValueError):
        ood.cows_and_camels(**kwargs)


def test_coloured_digits_construction():
    envs = ood.coloured_digits((0.1, 0.2, 0.9), generator=0)
    assert [len(e.y) for e in envs] == [599, 599, 599]
    e = envs[0]
    assert e.x.shape == (599, 2, 8, 8) and e.flat().shape == (599, 128) and e.grey().shape == (599, 128)
    # exactly one channel carries the digit, chosen by the colour
    red, green = e.x[:, 0].flatten(1).sum(1), e.x[:, 1].flatten(1).sum(1)
    assert torch.all((e.colour == 1) == (red == 0)) and torch.all((e.colour == 0) == (green == 0))
    # colour agrees with the label at rate 1 - e; shape label at rate 1 - 0.25 (binomial tolerance)
    for env, flip in zip(envs, (0.1, 0.2, 0.9)):
        agree = float((env.colour == env.y).double().mean())
        assert abs(agree - (1 - flip)) < 4 * np.sqrt(flip * (1 - flip) / 599)
    all_y = torch.cat([v.y for v in envs])
    all_shape = torch.cat([(v.digit >= 5).float() for v in envs])
    assert abs(float((all_y == all_shape).double().mean()) - 0.75) < 4 * np.sqrt(0.75 * 0.25 / 1797)
    # the environments partition the digits
    assert sorted(torch.cat([v.digit for v in envs]).bincount().tolist()) == sorted(
        np.bincount(__import__("sklearn.datasets", fromlist=["x"]).load_digits().target).tolist())


def test_coloured_digits_deterministic_and_bad_input():
    a = ood.coloured_digits((0.1, 0.9), generator=5)
    b = ood.coloured_digits((0.1, 0.9), generator=5)
    assert torch.equal(a[1].x, b[1].x) and torch.equal(a[1].y, b[1].y)
    for bad in [dict(colour_flips=(0.1, 1.2)), dict(colour_flips=()), dict(label_noise=-0.1), dict(generator=1.5)]:
        with pytest.raises(ValueError):
            ood.coloured_digits(**bad)


def test_transform_digits_against_hand_computed_images():
    x = torch.zeros(4, 8, 8)
    x[:, 3, 3] = 1.0
    idx = torch.tensor([0, 1, 2, 3])
    out = ood.transform_digits(x, idx, noise_std=0.1, generator=0)
    right, down = torch.zeros(8, 8), torch.zeros(8, 8)
    right[3, 4] = 1.0
    down[4, 3] = 1.0
    assert torch.equal(out[0], right) and torch.equal(out[1], down)
    assert torch.equal(out[3], 1 - x[3])
    assert 0 <= float(out[2].min()) and float(out[2].max()) <= 1 and not torch.equal(out[2], x[2])
    flat = ood.transform_digits(x.reshape(4, 64), idx, noise_std=0.1, generator=0)
    assert torch.equal(flat.reshape(4, 8, 8), out)


@pytest.mark.parametrize("x, idx", [(torch.zeros(3, 63), torch.zeros(3, dtype=torch.long)),
                                    (torch.full((3, 64), 2.0), torch.zeros(3, dtype=torch.long)),
                                    (torch.zeros(3, 64), torch.tensor([0, 1, 4])),
                                    (torch.zeros(3, 64), torch.zeros(2, dtype=torch.long)),
                                    (torch.zeros(3, 64), torch.zeros(3))])
def test_transform_digits_bad_input(x, idx):
    with pytest.raises(ValueError):
        ood.transform_digits(x, idx)


def test_transformed_digits_split():
    d = ood.transformed_digits(generator=0)
    assert len(d.clean) + len(d.transformed) == 1797
    assert d.transformed.shape == d.original.shape and d.index.shape == (len(d.transformed),)
    again = ood.transform_digits(d.original, d.index, generator=0)
    keep = d.index != 2  # noise draws differ by seed; deterministic transformations must agree
    assert torch.equal(again[keep], d.transformed[keep])
    assert d.index.bincount().min() > 180
    with pytest.raises(ValueError):
        ood.transformed_digits(clean_fraction=1.0)
    with pytest.raises(ValueError):
        ood.transformed_digits(noise_std=0.0)


def _rows(x):
    return {tuple(r) for r in x.numpy().round(6).tolist()}


def test_expert_digit_splits_are_disjoint_and_complete():
    d = ood.expert_digit_splits(generator=0)
    images, labels = ood._load_digits_array()
    assert set(d.train_classes) == {0, 1, 2, 3, 4}
    parts = [d.train.original, d.reference, d.test_in.original, d.test_out.original]
    held = d.classifier_x[len(d.train.original) + len(d.reference):]
    assert sum(len(p) for p in parts) + len(held) == len(images) == 1797
    n_in = int(np.isin(labels, range(5)).sum())
    assert len(d.train.original) == round(0.4 * n_in) and len(d.reference) == round(0.3 * n_in)
    # classes: 0-4 for everything the experts and the discriminator see and for test_in, 5-9 for test_out
    assert set(d.train.labels.tolist()) | set(d.test_in.labels.tolist()) == set(range(5))
    assert set(d.test_out.labels.tolist()) == set(range(5, 10))
    # the three splits of 0-4 share no digit (the sklearn digits hold a few exact duplicates, so compare positions)
    seen = _rows(d.train.original) | _rows(d.reference)
    assert len(_rows(d.test_in.original) & seen) <= 2
    assert len(_rows(d.classifier_x) & (_rows(d.test_in.original) | _rows(d.test_out.original))) <= 2
    # every image is a shipped digit with its own label, and the transformations are those of transform_digits
    lookup = {tuple(r): y for r, y in zip(images.round(6).tolist(), labels.tolist())}
    for part in (d.train, d.test_in, d.test_out):
        assert [lookup[tuple(r)] for r in part.original.numpy().round(6).tolist()] == part.labels.tolist()
        keep = part.index != 2  # deterministic transformations
        again = ood.transform_digits(part.original, part.index, generator=0)
        assert torch.equal(again[keep], part.transformed[keep])
    assert torch.equal(d.classifier_y[:len(d.train.labels)], d.train.labels)
    again = ood.expert_digit_splits(generator=0)
    assert torch.equal(again.test_out.transformed, d.test_out.transformed)
    assert not torch.equal(ood.expert_digit_splits(generator=1).reference, d.reference)


@pytest.mark.parametrize("kwargs", [dict(train_classes=()), dict(train_classes=range(10)), dict(train_classes=(1, 1)),
                                    dict(train_classes=(3, 11)), dict(fractions=(0.5, 0.5)), dict(fractions=(0.5, 0.6, -0.1)),
                                    dict(fractions=(0.9996, 0.0002, 0.0002)), dict(test_out_fraction=1.0),
                                    dict(noise_std=0.0), dict(generator=-1), dict(generator=1.5), dict(dtype=torch.int64)])
def test_expert_digit_splits_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        ood.expert_digit_splits(**kwargs)
