"""Causal graphs on :class:`networkx.DiGraph`: validation, graph surgery and d-separation (Part I).

The book's :doc:`chapter 02 </notebooks/02-d-separation-and-networks>` teaches d-separation by reading
:func:`d_separated`, written by hand as a reachability ("Bayes-ball") search. The unit tests check
it against networkx on hundreds of random DAGs.
"""
from __future__ import annotations

from collections import deque
from typing import Hashable, Iterable

import networkx as nx

from .utils import seed_from

__all__ = ["check_dag", "surgery", "d_separated", "active_trail_nodes", "ancestors_of",
           "satisfies_backdoor", "random_dag"]


def check_dag(graph: nx.DiGraph, name: str = "graph") -> None:
    """Raise ``ValueError`` unless ``graph`` is a ``networkx.DiGraph`` without directed cycles.

    A causal Bayesian network (Chattopadhyay et al., App. A.1) must be acyclic: the book does not
    treat feedback models. The message names one cycle so the reader can find it.
    """
    if not isinstance(graph, nx.DiGraph):
        raise ValueError(f"{name} must be a networkx.DiGraph, got {type(graph).__name__}")
    if graph.is_multigraph():
        raise ValueError(f"{name} must be a simple DiGraph, not a multigraph")
    if not nx.is_directed_acyclic_graph(graph):
        cycle = nx.find_cycle(graph)
        path = " -> ".join(str(u) for u, _ in cycle) + f" -> {cycle[0][0]}"
        raise ValueError(f"{name} must be acyclic, but it has the cycle {path}")


def _as_node_set(graph: nx.DiGraph, nodes, name: str) -> set:
    if isinstance(nodes, (str, bytes)) or not isinstance(nodes, Iterable):
        nodes = [nodes]
    out = set(nodes)
    unknown = [v for v in out if v not in graph]
    if unknown:
        raise ValueError(f"{name} holds node(s) {sorted(map(str, unknown))} that are not in the graph")
    return out


def surgery(graph: nx.DiGraph, intervened) -> nx.DiGraph:
    """The mutilated graph :math:`G_{\\overline{X}}` of an intervention ``do(X = x)``.

    Returns a copy of ``graph`` with every edge *into* a node of ``intervened`` removed (its
    parents are cut, because the intervention, not the mechanism, now sets its value). Nodes keep
    their attributes; the input graph is not changed. See :doc:`chapter 01 </notebooks/01-structural-causal-models>`.

    Args:
        graph: a DAG.
        intervened: one node or an iterable of nodes.

    Raises:
        ValueError: ``graph`` is not a DAG, or a node is not in it.
    """
    check_dag(graph)
    nodes = _as_node_set(graph, intervened, "intervened")
    out = graph.copy()
    out.remove_edges_from([(p, v) for v in nodes for p in graph.predecessors(v)])
    return out


def ancestors_of(graph: nx.DiGraph, nodes) -> set:
    """``An(Z)``: the nodes of ``nodes`` together with every node that has a directed path into one.

    Raises ``ValueError`` on a cyclic graph or unknown nodes.
    """
    check_dag(graph)
    zs = _as_node_set(graph, nodes, "nodes")
    out = set(zs)
    stack = list(zs)
    while stack:
        for p in graph.predecessors(stack.pop()):
            if p not in out:
                out.add(p)
                stack.append(p)
    return out


def active_trail_nodes(graph: nx.DiGraph, source: Hashable, zs=()) -> set:
    """Every node reachable from ``source`` along a trail that is active given ``zs``.

    This is the reachability ("Bayes-ball") search of Koller & Friedman (Alg. 3.1). A trail is
    walked edge by edge; the state is ``(node, direction)``, where ``"up"`` means we arrived
    from a child (moving against an edge) and ``"down"`` means we arrived from a parent. At a node
    ``v`` that is not conditioned on we may continue anywhere except that, having come down into
    ``v``, we may only leave downwards (``a -> v -> b`` chain) unless ``v`` opens a collider.
    The rules, for a step through ``v``:

    * chain or fork through ``v`` (``v`` is not a collider on the trail): passes iff ``v`` not in Z;
    * collider ``a -> v <- b``: passes iff ``v`` is in ``An(Z)`` (``v`` or a descendant observed).

    Returns the set of reachable nodes, not including the nodes of ``zs`` and including
    ``source`` itself. Raises ``ValueError`` on a cycle, unknown nodes, or ``source`` in ``zs``.
    """
    check_dag(graph)
    if source not in graph:
        raise ValueError(f"source {source!r} is not in the graph")
    z = _as_node_set(graph, zs, "zs")
    if source in z:
        raise ValueError(f"source {source!r} must not be in the conditioning set")
    anc_z = ancestors_of(graph, z) if z else set()
    visited: set[tuple] = set()
    reachable: set = set()
    queue = deque([(source, "up")])  # leaving the source is allowed in both directions
    while queue:
        v, direction = queue.popleft()
        if (v, direction) in visited:
            continue
        visited.add((v, direction))
        if v not in z:
            reachable.add(v)
        if direction == "up" and v not in z:
            # came from a child (or v is the source): v is a fork or chain middle, not a collider
            queue.extend((p, "up") for p in graph.predecessors(v))
            queue.extend((c, "down") for c in graph.successors(v))
        elif direction == "down":
            # came from a parent: continue down a chain if v is unobserved ...
            if v not in z:
                queue.extend((c, "down") for c in graph.successors(v))
            # ... and turn back up through a collider if v is in An(Z)
            if v in anc_z:
                queue.extend((p, "up") for p in graph.predecessors(v))
    return reachable


def _three_node_sets(graph: nx.DiGraph, sets, names) -> tuple[set, set, set]:
    """Check that ``graph`` is a DAG and read three node sets; the first two must not be empty."""
    check_dag(graph)
    x, y, z = (_as_node_set(graph, nodes, name) for nodes, name in zip(sets, names))
    if not x or not y:
        raise ValueError(f"{names[0]} and {names[1]} must each hold at least one node")
    return x, y, z


def d_separated(graph: nx.DiGraph, xs, ys, zs=()) -> bool:
    """Whether every trail between ``xs`` and ``ys`` is blocked by ``zs`` in the DAG ``graph``.

    Definition (Chattopadhyay et al., Def. A.2; Pearl 2009): a trail is *blocked* by Z if it holds
    a non-collider that is in Z, or a collider :math:`a \\to v \\leftarrow b` such that neither
    ``v`` nor any descendant of ``v`` is in Z. X and Y are d-separated by Z,
    :math:`X \\perp_G Y \\mid Z`, if every trail from a node of X to a node of Y is blocked.

    Implementation: one reachability search (:func:`active_trail_nodes`) from each node of X;
    linear in the size of the graph per source. See :doc:`chapter 02 </notebooks/02-d-separation-and-networks>`.

    Args:
        graph: a ``networkx.DiGraph`` without cycles.
        xs, ys, zs: a node or an iterable of nodes each; ``zs`` may be empty.

    Raises:
        ValueError: ``graph`` has a cycle or is not a DiGraph; a node is unknown; ``xs`` or ``ys``
            is empty; or two of the three sets overlap.
    """
    x, y, z = _three_node_sets(graph, (xs, ys, zs), ("xs", "ys", "zs"))
    for a, b, na, nb in ((x, y, "xs", "ys"), (x, z, "xs", "zs"), (y, z, "ys", "zs")):
        common = a & b
        if common:
            raise ValueError(f"{na} and {nb} must be disjoint, but both hold {sorted(map(str, common))}")
    for source in x:
        if active_trail_nodes(graph, source, z) & y:
            return False
    return True


def satisfies_backdoor(graph: nx.DiGraph, treatment, outcome, adjustment=()) -> bool:
    """Pearl's back-door criterion: may ``adjustment`` (Z) be used to identify the effect of X on Y?

    Z satisfies the criterion relative to (X, Y) when (i) no node of Z is a descendant of X and
    (ii) Z blocks every back-door path (a trail that starts with an edge *into* X), i.e. X and Y
    are d-separated by Z in the graph with the edges *out of* X removed. Then

    .. math:: P(y \\mid do(x)) = \\sum_z P(y \\mid x, z)\\, P(z).

    Raises ``ValueError`` as :func:`d_separated` does (cycle, unknown nodes, overlapping sets).
    """
    x, y, z = _three_node_sets(graph, (treatment, outcome, adjustment), ("treatment", "outcome", "adjustment"))
    descendants = set().union(*(nx.descendants(graph, v) for v in x))
    if z & descendants:
        return False
    pruned = graph.copy()
    pruned.remove_edges_from([(v, c) for v in x for c in graph.successors(v)])
    return d_separated(pruned, x, y, z)


def random_dag(n_nodes: int, edge_probability: float, generator=0) -> nx.DiGraph:
    """A random DAG on nodes ``0..n_nodes-1``: each edge ``i -> j`` with ``i < j`` is present with
    probability ``edge_probability`` (an Erdos-Renyi graph oriented by a fixed order).

    ``generator`` is ``None``, an int seed or a ``torch.Generator`` (:func:`causalbook_lib.utils.as_generator`;
    the coin flips are NumPy's, seeded with :func:`causalbook_lib.utils.seed_from`).

    Raises ``ValueError`` for ``n_nodes < 1``, a probability outside [0, 1] or a bad ``generator``.
    """
    import numpy as np

    if isinstance(n_nodes, bool) or not isinstance(n_nodes, (int, np.integer)) or n_nodes < 1:
        raise ValueError(f"n_nodes must be an integer >= 1, got {n_nodes!r}")
    if not 0.0 <= float(edge_probability) <= 1.0:
        raise ValueError(f"edge_probability must lie in [0, 1], got {edge_probability!r}")
    rng = np.random.default_rng(seed_from(generator))
    upper = np.triu(rng.random((n_nodes, n_nodes)) < edge_probability, k=1)
    graph = nx.DiGraph()
    graph.add_nodes_from(range(int(n_nodes)))
    graph.add_edges_from((int(i), int(j)) for i, j in zip(*np.nonzero(upper)))
    return graph
