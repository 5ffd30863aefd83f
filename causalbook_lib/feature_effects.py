"""Global feature effects of a model: partial dependence (the interventional expectation of Eq. 2),
individual conditional expectation curves and accumulated local effects (see
:doc:`chapter 04 </notebooks/04-interventional-expectations>`).

* :func:`partial_dependence`: Friedman's (2001) partial dependence
  :math:`\\mathrm{PD}_i(\\alpha) = \\frac1n\\sum_s f(x^{(s)}_{x_i\\leftarrow\\alpha})`. It *is* the Monte
  Carlo interventional expectation of Chattopadhyay et al. (2019, Eq. 2), and is computed by
  :func:`causalbook_lib.interventions.interventional_expectation_mc`;
* :func:`ice_curves`: the per-row curves :math:`f(x^{(s)}_{x_i\\leftarrow\\alpha})` whose mean is the
  partial dependence (individual conditional expectation, Goldstein et al. 2015; not the paper's
  "ICE", the individual causal effect);
* :func:`accumulated_local_effects`: first-order ALE on quantile bins (Apley & Zhu 2020), which
  only evaluates the model next to observed rows;
* :class:`SklearnRegressor`: a minimal scikit-learn regressor around a torch model, so that
  ``sklearn.inspection.partial_dependence`` can check :func:`partial_dependence`.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
import torch

from .utils import check_index, check_positive_int

__all__ = ["partial_dependence", "ice_curves", "ALE", "accumulated_local_effects", "partial_dependence_points",
           "ale_points", "off_support", "SklearnRegressor"]


# ----------------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------------

def _check_inputs(inputs, name: str = "inputs") -> torch.Tensor:
    if not isinstance(inputs, torch.Tensor) or not inputs.is_floating_point():
        raise ValueError(f"{name} must be a floating-point torch tensor of shape (n, k), got "
                         f"{type(inputs).__name__}{'' if not isinstance(inputs, torch.Tensor) else ' of dtype ' + str(inputs.dtype)}")
    if inputs.dim() != 2 or inputs.shape[0] == 0 or inputs.shape[1] == 0:
        raise ValueError(f"{name} must have shape (n, k) with n, k >= 1, got {tuple(inputs.shape)}")
    if not bool(torch.isfinite(inputs).all()):
        raise ValueError(f"{name} must be finite, but it holds NaN or infinite values")
    return inputs


def _check_grid(grid, like: torch.Tensor) -> torch.Tensor:
    g = torch.as_tensor(grid, dtype=like.dtype, device=like.device)
    if g.dim() != 1 or g.numel() == 0:
        raise ValueError(f"grid must be a non-empty 1-D sequence of values, got shape {tuple(g.shape)}")
    if not bool(torch.isfinite(g).all()):
        raise ValueError("grid must be finite, but it holds NaN or infinite values")
    return g


def _output(forward_func: Callable, target) -> Callable:
    """``x -> forward_func(x)[..., target]`` with a clear error when the output is not one number per row."""
    if not callable(forward_func):
        raise ValueError(f"forward_func must be callable, got {type(forward_func).__name__}")
    if target is not None and (isinstance(target, bool) or not isinstance(target, (int, np.integer))):
        raise ValueError(f"target must be an output index (int) or None, got {target!r}")

    def f(x):
        out = forward_func(x)
        if target is not None:
            if out.dim() != x.dim():
                raise ValueError(f"target={target} needs forward_func to return (..., outputs); it returned "
                                 f"{tuple(out.shape)} for inputs {tuple(x.shape)}")
            return out[..., target]
        if out.shape != x.shape[:-1]:
            raise ValueError(f"forward_func returns shape {tuple(out.shape)} for inputs {tuple(x.shape)}: give "
                             "target= to choose one output")
        return out
    return f


def _chunk_size(chunk_size, default: int) -> int:
    return default if chunk_size is None else check_positive_int(chunk_size, "chunk_size")


# ----------------------------------------------------------------------------------------------
# partial dependence and ICE
# ----------------------------------------------------------------------------------------------

def partial_dependence(forward_func: Callable, inputs: torch.Tensor, feature: int, grid, *, target=None,
                       chunk_size: int | None = None) -> torch.Tensor:
    """Partial dependence of the model on one feature: the Monte Carlo interventional expectation (Eq. 2).

    .. math:: \\mathrm{PD}_i(\\alpha) = \\frac1n\\sum_{s=1}^n f\\big(x^{(s)}_{x_i\\leftarrow\\alpha}\\big)
              = \\hat{\\mathbb E}_{\\mathrm{MC}}[y\\mid do(x_i=\\alpha)]

    Friedman's partial dependence and the paper's Eq. 2 are the same estimator; this function calls
    :func:`causalbook_lib.interventions.interventional_expectation_mc` on chunks of the grid. The ACE of
    :func:`causalbook_lib.attribution.ace_map` (``method="mc"``) is this curve minus its mean over a
    uniform grid: a centred partial dependence. See
    :doc:`chapter 04 </notebooks/04-interventional-expectations>`.

    Args:
        forward_func: the model, mapping (..., k) to (...) or to (..., outputs).
        inputs: (n, k) data rows to average over, floating point; the result has their dtype and device.
        feature: index i of the intervened feature.
        grid: (m,) values :math:`\\alpha`.
        target: output index when ``forward_func`` returns several outputs per row.
        chunk_size: number of grid values per batched call (default: all at once, split further by
            the Monte Carlo engine when large).

    Returns:
        (m,) tensor of partial dependences.

    Raises:
        ValueError: inputs not a finite floating (n, k) tensor, feature out of range, an empty or
            non-finite grid, a bad target, or a model that does not return one number per row.
    """
    from .interventions import interventional_expectation_mc

    x = _check_inputs(inputs)
    feature = check_index(feature, "feature", x.shape[1])
    g = _check_grid(grid, x)
    c = _chunk_size(chunk_size, g.numel())
    f = _output(forward_func, target)
    return torch.cat([interventional_expectation_mc(f, x, feature, g[s:s + c]) for s in range(0, g.numel(), c)])


def ice_curves(forward_func: Callable, inputs: torch.Tensor, feature: int, grid, *, target=None,
               chunk_size: int | None = None) -> torch.Tensor:
    """Individual conditional expectation (ICE) curves: the model along ``grid`` for each row.

    .. math:: \\mathrm{ICE}^{(s)}_i(\\alpha) = f\\big(x^{(s)}_{x_i\\leftarrow\\alpha}\\big),
              \\qquad \\frac1n\\sum_s \\mathrm{ICE}^{(s)}_i = \\mathrm{PD}_i

    (Goldstein et al. 2015). Not to be confused with the *individual causal effect* of Chattopadhyay
    et al. (2019), a gradient-like local quantity. See
    :doc:`chapter 04 </notebooks/04-interventional-expectations>`.

    Args:
        forward_func, feature, grid, target: as in :func:`partial_dependence`.
        inputs: (n, k) rows, floating point.
        chunk_size: number of rows per batched call (default: all rows).

    Returns:
        (n, m) tensor, row s the curve of input row s.

    Raises:
        ValueError: as :func:`partial_dependence`.
    """
    x = _check_inputs(inputs)
    feature = check_index(feature, "feature", x.shape[1])
    g = _check_grid(grid, x)
    n, k = x.shape
    c = _chunk_size(chunk_size, n)
    f = _output(forward_func, target)
    out = []
    with torch.no_grad():
        for s in range(0, n, c):  # chunks of rows; each chunk is one batched call
            rows = x[s:s + c]
            z = rows[:, None, :].expand(rows.shape[0], g.numel(), k).clone()
            z[:, :, feature] = g
            y = f(z.reshape(-1, k))
            if y.shape != (z.shape[0] * z.shape[1],):
                raise ValueError(f"forward_func must return one number per row, got shape {tuple(y.shape)}")
            out.append(y.reshape(rows.shape[0], g.numel()))
    return torch.cat(out).to(x.dtype)


# ----------------------------------------------------------------------------------------------
# accumulated local effects
# ----------------------------------------------------------------------------------------------

class ALE(NamedTuple):
    """First-order accumulated local effects of one feature: ``edges`` (B + 1,) are the bin edges
    (quantiles of the feature), ``values`` (B + 1,) the centred ALE at the edges and ``counts`` (B,)
    the number of rows in each bin."""

    edges: torch.Tensor
    values: torch.Tensor
    counts: torch.Tensor


def _ale_setup(inputs, feature, n_bins):
    """Validate; return inputs, feature, quantile edges, bin of each row, rows at lower and upper edges."""
    x = _check_inputs(inputs)
    n, k = x.shape
    if n < 2:
        raise ValueError(f"inputs must hold at least 2 rows for ALE, got {n}")
    feature = check_index(feature, "feature", k)
    n_bins = check_positive_int(n_bins, "n_bins")
    col = x[:, feature].contiguous()
    q = torch.linspace(0, 1, n_bins + 1, dtype=x.dtype, device=x.device)
    edges = torch.unique(torch.quantile(col, q))
    if edges.numel() < 2:
        raise ValueError(f"feature {feature} is constant in inputs; ALE needs at least two distinct values")
    bins = (torch.bucketize(col, edges, right=False) - 1).clamp(0, edges.numel() - 2)  # z_{b-1} < x <= z_b
    lo, hi = x.clone(), x.clone()
    lo[:, feature], hi[:, feature] = edges[bins], edges[bins + 1]
    return x, feature, edges, bins, lo, hi


def accumulated_local_effects(forward_func: Callable, inputs: torch.Tensor, feature: int, *, n_bins: int = 10,
                              target=None) -> ALE:
    """First-order accumulated local effects (ALE) of one feature on quantile bins (Apley & Zhu 2020).

    With bin edges :math:`z_0 < \\dots < z_B` at quantiles of :math:`x_i`, and :math:`N_b` the rows
    with :math:`z_{b-1} < x_i \\le z_b` (the first bin also takes :math:`x_i = z_0`),

    .. math:: \\tilde g(z_b) = \\sum_{c=1}^{b} \\frac{1}{|N_c|}\\sum_{s \\in N_c}
              \\big[f(x^{(s)}_{x_i\\leftarrow z_c}) - f(x^{(s)}_{x_i\\leftarrow z_{c-1}})\\big],

    centred so that its mean over the rows (each row taking the value of its bin's upper edge, as in
    Apley and Zhu's estimator) is zero. Each row is moved only to the edges of its own bin, so the
    model is evaluated next to the data, unlike :func:`partial_dependence`. For an additive
    :math:`f = g(x_i) + h(x_{-i})` the values equal :math:`g(z_b)` up to a constant. See
    :doc:`chapter 04 </notebooks/04-interventional-expectations>`.

    Args:
        forward_func: the model, mapping (n, k) to (n,) or (n, outputs).
        inputs: (n, k) rows, floating point; the result has their dtype and device.
        feature: index i of the feature.
        n_bins: number of quantile bins before duplicate edges are merged (>= 1).
        target: output index when ``forward_func`` returns several outputs per row.

    Returns:
        an :class:`ALE` (edges, values, counts).

    Raises:
        ValueError: inputs not a finite floating (n, k) tensor with n >= 2, feature out of range,
            ``n_bins < 1``, a constant feature, a bad target, or a model that does not return one
            number per row.
    """
    x, feature, edges, bins, lo, hi = _ale_setup(inputs, feature, n_bins)
    n, n_b = x.shape[0], edges.numel() - 1
    f = _output(forward_func, target)
    with torch.no_grad():
        y = f(torch.cat([hi, lo]))
    if y.shape != (2 * n,):
        raise ValueError(f"forward_func must return one number per row, got shape {tuple(y.shape)}")
    diff = (y[:n] - y[n:]).to(x.dtype)
    counts = torch.bincount(bins, minlength=n_b)
    sums = torch.zeros(n_b, dtype=x.dtype, device=x.device).index_add_(0, bins, diff)
    local = sums / counts.clamp(min=1).to(x.dtype)  # an empty bin adds nothing
    acc = torch.cat([torch.zeros(1, dtype=x.dtype, device=x.device), torch.cumsum(local, 0)])
    centre = (counts.to(x.dtype) * acc[1:]).sum() / n
    return ALE(edges, acc - centre, counts)


# ----------------------------------------------------------------------------------------------
# scikit-learn bridge
# ----------------------------------------------------------------------------------------------

def _sklearn_regressor_class():
    """Define :class:`SklearnRegressor` on first use: importing scikit-learn's base classes pulls in
    scipy.stats and pandas (about a second), which most chapters never need."""
    try:  # scikit-learn is a dependency of the book, but keep the module importable without it
        from sklearn.base import BaseEstimator, RegressorMixin
    except ImportError:  # pragma: no cover
        BaseEstimator, RegressorMixin = object, object

    class SklearnRegressor(RegressorMixin, BaseEstimator):
        """A torch model as a fitted scikit-learn regressor, for ``sklearn.inspection`` tools.

        ``predict`` converts NumPy rows to a tensor of ``dtype``, calls ``forward_func`` and returns
        output ``target`` as NumPy. ``fit`` trains nothing: it only records the number of features, as
        scikit-learn's checks require. Used in :doc:`chapter 04 </notebooks/04-interventional-expectations>`
        to check :func:`partial_dependence` against ``sklearn.inspection.partial_dependence``.

        Args:
            forward_func: the model, mapping (n, k) to (n,) or (n, outputs).
            target: output index when ``forward_func`` returns several outputs per row.
            dtype: dtype of the tensors handed to ``forward_func`` (default float64).
        """

        def __init__(self, forward_func: Callable = None, target=None, dtype=torch.float64):
            self.forward_func = forward_func
            self.target = target
            self.dtype = dtype

        def fit(self, X, y=None):
            """Record the number of features (nothing is trained); return ``self``."""
            X = np.asarray(X)
            if X.ndim != 2:
                raise ValueError(f"X must have shape (n, k), got {X.shape}")
            _output(self.forward_func, self.target)  # validate forward_func and target
            self.n_features_in_ = X.shape[1]
            self.is_fitted_ = True
            return self

        def predict(self, X):
            """Output ``target`` of ``forward_func`` at the rows of ``X``, as a NumPy array of shape (n,)."""
            if not getattr(self, "is_fitted_", False):
                raise ValueError("call fit(X) before predict")
            X = np.asarray(X)
            if X.ndim != 2 or X.shape[1] != self.n_features_in_:
                raise ValueError(f"X must have shape (n, {self.n_features_in_}), got {X.shape}")
            with torch.no_grad():
                y = _output(self.forward_func, self.target)(torch.as_tensor(X, dtype=self.dtype))
            return y.detach().cpu().numpy()

    SklearnRegressor.__module__, SklearnRegressor.__qualname__ = __name__, "SklearnRegressor"
    return SklearnRegressor


def __getattr__(name: str):
    if name == "SklearnRegressor":
        cls = globals()["SklearnRegressor"] = _sklearn_regressor_class()
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ----------------------------------------------------------------------------------------------
# where the estimators evaluate the model
# ----------------------------------------------------------------------------------------------

def partial_dependence_points(inputs: torch.Tensor, feature: int, grid) -> torch.Tensor:
    """The (m * n, k) points at which :func:`partial_dependence` (Eq. 2) evaluates the model.

    Every row with feature i replaced by every grid value (grid-major order): point
    :math:`(a, s)` is :math:`x^{(s)}_{x_i\\leftarrow\\alpha_a}`. See
    :doc:`chapter 04 </notebooks/04-interventional-expectations>`.

    Args:
        inputs: (n, k) rows, floating point.
        feature: index i of the intervened feature.
        grid: (m,) values :math:`\\alpha`.

    Returns:
        (m * n, k) tensor in the dtype and on the device of ``inputs``.

    Raises:
        ValueError: as :func:`partial_dependence`.
    """
    x = _check_inputs(inputs)
    feature = check_index(feature, "feature", x.shape[1])
    g = _check_grid(grid, x)
    z = x.expand(g.numel(), *x.shape).clone()
    z[:, :, feature] = g[:, None]
    return z.reshape(-1, x.shape[1])


def ale_points(inputs: torch.Tensor, feature: int, *, n_bins: int = 10) -> torch.Tensor:
    """The (2n, k) points at which :func:`accumulated_local_effects` evaluates the model.

    Each row moved to the upper edge of its own quantile bin (first n points), then to the lower
    edge (last n points), as in :func:`accumulated_local_effects`. See
    :doc:`chapter 04 </notebooks/04-interventional-expectations>`.

    Args:
        inputs: (n, k) rows, floating point.
        feature: index i of the feature.
        n_bins: number of quantile bins (>= 1).

    Returns:
        (2n, k) tensor in the dtype and on the device of ``inputs``.

    Raises:
        ValueError: as :func:`accumulated_local_effects`.
    """
    _, _, _, _, lo, hi = _ale_setup(inputs, feature, n_bins)
    return torch.cat([hi, lo])


def off_support(points: torch.Tensor, data: torch.Tensor, *, features=None) -> tuple[torch.Tensor, float]:
    """Which points lie off the support of the data, by a nearest-neighbour radius.

    A point is *off support* when its Euclidean distance to the nearest data row (on the columns
    ``features``) exceeds :math:`r = \\max_s \\min_{t \\ne s} \\lVert x^{(s)} - x^{(t)}\\rVert`, the largest
    distance from a data row to its nearest other row. The radius is conservative: the most isolated
    observed row sets it. See :doc:`chapter 04 </notebooks/04-interventional-expectations>`.

    Args:
        points: (m, k) points to test.
        data: (n, k) data rows, n >= 2.
        features: optional list of columns to measure distances on (default: all).

    Returns:
        ``(outside, r)``: an (m,) boolean tensor and the radius.

    Raises:
        ValueError: bad shapes, fewer than two data rows, or unknown columns.
    """
    p = _check_inputs(points, "points")
    d = _check_inputs(data, "data").to(dtype=p.dtype, device=p.device)
    if d.shape[0] < 2 or d.shape[1] != p.shape[1]:
        raise ValueError(f"data must have shape (n >= 2, {p.shape[1]}), got {tuple(d.shape)}")
    if features is not None:
        cols = [check_index(j, "features entry", p.shape[1]) for j in features]
        if not cols:
            raise ValueError("features must name at least one column")
        p, d = p[:, cols], d[:, cols]
    within = torch.cdist(d, d)
    within.fill_diagonal_(float("inf"))
    r = float(within.min(dim=1).values.max())
    return torch.cdist(p, d).min(dim=1).values > r, r
