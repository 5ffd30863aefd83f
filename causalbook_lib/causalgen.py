"""Causal generation: a causal controller over binary attributes feeding a conditional generator,
and a mixture of competing generators (Part V, :doc:`chapter 16 </notebooks/16-causal-generation>`).

* :class:`CausalController` is a structural causal model over binary attributes. Each attribute
  is ``X_i := 1[U_i < p_i(pa_i)]`` with independent uniform noises ``U_i``, and ``p_i`` is a table
  indexed by the parents' values. It samples observationally, under ``do()``, and under
  conditioning, and computes the exact distributions by enumeration (the ground truth for the
  Monte Carlo frequencies). It plays the role of CausalGAN's causal controller (Kocaoglu et al.):
  there the controller is a neural network trained adversarially; for binary attributes with a
  known graph the table of :meth:`CausalController.fit` (conditional frequencies, add-one smoothed by
  default) is the same model class.
* :class:`causalbook_lib.vae.ConditionalVAE` maps (noise, attributes) to images;
  :func:`causalbook_lib.vae.train_vae` fits it.
* :class:`CompetitiveMixture` and :func:`train_competitive_mixture` implement the competitive
  training of K independent VAEs in the spirit of Locatello et al.: every training point is given
  to the generator that explains it best, so the generators split the data into modes.
* :func:`decode_attribute_grid` and :func:`minimal_attribute_edits` explain a classifier by
  counterfactual images in the spirit of Liu et al. (2019): every row is drawn under every binary
  attribute vector, and the smallest change of the attributes that moves the classifier's decision
  to a target class is the explanation. The same search runs on a generator's images and on a true
  renderer's, which is how the chapter measures the generator's fidelity.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import networkx as nx
import numpy as np
import torch
from torch import nn

from .scm import SCM, binary_scm, parent_configuration_index, probability_table
from .utils import as_generator, check_binary, check_positive_int
from .vae import ConditionalVAE

__all__ = [
    "CausalController",
    "CompetitiveMixture",
    "train_competitive_mixture",
    "cluster_purity",
    "binary_states",
    "decode_attribute_grid",
    "AttributeEdits",
    "minimal_attribute_edits",
]


# --------------------------------------------------------------------------------------------
# Causal controller
# --------------------------------------------------------------------------------------------
class CausalController:
    """A binary structural causal model used as a causal controller (:doc:`chapter 16 </notebooks/16-causal-generation>`).

    Math: for each attribute ``i`` in topological order, ``X_i := 1[U_i < p_i(pa_i)]`` with
    ``U_i ~ Uniform(0, 1)`` independent, so ``P(X_i = 1 | pa_i) = p_i(pa_i)``. An intervention
    ``do(X_j = v)`` replaces the mechanism of ``X_j`` by the constant ``v``; conditioning on
    ``X_j = v`` keeps every mechanism and restricts attention to the samples with ``X_j = v``.

    Args:
        parents: mapping attribute name -> tuple of parent names (the causal graph, a DAG).
        probs: mapping attribute name -> float64 tensor of shape (2 ** len(parents),) holding
            ``P(X = 1 | parents)``; entry ``k`` is the parent configuration whose bits, read with the
            first parent as the most significant bit, spell ``k``.
    Raises:
        ValueError: unknown parent names, a cycle, wrong table sizes, or probabilities outside [0, 1].
    """

    def __init__(self, parents: Mapping[str, Sequence[str]], probs: Mapping[str, torch.Tensor]):
        parents = {str(k): tuple(v) for k, v in parents.items()}
        if not parents:
            raise ValueError("parents must name at least one attribute")
        graph = nx.DiGraph()
        graph.add_nodes_from(parents)
        for child, pa in parents.items():
            for p in pa:
                if p not in parents:
                    raise ValueError(f"parent {p!r} of {child!r} is not an attribute; attributes are {list(parents)}")
                graph.add_edge(p, child)
        if not nx.is_directed_acyclic_graph(graph):
            raise ValueError(f"the attribute graph must be acyclic, but it has the cycle {nx.find_cycle(graph)}")
        if set(probs) != set(parents):
            raise ValueError(f"probs must have one table per attribute {sorted(parents)}, got {sorted(probs)}")
        self.graph = graph
        self.parents = parents
        self.names = tuple(parents)  # column order = the order given
        self.order = tuple(nx.lexicographical_topological_sort(graph, key=self.names.index))
        self.probs = {name: probability_table(parents[name], table, name) for name, table in probs.items()}
        self.scm = self.to_scm()

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_tables(cls, parents: Mapping[str, Sequence[str]],
                    cpts: Mapping[str, Mapping[tuple, float]]) -> "CausalController":
        """Build a controller from tables keyed by tuples of parent values, e.g. ``{(0, 1): 0.45, ...}``.

        Raises:
            ValueError: a table misses a parent configuration (see also the class constructor).
        """
        probs = {}
        for name, pa in parents.items():
            if name not in cpts:
                raise ValueError(f"cpts lacks a table for {name!r}")
            probs[name] = probability_table(pa, cpts[name], name)
        return cls(parents, probs)

    @classmethod
    def fit(cls, parents: Mapping[str, Sequence[str]], data, smoothing: float = 1.0) -> "CausalController":
        """Fit every table from binary data by smoothed conditional frequencies.

        ``P(X_i = 1 | pa_i = k) = (count(X_i = 1, pa_i = k) + s) / (count(pa_i = k) + 2 s)``.
        With ``s = 0`` this is the maximum-likelihood estimate; with ``s > 0`` it is the posterior mean
        under a Beta(s, s) prior on each entry (``s = 1``, the default, is Laplace's rule of succession),
        not the maximum-likelihood estimate. With a known graph it gives the causal controller of
        :doc:`chapter 16 </notebooks/16-causal-generation>`.

        Args:
            parents: the causal graph (see the class docstring); the columns of ``data`` follow its order.
            data: (n, d) array of 0/1 values.
            smoothing: pseudo-count ``s >= 0``.
        Raises:
            ValueError: wrong shape, values other than 0/1, or negative smoothing.
        """
        x = _check_binary(data, len(parents), "data")
        if not (isinstance(smoothing, (int, float)) and smoothing >= 0):
            raise ValueError(f"smoothing must be a number >= 0, got {smoothing!r}")
        names = list(parents)
        probs = {}
        for i, name in enumerate(names):
            pa_idx = [names.index(p) for p in parents[name]]
            k = parent_configuration_index(x[:, pa_idx]) if pa_idx else torch.zeros(len(x), dtype=torch.long)
            size = 2 ** len(pa_idx)
            ones = torch.zeros(size, dtype=torch.float64).index_add_(0, k, x[:, i])
            total = torch.zeros(size, dtype=torch.float64).index_add_(0, k, torch.ones_like(x[:, i]))
            probs[name] = (ones + smoothing) / (total + 2 * smoothing).clamp_min(1e-300)
            probs[name] = torch.where(total + 2 * smoothing > 0, probs[name], torch.full_like(ones, 0.5))
        return cls(parents, probs)

    # -- sampling ----------------------------------------------------------------------------
    def _check_assignment(self, assignment: Mapping[str, int] | None, what: str) -> dict[str, float]:
        if assignment is None:
            return {}
        out = {}
        for k, v in assignment.items():
            if k not in self.parents:
                raise ValueError(f"{what}: unknown attribute {k!r}; attributes are {list(self.names)}")
            if v not in (0, 1):
                raise ValueError(f"{what}: the value of {k!r} must be 0 or 1, got {v!r}")
            out[k] = float(v)
        return out

    def to_scm(self) -> SCM:
        """The controller as a :class:`causalbook_lib.scm.SCM` of :func:`causalbook_lib.scm.bernoulli` variables.

        Each variable is ``1[U < p(pa)]`` with ``U ~ Uniform(0, 1)``, the table lookup done on
        whole batches. :meth:`sample` draws from this SCM (and from its ``do()``).
        """
        return binary_scm(self.parents, self.probs)

    def sample(self, n: int, generator=None, do: Mapping[str, int] | None = None) -> torch.Tensor:
        """Draw ``n`` attribute vectors by ancestral sampling of :meth:`to_scm`, optionally under ``do(...)``.

        ``generator`` is ``None``, an int seed or a ``torch.Generator`` (:func:`causalbook_lib.utils.as_generator`).

        Returns:
            (n, d) float64 tensor of 0/1 values, columns in ``names`` order.
        Raises:
            ValueError: ``n`` is not a positive integer, or ``do`` names an unknown attribute or a
                value other than 0/1.
        """
        n = check_positive_int(n, "n")
        do = self._check_assignment(do, "do")
        model = self.scm.do(do) if do else self.scm
        values = model.sample(n, as_generator(generator))
        return torch.stack([values[name].to(torch.float64).expand(n) for name in self.names], dim=1)

    def _parent_index(self, x: torch.Tensor, name: str) -> torch.Tensor:
        pa = [self.names.index(p) for p in self.parents[name]]
        if not pa:
            return torch.zeros(x.shape[0], dtype=torch.long)
        return parent_configuration_index(x[:, pa])

    def joint(self, do: Mapping[str, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The exact joint distribution by enumerating all ``2 ** d`` attribute vectors.

        Returns:
            ``(states, probs)``: states (2 ** d, d) float64 0/1, probs (2 ** d,) float64 summing to 1.
        Raises:
            ValueError: bad ``do`` (see :meth:`sample`).
        """
        do = self._check_assignment(do, "do")
        d = len(self.names)
        states = binary_states(d)
        prob = torch.ones(len(states), dtype=torch.float64)
        for j, name in enumerate(self.names):
            if name in do:
                prob = prob * (states[:, j] == do[name]).to(torch.float64)
            else:
                p1 = self.probs[name][self._parent_index(states, name)]
                prob = prob * torch.where(states[:, j] == 1, p1, 1 - p1)
        return states, prob

    def marginals(self, do: Mapping[str, int] | None = None,
                  given: Mapping[str, int] | None = None) -> torch.Tensor:
        """Exact ``P(X_i = 1 | given; do)`` for every attribute, by enumeration.

        Returns:
            (d,) float64 tensor.
        Raises:
            ValueError: bad ``do`` / ``given``, or ``given`` has probability zero.
        """
        states, prob = self.joint(do)
        given = self._check_assignment(given, "given")
        mask = torch.ones(len(states), dtype=torch.bool)
        for k, v in given.items():
            mask &= states[:, self.names.index(k)] == v
        total = prob[mask].sum()
        if float(total) <= 0:
            raise ValueError(f"the event {given} has probability zero; cannot condition on it")
        return (prob[mask, None] * states[mask]).sum(0) / total

    def sample_conditional(self, n: int, given: Mapping[str, int], generator=None,
                           do: Mapping[str, int] | None = None) -> torch.Tensor:
        """Draw ``n`` attribute vectors from ``P(X | given; do)`` (exact, from the enumerated joint).

        ``generator`` is ``None``, an int seed or a ``torch.Generator`` (:func:`causalbook_lib.utils.as_generator`).

        Raises:
            ValueError: bad arguments, or ``given`` has probability zero.
        """
        n = check_positive_int(n, "n")
        gen = as_generator(generator)
        states, prob = self.joint(do)
        given = self._check_assignment(given, "given")
        for k, v in given.items():
            prob = prob * (states[:, self.names.index(k)] == v).to(torch.float64)
        if float(prob.sum()) <= 0:
            raise ValueError(f"the event {given} has probability zero; cannot condition on it")
        idx = torch.multinomial(prob / prob.sum(), n, replacement=True, generator=gen)
        return states[idx]


def _check_binary(data, d: int, name: str) -> torch.Tensor:
    x = torch.as_tensor(data, dtype=torch.float64)
    if x.dim() != 2 or x.shape[1] != d:
        raise ValueError(f"{name} must have shape (n, {d}), got {tuple(x.shape)}")
    return check_binary(x, name)


# --------------------------------------------------------------------------------------------
# Competitive mixture of generators
# --------------------------------------------------------------------------------------------
class CompetitiveMixture(nn.Module):
    """K independent VAEs that compete for data points (Locatello et al.; :doc:`chapter 16 </notebooks/16-causal-generation>`).

    The model is ``p(x) = sum_j alpha_j p_{g_j}(x)`` with equal weights ``alpha_j = 1/K``, which are
    never estimated; a point is assigned to ``argmax_j ELBO_j(x)`` (a lower bound of
    ``log p_{g_j}(x)``; with equal weights the ``log alpha_j`` term is the same for every ``j`` and
    drops out), and only the winner learns from it.

    Raises:
        ValueError: ``k < 2`` or bad VAE sizes.
    """

    def __init__(self, k: int, x_dim: int, latent_dim: int = 2, hidden: int = 32, likelihood: str = "bernoulli"):
        super().__init__()
        self.k = check_positive_int(k, "k", minimum=2)
        self.experts = nn.ModuleList(ConditionalVAE(x_dim, 0, latent_dim, hidden, likelihood=likelihood) for _ in range(self.k))

    def elbos(self, x: torch.Tensor, generator=None) -> torch.Tensor:
        """ELBO of every expert on every point: shape (n, k); ``generator`` draws the noise
        (``None``, an int seed or a ``torch.Generator``, :func:`causalbook_lib.utils.as_generator`)."""
        gen = as_generator(generator, device=x.device)
        return torch.stack([e.elbo(x, generator=gen) for e in self.experts], dim=1)

    @torch.no_grad()
    def assign(self, x: torch.Tensor, n_samples: int = 8, generator=None) -> torch.Tensor:
        """Hard assignment ``argmax_j`` of the ELBO averaged over ``n_samples`` draws: shape (n,) long."""
        n_samples = check_positive_int(n_samples, "n_samples")
        x = torch.as_tensor(x, dtype=torch.float32)
        gen = as_generator(generator, device=x.device)
        return torch.stack([self.elbos(x, gen) for _ in range(n_samples)]).mean(0).argmax(1)


def train_competitive_mixture(mixture: CompetitiveMixture, x: torch.Tensor, *, epochs: int = 60,
                              warmup_epochs: int = 5, batch_size: int = 128, lr: float = 3e-3,
                              generator=None) -> torch.Tensor:
    """Competitive training: each point trains only the expert with the highest ELBO on it.

    ``generator`` (``None``, an int seed or a ``torch.Generator``, :func:`causalbook_lib.utils.as_generator`)
    draws the warm-up shares, the batch order and the ELBO noise; the experts' initialisation is the
    mixture's, made by the caller (:func:`causalbook_lib.utils.seeded_init`).

    During ``warmup_epochs`` each expert sees a fixed random share (1/K) of the data, which gives
    the experts different starting points; then the competition starts. Returns the fraction of the
    data won by each expert after every epoch, shape (epochs, k).

    Raises:
        ValueError: bad shapes or non-positive epoch counts / batch size / lr.
    """
    epochs = check_positive_int(epochs, "epochs")
    warmup_epochs = check_positive_int(warmup_epochs, "warmup_epochs", minimum=0)
    batch_size = check_positive_int(batch_size, "batch_size")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    x = torch.as_tensor(x, dtype=torch.float32)
    x_dim = mixture.experts[0].x_dim
    if x.dim() != 2 or x.shape[1] != x_dim:
        raise ValueError(f"x must have shape (n, {x_dim}), got {tuple(x.shape)}")
    gen = as_generator(generator, device=x.device)
    opt = torch.optim.Adam(mixture.parameters(), lr=lr)
    random_owner = torch.randint(0, mixture.k, (x.shape[0],), generator=gen, device=x.device)
    shares = []
    for epoch in range(epochs):
        perm = torch.randperm(x.shape[0], generator=gen, device=x.device)
        won = torch.zeros(mixture.k, device=x.device)
        for start in range(0, x.shape[0], batch_size):
            idx = perm[start:start + batch_size]
            e = mixture.elbos(x[idx], gen)
            owner = random_owner[idx] if epoch < warmup_epochs else e.detach().argmax(1)
            won += torch.bincount(owner, minlength=mixture.k).float()
            loss = -e.gather(1, owner[:, None]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        shares.append(won / x.shape[0])
    return torch.stack(shares)


def cluster_purity(assignment, labels) -> float:
    """Purity of a clustering: the fraction of points whose cluster's majority label is their own.

    ``purity = (1/n) sum_j max_y |{i : a_i = j, y_i = y}|``; 1 means every cluster holds one label.

    Raises:
        ValueError: the two arrays differ in length, are empty, or are not 1-D integer arrays.
    """
    a = np.asarray(assignment)
    y = np.asarray(labels)
    if a.ndim != 1 or y.ndim != 1 or len(a) != len(y) or len(a) == 0:
        raise ValueError(f"assignment and labels must be non-empty 1-D arrays of equal length, got shapes {a.shape} and {y.shape}")
    if not (np.issubdtype(a.dtype, np.integer) and np.issubdtype(y.dtype, np.integer)):
        raise ValueError("assignment and labels must be integer arrays")
    from sklearn.metrics.cluster import contingency_matrix

    table = contingency_matrix(y, a)  # (labels, clusters); any integer ids, negative ones included
    return float(table.max(axis=0).sum() / len(a))



# --------------------------------------------------------------------------------------------
# Counterfactual explanations from a conditional generator
# --------------------------------------------------------------------------------------------
def binary_states(d: int, *, dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
    """All ``2 ** d`` binary attribute vectors, shape ``(2 ** d, d)``.

    Row ``k`` spells ``k`` in binary with the first attribute as the most significant bit, the order
    of :meth:`CausalController.joint` and of ``itertools.product((0, 1), repeat=d)``.

    Raises:
        ValueError: ``d`` is not an integer between 1 and 20.
    """
    d = check_positive_int(d, "d")
    if d > 20:
        raise ValueError(f"d must be at most 20 (2 ** d candidate vectors), got {d}")
    k = torch.arange(2 ** d, device=device)
    bits = torch.arange(d - 1, -1, -1, device=device)
    return ((k[:, None] >> bits) & 1).to(dtype)


def decode_attribute_grid(decode: Callable, latents: torch.Tensor, n_attributes: int, *,
                          chunk_size: int | None = None) -> torch.Tensor:
    """Images of every row under every binary attribute vector: ``decode(z_i, c_s)`` for all ``i, s``.

    With a conditional generator ``decode(z, c)`` and latents ``z_i`` abducted from the factual
    images (for a conditional VAE, the encoder's mean of ``q(z | x_i, a_i)``), row ``i`` of the
    result is the generator's answer to "what would image ``i`` look like had its attributes been
    ``c_s``?", for each ``c_s`` of :func:`binary_states`. All ``2 ** d * n`` pairs go through
    ``decode`` in batches of ``chunk_size`` rows. :doc:`Chapter 16 </notebooks/16-causal-generation>`.

    Args:
        decode: maps latents ``(N, l)`` and attributes ``(N, d)`` to images ``(N, ...)``.
        latents: ``(n, l)`` tensor; the attributes are made in its dtype and on its device.
        n_attributes: ``d``, the number of binary attributes.
        chunk_size: at most this many rows per call of ``decode`` (default: all at once).

    Returns:
        tensor ``(2 ** d, n, ...)`` of images, without gradients.

    Raises:
        ValueError: ``latents`` is not a floating ``(n, l)`` tensor, or a bad ``n_attributes`` or
            ``chunk_size``.
    """
    if not callable(decode):
        raise ValueError(f"decode must be callable, got {type(decode).__name__}")
    if not isinstance(latents, torch.Tensor) or not latents.is_floating_point() or latents.dim() != 2:
        raise ValueError(f"latents must be a floating tensor of shape (n, l), got {getattr(latents, 'shape', type(latents))}")
    states = binary_states(n_attributes, dtype=latents.dtype, device=latents.device)
    n, total = latents.shape[0], states.shape[0] * latents.shape[0]
    chunk = total if chunk_size is None else check_positive_int(chunk_size, "chunk_size")
    outs = []
    with torch.no_grad():
        for start in range(0, total, chunk):
            rows = torch.arange(start, min(start + chunk, total), device=latents.device)
            outs.append(decode(latents[rows % n], states[rows // n]))
    out = torch.cat(outs)
    return out.reshape(states.shape[0], n, *out.shape[1:])


@dataclass
class AttributeEdits:
    """Result of :func:`minimal_attribute_edits` for ``n`` rows and ``d`` attributes (``S = 2 ** d``).

    Attributes:
        attributes: ``(n, d)`` the counterfactual attribute vector of each row (its factual vector
            where no candidate reaches the target).
        index: ``(n,)`` long, the row of :func:`binary_states` that holds it.
        found: ``(n,)`` bool, whether some candidate reaches the target.
        distance: ``(n,)`` long, Hamming distance of the chosen vector from the factual one (-1
            where none is found).
        images: ``(n, ...)`` the candidate image of the chosen vector (of the factual vector where
            none is found).
        scores: ``(S, n)`` the classifier's output for the target class on every candidate.
        decided: ``(S, n)`` bool, whether the classifier assigns each candidate to the target.
    """

    attributes: torch.Tensor
    index: torch.Tensor
    found: torch.Tensor
    distance: torch.Tensor
    images: torch.Tensor
    scores: torch.Tensor
    decided: torch.Tensor


def minimal_attribute_edits(forward_func: Callable, candidates: torch.Tensor, attributes, target: int, *,
                            chunk_size: int | None = None) -> AttributeEdits:
    """The smallest change of binary attributes that moves a classifier's decision to ``target``.

    ``candidates[s, i]`` is image ``i`` drawn with the attribute vector ``c_s`` of
    :func:`binary_states` (by a generator, :func:`decode_attribute_grid`, or by a true renderer with
    the row's own noise). With ``a_i`` the factual attributes of row ``i`` and ``f`` the classifier,
    the explanation is

    .. math:: c'_i = \\arg\\min \\big\\{ \\|c_s - a_i\\|_0 \\;:\\; \\arg\\max_k f_k(x_i(c_s)) = \\text{target} \\big\\},

    ties broken by the larger score :math:`f_{\\text{target}}`, then by the smaller index ``s``: the
    exhaustive, discrete version of the attribute search of Liu et al. (2019), "what would this
    image look like had the classifier said ``target``?". Running it on the generator's and on the
    true renderer's candidates gives the generated explanation and its ground truth.
    :doc:`Chapter 16 </notebooks/16-causal-generation>`.

    Args:
        forward_func: the classifier, mapping images ``(N, ...)`` to scores ``(N, k)``
            (probabilities or logits); its decision is the arg max.
        candidates: ``(2 ** d, n, ...)`` images.
        attributes: ``(n, d)`` factual binary attributes.
        target: the class index the counterfactual must reach.
        chunk_size: at most this many images per call of ``forward_func`` (default: all at once).

    Returns:
        an :class:`AttributeEdits`; attribute vectors in the dtype of ``candidates``.

    Raises:
        ValueError: ``candidates`` whose first axis is not ``2 ** d`` or whose second is not the
            number of rows, non-binary ``attributes``, a ``target`` outside the classifier's
            outputs, a classifier that does not return ``(N, k)`` scores, or a bad ``chunk_size``.
    """
    if not callable(forward_func):
        raise ValueError(f"forward_func must be callable, got {type(forward_func).__name__}")
    if not isinstance(candidates, torch.Tensor) or not candidates.is_floating_point() or candidates.dim() < 3:
        raise ValueError("candidates must be a floating tensor of shape (2 ** d, n, ...), got "
                         f"{getattr(candidates, 'shape', type(candidates))}")
    a = torch.as_tensor(attributes, device=candidates.device)
    if a.dim() != 2:
        raise ValueError(f"attributes must have shape (n, d), got {tuple(a.shape)}")
    a = check_binary(a.to(candidates.dtype), "attributes")
    n, d = a.shape
    if tuple(candidates.shape[:2]) != (2 ** d, n):
        raise ValueError(f"candidates must have shape (2 ** d, n, ...) = ({2 ** d}, {n}, ...) for {n} rows of {d} "
                         f"attributes, got {tuple(candidates.shape)}")
    if not isinstance(target, (int, np.integer)) or isinstance(target, bool) or target < 0:
        raise ValueError(f"target must be a non-negative class index, got {target!r}")
    flat = candidates.reshape(2 ** d * n, *candidates.shape[2:])
    chunk = flat.shape[0] if chunk_size is None else check_positive_int(chunk_size, "chunk_size")
    outs = []
    with torch.no_grad():
        for start in range(0, flat.shape[0], chunk):
            out = forward_func(flat[start:start + chunk])
            if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[1] <= target:
                got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise ValueError(f"forward_func must return scores (N, k) with k > target = {target}, got {got}")
            outs.append(out)
    out = torch.cat(outs)
    decided = (out.argmax(1) == target).reshape(2 ** d, n)
    scores = out[:, target].reshape(2 ** d, n)
    states = binary_states(d, dtype=candidates.dtype, device=candidates.device)
    hamming = (states[:, None, :] != a[None]).sum(-1)                                   # (S, n)
    big = d + 1
    shortest = torch.where(decided, hamming, torch.full_like(hamming, big)).min(0).values
    found = shortest < big
    eligible = decided & (hamming == shortest)
    best = torch.where(eligible, scores, torch.full_like(scores, -torch.inf)).argmax(0)  # first of the ties
    factual = (states[:, None, :] == a[None]).all(-1).long().argmax(0)
    best = torch.where(found, best, factual)
    rows = torch.arange(n, device=candidates.device)
    return AttributeEdits(attributes=states[best], index=best, found=found, distance=torch.where(found, shortest, -1),
                          images=candidates[best, rows], scores=scores, decided=decided)
