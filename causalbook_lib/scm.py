"""Structural causal models: the 4-tuple (X, U, f, P_U), ancestral sampling, do() and counterfactuals.

An SCM (Chattopadhyay et al., Def. A.1; Pearl 2009) is a 4-tuple :math:`(X, U, f, P_U)`:

* :math:`X = \\{x_1, \\dots, x_n\\}` endogenous variables (the observables);
* :math:`U = \\{u_1, \\dots, u_n\\}` exogenous variables (noise, unobserved);
* :math:`f = (f_1, \\dots, f_n)` mechanisms, :math:`x_i = f_i(\\mathrm{pa}_i, u_i)` with
  :math:`\\mathrm{pa}_i \\subseteq X \\setminus \\{x_i\\}`;
* :math:`P_U` a distribution over :math:`U` (here: independent noises, one sampler per variable).

Here each endogenous variable is a :class:`Variable` (its parents, mechanism and noise sampler)
and :class:`SCM` holds a mapping ``name -> Variable``. Everything is batched: a sample of size
``n`` is a dict of tensors whose first dimension is ``n``; mechanisms act on whole batches.
Latent confounders are written as endogenous variables one chooses not to observe.

:doc:`chapter 01 </notebooks/01-structural-causal-models>` explains every piece; Part V builds its causal
controllers on this class.
"""
from __future__ import annotations

import itertools
import math
import numbers
from dataclasses import dataclass
from typing import Callable, Mapping

import networkx as nx
import torch

from .graphs import check_dag
from .utils import as_generator, check_positive_int, check_probabilities

__all__ = ["Variable", "SCM", "additive", "bernoulli", "categorical", "binary_scm", "probability_table",
           "parent_configuration_index", "normal_noise", "uniform_noise", "no_noise", "linear_gaussian",
           "linear_gaussian_moments"]

Tensor = torch.Tensor
Mechanism = Callable[[dict, Tensor], Tensor]
NoiseSampler = Callable[[int, "torch.Generator | None"], Tensor]


def _device(generator: "torch.Generator | None"):
    """Where a sampler draws: on its generator's device (torch's default device without one)."""
    return None if generator is None else generator.device


# ----------------------------------------------------------------------------- noise samplers
def normal_noise(std: float = 1.0, mean: float = 0.0, dtype: torch.dtype = torch.float64) -> NoiseSampler:
    """A sampler of :math:`u \\sim \\mathcal N(\\text{mean}, \\text{std}^2)`: ``(n, generator) -> (n,)``.

    Raises ``ValueError`` if ``std`` is negative or either number is not finite.
    """
    for v, nm in ((std, "std"), (mean, "mean")):
        if not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise ValueError(f"{nm} must be a finite number, got {v!r}")
    if std < 0:
        raise ValueError(f"std must be >= 0, got {std}")

    def sample(n: int, generator=None) -> Tensor:
        return mean + std * torch.randn(n, generator=generator, dtype=dtype, device=_device(generator))

    sample.description = f"N({mean:g}, {std:g}^2)"
    return sample


def uniform_noise(low: float = 0.0, high: float = 1.0, dtype: torch.dtype = torch.float64) -> NoiseSampler:
    """A sampler of :math:`u \\sim \\mathcal U(\\text{low}, \\text{high})`: ``(n, generator) -> (n,)``.

    Raises ``ValueError`` unless ``low < high`` are finite numbers.
    """
    for v, nm in ((low, "low"), (high, "high")):
        if not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise ValueError(f"{nm} must be a finite number, got {v!r}")
    if not low < high:
        raise ValueError(f"low must be smaller than high, got low={low}, high={high}")

    def sample(n: int, generator=None) -> Tensor:
        return low + (high - low) * torch.rand(n, generator=generator, dtype=dtype, device=_device(generator))

    sample.description = f"U({low:g}, {high:g})"
    return sample


def no_noise(dtype: torch.dtype = torch.float64) -> NoiseSampler:
    """A degenerate noise, always 0: for deterministic mechanisms (for example hidden neurons)."""

    def sample(n: int, generator=None) -> Tensor:
        return torch.zeros(n, dtype=dtype, device=_device(generator))

    sample.description = "0"
    return sample


# ----------------------------------------------------------------------------- variables
@dataclass(frozen=True)
class Variable:
    """One endogenous variable :math:`x_i = f_i(\\mathrm{pa}_i, u_i)` with :math:`u_i \\sim P_{u_i}`.

    Attributes:
        parents: names of the parent variables :math:`\\mathrm{pa}_i` (a tuple; may be empty).
        mechanism: ``f(parent_values, u) -> x``. ``parent_values`` is a dict ``name -> tensor``
            with one row per sample, ``u`` the noise tensor of shape ``(n, ...)``; it must return a
            tensor whose first dimension is ``n``.
        noise: ``sampler(n, generator) -> u`` drawing ``n`` noise values (see
            :func:`normal_noise`, :func:`uniform_noise`, :func:`no_noise`).
        abduct: optional inverse ``(parent_values, x) -> u`` with ``f(pa, abduct(pa, x)) = x``;
            needed for counterfactuals (:meth:`SCM.counterfactual`). :func:`additive` sets it to
            ``x - g(pa)``.
        description: a short human-readable form of the equation (shown by :meth:`SCM.describe`).
    """

    parents: tuple = ()
    mechanism: Mechanism | None = None
    noise: NoiseSampler | None = None
    abduct: Callable[[dict, Tensor], Tensor] | None = None
    description: str = ""

    def __post_init__(self):
        parents = self.parents
        if isinstance(parents, str) or not isinstance(parents, (tuple, list)):
            raise ValueError(f"parents must be a tuple or list of variable names, got {parents!r}")
        if not all(isinstance(p, str) and p for p in parents):
            raise ValueError(f"parent names must be non-empty strings, got {parents!r}")
        if len(set(parents)) != len(parents):
            raise ValueError(f"parents must not repeat a name, got {parents!r}")
        object.__setattr__(self, "parents", tuple(parents))
        if not callable(self.mechanism):
            raise ValueError(f"mechanism must be callable f(parent_values, u), got {self.mechanism!r}")
        if self.noise is None:
            object.__setattr__(self, "noise", no_noise())
        elif not callable(self.noise):
            raise ValueError(f"noise must be a callable sampler(n, generator), got {self.noise!r}")
        if self.abduct is not None and not callable(self.abduct):
            raise ValueError(f"abduct must be callable (parent_values, x) -> u or None, got {self.abduct!r}")


def additive(parents, g: Callable[[dict], Tensor], noise: NoiseSampler | None = None,
             description: str = "") -> Variable:
    """A variable with additive noise, :math:`x = g(\\mathrm{pa}) + u`.

    Additive noise makes abduction exact: given the observed ``x`` and its parents,
    :math:`u = x - g(\\mathrm{pa})`, so :meth:`SCM.counterfactual` can use it.

    Args:
        parents: names of the parents (a tuple or list, possibly empty).
        g: ``g(parent_values) -> tensor`` of shape ``(n, ...)``. With no parents, ``g`` receives an
            empty dict; return e.g. ``torch.zeros(())`` for a pure-noise root (it broadcasts).
        noise: the sampler of ``u`` (default: no noise).
    """
    if not callable(g):
        raise ValueError(f"g must be callable g(parent_values), got {g!r}")
    return Variable(tuple(parents) if isinstance(parents, (list, tuple)) else parents,
                    mechanism=lambda pa, u: g(pa) + u, noise=noise,
                    abduct=lambda pa, x: x - g(pa), description=description)


def bernoulli(parents, probability: Callable[[dict], Tensor] | float,
              dtype: torch.dtype = torch.float64, description: str = "") -> Variable:
    """A binary variable :math:`x = \\mathbb 1[u < p(\\mathrm{pa})]` with :math:`u \\sim \\mathcal U(0, 1)`,
    so :math:`P(x = 1 \\mid \\mathrm{pa}) = p(\\mathrm{pa})`.

    ``probability`` is a number in [0, 1] (for a root) or a function ``p(parent_values)`` returning
    probabilities. Values are 0.0 / 1.0 in ``dtype``. The threshold mechanism is not invertible,
    so a counterfactual that needs this variable's noise raises ``ValueError``.
    """
    if callable(probability):
        p = probability
    else:
        if not isinstance(probability, numbers.Real) or not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability must lie in [0, 1] or be callable, got {probability!r}")
        const = float(probability)
        p = lambda pa: torch.tensor(const, dtype=dtype)  # noqa: E731

    def mechanism(pa: dict, u: Tensor) -> Tensor:
        prob = torch.as_tensor(p(pa), dtype=dtype)
        if bool(((prob < 0) | (prob > 1) | torch.isnan(prob)).any()):
            raise ValueError("a Bernoulli probability fell outside [0, 1]")
        return (u < prob).to(dtype)

    return Variable(tuple(parents), mechanism=mechanism, noise=uniform_noise(0.0, 1.0),
                    description=description)


def parent_configuration_index(bits: Tensor) -> Tensor:
    """Integer code of rows of 0/1 parent values, the first column being the most significant bit: shape (n,)."""
    k = bits.shape[1]
    weights = 2 ** torch.arange(k - 1, -1, -1, dtype=torch.long, device=bits.device)
    return (bits.to(torch.long) * weights).sum(1)


def probability_table(parents, table, name: str = "table") -> Tensor:
    """``P(x = 1 | pa)`` of a binary variable as a float64 vector of ``2 ** len(parents)`` entries.

    ``table`` is that vector already (entry ``k`` is the parent configuration whose bits, first
    parent most significant, spell ``k``: see :func:`parent_configuration_index`), or a mapping from
    tuples of parent values to probabilities, e.g. ``{(0, 1): 0.45, ...}``.

    Raises:
        ValueError: a missing parent configuration, a wrong number of entries, or entries outside [0, 1].
    """
    parents = tuple(parents)
    want = 2 ** len(parents)
    if isinstance(table, Mapping):
        vals = []
        for config in itertools.product((0, 1), repeat=len(parents)):
            if config not in table:
                raise ValueError(f"the table of {name!r} lacks the parent configuration {config}")
            vals.append(float(table[config]))
        t = torch.tensor(vals, dtype=torch.float64)
    else:
        t = torch.as_tensor(table, dtype=torch.float64).reshape(-1)
    if t.numel() != want:
        raise ValueError(f"the table of {name!r} must have {want} entries (2 ** number of parents), got {t.numel()}")
    if not bool(torch.isfinite(t).all()) or bool((t < 0).any()) or bool((t > 1).any()):
        raise ValueError(f"the table of {name!r} must hold probabilities in [0, 1], got {t.tolist()}")
    return t


def binary_scm(parents: Mapping[str, tuple], tables: Mapping) -> "SCM":
    """An SCM of binary variables ``X_i := 1[U_i < p_i(pa_i)]``, ``U_i ~ Uniform(0, 1)``, from probability tables.

    Args:
        parents: variable name -> tuple of parent names (a DAG); the order of the mapping is the
            order of the variables.
        tables: variable name -> its table, as :func:`probability_table` reads it.

    The table lookup is done on whole batches; each variable is a :func:`bernoulli` variable, so
    ``P(X_i = 1 | pa_i) = p_i(pa_i)`` holds exactly. The causal controller of
    :class:`causalbook_lib.causalgen.CausalController` and the face attributes of
    :func:`causalbook_lib.datasets.synthetic.sample_face_attributes` are such SCMs.

    Raises:
        ValueError: tables that do not match the variables, bad tables, or a cyclic graph.
    """
    if set(tables) != set(parents):
        raise ValueError(f"tables must have one table per variable {sorted(parents)}, got {sorted(tables)}")
    variables = {}
    for name, pa in parents.items():
        pa = tuple(pa)
        table = probability_table(pa, tables[name], name)
        if not pa:
            variables[name] = bernoulli((), float(table[0]), description=f"1[U < {float(table[0]):.3g}]")
        else:
            def prob(values, pa=pa, table=table):
                return table[parent_configuration_index(torch.stack([values[p] for p in pa], dim=1))]
            variables[name] = bernoulli(pa, prob, description=f"1[U < p({', '.join(pa)})]")
    return SCM(variables)


def categorical(parents, probabilities: Callable[[dict], Tensor] | Tensor,
                description: str = "") -> Variable:
    """A categorical variable with values 0..K-1 by inverse-CDF sampling of :math:`u \\sim \\mathcal U(0, 1)`:
    :math:`x = \\#\\{k : F_k(\\mathrm{pa}) \\le u\\}` with :math:`F_k = \\sum_{j \\le k} p_j(\\mathrm{pa})`,
    so :math:`P(x = k \\mid \\mathrm{pa}) = p_k(\\mathrm{pa})`.

    ``probabilities`` is a probability vector of shape ``(K,)`` (for a root) or a function
    ``p(parent_values) -> (n, K)`` whose rows are probability vectors. Values are float64 codes
    0.0, 1.0, ..., K-1. Not invertible in the noise, like :func:`bernoulli`.

    Raises ``ValueError`` for a vector that is not a probability vector (checked when sampling for
    a function).
    """
    if callable(probabilities):
        p = probabilities
    else:
        vec = torch.as_tensor(probabilities, dtype=torch.float64)
        if vec.dim() != 1 or vec.numel() < 2:
            raise ValueError(f"probabilities must be a vector of length >= 2 or a callable, got shape {tuple(vec.shape)}")
        check_probabilities(vec[None], "probabilities")
        p = lambda pa: vec  # noqa: E731

    def mechanism(pa: dict, u: Tensor) -> Tensor:
        prob = torch.as_tensor(p(pa), dtype=torch.float64)
        if prob.dim() == 1:
            prob = prob.expand(u.shape[0], -1)
        check_probabilities(prob, "categorical probabilities")
        cdf = prob.cumsum(1)[:, :-1]
        return (cdf <= u[:, None]).sum(1).to(torch.float64)

    return Variable(tuple(parents), mechanism=mechanism, noise=uniform_noise(0.0, 1.0), description=description)


# ----------------------------------------------------------------------------- the SCM
def _constant_variable(value, name: str) -> Variable:
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, torch.Tensor)):
        raise ValueError(f"do({name}=...) needs a number, a tensor, a callable or a Variable, "
                         f"got {type(value).__name__}")
    val = torch.as_tensor(value, dtype=torch.float64) if not isinstance(value, torch.Tensor) else value
    if val.is_floating_point() and not bool(torch.isfinite(val).all()):
        raise ValueError(f"do({name}=...) value must be finite")

    def mechanism(pa: dict, u: Tensor) -> Tensor:
        n = u.shape[0]
        if val.dim() == 0:
            return val.expand(n).clone()
        if val.shape[0] != n:
            raise ValueError(f"do({name}=...) was given {val.shape[0]} values for a batch of {n}")
        return val.clone()

    return Variable((), mechanism=mechanism, noise=no_noise(),
                    description=f"do({name} = {float(val) if val.dim() == 0 else 'per-unit values'})")


def _random_variable(sampler: Callable, name: str) -> Variable:
    def mechanism(pa: dict, u: Tensor) -> Tensor:
        return u

    return Variable((), mechanism=mechanism, noise=sampler,
                    description=f"do({name} ~ {getattr(sampler, 'description', 'sampler')})")


class SCM:
    """A structural causal model :math:`(X, U, f, P_U)` with batched torch mechanisms.

    Args:
        variables: a mapping ``name -> Variable`` (an ordinary dict). Names are non-empty strings;
            every parent must be a variable of the model; the parent graph must be acyclic.

    Raises:
        ValueError: an unknown parent, a self-loop, a cycle, a name that is not a string, or a
            value that is not a :class:`Variable`.

    Example::

        scm = SCM({
            "z": additive([], lambda pa: torch.zeros(()), normal_noise(1.0)),
            "x": additive(["z"], lambda pa: 2 * pa["z"], normal_noise(1.0)),
            "y": additive(["x", "z"], lambda pa: 3 * pa["x"] - pa["z"], normal_noise(0.5)),
        })
        sample = scm.sample(10_000, generator)          # dict name -> (10000,) tensor
        after = scm.do({"x": 1.0}).sample(10_000)        # the interventional distribution
    """

    def __init__(self, variables: Mapping[str, Variable]):
        if not isinstance(variables, Mapping) or len(variables) == 0:
            raise ValueError("variables must be a non-empty mapping name -> Variable")
        for name, var in variables.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"variable names must be non-empty strings, got {name!r}")
            if not isinstance(var, Variable):
                raise ValueError(f"variable {name!r} must be a Variable, got {type(var).__name__}")
            unknown = [p for p in var.parents if p not in variables]
            if unknown:
                raise ValueError(f"variable {name!r} has unknown parent(s) {unknown}; "
                                 f"the variables are {list(variables)}")
            if name in var.parents:
                raise ValueError(f"variable {name!r} lists itself as a parent")
        self._variables: dict[str, Variable] = dict(variables)
        graph = nx.DiGraph()
        graph.add_nodes_from(self._variables)
        graph.add_edges_from((p, v) for v, var in self._variables.items() for p in var.parents)
        check_dag(graph, "the SCM's causal graph")
        self._graph = graph
        # a deterministic topological order: Kahn's algorithm, ties broken by insertion order
        self._order = list(nx.lexicographical_topological_sort(
            graph, key=list(self._variables).index))

    # ---------------------------------------------------------------- structure
    @property
    def variables(self) -> dict[str, Variable]:
        """The mapping ``name -> Variable`` (a copy)."""
        return dict(self._variables)

    @property
    def names(self) -> list[str]:
        """Variable names in topological order (parents before children)."""
        return list(self._order)

    @property
    def graph(self) -> nx.DiGraph:
        """The causal Bayesian network, with an edge ``p -> v`` for every parent ``p`` of ``v`` (a copy)."""
        return self._graph.copy()

    def parents(self, name: str) -> tuple:
        """The parents of ``name``; ``ValueError`` if there is no such variable."""
        self._check_names([name], "name")
        return self._variables[name].parents

    def describe(self) -> str:
        """One line per variable: ``name := description  (parents)``, in topological order."""
        lines = []
        for v in self._order:
            var = self._variables[v]
            lines.append(f"{v} := {var.description or 'f(' + ', '.join(var.parents + ('u',)) + ')'}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"SCM({', '.join(self._order)}; {self._graph.number_of_edges()} edges)"

    def _check_names(self, names, what: str) -> None:
        unknown = [v for v in names if v not in self._variables]
        if unknown:
            raise ValueError(f"{what} names unknown variable(s) {unknown}; the variables are {self._order}")

    # ---------------------------------------------------------------- sampling
    def sample_noise(self, n: int, generator=None) -> dict[str, Tensor]:
        """Draw :math:`u \\sim P_U`: a dict ``name -> (n, ...)`` tensor, in topological order.

        ``generator`` is ``None``, an int seed or a ``torch.Generator``
        (:func:`causalbook_lib.utils.as_generator`); every noise sampler draws from the one stream.
        """
        n = check_positive_int(n, "n")
        gen = as_generator(generator)
        noise = {}
        for v in self._order:
            u = torch.as_tensor(self._variables[v].noise(n, gen))
            if u.dim() == 0 or u.shape[0] != n:
                raise ValueError(f"the noise sampler of {v!r} returned shape {tuple(u.shape)}, expected ({n}, ...)")
            noise[v] = u
        return noise

    def evaluate(self, noise: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Push given noise through the mechanisms: :math:`x_i = f_i(\\mathrm{pa}_i, u_i)` in
        topological order. Deterministic: the same noise gives the same values.

        Args:
            noise: ``name -> (n, ...)`` tensors, one per variable, all with the same ``n``.

        Raises:
            ValueError: noise is missing for a variable, batch sizes differ, or a mechanism returns
                something that is not a tensor with ``n`` rows.
        """
        if not isinstance(noise, Mapping):
            raise ValueError("noise must be a mapping name -> tensor")
        missing = [v for v in self._order if v not in noise]
        if missing:
            raise ValueError(f"noise is missing for variable(s) {missing}")
        self._check_names(list(noise), "noise")
        sizes = {int(torch.as_tensor(noise[v]).shape[0]) if torch.as_tensor(noise[v]).dim() else -1
                 for v in self._order}
        if len(sizes) != 1 or -1 in sizes:
            raise ValueError(f"every noise tensor must have the same first dimension n, got sizes {sorted(sizes)}")
        n = sizes.pop()
        values: dict[str, Tensor] = {}
        for v in self._order:
            var = self._variables[v]
            pa = {p: values[p] for p in var.parents}
            x = var.mechanism(pa, torch.as_tensor(noise[v]))
            if not isinstance(x, torch.Tensor):
                raise ValueError(f"the mechanism of {v!r} must return a tensor, got {type(x).__name__}")
            if x.dim() == 0:
                x = x.expand(n)
            if x.shape[0] != n:
                raise ValueError(f"the mechanism of {v!r} returned shape {tuple(x.shape)}, expected ({n}, ...)")
            values[v] = x
        return values

    def sample(self, n: int, generator=None, return_noise: bool = False):
        """Ancestral sampling: draw :math:`u \\sim P_U`, then set each variable from its parents in
        topological order. This draws from the joint distribution
        :math:`P(x_1, \\dots, x_n) = \\prod_i P(x_i \\mid \\mathrm{pa}_i)` the causal Bayesian network
        factorises.

        Args:
            n: number of samples (>= 1).
            generator: ``None``, an int seed or a ``torch.Generator`` (:func:`causalbook_lib.utils.as_generator`).
            return_noise: also return the noise that produced the sample.

        Returns:
            ``values`` (dict ``name -> (n, ...)`` tensor), or ``(values, noise)`` if ``return_noise``.
        """
        noise = self.sample_noise(n, generator)
        values = self.evaluate(noise)
        return (values, noise) if return_noise else values

    # ---------------------------------------------------------------- interventions
    def do(self, interventions: Mapping[str, object]) -> "SCM":
        """The intervened model :math:`M_{do(\\cdot)}`: graph surgery plus replaced mechanisms.

        Each entry ``name -> how`` replaces the mechanism of ``name``; the original model is not
        changed. ``how`` may be

        * a number or 0-d tensor ``a``: the atomic intervention :math:`do(x = a)`; the variable
          loses its parents (its incoming edges are cut) and its noise;
        * a 1-d tensor of length ``n``: per-unit values (useful for counterfactuals); sampling
          then needs exactly ``n`` samples;
        * a callable ``sampler(n, generator) -> (n,)``: a randomised intervention, values drawn
          independently of everything else (parents cut);
        * a :class:`Variable`: a general mechanism replacement (a "soft" intervention that may keep
          or change the parents).

        Raises:
            ValueError: an unknown name, an empty mapping, a value of another type, or a
                replacement :class:`Variable` whose parents make the graph cyclic.
        """
        if not isinstance(interventions, Mapping) or not interventions:
            raise ValueError("interventions must be a non-empty mapping name -> value")
        self._check_names(list(interventions), "interventions")
        new = dict(self._variables)
        for name, how in interventions.items():
            if isinstance(how, Variable):
                new[name] = how
            elif callable(how) and not isinstance(how, torch.Tensor):
                new[name] = _random_variable(how, name)
            else:
                if isinstance(how, torch.Tensor) and how.dim() > 1:
                    raise ValueError(f"do({name}=...) tensor must be 0-d or 1-d, got shape {tuple(how.shape)}")
                new[name] = _constant_variable(how, name)
        return SCM(new)

    def interventional_mean(self, outcome: str, interventions: Mapping[str, object] | None, n: int,
                            generator=None) -> Tensor:
        """Monte Carlo estimate of :math:`\\mathbb E[y \\mid do(\\cdot)]` from ``n`` ancestral samples
        of the intervened model (``interventions=None`` gives the observational mean; ``generator`` as
        in :meth:`sample`)."""
        self._check_names([outcome], "outcome")
        model = self if not interventions else self.do(interventions)
        return model.sample(n, generator)[outcome].to(torch.float64).mean(0)

    def counterfactual(self, observed: Mapping[str, Tensor], interventions: Mapping[str, object]) -> dict[str, Tensor]:
        """Counterfactuals by abduction, action and prediction (Pearl 2009, Sec. 7.1).

        For each unit (row) of ``observed``:

        1. *abduction*: recover the noise :math:`u_i` of every variable downstream of the
           intervention from its observed value, :math:`u_i = x_i - g_i(\\mathrm{pa}_i)` for
           additive noise (generally the variable's ``abduct``);
        2. *action*: apply ``do(interventions)``;
        3. *prediction*: push the recovered noise through the intervened model.

        Variables that are not descendants of an intervened variable keep their observed values
        (their mechanisms and noises are untouched), so their noise need not be invertible; this is
        how binary roots such as a :func:`bernoulli` variable can sit upstream.

        Args:
            observed: ``name -> (n, ...)`` tensors: the factual values of at least every
                non-intervened descendant of the intervened variables and of their parents.
            interventions: as in :meth:`do` (numbers, 0-d or length-``n`` tensors).

        Returns:
            a dict ``name -> (n, ...)`` of counterfactual values for every observed variable plus
            every variable the intervention determines.

        Raises:
            ValueError: unknown names, missing observations, unequal batch sizes, or a variable
                whose noise is needed but whose mechanism has no ``abduct`` (not invertible).
        """
        if not isinstance(observed, Mapping) or not observed:
            raise ValueError("observed must be a non-empty mapping name -> tensor")
        if not isinstance(interventions, Mapping) or not interventions:
            raise ValueError("interventions must be a non-empty mapping name -> value")
        self._check_names(list(observed), "observed")
        self._check_names(list(interventions), "interventions")
        for k, how in interventions.items():
            if isinstance(how, Variable) or (callable(how) and not isinstance(how, torch.Tensor)):
                raise ValueError(f"counterfactual interventions must be values (numbers or tensors); "
                                 f"{k!r} was given a {type(how).__name__}")
        obs = {k: torch.as_tensor(v) for k, v in observed.items()}
        sizes = {int(t.shape[0]) if t.dim() else -1 for t in obs.values()}
        if len(sizes) != 1 or -1 in sizes:
            raise ValueError(f"observed tensors must share the first dimension n, got sizes {sorted(sizes)}")
        n = sizes.pop()
        intervened = set(interventions)
        downstream = set()
        for v in intervened:
            downstream |= nx.descendants(self._graph, v)
        downstream -= intervened
        needed = set(downstream)
        for v in downstream:
            needed |= set(self._variables[v].parents) - intervened
        missing = sorted(needed - set(obs), key=self._order.index)
        if missing:
            raise ValueError(f"counterfactual needs the observed value(s) of {missing}")
        not_invertible = [v for v in self._order if v in downstream and self._variables[v].abduct is None]
        if not_invertible:
            raise ValueError(f"cannot abduct the noise of {not_invertible}: their mechanisms are not "
                             "invertible in the noise (use additive(...) or give an abduct function)")
        # 1. abduction (only where needed)
        noise = {}
        for v in self._order:
            if v in downstream:
                pa = {p: obs[p] for p in self._variables[v].parents}
                noise[v] = self._variables[v].abduct(pa, obs[v])
        # 2. action and 3. prediction, in topological order
        model = self.do(interventions)
        out: dict[str, Tensor] = {}
        for v in self._order:
            var = model._variables[v]
            if v in intervened:
                out[v] = var.mechanism({p: out[p] for p in var.parents}, torch.zeros(n, dtype=torch.float64))
            elif v in downstream:
                out[v] = var.mechanism({p: out[p] for p in var.parents}, noise[v])
            elif v in obs:
                out[v] = obs[v]
        return out


# ----------------------------------------------------------------------------- linear Gaussian SCMs
def _check_linear_spec(names, weights, std, intercept):
    if isinstance(names, str) or not all(isinstance(v, str) and v for v in names) or len(set(names)) != len(names):
        raise ValueError(f"names must be a list of distinct non-empty strings, got {names!r}")
    if not isinstance(weights, Mapping):
        raise ValueError("weights must be a mapping (parent, child) -> coefficient")
    for key, w in weights.items():
        if not (isinstance(key, tuple) and len(key) == 2 and key[0] in names and key[1] in names):
            raise ValueError(f"weights key {key!r} must be a (parent, child) pair of known names")
        if not isinstance(w, numbers.Real) or not math.isfinite(w):
            raise ValueError(f"weight {key!r} must be a finite number, got {w!r}")
    for d, nm in ((std, "std"), (intercept or {}, "intercept")):
        if not isinstance(d, Mapping) or any(k not in names for k in d):
            raise ValueError(f"{nm} must be a mapping from known names to numbers, got {d!r}")
        for k, v in d.items():
            if not isinstance(v, numbers.Real) or not math.isfinite(v) or (nm == "std" and v < 0):
                raise ValueError(f"{nm}[{k!r}] must be a finite number{' >= 0' if nm == 'std' else ''}, got {v!r}")


def linear_gaussian(names, weights: Mapping[tuple, float], std: Mapping[str, float],
                    intercept: Mapping[str, float] | None = None) -> SCM:
    """A linear Gaussian SCM :math:`x_j = c_j + \\sum_i B_{ij} x_i + u_j`, :math:`u_j \\sim \\mathcal N(0, \\sigma_j^2)`.

    Args:
        names: variable names (insertion order breaks topological ties).
        weights: ``{(parent, child): B_ij}``; edges with weight 0 are kept in the graph.
        std: ``{name: sigma_j}`` (missing names get 0: a deterministic variable).
        intercept: ``{name: c_j}`` (default 0).

    Closed-form moments for checks: :func:`linear_gaussian_moments`.
    """
    names = list(names)
    intercept = dict(intercept or {})
    _check_linear_spec(names, weights, std, intercept)
    variables = {}
    for j in names:
        terms = [(i, float(w)) for (i, jj), w in weights.items() if jj == j]
        c = float(intercept.get(j, 0.0))

        def g(pa, terms=terms, c=c):
            out = torch.tensor(c, dtype=torch.float64)
            for i, w in terms:
                out = out + w * pa[i]
            return out

        desc = " + ".join([f"{c:g}"] * (c != 0) + [f"{w:g}*{i}" for i, w in terms] + ["u"])
        variables[j] = additive([i for i, _ in terms], g, normal_noise(float(std.get(j, 0.0))), description=desc)
    return SCM(variables)


def linear_gaussian_moments(names, weights: Mapping[tuple, float], std: Mapping[str, float],
                            intercept: Mapping[str, float] | None = None,
                            interventions: Mapping[str, float] | None = None):
    """Exact mean vector and covariance matrix of a linear Gaussian SCM, optionally under ``do()``.

    Book: :doc:`chapter 01 </notebooks/01-structural-causal-models>` (the sampling check).

    With :math:`B` the weight matrix (:math:`B_{ij}` from parent i to child j) the model is
    :math:`x = B^\\top x + c + u`, so :math:`x = A (c + u)` with :math:`A = (I - B^\\top)^{-1}`, and

    .. math:: \\mathbb E[x] = A c, \\qquad \\mathrm{Cov}(x) = A\\, \\mathrm{diag}(\\sigma^2) A^\\top.

    An atomic intervention :math:`do(x_k = a)` zeroes column k of B (cuts the parents), sets
    :math:`c_k = a` and :math:`\\sigma_k = 0`.

    Returns:
        ``(mean, cov)`` as float64 tensors ordered like ``names``.

    Raises:
        ValueError: a bad specification (see :func:`linear_gaussian`), unknown intervened names,
            or non-numeric intervention values.
    """
    names = list(names)
    intercept = dict(intercept or {})
    _check_linear_spec(names, weights, std, intercept)
    graph = nx.DiGraph()
    graph.add_nodes_from(names)
    graph.add_edges_from(weights)
    check_dag(graph, "the linear SCM's graph")
    idx = {v: k for k, v in enumerate(names)}
    d = len(names)
    B = torch.zeros(d, d, dtype=torch.float64)
    for (i, j), w in weights.items():
        B[idx[i], idx[j]] = float(w)
    c = torch.tensor([float(intercept.get(v, 0.0)) for v in names], dtype=torch.float64)
    s = torch.tensor([float(std.get(v, 0.0)) for v in names], dtype=torch.float64)
    for k, a in (interventions or {}).items():
        if k not in idx:
            raise ValueError(f"intervention on unknown variable {k!r}")
        if isinstance(a, bool) or not isinstance(a, numbers.Real) or not math.isfinite(a):
            raise ValueError(f"intervention value for {k!r} must be a finite number, got {a!r}")
        B[:, idx[k]] = 0.0
        c[idx[k]] = float(a)
        s[idx[k]] = 0.0
    A = torch.linalg.inv(torch.eye(d, dtype=torch.float64) - B.T)
    return A @ c, A @ torch.diag(s ** 2) @ A.T


# ----------------------------------------------------------------------------- networks as SCMs
_ELEMENTWISE = ("ReLU", "Tanh", "Sigmoid", "Identity", "LeakyReLU", "ELU", "GELU", "Softplus", "SiLU")


def network_scm(network, variables: Mapping[str, Variable], inputs, reduced: bool = False,
                hidden_prefix: str = "h", output_prefix: str = "y") -> SCM:
    """The SCM of a feedforward network (Chattopadhyay et al., Prop. 1 and Cor. 1.1).

    ``network`` is a ``torch.nn.Sequential`` of ``Linear`` layers and elementwise activations.
    ``variables`` holds the SCM of the inputs (the input neurons, and any latent variables they
    share); ``inputs`` lists, in order, the names of the variables fed to the network.

    * ``reduced=False`` (Prop. 1): every neuron is a variable. Neuron j of hidden layer l is
      ``f"{hidden_prefix}{l}_{j}"`` with the deterministic mechanism
      :math:`h^{(l)}_j = \\sigma(w^{(l)}_j \\cdot h^{(l-1)} + b^{(l)}_j)` and parents all neurons of
      layer l-1; the outputs are ``f"{output_prefix}_{j}"``.
    * ``reduced=True`` (Cor. 1.1): hidden neurons are marginalised by recursive substitution, so
      each output has the input neurons as parents and mechanism :math:`y_j = f'_j(x) =` the
      network's j-th output.

    Raises:
        ValueError: ``network`` is not a Sequential of Linear layers and elementwise activations,
            its input width differs from ``len(inputs)``, an input is not in ``variables``, or a
            neuron name clashes with a variable name.
    """
    import torch.nn as nn

    if not isinstance(network, nn.Sequential) or len(network) == 0:
        raise ValueError("network must be a non-empty torch.nn.Sequential")
    layers = []  # list of (Linear, activation or None)
    for module in network:
        if isinstance(module, nn.Linear):
            layers.append([module, None])
        elif type(module).__name__ in _ELEMENTWISE:
            if not layers or layers[-1][1] is not None:
                raise ValueError("each activation must follow a Linear layer")
            layers[-1][1] = module
        else:
            raise ValueError(f"network may hold only Linear layers and elementwise activations, got {type(module).__name__}")
    if not layers:
        raise ValueError("network must contain at least one Linear layer")
    inputs = list(inputs)
    if layers[0][0].in_features != len(inputs):
        raise ValueError(f"the network takes {layers[0][0].in_features} inputs but {len(inputs)} input names were given")
    unknown = [v for v in inputs if v not in variables]
    if unknown:
        raise ValueError(f"input(s) {unknown} are not among the variables {list(variables)}")
    new = dict(variables)

    def add(name, var):
        if name in new:
            raise ValueError(f"neuron name {name!r} clashes with an existing variable")
        new[name] = var

    if reduced:
        def output_mechanism(j):
            def mech(pa, u):
                x = torch.stack([pa[v] for v in inputs], 1).to(next(network.parameters()).dtype)
                return network(x)[:, j].to(torch.float64)
            return mech

        for j in range(layers[-1][0].out_features):
            add(f"{output_prefix}_{j}", Variable(tuple(inputs), mechanism=output_mechanism(j),
                                                  description=f"f'_{j}({', '.join(inputs)})"))
        return SCM(new)

    previous = inputs
    for depth, (linear, act) in enumerate(layers, start=1):
        last = depth == len(layers)
        names = [f"{output_prefix}_{j}" if last else f"{hidden_prefix}{depth}_{j}"
                 for j in range(linear.out_features)]

        def neuron(j, linear=linear, act=act, parents=tuple(previous)):
            def mech(pa, u):
                x = torch.stack([pa[p] for p in parents], 1).to(linear.weight.dtype)
                z = x @ linear.weight[j] + (linear.bias[j] if linear.bias is not None else 0.0)
                return (act(z) if act is not None else z).to(torch.float64)
            return mech

        for j, nm in enumerate(names):
            add(nm, Variable(tuple(previous), mechanism=neuron(j),
                             description=f"{type(act).__name__ if act is not None else 'linear'}(w . {previous[0]}..)"))
        previous = names
    return SCM(new)


__all__ += ["network_scm"]
