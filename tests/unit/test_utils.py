"""Unit tests of causalbook_lib.utils: seeding and the validators every public function uses."""
import numpy as np
import pytest
import torch

import causalbook_lib as cb
from causalbook_lib import utils


def test_seed_everything_repeats_draws():
    g1 = utils.seed_everything(3)
    a = (torch.randn(4), np.random.rand(2), torch.randn(2, generator=g1))
    g2 = utils.seed_everything(3)
    b = (torch.randn(4), np.random.rand(2), torch.randn(2, generator=g2))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and torch.equal(a[2], b[2])


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True])
def test_seed_everything_rejects_bad_seeds(seed):
    with pytest.raises(ValueError, match="seed"):
        utils.seed_everything(seed)


def test_default_device_prefers_cuda_then_mps(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert utils.default_device().type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert utils.default_device().type == "mps"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert utils.default_device().type == "cpu"


def test_as_generator_has_one_meaning():
    # an int is a seed: the same int, the same draws
    a = torch.rand(4, generator=utils.as_generator(7))
    assert torch.equal(a, torch.rand(4, generator=utils.as_generator(7)))
    assert not torch.equal(a, torch.rand(4, generator=utils.as_generator(8)))
    # a Generator is used as it is, and advances
    g = torch.Generator().manual_seed(7)
    assert utils.as_generator(g) is g
    # None follows torch's global state: reproducible after manual_seed, different between calls
    torch.manual_seed(0)
    n1, n2 = torch.rand(4, generator=utils.as_generator()), torch.rand(4, generator=utils.as_generator())
    torch.manual_seed(0)
    assert torch.equal(n1, torch.rand(4, generator=utils.as_generator(None)))
    assert not torch.equal(n1, n2)
    for bad in (-1, True, 1.5, "3", np.random.default_rng(0)):
        with pytest.raises(ValueError, match="generator must be None, a non-negative int or a torch.Generator"):
            utils.as_generator(bad)


def test_seeded_init_seeds_parameters_and_leaves_the_global_state_alone():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    with utils.seeded_init(5):
        w1 = torch.nn.Linear(3, 2).weight.detach().clone()
    assert torch.equal(torch.random.get_rng_state(), before)
    with utils.seeded_init(5):
        assert torch.equal(torch.nn.Linear(3, 2).weight, w1)
    with utils.seeded_init(6):
        assert not torch.equal(torch.nn.Linear(3, 2).weight, w1)
    torch.manual_seed(5)                       # an int is the seed itself
    assert torch.equal(torch.nn.Linear(3, 2).weight, w1)
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    with utils.seeded_init(g1):                # a Generator gives the seed by one draw
        w2 = torch.nn.Linear(3, 2).weight.detach().clone()
    with utils.seeded_init(g2):
        assert torch.equal(torch.nn.Linear(3, 2).weight, w2)
    assert torch.equal(g1.get_state(), g2.get_state()) and not torch.equal(g1.get_state(), torch.Generator().manual_seed(9).get_state())
    with pytest.raises(ValueError, match="generator"):
        with utils.seeded_init(-1):
            pass


def test_check_psd_accepts_covariances_and_names_the_problem():
    a = torch.randn(5, 3, dtype=torch.float64)
    utils.check_psd(a @ a.T, size=5)
    with pytest.raises(ValueError, match="square"):
        utils.check_psd(torch.ones(2, 3))
    with pytest.raises(ValueError, match="3x3"):
        utils.check_psd(torch.eye(2), size=3)
    with pytest.raises(ValueError, match="symmetric"):
        utils.check_psd(torch.tensor([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="semi-definite"):
        utils.check_psd(torch.tensor([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match="finite"):
        utils.check_psd(torch.tensor([[float("nan"), 0.0], [0.0, 1.0]]))


def test_scalar_validators():
    utils.check_interval(0.0, 1.0)
    with pytest.raises(ValueError, match="low must be smaller"):
        utils.check_interval(1.0, 1.0)
    with pytest.raises(ValueError, match="finite"):
        utils.check_interval(0.0, float("inf"))
    assert utils.check_positive_int(3, "n") == 3
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        utils.check_positive_int(0, "n")
    assert utils.check_index(2, "feature", 3) == 2
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        utils.check_index(3, "feature", 3)


def test_tensor_validators():
    t = utils.as_float_tensor([1, 2], "x")
    assert t.dtype == torch.float64
    with pytest.raises(ValueError, match="NaN"):
        utils.as_float_tensor([1.0, float("nan")], "x")
    with pytest.raises(ValueError, match=r"shape \(\*, 3\)"):
        utils.check_shape(torch.zeros(2, 4), "x", (None, 3))
    utils.check_probabilities(torch.tensor([[0.2, 0.8], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="sum to 1"):
        utils.check_probabilities(torch.tensor([[0.2, 0.7]]))
    with pytest.raises(ValueError, match="non-negative"):
        utils.check_probabilities(torch.tensor([[-0.5, 1.5]]))


def test_timer_measures():
    import time

    with utils.timer() as t:
        time.sleep(0.05)
    assert 0.04 <= t["seconds"] < 5.0


def test_version_is_semantic_and_defined_once():
    import re
    from pathlib import Path

    assert re.fullmatch(r"\d+\.\d+\.\d+", cb.__version__)
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert 'version = { attr = "causalbook_lib.__version__" }' in pyproject
    assert not re.search(r"(?m)^version\s*=\s*\"", pyproject), "pyproject.toml must not type the version"


def test_book_seed_reads_the_environment(monkeypatch):
    monkeypatch.delenv("CAUSALBOOK_SEED", raising=False)
    assert utils.book_seed() == 0
    monkeypatch.setenv("CAUSALBOOK_SEED", "3")
    assert utils.book_seed() == 3
    a = torch.randn(3, generator=utils.seed_everything())
    b = torch.randn(3, generator=utils.seed_everything(3))
    assert torch.equal(a, b)


@pytest.mark.parametrize("raw", ["-1", "x", "1.5"])
def test_book_seed_rejects_bad_values(monkeypatch, raw):
    monkeypatch.setenv("CAUSALBOOK_SEED", raw)
    with pytest.raises(ValueError, match="CAUSALBOOK_SEED must be a non-negative integer"):
        utils.book_seed()


def test_glue_records_plain_numbers_and_rejects_vectors():
    assert utils.glue("x", torch.tensor(0.5)).item() == 0.5
    assert utils.glue("y", np.float64(1.5)) == 1.5
    with pytest.raises(ValueError, match="one number"):
        utils.glue("z", torch.ones(3))
    with pytest.raises(ValueError, match="non-empty string"):
        utils.glue("", 1.0)


def test_check_features_labels_shapes_types_and_label_range():
    from causalbook_lib.utils import check_features_labels

    x, y = check_features_labels(torch.zeros(3, 2), torch.tensor([0, 2, 1], dtype=torch.int32), n_classes=3)
    assert y.dtype == torch.int64 and x.shape == (3, 2)
    with pytest.raises(ValueError, match=r"x must have shape \(n, 4\)"):
        check_features_labels(torch.zeros(3, 2), torch.zeros(3, dtype=torch.long), 4)
    with pytest.raises(ValueError, match="1-D integer"):
        check_features_labels(torch.zeros(3, 2), torch.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        check_features_labels(torch.tensor([[float("nan")]]), torch.zeros(1, dtype=torch.long))
    with pytest.raises(ValueError, match=r"labels must hold integer labels in \[0, 2\], got values in \[0, 3\]"):
        check_features_labels(torch.zeros(2, 1), torch.tensor([0, 3]), n_classes=3, y_name="labels")
    with pytest.raises(ValueError, match=r"in \[0, M-1\]"):
        check_features_labels(torch.zeros(2, 1), torch.tensor([-1, 0]))


def test_check_binary():
    from causalbook_lib.utils import check_binary

    t = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    assert check_binary(t, "c") is t or torch.equal(check_binary(t, "c"), t)
    assert check_binary([0, 1, 1], "bits").dtype == torch.int64
    with pytest.raises(ValueError, match=r"c must hold only 0 and 1, got the value 0\.5"):
        check_binary(torch.tensor([0.0, 0.5]), "c")
    with pytest.raises(ValueError, match="only 0 and 1"):
        check_binary(torch.tensor([float("nan")]), "c")


def test_unit_tests_run_on_their_device(device):
    """The conftest fixture: a tensor made without device= lives on the test's device."""
    assert torch.empty(1).device.type == device.type


def test_check_psd_judges_a_stack_matrix_by_matrix():
    good = torch.stack([torch.eye(3), 1e4 * torch.eye(3)]).double()
    utils.check_psd(good, batched=True)
    bad = good.clone()
    bad[0, 0, 0] = -0.5                                   # only the first matrix is indefinite
    with pytest.raises(ValueError, match="covs must be positive semi-definite"):
        utils.check_psd(bad, "covs", batched=True)
    skew = good.clone()
    skew[1, 0, 1] += 1.0                                  # 1e-4 of that matrix's scale: not symmetric
    with pytest.raises(ValueError, match="must be symmetric"):
        utils.check_psd(skew, batched=True)
    with pytest.raises(ValueError, match="a square matrix"):
        utils.check_psd(good)                             # a stack needs batched=True
    with pytest.raises(ValueError, match="stack of square matrices"):
        utils.check_psd(torch.ones(2, 3, 4), batched=True)
