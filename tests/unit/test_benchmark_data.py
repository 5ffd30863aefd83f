"""cb.datasets.benchmark: the scaling problem of chapter 06 ships with the library (not in bench/)."""
import pytest
import torch

import causalbook_lib as cb


def test_benchmark_problem_is_seeded_and_well_formed():
    a, b = cb.datasets.benchmark_network(generator=3), cb.datasets.benchmark_network(generator=3)
    x = torch.zeros(2, 784, dtype=torch.float64)
    assert torch.equal(a(x), b(x)) and a(x).shape == (2, 10)
    mean, cov = cb.datasets.benchmark_inputs()
    assert mean.shape == (784,) and cov.shape == (784, 784)
    assert torch.allclose(cov, cov.T)
    # full rank: the nugget keeps the smallest eigenvalue at least nugget * variance
    assert float(torch.linalg.eigvalsh(cov).min()) > 0.9 * 0.05 * 0.05
    rows = cb.datasets.gaussian_rows(mean, cov, 4000, generator=1)
    # the sample covariance of one pixel pair is close to the model's (Monte Carlo, 4000 draws)
    emp = torch.cov(rows[:, [406, 407]].T)
    assert torch.allclose(emp, cov[[406, 407]][:, [406, 407]], atol=5 * 0.05 / 4000 ** 0.5)


@pytest.mark.parametrize("kwargs, match", [
    ({"gain": 0.0}, "gain"), ({"generator": 1.5}, "generator"), ({"dtype": torch.int64}, "dtype")])
def test_benchmark_network_validates(kwargs, match):
    with pytest.raises(ValueError, match=match):
        cb.datasets.benchmark_network(**kwargs)


def test_benchmark_inputs_validate():
    with pytest.raises(ValueError, match="nugget"):
        cb.datasets.benchmark_inputs(nugget=0.0)
    mean, cov = cb.datasets.benchmark_inputs()
    with pytest.raises(ValueError, match="cov"):
        cb.datasets.gaussian_rows(mean, cov[:5], 3)
