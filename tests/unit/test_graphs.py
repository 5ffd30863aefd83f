"""Unit tests of causalbook_lib.graphs: d-separation against networkx, surgery and bad input."""
import itertools

import networkx as nx
import numpy as np
import pytest

from causalbook_lib.graphs import (active_trail_nodes, ancestors_of, check_dag, d_separated, random_dag,
                                   satisfies_backdoor, surgery)

_nx_dsep = getattr(nx, "is_d_separator", None) or getattr(nx, "d_separated")


def dg(*edges):
    g = nx.DiGraph()
    g.add_edges_from(edges)
    return g


def test_textbook_structures():
    chain = dg(("a", "b"), ("b", "c"))
    fork = dg(("b", "a"), ("b", "c"))
    collider = dg(("a", "b"), ("c", "b"), ("b", "d"))
    for g in (chain, fork):
        assert not d_separated(g, "a", "c")
        assert d_separated(g, "a", "c", "b")
    assert d_separated(collider, "a", "c")
    assert not d_separated(collider, "a", "c", "b")
    assert not d_separated(collider, "a", "c", "d")  # a descendant of the collider opens it


def test_m_bias_and_sets():
    # M-graph: a -> m <- b, a -> x, b -> y
    g = dg(("a", "m"), ("b", "m"), ("a", "x"), ("b", "y"))
    assert d_separated(g, "x", "y")
    assert not d_separated(g, "x", "y", ["m"])
    assert d_separated(g, "x", "y", ["m", "a"])
    assert d_separated(g, {"x", "a"}, {"y"}, [])
    assert not d_separated(g, ["x"], ["y", "m"])


@pytest.mark.parametrize("seed", range(300))
def test_against_networkx_on_random_dags(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 10))
    g = random_dag(n, float(rng.uniform(0.15, 0.6)), generator=seed)
    nodes = list(g.nodes)
    for _ in range(8):
        perm = rng.permutation(nodes)
        k_x, k_y = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        k_z = int(rng.integers(0, max(1, n - k_x - k_y) + 1))
        x = set(perm[:k_x].tolist())
        y = set(perm[k_x:k_x + k_y].tolist())
        z = set(perm[k_x + k_y:k_x + k_y + k_z].tolist())
        if not y:
            continue
        assert d_separated(g, x, y, z) == _nx_dsep(g, x, y, z), (sorted(g.edges), x, y, z)


def test_exhaustive_small_graph_against_networkx():
    g = dg((0, 2), (1, 2), (2, 3), (1, 4), (4, 3), (3, 5))
    nodes = list(g)
    count = 0
    for a, b in itertools.combinations(nodes, 2):
        rest = [v for v in nodes if v not in (a, b)]
        for r in range(len(rest) + 1):
            for z in itertools.combinations(rest, r):
                assert d_separated(g, a, b, z) == _nx_dsep(g, {a}, {b}, set(z))
                count += 1
    assert count == 15 * 16


def test_active_trail_nodes_and_ancestors():
    g = dg(("a", "b"), ("c", "b"), ("b", "d"))
    assert active_trail_nodes(g, "a") == {"a", "b", "d"}
    assert active_trail_nodes(g, "a", ["d"]) == {"a", "b", "c"}
    assert ancestors_of(g, ["d"]) == {"a", "b", "c", "d"}
    assert ancestors_of(g, []) == set()


def test_surgery_cuts_incoming_edges_only():
    g = dg(("z", "x"), ("x", "y"), ("z", "y"))
    g.nodes["x"]["label"] = "treatment"
    m = surgery(g, "x")
    assert set(m.edges) == {("x", "y"), ("z", "y")}
    assert m.nodes["x"]["label"] == "treatment"
    assert set(g.edges) == {("z", "x"), ("x", "y"), ("z", "y")}  # input unchanged
    both = surgery(g, ["x", "y"])
    assert both.number_of_edges() == 0 and set(both) == {"x", "y", "z"}
    # after do(x), x is d-separated from its former parent z
    assert d_separated(m, "x", "z") and not d_separated(g, "x", "z")


def test_backdoor_criterion():
    g = dg(("z", "x"), ("z", "y"), ("x", "m"), ("m", "y"))
    assert not satisfies_backdoor(g, "x", "y")
    assert satisfies_backdoor(g, "x", "y", ["z"])
    assert not satisfies_backdoor(g, "x", "y", ["z", "m"])  # m is a descendant of x
    # Berkeley: gender -> department -> admitted, gender -> admitted
    b = dg(("G", "D"), ("D", "A"), ("G", "A"))
    assert satisfies_backdoor(b, "G", "A")          # gender has no back-door path
    assert not satisfies_backdoor(b, "G", "A", ["D"])  # a mediator is not an adjustment set
    assert satisfies_backdoor(b, "D", "A", ["G"]) and not satisfies_backdoor(b, "D", "A")
    # M-bias: adjusting for the collider opens a path
    mb = dg(("a", "m"), ("b", "m"), ("a", "x"), ("b", "y"), ("x", "y"))
    assert satisfies_backdoor(mb, "x", "y") and not satisfies_backdoor(mb, "x", "y", ["m"])
    with pytest.raises(ValueError, match="disjoint"):
        satisfies_backdoor(g, "x", "y", ["x"])
    with pytest.raises(ValueError, match="not in the graph"):
        satisfies_backdoor(g, "x", "w")


def test_random_dag():
    g = random_dag(12, 0.5, generator=3)
    assert nx.is_directed_acyclic_graph(g) and set(g) == set(range(12))
    assert all(u < v for u, v in g.edges)
    assert random_dag(5, 0.0).number_of_edges() == 0
    assert random_dag(5, 1.0).number_of_edges() == 10


# ----------------------------------------------------------------------------- bad input
def test_bad_input():
    cyc = dg(("a", "b"), ("b", "a"))
    g = dg(("a", "b"), ("b", "c"))
    with pytest.raises(ValueError, match="cycle"):
        d_separated(cyc, "a", "b")
    with pytest.raises(ValueError, match="DiGraph"):
        d_separated(nx.Graph([("a", "b")]), "a", "b")
    with pytest.raises(ValueError, match="not in the graph"):
        d_separated(g, "a", "w")
    with pytest.raises(ValueError, match="disjoint"):
        d_separated(g, "a", ["a", "c"])
    with pytest.raises(ValueError, match="disjoint"):
        d_separated(g, "a", "c", ["a"])
    with pytest.raises(ValueError, match="disjoint"):
        d_separated(g, "a", "c", ["c"])
    with pytest.raises(ValueError, match="at least one"):
        d_separated(g, [], "c")
    with pytest.raises(ValueError, match="cycle"):
        surgery(cyc, "a")
    with pytest.raises(ValueError, match="not in the graph"):
        surgery(g, "w")
    with pytest.raises(ValueError, match="conditioning"):
        active_trail_nodes(g, "a", ["a"])
    with pytest.raises(ValueError, match="not in the graph"):
        active_trail_nodes(g, "w")
    with pytest.raises(ValueError, match="cycle"):
        check_dag(cyc)
    with pytest.raises(ValueError, match="n_nodes"):
        random_dag(0, 0.5)
    with pytest.raises(ValueError, match="edge_probability"):
        random_dag(3, 1.5)
    with pytest.raises(ValueError, match="not in the graph"):
        ancestors_of(g, ["w"])


def test_draw_dag():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from causalbook_lib.plotting import draw_dag
    g = dg(("z", "x"), ("x", "y"), ("z", "y"))
    fig, ax = plt.subplots()
    pos = draw_dag(ax, surgery(g, "x"), highlight=["x"], dashed_edges=[("z", "x")], title="do(x)")
    assert set(pos) == {"x", "y", "z"}
    assert pos["z"][0] < pos["y"][0]  # z (a root) is drawn left of y (a sink)
    assert ax.get_title() == "do(x)"
    with pytest.raises(ValueError, match="cycle"):
        draw_dag(ax, dg(("a", "b"), ("b", "a")))
    with pytest.raises(ValueError, match="not in the graph"):
        draw_dag(ax, g, highlight=["w"])
    plt.close(fig)


def test_backdoor_criterion_with_two_treatments():
    """A joint treatment {x1, x2}: every back-door path into either treatment must be blocked, and no
    adjustment node may descend from either (review m17)."""
    g = dg(("z", "x1"), ("z", "y"), ("x1", "x2"), ("x2", "y"), ("w", "x2"), ("w", "y"), ("x2", "m"), ("m", "y"))
    assert satisfies_backdoor(g, ["x1", "x2"], "y", ["z", "w"])
    assert not satisfies_backdoor(g, ["x1", "x2"], "y", ["z"])        # x2 <- w -> y stays open
    assert not satisfies_backdoor(g, ["x1", "x2"], "y", ["w"])        # x1 <- z -> y stays open
    assert not satisfies_backdoor(g, ["x1", "x2"], "y", ["z", "w", "m"])  # m descends from x2
    # one treatment alone: x2's back-door paths run through x1 <- z and through w
    assert satisfies_backdoor(g, "x2", "y", ["x1", "w"]) and not satisfies_backdoor(g, "x2", "y", ["w"])
