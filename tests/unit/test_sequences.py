"""Unit tests of causalbook_lib.datasets.sequences (the sign task of App. A.6.1)."""
import pytest
import torch

import causalbook_lib as cb

S = cb.datasets


def test_sign_sequences_distribution():
    g = torch.Generator().manual_seed(0)
    d = S.make_sign_sequences(200_000, generator=g, dtype=torch.float64)
    assert d.x.shape == (200_000, 15, 1) and d.lengths.shape == (200_000,) and d.y.shape == (200_000,)
    # lengths uniform on {10, ..., 15}
    counts = torch.bincount(d.lengths, minlength=16)[10:].double() / len(d)
    torch.testing.assert_close(counts, torch.full((6,), 1 / 6, dtype=torch.float64), atol=0.005, rtol=0)
    assert abs(float(d.y.mean()) - 0.5) < 0.005
    s = (2 * d.y - 1)[:, None]
    lead = d.x[:, :3, 0] - s  # N(0, 0.2^2): 0.2 is a standard deviation
    assert abs(float(lead.mean())) < 0.002 and abs(float(lead.std()) - 0.2) < 0.002
    rest = d.x[:, 3:10, 0]  # every sequence is at least 10 long
    assert abs(float(rest.mean())) < 0.002 and abs(float(rest.std()) - 0.2) < 0.002
    pad = torch.arange(15)[None] >= d.lengths[:, None]
    assert float(d.x[..., 0][pad].abs().max()) == 0.0
    # label = sign of the leading values (up to 5-sigma events)
    assert float(((d.x[:, 0, 0] > 0).double() == d.y).double().mean()) == 1.0


def test_with_length_and_reproducibility():
    a = S.make_sign_sequences(500, generator=torch.Generator().manual_seed(3))
    b = S.make_sign_sequences(500, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a.x, b.x)
    c = a.with_length(13)
    assert c.x.shape[1] == 13 and bool((c.lengths == 13).all()) and len(c) == int((a.lengths >= 13).sum())


def test_impute_step():
    g = torch.Generator().manual_seed(0)
    d = S.make_sign_sequences(100_000, generator=g, dtype=torch.float64)
    out = S.impute_step(d.x, d.lengths, 1, std=0.2, generator=g)
    torch.testing.assert_close(out[:, [0, 2, 3]], d.x[:, [0, 2, 3]])
    assert abs(float(out[:, 1, 0].mean())) < 0.003 and abs(float(out[:, 1, 0].std()) - 0.2) < 0.003


@pytest.mark.parametrize("kwargs, match", [
    (dict(n=0), "n must"), (dict(n=5, T=3), "T must"), (dict(n=5, extra=-1), "extra"),
    (dict(n=5, std=0.0), "std"), (dict(n=5, n_relevant=0), "n_relevant"),
])
def test_bad_input_generator(kwargs, match):
    with pytest.raises(ValueError, match=match):
        S.make_sign_sequences(**kwargs)


def test_bad_input_impute_and_with_length():
    d = S.make_sign_sequences(10)
    with pytest.raises(ValueError, match="step"):
        S.impute_step(d.x, d.lengths, int(d.lengths.min()))
    with pytest.raises(ValueError, match="shape"):
        S.impute_step(d.x[..., 0], d.lengths, 0)
    with pytest.raises(ValueError, match="lengths"):
        S.impute_step(d.x, d.lengths[:3], 0)
    with pytest.raises(ValueError, match="std"):
        S.impute_step(d.x, d.lengths, 0, std=-1.0)
    with pytest.raises(ValueError, match="length"):
        d.with_length(16)
