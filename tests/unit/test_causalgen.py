"""Unit tests for causalbook_lib.causalgen (causal controller, competitive mixture)."""

import numpy as np
import pytest
import torch

from causalbook_lib import causalgen as cg
from causalbook_lib.datasets import FACE_CPTS, FACE_PARENTS


@pytest.fixture
def controller():
    return cg.CausalController.from_tables(FACE_PARENTS, FACE_CPTS)


def test_joint_is_a_distribution(controller):
    states, p = controller.joint()
    assert states.shape == (32, 5)
    assert float(p.sum()) == pytest.approx(1.0, abs=1e-12)


def test_marginals_hand_calculated(controller):
    cond = controller.marginals(given={"Mustache": 1})
    # P(Mustache=1, Young=1) = 0.6*0.5*0.3 = 0.09; P(Mustache=1, Young=0) = 0.4*0.5*0.5 = 0.10
    assert float(cond[controller.names.index("Male")]) == pytest.approx(1.0, abs=1e-12)
    assert float(cond[controller.names.index("Young")]) == pytest.approx(0.09 / 0.19, abs=1e-12)
    do = controller.marginals(do={"Mustache": 1})
    torch.testing.assert_close(do, torch.tensor([0.6, 0.5, 0.124, 1.0, 0.5], dtype=torch.float64))
    # intervening on a root equals conditioning on it
    torch.testing.assert_close(controller.marginals(do={"Male": 1}), controller.marginals(given={"Male": 1}))


def test_sample_matches_exact(controller):
    g = torch.Generator().manual_seed(0)
    for do in (None, {"Mustache": 1}, {"Young": 0}):
        x = controller.sample(100_000, g, do=do)
        torch.testing.assert_close(x.mean(0), controller.marginals(do=do), atol=0.006, rtol=0)


def test_sample_conditional_matches_exact(controller):
    g = torch.Generator().manual_seed(1)
    x = controller.sample_conditional(100_000, {"Mustache": 1}, g)
    torch.testing.assert_close(x.mean(0), controller.marginals(given={"Mustache": 1}), atol=0.006, rtol=0)


def test_to_scm_is_an_scm_with_the_same_graph(controller):
    scm = controller.to_scm()
    assert set(scm.graph.edges) == {("Young", "Bald"), ("Male", "Bald"), ("Young", "Mustache"), ("Male", "Mustache")}


def test_fit_recovers_counts_exactly():
    parents = {"A": (), "B": ("A",)}
    data = torch.tensor([[0, 0], [0, 1], [0, 1], [1, 1], [1, 0], [1, 1], [1, 1]], dtype=torch.float64)
    c = cg.CausalController.fit(parents, data, smoothing=0.0)
    assert float(c.probs["A"][0]) == pytest.approx(4 / 7)
    torch.testing.assert_close(c.probs["B"], torch.tensor([2 / 3, 3 / 4], dtype=torch.float64))
    c1 = cg.CausalController.fit(parents, data, smoothing=1.0)
    torch.testing.assert_close(c1.probs["B"], torch.tensor([3 / 5, 4 / 6], dtype=torch.float64))


def test_fit_on_large_sample(controller):
    x = controller.sample(200_000, torch.Generator().manual_seed(2))
    fitted = cg.CausalController.fit(FACE_PARENTS, x)
    for k in controller.names:
        torch.testing.assert_close(fitted.probs[k], controller.probs[k], atol=0.01, rtol=0)


def test_controller_rejects_bad_input(controller):
    with pytest.raises(ValueError, match="acyclic"):
        cg.CausalController({"A": ("B",), "B": ("A",)}, {"A": [0.5, 0.5], "B": [0.5, 0.5]})
    with pytest.raises(ValueError, match="not an attribute"):
        cg.CausalController({"A": ("Z",)}, {"A": [0.5, 0.5]})
    with pytest.raises(ValueError, match="entries"):
        cg.CausalController({"A": ()}, {"A": [0.5, 0.5]})
    with pytest.raises(ValueError, match="probabilities"):
        cg.CausalController({"A": ()}, {"A": [1.5]})
    with pytest.raises(ValueError, match="lacks"):
        cg.CausalController.from_tables({"A": ("B",), "B": ()}, {"A": {(0,): 0.1}, "B": {(): 0.5}})
    with pytest.raises(ValueError, match="unknown attribute"):
        controller.sample(10, do={"Beard": 1})
    with pytest.raises(ValueError, match="0 or 1"):
        controller.sample(10, do={"Male": 2})
    with pytest.raises(ValueError, match="probability zero"):
        controller.marginals(given={"Male": 0, "Mustache": 1})
    with pytest.raises(ValueError):
        controller.sample(0)
    with pytest.raises(ValueError):
        cg.CausalController.fit(FACE_PARENTS, torch.full((3, 5), 2.0))
    with pytest.raises(ValueError):
        cg.CausalController.fit(FACE_PARENTS, torch.zeros(3, 4))


def test_competitive_mixture_separates_two_modes():
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    n = 300
    labels = torch.arange(n) % 2
    proto = torch.tensor([[0.95] * 8 + [0.05] * 8, [0.05] * 8 + [0.95] * 8])
    x = torch.bernoulli(proto[labels], generator=g)
    mix = cg.CompetitiveMixture(2, 16, latent_dim=1, hidden=8)
    shares = cg.train_competitive_mixture(mix, x, epochs=25, warmup_epochs=2, batch_size=50, generator=g)
    assert shares.shape == (25, 2)
    torch.testing.assert_close(shares.sum(1), torch.ones(25))
    assert mix.elbos(x[:5]).shape == (5, 2)
    owner = mix.assign(x, generator=g)
    assert cg.cluster_purity(owner.numpy(), labels.numpy()) == 1.0


def test_mixture_rejects_bad_input():
    with pytest.raises(ValueError):
        cg.CompetitiveMixture(1, 4)
    mix = cg.CompetitiveMixture(2, 4)
    with pytest.raises(ValueError):
        cg.train_competitive_mixture(mix, torch.zeros(5, 3))
    with pytest.raises(ValueError):
        cg.train_competitive_mixture(mix, torch.zeros(5, 4), epochs=0)
    with pytest.raises(ValueError):
        mix.assign(torch.zeros(5, 4), n_samples=0)


def test_cluster_purity_hand_case():
    assert cg.cluster_purity(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1])) == 0.75
    assert cg.cluster_purity(np.array([2, 2, 0]), np.array([5, 5, 1])) == 1.0
    with pytest.raises(ValueError):
        cg.cluster_purity(np.array([0, 1]), np.array([0]))
    with pytest.raises(ValueError):
        cg.cluster_purity(np.array([0.5, 1.0]), np.array([0, 1]))
    with pytest.raises(ValueError):
        cg.cluster_purity(np.array([], dtype=int), np.array([], dtype=int))


def test_cluster_purity_takes_any_integer_ids():
    """Regression (library review §5.3): negative cluster ids were counted in the wrong rows, so a
    perfect clustering scored 0.5. Checked against a brute-force count."""
    assert cg.cluster_purity(np.array([-1, -1, 0, 0]), np.array([1, 1, 0, 0])) == 1.0
    rng = np.random.default_rng(0)
    a, y = rng.integers(-3, 4, 200), rng.integers(-2, 3, 200)
    brute = sum(max(int(np.sum((a == j) & (y == v))) for v in np.unique(y)) for j in np.unique(a)) / len(a)
    assert cg.cluster_purity(a, y) == pytest.approx(brute)
