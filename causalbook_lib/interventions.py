"""Interventional expectations E[y | do(x_i = alpha)]: Monte Carlo and second-order Taylor (Part II).

Chattopadhyay et al. (2019, Sec. 4.2, Eq. 2-4) define the causal effect of an input neuron
:math:`x_i` on an output neuron :math:`y = f(x)` through the interventional expectation

.. math::

   \\mathbb E[y \\mid do(x_i = \\alpha)]
   \\approx f(\\mu_\\alpha) + \\tfrac12 \\operatorname{tr}\\big(\\nabla^2 f(\\mu_\\alpha)\\,\\Sigma_{-i}\\big),

where :math:`\\mu_\\alpha` is the input mean with entry :math:`i` set to :math:`\\alpha` and
:math:`\\Sigma_{-i}` is the input covariance with row and column :math:`i` zeroed (for a feedforward
network the other inputs keep their observational distribution, Corollary 2.1 of the paper). The
approximation is exact when :math:`f` is quadratic.

Estimators (book chapters :doc:`04 </notebooks/04-interventional-expectations>` and :doc:`06 </notebooks/06-scaling>`):

* :func:`interventional_expectation_mc`: the empirical Eq. 2, a mean over data rows;
* :func:`interventional_expectation`: the Taylor estimate for one intervened feature, with the
  exact Hessian (``"hessian"``), exact Hessian-vector products along the eigen-directions of
  :math:`\\Sigma_{-i}` (``"hvp"``) or the paper's finite-difference recipe of App. A.5
  (``"finite_difference"``);
* :func:`taylor_expectation`: Eq. 4 for any batch of means and covariances (chapter 07 applies it to
  the moments of recurrent rollouts); every Hessian-vector product of this module goes through its
  engine, which differentiates the summed outputs of a batch, so it also runs recurrent networks;
* :func:`interventional_expectation_all`: the Taylor estimate for every feature at once, sharing one
  eigendecomposition of :math:`\\Sigma` through the trace identity
  :math:`\\operatorname{tr}(H\\Sigma_{-i}) = \\operatorname{tr}(H\\Sigma) - 2(H\\Sigma)_{ii} + H_{ii}\\Sigma_{ii}`;
* :func:`mlp_interventional_expectation_all`: the fast path for multilayer perceptrons whose first
  layer is linear (covariance projected into the first hidden layer once, rank-1 corrections per
  feature, second-order forward propagation); it is the fastest variant of ``bench/bench_interventions.py``.

The output function ``f`` maps a tensor of shape ``(..., k)`` to shape ``(...)``: one scalar output
(a single output neuron) per input row, for example ``lambda x: model(x)[..., c]``. Computations run
in the floating dtype of ``mean`` (float64 unless ``mean`` is a float32 tensor); the network must
accept that dtype (use ``model.double()`` for float64). Sums are accumulated in
:func:`causalbook_lib.utils.accumulation_dtype` (float64; float32 on MPS).
"""
from __future__ import annotations

import math
import warnings
from typing import Callable, Sequence

import torch
from torch import nn

from .utils import accumulation_dtype, as_float_tensor, as_floating, check_finite, check_index, check_interval, check_positive_int, check_psd, check_shape

__all__ = [
    "OutOfRangeWarning",
    "METHODS",
    "intervened_covariance",
    "covariance_factor",
    "rank_truncation_bound",
    "interventional_expectation",
    "interventional_expectation_all",
    "interventional_expectation_mc",
    "intervened_points",
    "taylor_expectation",
    "MLP_ACTIVATIONS",
    "mlp_interventional_expectation_all",
]

#: The Taylor methods of :func:`interventional_expectation` and :func:`interventional_expectation_all`.
METHODS = ("hessian", "hvp", "finite_difference")

#: Number of floats a batched evaluation may hold at once before it is split into chunks.
_CHUNK_ELEMENTS = 1 << 23


class OutOfRangeWarning(UserWarning):
    """An interventional-expectation estimate left the range the output can take.

    Raised (as a warning) when ``output_range=(lo, hi)`` is given, for example ``(0, 1)`` for a
    softmax probability: the Taylor estimate of an expectation of values in ``[lo, hi]`` must itself
    lie in ``[lo, hi]``, so an estimate outside it is certainly wrong.
    """


# ----------------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------------

def _dtype_of(x) -> torch.dtype:
    if torch.is_tensor(x) and x.is_floating_point():
        return x.dtype
    return accumulation_dtype(x) if torch.is_tensor(x) else torch.float64


def _check_mean_cov(mean, cov):
    dtype = _dtype_of(mean)
    mean = as_float_tensor(mean, "mean", dtype)
    check_shape(mean, "mean", (None,))
    k = mean.shape[0]
    if k == 0:
        raise ValueError("mean must hold at least one feature, got an empty vector")
    cov = as_float_tensor(cov, "cov", dtype)
    check_psd(cov, "cov", size=k)
    return mean, cov, k


def _check_alphas(alphas, dtype) -> torch.Tensor:
    a = as_float_tensor(alphas, "alphas", dtype)
    if a.dim() == 0:
        a = a.reshape(1)
    if a.dim() != 1:
        raise ValueError(f"alphas must be a 1-D sequence of intervention values, got shape {tuple(a.shape)}")
    if a.numel() == 0:
        raise ValueError("alphas must hold at least one intervention value, got an empty sequence")
    return a


def _evaluate_f(f: Callable, x: torch.Tensor, name: str = "f") -> torch.Tensor:
    """Call ``f`` on a batch ``x`` of shape (n, k) and check that it returns shape (n,)."""
    if not callable(f):
        raise ValueError(f"{name} must be a callable mapping (..., k) to (...), got {type(f).__name__}")
    try:
        out = f(x)
    except RuntimeError as exc:
        if "type" not in str(exc):
            raise
        raise ValueError(f"{name} failed on inputs of dtype {x.dtype} ({exc}). The inputs are computed in "
                         f"the dtype of the data or moments given; pass them in the model's dtype "
                         f"(e.g. data.double() for a float64 model, data.float() for a float32 one)") from exc
    if not torch.is_tensor(out) or tuple(out.shape) != tuple(x.shape[:-1]):
        shape = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
        raise ValueError(f"{name} must map inputs of shape (..., k) to one scalar per row, shape (...); "
                         f"for inputs of shape {tuple(x.shape)} it returned {shape}. For a network with "
                         f"several outputs pass e.g. `lambda x: model(x)[..., c]`")
    if not bool(torch.isfinite(out).all()):
        raise ValueError(f"{name} returned NaN or infinite values")
    return out


def _check_method(method: str, rank, eps, k: int):
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if rank is not None:
        if method == "hessian":
            raise ValueError("rank only applies to the methods 'hvp' and 'finite_difference', not 'hessian'")
        rank = check_positive_int(rank, "rank")
        if rank > k:
            raise ValueError(f"rank must be at most the number of features ({k}), got {rank}")
    if eps is not None:
        if method != "finite_difference":
            raise ValueError(f"eps only applies to method='finite_difference', not {method!r}")
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps <= 0:
            raise ValueError(f"eps must be a positive finite number, got {eps!r}")
        eps = float(eps)
    elif method == "finite_difference":
        eps = 1e-6  # the paper's choice (App. A.5)
    return rank, eps


def _check_output_range(output_range):
    if output_range is None:
        return None
    try:
        lo, hi = output_range
    except (TypeError, ValueError) as exc:
        raise ValueError(f"output_range must be a pair (lo, hi), got {output_range!r}") from exc
    check_interval(lo, hi, "output_range")
    return float(lo), float(hi)


def _warn_out_of_range(est: torch.Tensor, output_range, what: str) -> None:
    if output_range is None:
        return
    lo, hi = output_range
    bad = (est < lo) | (est > hi)
    if bool(bad.any()):
        worst = float(est[bad].abs().max()) if bool(bad.any()) else float("nan")
        warnings.warn(OutOfRangeWarning(
            f"{int(bad.sum())} of {est.numel()} {what} estimate(s) lie outside the output range "
            f"[{lo:g}, {hi:g}] (largest magnitude {worst:.4g}); the second-order Taylor approximation "
            f"is unreliable here. Use logits or Monte Carlo (interventional_expectation_mc)."), stacklevel=3)


def _chunk(n_items: int, per_item: int, chunk_size: int | None = None, rows_per_item: int = 1) -> int:
    """Items per batched call: ``chunk_size // rows_per_item`` rows' worth when the caller gives
    ``chunk_size`` (at least one item), else as many as hold about ``_CHUNK_ELEMENTS`` input floats."""
    if chunk_size is not None:
        return max(1, min(n_items, chunk_size // max(1, rows_per_item)))
    return max(1, min(n_items, _CHUNK_ELEMENTS // max(1, per_item)))


def _check_chunk_size(chunk_size) -> int | None:
    return None if chunk_size is None else check_positive_int(chunk_size, "chunk_size")


# ----------------------------------------------------------------------------------------------
# covariance helpers
# ----------------------------------------------------------------------------------------------

def intervened_covariance(cov, feature: int) -> torch.Tensor:
    """Σ₋ᵢ: the covariance ``cov`` (k, k) with row and column ``feature`` set to zero.

    Under do(x_i = α) the intervened input is a constant, so it neither varies nor co-varies
    (Corollary 2.1 of Chattopadhyay et al. 2019); :doc:`chapter 04 </notebooks/04-interventional-expectations>`.

    Raises:
        ValueError: ``cov`` is not a symmetric PSD matrix, or ``feature`` is out of range.
    """
    cov = as_float_tensor(cov, "cov", _dtype_of(cov))
    check_psd(cov, "cov")
    i = check_index(feature, "feature", cov.shape[0])
    out = cov.clone()
    out[i, :] = 0
    out[:, i] = 0
    return out


def covariance_factor(cov, rank: int | None = None):
    """A factor V (k, r) with V Vᵀ = Σ (or its best rank-r approximation), and the dropped eigenvalues.

    The columns are v_r = √λ_r e_r for the eigenpairs of Σ in decreasing order (App. A.5 of
    Chattopadhyay et al. 2019); eigenvalues at round-off level (below k·eps·λ_max) are dropped
    because they carry no variance. With ``rank`` only the ``rank`` largest are kept, and
    Σ − V Vᵀ is positive semi-definite with trace equal to the sum of the dropped eigenvalues
    (:doc:`chapter 06 </notebooks/06-scaling>`, the truncation bound).

    Args:
        cov: symmetric PSD matrix of shape (k, k).
        rank: optional number of eigen-directions to keep, 1 <= rank <= k.

    Returns:
        ``(V, dropped)``: V of shape (k, r), and the sum of the eigenvalues that V leaves out
        (a Python float, clamped at 0 from below).

    Raises:
        ValueError: ``cov`` is not symmetric PSD, or ``rank`` is not an integer in [1, k].
    """
    cov = as_float_tensor(cov, "cov", _dtype_of(cov))
    check_psd(cov, "cov")
    k = cov.shape[0]
    if rank is not None:
        rank = check_positive_int(rank, "rank")
        if rank > k:
            raise ValueError(f"rank must be at most the number of features ({k}), got {rank}")
    return _factor(cov, rank)


def _factor(cov: torch.Tensor, rank: int | None):
    lam, vecs = torch.linalg.eigh(cov)
    lam, vecs = lam.flip(0), vecs.flip(1)  # decreasing
    lam = lam.clamp_min(0)
    top = float(lam[0]) if lam.numel() else 0.0
    keep = lam > top * cov.shape[0] * torch.finfo(cov.dtype).eps
    if rank is not None:
        keep[rank:] = False
    dropped = float(lam[~keep].sum())
    return vecs[:, keep] * lam[keep].sqrt(), dropped


def rank_truncation_bound(cov, rank: int, hessian_norm: float) -> float:
    """Bound on the error of the Taylor estimate when Σ is truncated to its top ``rank`` eigenpairs.

    With Σ_r = V Vᵀ the rank-r truncation, E = Σ − Σ_r is PSD and so is E₋ᵢ, with
    tr(E₋ᵢ) ≤ tr(E) = Σ_{j>r} λ_j. For any symmetric H, ``|tr(H E₋ᵢ)| ≤ ‖H‖₂ tr(E₋ᵢ)``, hence

    .. math:: \\big|\\tfrac12\\operatorname{tr}(H\\Sigma_{-i}) - \\tfrac12\\operatorname{tr}(H\\Sigma_{r,-i})\\big|
              \\le \\tfrac12 \\lVert H\\rVert_2 \\sum_{j>r}\\lambda_j .

    That is the path "truncate Σ, then zero row and column i". ``interventional_expectation(...,
    rank=r)`` takes the other path: it zeroes row and column i first and truncates Σ₋ᵢ to its own top
    r eigenpairs. The bound holds there too. Σ₋ᵢ is Σ compressed to the other k − 1 coordinates (plus
    a zero row and column), so by Cauchy interlacing its eigenvalues satisfy μ_j ≤ λ_j, and the error
    of its truncation, Σ_{j>r} μ_j, is at most Σ_{j>r} λ_j.

    Args:
        cov: the input covariance (k, k).
        rank: number of eigen-directions kept.
        hessian_norm: an upper bound on the spectral norm ‖∇²f‖₂ at the evaluated points.

    Returns:
        The bound as a float (:doc:`chapter 06 </notebooks/06-scaling>`).

    Raises:
        ValueError: bad ``cov`` or ``rank``, or a negative or non-finite ``hessian_norm``.
    """
    if isinstance(hessian_norm, bool) or not isinstance(hessian_norm, (int, float)) \
            or not math.isfinite(hessian_norm) or hessian_norm < 0:
        raise ValueError(f"hessian_norm must be a non-negative finite number, got {hessian_norm!r}")
    _, dropped = covariance_factor(cov, rank)
    return 0.5 * float(hessian_norm) * dropped


# ----------------------------------------------------------------------------------------------
# second-order terms
# ----------------------------------------------------------------------------------------------

def _one_row(f: Callable) -> Callable:
    """``f`` as a function of one point (k,) -> scalar, calling ``f`` on a (1, k) batch.

    ``torch.func`` transforms differentiate functions of one point; the library's contract is that
    ``forward_func`` only ever sees 2-D input (n, k), so that ``lambda x: net(x)[:, 0]`` means what it
    says (on a 1-D point it would index the wrong axis and return a wrong number without an error).
    """
    return lambda v: f(v.unsqueeze(0)).squeeze(0)


def _hvps(f: Callable, points: torch.Tensor, tangents: torch.Tensor, rows: int) -> torch.Tensor:
    """Hessian-vector products ∇²f(p_n) v_n for the rows (p_n, v_n) of ``points`` and ``tangents``: (N, k).

    The library's one second-order engine: forward-over-reverse autodiff (``torch.func.jvp`` of
    ``torch.func.grad``) on whole batches of at most ``rows`` rows. Because ``f`` maps every row to its
    own output (rows must not interact, as the callers document), the gradient of ``f(batch).sum()``
    holds every row's own gradient, and its directional derivative along the tangents every row's
    ``H v``. ``f`` only ever sees 2-D input, so ``lambda x: net(x)[:, 0]`` means what it says.
    """
    def total(w):
        return f(w).sum()

    out = []
    with warnings.catch_warnings():  # torch's forward-mode AD loads its decompositions with torch.jit.script
        warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=DeprecationWarning)
        for s in range(0, points.shape[0], rows):
            _, hv = torch.func.jvp(torch.func.grad(total), (points[s:s + rows],), (tangents[s:s + rows],))
            out.append(hv)
    return torch.cat(out) if out else points.new_zeros(0, points.shape[1])


def _quad_forms(f, points: torch.Tensor, dirs: torch.Tensor, method: str, eps: float | None,
                chunk_size: int | None = None) -> torch.Tensor:
    """dᵀ ∇²f(x) d for every point x (P, k) and every direction d (columns of dirs, (k, r)); (P, r)."""
    P, k = points.shape
    r = dirs.shape[1]
    if r == 0:
        return points.new_zeros(P, 0)
    if method == "finite_difference":
        fx = f(points)  # (P,)
        out = torch.empty(P, r, dtype=points.dtype, device=points.device)
        c = _chunk(P, r * k, chunk_size, r)
        step = eps * dirs.T[None]  # (1, r, k)
        for s in range(0, P, c):  # chunks of points, each fully batched
            x = points[s:s + c, None, :]
            n = x.shape[0]
            # f only ever sees 2-D input (n*r, k), as it was validated: a 3-D batch would let
            # f = lambda x: net(x)[:, 0] select the wrong axis and return garbage without an error.
            fp = f((x + step).reshape(n * r, k)).reshape(n, r)
            fm = f((x - step).reshape(n * r, k)).reshape(n, r)
            out[s:s + c] = (fp + fm - 2 * fx[s:s + c, None]) / eps ** 2
        return out
    c = _chunk(P, 8 * r * k, chunk_size, r)          # points per call; each point takes r rows
    tangents = dirs.T.repeat(P, 1)                      # row p * r + j: direction j
    hv = _hvps(f, points.repeat_interleave(r, dim=0), tangents, c * r)
    return (hv * tangents).sum(1).reshape(P, r)


def taylor_expectation(forward_func: Callable[[torch.Tensor], torch.Tensor], means: torch.Tensor, covs: torch.Tensor, *,
                       rank_tol: float = 1e-12, chunk_size: int = 8192,
                       return_terms: bool = False):
    """Eq. 4 for a batch of input distributions: ``E[f(X)] ~ f(mu) + 1/2 tr(H_f(mu) Sigma)``.

    The trace is computed without forming the Hessian: with ``Sigma = V V^T`` from the eigen
    decomposition (``V = U diag(sqrt(lambda))``), ``tr(H Sigma) = sum_r v_r^T H v_r``, and each ``H v_r``
    is an exact Hessian-vector product (forward-over-reverse autodiff, ``torch.func.jvp`` of
    ``torch.func.grad``). Eigen-directions with ``lambda <= rank_tol * lambda_max`` are dropped,
    which is exact for a rank-deficient ``Sigma`` (for example rollouts with feedback).
    It is the library's Eq. 4 for any batch of moments: :doc:`chapter 07 </notebooks/07-recurrent-networks>`
    applies it to the moments of rollouts (:func:`causalbook_lib.recurrent.interventional_expectation_rnn`),
    and :func:`interventional_expectation` uses the same Hessian-vector engine (Part II derives Eq. 4).

    Args:
        forward_func: maps a batch of points ``(B, D)`` to values ``(B,)``, row by row (rows must not interact).
        means: shape ``(A, D)``, one mean per distribution.
        covs: shape ``(A, D, D)``, symmetric PSD covariances.
        rank_tol: relative eigenvalue cut-off (>= 0).
        chunk_size: at most this many Hessian-vector products per call of ``forward_func``.
        return_terms: also return ``forward_func(mu)`` and the second-order term separately.

    Returns:
        shape ``(A,)``, accumulated in float64 (:func:`causalbook_lib.utils.accumulation_dtype`), or
        ``(value, f_mu, second_order)`` when ``return_terms``. ``forward_func`` is called in the
        floating dtype of ``means`` (float64 for other inputs).

    Raises:
        ValueError: inconsistent shapes, non-finite or non-symmetric covariances, a negative eigenvalue.
    """
    means = as_floating(means, "means")
    covs = as_floating(covs, "covs").to(dtype=means.dtype, device=means.device)
    acc = accumulation_dtype(means)
    if means.dim() != 2:
        raise ValueError(f"means must have shape (A, D), got {tuple(means.shape)}")
    A, D = means.shape
    if covs.shape != (A, D, D):
        raise ValueError(f"covs must have shape ({A}, {D}, {D}) to match means, got {tuple(covs.shape)}")
    check_finite(means, "means")
    check_psd(covs, "covs", batched=True)
    if not rank_tol >= 0:
        raise ValueError(f"rank_tol must be >= 0, got {rank_tol!r}")
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    lam, U = torch.linalg.eigh(covs)
    keep = lam > rank_tol * lam.amax(dim=1, keepdim=True).clamp(min=1e-300)
    V = U * lam.clamp(min=0).sqrt()[:, None, :]                   # columns v_r = sqrt(lambda_r) u_r
    which, r = keep.nonzero(as_tuple=True)
    tangents = V[which, :, r]                                       # (R, D)
    points = means[which]

    hv = _hvps(forward_func, points, tangents, chunk_size)
    quad = torch.zeros(A, dtype=acc, device=means.device).index_add_(0, which, (hv * tangents).sum(1).to(acc))
    with torch.no_grad():
        f_mu = forward_func(means).to(acc)
    value = f_mu + 0.5 * quad
    return (value, f_mu, 0.5 * quad) if return_terms else value


def _hessians(f, points: torch.Tensor, chunk_size: int | None = None) -> torch.Tensor:
    """Full Hessians ∇²f(x) of shape (P, k, k) with torch.func.hessian (jacfwd over jacrev)."""
    P, k = points.shape
    hess = torch.func.vmap(torch.func.hessian(_one_row(f)))
    c = _chunk(P, 4 * k * k, chunk_size, k)
    return torch.cat([hess(points[s:s + c]) for s in range(0, P, c)])


def intervened_points(mean, feature: int, alphas) -> torch.Tensor:
    """The points μ_α at which Eq. 4 evaluates ``forward_func``: ``mean`` with coordinate ``feature``
    set to each α, shape (m, k), float64 (Corollary 2.1: the other means do not move).

    Raises:
        ValueError: ``mean`` not a finite 1-D vector, ``feature`` out of range, or bad ``alphas``.
    """
    mean = as_float_tensor(mean, "mean")
    if mean.dim() != 1:
        raise ValueError(f"mean must be a 1-D vector of k means, got shape {tuple(mean.shape)}")
    feature = check_index(feature, "feature", mean.shape[0])
    return _intervened_points(mean, feature, _check_alphas(alphas, mean.dtype))


def _intervened_points(mean: torch.Tensor, feature: int, alphas: torch.Tensor) -> torch.Tensor:
    pts = mean.expand(alphas.shape[0], -1).clone()
    pts[:, feature] = alphas
    return pts


def interventional_expectation(forward_func: Callable, mean, cov, feature: int, alphas, *, method: str = "hvp",
                               rank: int | None = None, eps: float | None = None,
                               output_range: Sequence[float] | None = None,
                               chunk_size: int | None = None) -> torch.Tensor:
    """Second-order Taylor estimate of E[f(x) | do(x_feature = α)] for each α (Eq. 4 of the paper).

    .. math:: \\hat{\\mathbb E}[y\\mid do(x_i=\\alpha)] = f(\\mu_\\alpha)
              + \\tfrac12\\operatorname{tr}\\big(\\nabla^2 f(\\mu_\\alpha)\\,\\Sigma_{-i}\\big)

    with μ_α = ``mean`` with entry ``feature`` set to α and Σ₋ᵢ = ``cov`` with row and column
    ``feature`` zeroed. Book: :doc:`chapter 04 </notebooks/04-interventional-expectations>` (the estimator) and
    :doc:`06 </notebooks/06-scaling>` (the methods). Batched over ``alphas``.

    Methods:
        ``"hessian"``: the full Hessian by ``torch.func.hessian`` (jacfwd over jacrev), contracted
        with Σ₋ᵢ. ``"hvp"``: Σ₋ᵢ = Σ_r v_r v_rᵀ with v_r = √λ_r e_r from its eigendecomposition;
        each v_rᵀ ∇²f v_r is an exact forward-over-reverse product (jvp of grad), batched over r and
        over α (the engine of :func:`taylor_expectation`); ``rank`` keeps only the ``rank`` largest eigen-directions (see
        :func:`rank_truncation_bound`). ``"finite_difference"``: App. A.5's recipe
        v_rᵀ ∇²f v_r ≈ (f(μ + εv_r) + f(μ − εv_r) − 2f(μ)) / ε², computed in the dtype of the
        inputs (ε = ``eps``, default the paper's 1e-6; in float32 this is round-off garbage).

    Args:
        forward_func: callable mapping (..., k) to (...), one scalar output per row.
        mean: input mean, shape (k,). Its floating dtype (float32 or float64) is the compute dtype;
            anything else is converted to float64.
        cov: input covariance, shape (k, k), symmetric positive semi-definite.
        feature: index of the intervened input, 0 <= feature < k.
        alphas: intervention values, shape (m,) (a scalar counts as m = 1).
        method: ``"hvp"`` (default), ``"hessian"`` or ``"finite_difference"``.
        rank: optional truncation rank for ``"hvp"`` and ``"finite_difference"``.
        eps: step for ``"finite_difference"`` (default 1e-6).
        output_range: optional ``(lo, hi)``; an :class:`OutOfRangeWarning` is emitted if an estimate
            leaves it (for example ``(0, 1)`` for a softmax probability).
        chunk_size: at most this many input rows per batched call of ``forward_func`` (each point
            costs one row per direction, or k rows for ``"hessian"``; at least one point per call).
            Default: batches of about 8M input floats, which suits MLPs; lower it for networks
            whose activations are much larger than their inputs (convolutions).

    Returns:
        Tensor of shape (m,) (detached).

    Raises:
        ValueError: forward_func returns the wrong shape or non-finite values; mean not 1-D; cov not symmetric
            PSD or not (k, k); feature out of range; alphas empty, not 1-D or non-finite; unknown
            method; rank not in [1, k] or given with ``"hessian"``; eps not positive or given with
            another method; output_range not a pair lo < hi.
    """
    mean, cov, k = _check_mean_cov(mean, cov)
    feature = check_index(feature, "feature", k)
    alphas = _check_alphas(alphas, mean.dtype)
    rank, eps = _check_method(method, rank, eps, k)
    output_range = _check_output_range(output_range)
    chunk_size = _check_chunk_size(chunk_size)
    points = _intervened_points(mean, feature, alphas)
    value = _evaluate_f(forward_func, points)
    _evaluate_f(forward_func, points[:1])
    sigma = cov.clone()
    sigma[feature, :] = 0
    sigma[:, feature] = 0
    if method == "hessian":
        second = (_hessians(forward_func, points, chunk_size) * sigma).sum((-2, -1))
    else:
        dirs, _ = _factor(sigma, rank)
        second = _quad_forms(forward_func, points, dirs, method, eps, chunk_size).sum(-1)
    est = (value + 0.5 * second).detach()
    _warn_out_of_range(est, output_range, "interventional-expectation")
    return est


def interventional_expectation_all(forward_func: Callable, mean, cov, alphas, *, method: str = "hvp",
                                   rank: int | None = None, eps: float | None = None,
                                   output_range: Sequence[float] | None = None,
                                   chunk_size: int | None = None) -> torch.Tensor:
    """Taylor estimates of E[f(x) | do(x_i = α)] for every feature i and every α: shape (k, m).

    ``interventional_expectation_all(forward_func, mean, cov, alphas, *, method="hvp", rank=None, eps=None,
    output_range=None, chunk_size=None) -> Tensor of shape (k, len(alphas))``; row i equals
    ``interventional_expectation(forward_func, mean, cov, i, alphas, method=method, rank=rank, eps=eps)`` up to
    round-off (with ``rank``, both truncate: here Σ is truncated before the row/column is zeroed).

    One eigendecomposition Σ ≈ V Vᵀ serves every feature through the trace identity
    (:doc:`chapter 06 </notebooks/06-scaling>`)

    .. math:: \\operatorname{tr}(H\\Sigma_{-i}) = \\operatorname{tr}(H\\Sigma) - 2(H\\Sigma)_{ii} + H_{ii}\\Sigma_{ii},

    which follows from Σ₋ᵢ = Σ − e_i Σ_{i·} − Σ_{·i} e_iᵀ + Σ_ii e_i e_iᵀ. With ``"hvp"``, at each point
    tr(HΣ) takes r directional second derivatives along the columns of V, and one more
    Hessian-vector product h = H e_i gives both (HΣ)_ii = h·Σ_{·i} and H_ii = h_i. With
    ``"finite_difference"`` the two corrections use central differences along e_i and e_i ± Σ_{·i}
    (polarisation). With ``"hessian"`` the full Hessian is formed at every point (slow; a reference).

    Args:
        forward_func, mean, cov, alphas, method, rank, eps, output_range, chunk_size: as in
            :func:`interventional_expectation`.

    Returns:
        Tensor of shape (k, m) (detached); entry [i, j] estimates E[y | do(x_i = alphas[j])].

    Raises:
        ValueError: as in :func:`interventional_expectation`.
    """
    mean, cov, k = _check_mean_cov(mean, cov)
    alphas = _check_alphas(alphas, mean.dtype)
    rank, eps = _check_method(method, rank, eps, k)
    output_range = _check_output_range(output_range)
    chunk_size = _check_chunk_size(chunk_size)
    m = alphas.shape[0]
    idx = torch.arange(k, device=mean.device)
    points = mean.expand(k, m, k).clone()
    points[idx, :, idx] = alphas  # points[i, j] = mean with x_i = alphas[j]
    points = points.reshape(k * m, k)
    value = _evaluate_f(forward_func, points)
    _evaluate_f(forward_func, points[:1])
    feat = idx.repeat_interleave(m)  # the intervened feature of each point
    if method == "hessian":
        H = _hessians(forward_func, points, chunk_size)  # (P, k, k)
        trace = (H * cov).sum((-2, -1))
        rows = torch.arange(k * m, device=H.device)
        hs_ii = (H[rows, feat] * cov[feat]).sum(-1)
        h_ii = H[rows, feat, feat]
        s_ii = cov[feat, feat]
    else:
        dirs, _ = _factor(cov, rank)
        sig = dirs @ dirs.T  # the (possibly truncated) covariance that the estimate uses
        trace = _quad_forms(forward_func, points, dirs, method, eps, chunk_size).sum(-1)
        s_col = sig[feat]  # (P, k): column feat of Σ_r
        s_ii = sig[feat, feat]
        e = torch.nn.functional.one_hot(feat, k).to(points.dtype)
        if method == "hvp":
            he = _hvps(forward_func, points, e, _chunk(k * m, 8 * k, chunk_size))
            hs_ii = (he * s_col).sum(-1)
            h_ii = he[torch.arange(k * m, device=he.device), feat]
        else:
            h_ii = _pointwise_fd(forward_func, points, e, eps)
            hs_ii = 0.25 * (_pointwise_fd(forward_func, points, e + s_col, eps) - _pointwise_fd(forward_func, points, e - s_col, eps))
    second = trace - 2 * hs_ii + h_ii * s_ii
    est = (value + 0.5 * second).detach().reshape(k, m)
    _warn_out_of_range(est, output_range, "interventional-expectation")
    return est


def _pointwise_fd(f, points: torch.Tensor, dirs: torch.Tensor, eps: float) -> torch.Tensor:
    """Central second difference of f at each point along its own direction (rows of dirs)."""
    step = eps * dirs
    return (f(points + step) + f(points - step) - 2 * f(points)) / eps ** 2


# ----------------------------------------------------------------------------------------------
# Monte Carlo
# ----------------------------------------------------------------------------------------------

def interventional_expectation_mc(forward_func: Callable, data, feature: int, alphas, *,
                                  chunk_size: int | None = None) -> torch.Tensor:
    """Empirical interventional expectation (Eq. 2): mean over data rows of forward_func(row with x_feature = α).

    .. math:: \\hat{\\mathbb E}[y\\mid do(x_i=\\alpha)] = \\frac1n\\sum_{s=1}^n f(x^{(s)}_{x_i\\leftarrow\\alpha})

    Every other input keeps its observed value (Corollary 2.1: intervening on an input does not
    change the others). Cost O(n·m) evaluations of forward_func, batched; large problems are split into chunks
    of alphas. Book: :doc:`chapter 04 </notebooks/04-interventional-expectations>`.

    Args:
        forward_func: callable mapping (..., k) to (...).
        data: observed inputs, shape (n, k). Its floating dtype is kept (otherwise float64).
        feature: index of the intervened input, 0 <= feature < k.
        alphas: intervention values, shape (m,).
        chunk_size: at most this many rows per call of ``forward_func`` (at least the n rows of one
            α); default: batches of about 8M input floats.

    Returns:
        Tensor of shape (m,) (detached).

    Raises:
        ValueError: data not a non-empty finite (n, k) array; feature out of range; alphas empty,
            not 1-D or non-finite; forward_func returning the wrong shape or non-finite values;
            chunk_size not a positive int.
    """
    data = as_float_tensor(data, "data", _dtype_of(data))
    check_shape(data, "data", (None, None))
    n, k = data.shape
    if n == 0 or k == 0:
        raise ValueError(f"data must hold at least one row and one feature, got shape {(n, k)}")
    feature = check_index(feature, "feature", k)
    alphas = _check_alphas(alphas, data.dtype)
    m = alphas.shape[0]
    c = _chunk(m, n * k, _check_chunk_size(chunk_size), n)
    out = []
    with torch.no_grad():
        for s in range(0, m, c):  # chunks of alphas; each chunk is one batched call of forward_func
            a = alphas[s:s + c]
            x = data.expand(a.shape[0], n, k).clone()
            x[:, :, feature] = a[:, None]
            out.append(_evaluate_f(forward_func, x.reshape(-1, k)).reshape(a.shape[0], n).mean(1))
    return torch.cat(out).detach()


# ----------------------------------------------------------------------------------------------
# The fast path for multilayer perceptrons
# ----------------------------------------------------------------------------------------------

def _tanh_d(u):
    t = torch.tanh(u)
    d1 = 1 - t * t
    return t, d1, -2 * t * d1


def _sigmoid_d(u):
    s = torch.sigmoid(u)
    d1 = s * (1 - s)
    return s, d1, d1 * (1 - 2 * s)


def _softplus_d(u):
    s = torch.sigmoid(u)
    return torch.nn.functional.softplus(u), s, s * (1 - s)


def _relu_d(u):
    pos = (u > 0).to(u.dtype)
    return u * pos, pos, torch.zeros_like(u)


def _identity_d(u):
    return u, torch.ones_like(u), torch.zeros_like(u)


#: The elementwise activations that the MLP fast path understands, as module type -> (value, first, second derivative).
MLP_ACTIVATIONS = {nn.Tanh: _tanh_d, nn.Sigmoid: _sigmoid_d, nn.Softplus: _softplus_d, nn.ReLU: _relu_d,
                   nn.Identity: _identity_d}


def _parse_mlp(model: nn.Module, dtype):
    if not isinstance(model, nn.Sequential):
        raise ValueError(f"model must be an nn.Sequential of nn.Linear layers and elementwise activations "
                         f"(Tanh, Sigmoid, Softplus with beta=1, ReLU, Identity), got {type(model).__name__}")
    mods = list(model)
    if not mods or not isinstance(mods[0], nn.Linear):
        raise ValueError("model's first module must be an nn.Linear (the fast path projects the covariance "
                         "through it)")
    layers = []  # list of (W, b, activation-derivative function)
    for mod in mods:
        if isinstance(mod, nn.Linear):
            b = mod.bias if mod.bias is not None else torch.zeros(mod.out_features, device=mod.weight.device)
            layers.append([mod.weight.detach().to(dtype), b.detach().to(dtype), _identity_d])
        elif type(mod) in MLP_ACTIVATIONS:
            if isinstance(mod, nn.Softplus) and (mod.beta != 1 or mod.threshold < 20):
                raise ValueError("only nn.Softplus with beta=1 (and the default threshold) is supported "
                                 "by the fast path")
            if layers[-1][2] is not _identity_d:
                raise ValueError("two activations in a row are not supported by the fast path")
            layers[-1][2] = MLP_ACTIVATIONS[type(mod)]
        else:
            raise ValueError(f"unsupported module {type(mod).__name__} in model; the fast path needs "
                             f"nn.Linear and elementwise Tanh/Sigmoid/Softplus/ReLU/Identity")
    return layers


def _mlp_second_order(layers, u1: torch.Tensor, T: torch.Tensor, extra_w: torch.Tensor | None = None,
                      extra_c: torch.Tensor | None = None):
    """Second-order forward propagation ("Taylor mode") through an MLP from the first pre-activation.

    For points with first pre-activations u1 (P, h1) and tangent sets T (P, r, h1) (directions in
    pre-activation space, so that Σ_h = T Tᵀ [+ c w wᵀ]), return the outputs (P, out) and the sums
    Σ_r d²/dt² out(u1 + t T_r) (P, out), i.e. tr(∇²_u out · Σ_h) for every output at once.

    Recurrences for z = φ(u), u⁺ = W z + b: tangents z' = φ'(u) ⊙ u', and the second-order sum
    S_z = φ''(u) ⊙ Σ_r (u'_r)² + φ'(u) ⊙ S_u, S_{u⁺} = W S_z (second-order parts are linear, so the
    sum over directions is propagated as one vector).
    """
    u = u1
    Tu = T
    S = torch.zeros_like(u1)
    wt = extra_w  # (P, h1) an extra direction with weight extra_c (P,)
    n = len(layers)
    for li in range(n):
        W, b, act = layers[li]
        if li > 0:
            u = z @ W.T + b
            Tu = (Tz.reshape(-1, Tz.shape[-1]) @ W.T).reshape(Tz.shape[0], Tz.shape[1], -1)
            S = Sz @ W.T
            if wt is not None:
                wt = wz @ W.T
        z, d1, d2 = act(u)
        sq = torch.linalg.vector_norm(Tu, dim=1).square()
        if wt is not None:
            sq = sq + extra_c[:, None] * wt * wt
            wz = d1 * wt
        Sz = d2 * sq + d1 * S
        Tz = d1[:, None, :] * Tu
    return z, Sz


def mlp_interventional_expectation_all(model: nn.Module, mean, cov, alphas, *, rank: int | None = None,
                                       features: Sequence[int] | None = None,
                                       dtype: torch.dtype | None = None,
                                       alpha_nodes: int | None = None,
                                       chunk_points: int = 64) -> torch.Tensor:
    """Taylor estimates for every feature × every α × every output of an MLP: shape (k, m, outputs).

    The fast path of :doc:`chapter 06 </notebooks/06-scaling>` (and the fastest variant of ``bench/bench_interventions.py``)
    for ``model = nn.Sequential(Linear, act, Linear, act, ..., Linear)`` with elementwise activations.
    Three ideas make it fast; each leaves the estimate exact up to round-off (and ``rank``):

    1. *Projection.* The first layer is linear, u = W x + b, so for f = g(u),
       tr(∇²_x f Σ₋ᵢ) = tr(∇²_u g · W Σ₋ᵢ Wᵀ): work in the first hidden layer's width h1, not k.
    2. *A shared factor with a rank-1 correction.* With Σ = R Rᵀ (R = V from the eigendecomposition,
       (k, r)), Σ₋ᵢ = R₋ᵢ R₋ᵢᵀ where R₋ᵢ is R with row i zeroed, so W Σ₋ᵢ Wᵀ = T_i T_iᵀ with
       T_i = W R − w_i ρ_iᵀ (w_i = column i of W, ρ_i = row i of R). If r > h1, T = W R is first
       compressed exactly to h1 columns by an SVD T = L Qᵀ: then T_i T_iᵀ = (L − w_i q_iᵀ)(L − w_i q_iᵀ)ᵀ
       + ‖ρ_i⊥‖² w_i w_iᵀ with q_i = Qᵀρ_i and ρ_i⊥ = ρ_i − Q q_i (one extra weighted direction).
    3. *Second-order forward propagation.* The sum over directions of the second directional
       derivatives is propagated layer by layer as one vector (see ``_mlp_second_order``), so each
       direction costs one matrix product per layer and no reverse pass, for all outputs at once.

    ``rank`` truncates Σ to its top eigen-directions; the error is at most ½‖∇²f‖₂ Σ_{dropped} λ
    (:func:`rank_truncation_bound`).

    Args:
        model: ``nn.Sequential`` of ``nn.Linear`` and Tanh / Sigmoid / Softplus (beta 1) / ReLU /
            Identity modules, first module ``nn.Linear``.
        mean: input mean (k,). cov: input covariance (k, k), symmetric PSD. alphas: (m,).
        rank: optional truncation rank in [1, k].
        features: optional list of intervened features (default all k); the output then has
            ``len(features)`` rows in that order.
        dtype: compute dtype (default: the floating dtype of ``mean``, else float64); float32 is about
            twice as fast and, unlike finite differences, accurate to about 1e-6 relative.
        alpha_nodes: optional number n of Chebyshev nodes on [min α, max α]. If n < m, the
            second-order term (the expensive part) is computed only at the n nodes for each feature
            and interpolated to ``alphas`` (it is an analytic function of α), while f(μ_α) is
            evaluated exactly at every α. This is an approximation: check its error against
            ``alpha_nodes=None`` (:doc:`chapter 06 </notebooks/06-scaling>` does).
        chunk_points: number of (feature, α) points propagated together.

    Returns:
        Tensor (k, m, outputs) (or (len(features), m, outputs)); entry [i, j, c] estimates
        E[model(x)_c | do(x_i = alphas[j])].

    Raises:
        ValueError: unsupported model; bad mean, cov, alphas or rank; input size mismatch.
    """
    dt = dtype if dtype is not None else _dtype_of(mean)
    if dt not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dt}")
    mean, cov, k = _check_mean_cov(as_float_tensor(mean, "mean", dt), cov)
    alphas = _check_alphas(alphas, dt)
    if rank is not None:
        rank = check_positive_int(rank, "rank")
        if rank > k:
            raise ValueError(f"rank must be at most the number of features ({k}), got {rank}")
    chunk_points = check_positive_int(chunk_points, "chunk_points")
    if alpha_nodes is not None:
        alpha_nodes = check_positive_int(alpha_nodes, "alpha_nodes", minimum=2)
    layers = _parse_mlp(model, dt)
    W1, b1, _ = layers[0]
    if W1.shape[1] != k:
        raise ValueError(f"model's first layer expects {W1.shape[1]} inputs, but mean has {k}")
    if features is None:
        idx = torch.arange(k, device=mean.device)
    else:
        idx = torch.as_tensor([check_index(i, "features", k) for i in features], dtype=torch.long, device=mean.device)
        if idx.numel() == 0:
            raise ValueError("features must name at least one feature, got an empty list")
    m = alphas.shape[0]
    with torch.no_grad():
        acc = accumulation_dtype(mean)
        R, _ = _factor(cov.to(acc), rank)  # factor in float64 (float32 without it), then cast
        W64 = W1.to(acc)
        T = W64 @ R  # (h1, r)
        h1 = T.shape[0]
        if R.shape[1] > h1:  # exact compression to h1 columns
            U, s, Vh = torch.linalg.svd(T, full_matrices=False)
            L, Q = U * s, Vh.T  # T = L Qᵀ
            q = R @ Q  # (k, h1): q_i = Qᵀ ρ_i
            perp = (R * R).sum(1) - (q * q).sum(1)  # ‖ρ_i⊥‖²
            perp = perp.clamp_min(0)
        else:
            L, q, perp = T, R, None
        L, q = L.to(dt), q.to(dt)
        perp = perp.to(dt) if perp is not None else None
        u0 = mean @ W1.T + b1  # (h1,)
        nf = idx.numel()
        # where the second-order term is computed: at every alpha, or at Chebyshev nodes
        interpolate = alpha_nodes is not None and alpha_nodes < m and float(alphas.max() - alphas.min()) > 0
        if interpolate:
            lo, hi = float(alphas.min()), float(alphas.max())
            nodes = _chebyshev_nodes(alpha_nodes, lo, hi, dt, alphas.device)
        else:
            nodes = alphas
        n_nodes = nodes.shape[0]
        feat = idx.repeat_interleave(n_nodes)
        alpha = nodes.repeat(nf)
        P = feat.numel()
        outs, secs = [], []
        for s0 in range(0, P, chunk_points):  # chunks of points; each chunk is batched
            fi, al = feat[s0:s0 + chunk_points], alpha[s0:s0 + chunk_points]
            w = W1[:, fi].T  # (p, h1)
            u1 = u0 + w * (al - mean[fi])[:, None]  # first pre-activation: u0 + w_i (α − μ_i)
            Ti = L.T - q[fi][:, :, None] * w[:, None, :]  # (p, r', h1): rows are directions
            z, S = _mlp_second_order(layers, u1, Ti, w if perp is not None else None,
                                     perp[fi] if perp is not None else None)
            outs.append(z)
            secs.append(S)
        z = torch.cat(outs).reshape(nf, n_nodes, -1)
        S = torch.cat(secs).reshape(nf, n_nodes, -1)
        if interpolate:
            # f(μ_α) exactly at every α (a plain forward pass); ½tr(HΣ₋ᵢ) interpolated from the nodes
            u1 = u0 + (W1[:, idx].T[:, None, :] * (alphas[None, :, None] - mean[idx][:, None, None]))
            z = _mlp_forward(layers, u1.reshape(nf * m, -1)).reshape(nf, m, -1)
            S = _chebyshev_interpolate(nodes, S, alphas, lo, hi)
    return z + 0.5 * S


def _mlp_forward(layers, u1: torch.Tensor) -> torch.Tensor:
    z = layers[0][2](u1)[0]
    for W, b, act in layers[1:]:
        z = act(z @ W.T + b)[0]
    return z


def _chebyshev_nodes(n: int, lo: float, hi: float, dtype, device=None) -> torch.Tensor:
    t = torch.cos(math.pi * (torch.arange(n, dtype=accumulation_dtype(device), device=device) + 0.5) / n)
    return (lo + (hi - lo) * (t + 1) / 2).to(dtype)


def _chebyshev_interpolate(nodes: torch.Tensor, values: torch.Tensor, x: torch.Tensor, lo: float,
                           hi: float) -> torch.Tensor:
    """Interpolate values (F, n, C) given at Chebyshev nodes (n,) to points x (m,): (F, m, C)."""
    acc = accumulation_dtype(values)

    def basis(a):
        t = (2 * (a.to(acc) - lo) / (hi - lo) - 1).clamp(-1, 1)
        return torch.cos(torch.arange(nodes.shape[0], dtype=acc, device=a.device)[None, :] * torch.arccos(t)[:, None])
    coef = torch.linalg.solve(basis(nodes), values.to(acc))  # (F, n, C)
    return (basis(x) @ coef).to(values.dtype)
