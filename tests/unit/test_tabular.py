"""Unit tests of causalbook_lib.datasets.tabular: iris, digits and the Berkeley admissions table."""
import numpy as np
import pytest
import torch

import causalbook_lib as cb
from causalbook_lib.datasets.tabular import load_berkeley_admissions, load_digits_split, load_iris_scaled


def test_iris_scaled():
    s = load_iris_scaled()
    assert s.x_train.shape == (150, 4) and s.x_test.shape == (0, 4)
    assert float(s.x_train.min()) == 0.0 and float(s.x_train.max()) == 1.0
    torch.testing.assert_close(s.unscale(s.x_train).max(0).values, s.high)
    assert s.low.dtype == s.high.dtype == torch.float64
    with pytest.raises(ValueError, match="test_fraction"):
        load_iris_scaled(test_fraction=1.0)


def test_digits_split():
    s = load_digits_split(classes=[3, 8], test_fraction=0.25)
    assert s.x_train.shape[1] == 64 and set(s.y_train.tolist()) == {0, 1}
    assert len(s.x_train) + len(s.x_test) == 357
    with pytest.raises(ValueError, match="classes"):
        load_digits_split(classes=[3])


def test_berkeley_counts_and_published_rates():
    d = load_berkeley_admissions()
    assert d.departments == list("ABCDEF") and d.genders == ["men", "women"]
    assert d.admitted.sum(1).tolist() == [1198, 557]
    assert d.applicants.sum(1).tolist() == [2691, 1835]
    np.testing.assert_allclose(d.aggregate_rates(), [1198 / 2691, 557 / 1835])
    assert round(100 * float(d.aggregate_rates()[0]), 1) == 44.5 and round(100 * float(d.aggregate_rates()[1]), 1) == 30.4
    assert d.rates().dtype == torch.float64 and d.admitted.dtype == torch.int64
    assert torch.allclose(d.pooled_department_shares(), d.applicants.sum(0) / torch.tensor(4526.0, dtype=torch.float64))
    assert d.rates()[0, 0] == 512 / 825 and d.rates()[1, 5] == 24 / 341
    assert int((d.rates()[1] > d.rates()[0]).sum()) == 4  # women higher in A, B, D, F
    np.testing.assert_allclose(d.department_shares().sum(1), 1.0)
    # loading twice gives independent arrays
    d.admitted[0, 0] = 0
    assert load_berkeley_admissions().admitted[0, 0] == 512


def test_berkeley_adjusted_rates_by_hand():
    d = load_berkeley_admissions()
    pooled = (d.applicants[0] + d.applicants[1]) / 4526
    by_hand = [sum(d.admitted[g, k] / d.applicants[g, k] * pooled[k] for k in range(6)) for g in range(2)]
    np.testing.assert_allclose(d.adjusted_rates(), by_hand)
    np.testing.assert_allclose(d.adjusted_rates(np.eye(6)[0]), d.rates()[:, 0])
    # weighting by each gender's own department shares gives back the aggregate rates
    np.testing.assert_allclose([d.adjusted_rates(d.department_shares()[g])[g] for g in range(2)],
                               d.aggregate_rates())
    for bad in ([0.5, 0.5], np.full(6, 0.2), np.r_[-0.5, 1.5, np.zeros(4)]):
        with pytest.raises(ValueError, match="probability vector"):
            d.adjusted_rates(bad)


def test_berkeley_frame():
    f = load_berkeley_admissions().to_frame()
    assert len(f) == 12 and f["applicants"].sum() == 4526 and f["admitted"].sum() == 1755


def test_berkeley_scm_reproduces_table():
    d = load_berkeley_admissions()
    scm = d.scm()
    assert set(scm.graph.edges) == {("gender", "department"), ("gender", "admitted"), ("department", "admitted")}
    g = torch.Generator().manual_seed(0)
    n = 400_000
    s = scm.sample(n, g)
    women = s["gender"] == 1
    assert abs(float(women.double().mean()) - 1835 / 4526) < 0.005
    for k, label in enumerate("gender men women".split()[1:]):
        sel = women if k == 1 else ~women
        assert abs(float(s["admitted"][sel].mean()) - d.aggregate_rates()[k]) < 0.005
        shares = torch.bincount(s["department"][sel].long(), minlength=6).double() / sel.sum()
        np.testing.assert_allclose(shares.numpy(), d.department_shares()[k], atol=0.006)
    # the total effect of gender equals the aggregate contrast (no back-door path into gender)
    ace = scm.interventional_mean("admitted", {"gender": 1.0}, n, g) - scm.interventional_mean(
        "admitted", {"gender": 0.0}, n, g)
    assert abs(float(ace) - (d.aggregate_rates()[1] - d.aggregate_rates()[0])) < 0.006
    assert cb.datasets.load_berkeley_admissions is load_berkeley_admissions
