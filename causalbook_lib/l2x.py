"""L2X, learning to explain (Chen, Song, Wainwright and Jordan, ICML 2018): instance-wise feature selection.

:doc:`Chapter 13 </notebooks/13-generative-causal-explanations>` compares the generative explanation of
O'Shaughnessy et al. (2020) with saliency methods, L2X among them (their Fig. 4). L2X explains a
classifier ``forward_func`` by a *selector* network that maps an input ``x`` to scores over ``G``
feature groups; the explanation of ``x`` is the ``k`` groups of largest score. The selector is trained
to maximise a variational lower bound on the mutual information between the selected features and the
classifier's output,

.. math:: \\max_{\\theta, q}\\; \\mathbb{E}_x\\, \\mathbb{E}_{V \\sim p_\\theta(\\cdot \\mid x)}
   \\Big[\\sum_c P_{\\text{model}}(c \\mid x)\\, \\log q(c \\mid x \\odot V)\\Big],

where ``V`` is a relaxed ``k``-hot mask over the groups (:func:`relaxed_subset`, the paper's "sample concrete"),
broadcast from groups to features, and ``q`` is a second network, the *approximator*, trained jointly.
At test time the mask is hard: the top ``k`` selector scores (:meth:`L2XExplainer.select`).
:func:`posthoc_accuracy` is the paper's evaluation: does the classifier keep its decision when it sees
only the selected features?

Feature groups follow Captum's ``feature_mask``: an integer tensor with one group id ``0 .. G-1`` per
input feature (for 8x8 digits, 16 superpixels of 2x2 pixels); by default every feature is its own group.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .models import eval_mode
from .utils import (as_float_tensor, as_generator, check_binary, check_finite, check_number,
                    check_positive_int, check_probabilities, seeded_init)

__all__ = ["relaxed_subset", "top_k_groups", "L2XExplainer", "train_l2x", "posthoc_accuracy"]


def _check_inputs(inputs, name: str = "inputs", n_features: int | None = None) -> torch.Tensor:
    """``inputs`` as a finite (n, d) floating tensor: a floating tensor keeps its dtype and device,
    anything else becomes float64."""
    if isinstance(inputs, torch.Tensor) and inputs.is_floating_point():
        check_finite(inputs, name)
        x = inputs
    else:
        x = as_float_tensor(inputs, name)
    if x.dim() != 2 or x.shape[0] == 0:
        want = f"(n, {n_features})" if n_features is not None else "(n, d_features)"
        raise ValueError(f"{name} must have shape {want} with n >= 1, got {tuple(x.shape)}")
    if n_features is not None and x.shape[1] != n_features:
        raise ValueError(f"{name} must have {n_features} features (columns), got {x.shape[1]}")
    return x


def _check_feature_mask(feature_mask, n_features: int, device: torch.device) -> tuple[torch.Tensor, int]:
    """The ``(d,)`` int64 group ids on ``device`` and the number of groups ``G``.

    ``None`` puts every feature in its own group. Accepted: an integer tensor of shape ``(d,)`` or
    ``(1, d)`` (Captum's form) whose ids are exactly ``0 .. G-1``, each used at least once.
    """
    if feature_mask is None:
        return torch.arange(n_features, device=device), n_features
    fm = torch.as_tensor(feature_mask)
    if fm.is_floating_point() or fm.is_complex() or fm.dtype == torch.bool:
        raise ValueError(f"feature_mask must be an integer tensor of group ids, got dtype {fm.dtype}")
    if fm.dim() == 2 and fm.shape[0] == 1:
        fm = fm[0]
    if fm.dim() != 1 or fm.shape[0] != n_features:
        raise ValueError(f"feature_mask must have shape ({n_features},) or (1, {n_features}): one group id per "
                         f"input feature, got {tuple(torch.as_tensor(feature_mask).shape)}")
    fm = fm.to(device=device, dtype=torch.int64)
    ids = torch.unique(fm)
    n_groups = int(ids.numel())
    if int(ids[0]) != 0 or int(ids[-1]) != n_groups - 1:
        raise ValueError(f"feature_mask must use the group ids 0 .. G-1 without gaps, got {n_groups} distinct ids "
                         f"from {int(ids[0])} to {int(ids[-1])}")
    return fm, n_groups


def _check_k(k, n_groups: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n_groups - 1:
        raise ValueError(f"k must be an integer in 1 .. {n_groups - 1} (fewer than the {n_groups} feature groups), "
                         f"got {k!r}")
    return k


def _chunks(n: int, chunk_size: int | None):
    step = n if chunk_size is None else check_positive_int(chunk_size, "chunk_size")
    return [(i, min(i + step, n)) for i in range(0, n, step)]


def relaxed_subset(logits: torch.Tensor, k: int, *, temperature: float = 0.5, generator=None) -> torch.Tensor:
    """A continuous relaxation of drawing ``k`` of ``G`` groups: L2X's "sample concrete" (Chen et al. 2018).

    For each row, ``k`` independent Gumbel-softmax (Concrete) samples over the ``G`` groups are drawn,
    :math:`C_j = \\mathrm{softmax}((\\ell + g_j) / \\tau)` with :math:`g_j` i.i.d. standard Gumbel, and
    the mask is their elementwise maximum :math:`V = \\max_j C_j`. Every entry lies in ``[0, 1]`` and a
    row sums to at most ``k``; as :math:`\\tau \\to 0` each :math:`C_j` becomes a one-hot draw from
    ``softmax(logits)``, so ``V`` is the indicator of ``k`` draws with replacement (group ``i`` is in
    it with probability :math:`1 - (1 - p_i)^k`). The mask is differentiable in ``logits``.
    :doc:`Chapter 13 </notebooks/13-generative-causal-explanations>`.

    Args:
        logits: selector scores, shape ``(n, G)``.
        k: number of draws, ``1 <= k <= G - 1``.
        temperature: ``tau > 0``.
        generator: ``None``, an int seed or a ``torch.Generator`` on the device of ``logits``
            (:func:`causalbook_lib.utils.as_generator`).

    Returns:
        the relaxed mask, shape ``(n, G)``, in the dtype and on the device of ``logits``.

    Raises:
        ValueError: ``logits`` not a finite floating ``(n, G)`` tensor, ``k`` out of range or a
            non-positive temperature.
    """
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point() or logits.dim() != 2:
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"logits must be a floating tensor of shape (n, G), got {got}")
    check_finite(logits.detach(), "logits")
    k = _check_k(k, logits.shape[1])
    tau = check_number(temperature, "temperature", positive=True)
    gen = as_generator(generator, device=logits.device)
    n, g = logits.shape
    u = torch.rand(n, k, g, generator=gen, dtype=logits.dtype, device=logits.device)
    tiny = torch.finfo(logits.dtype).tiny
    gumbel = -torch.log(-torch.log(u.clamp(min=tiny, max=1.0 - torch.finfo(logits.dtype).eps)))
    samples = torch.softmax((logits[:, None, :] + gumbel) / tau, dim=-1)
    return samples.amax(dim=1)


def top_k_groups(scores, k: int, *, feature_mask=None) -> torch.Tensor:
    """The hard ``k``-hot selection of the ``k`` groups of largest score in each row.

    With ``feature_mask`` the scores are per feature, ``(n, d)``, and are first summed within each group
    (for example ``|gradient x input|`` summed per superpixel); without it they are per group already.
    Ties go to the group that ``torch.topk`` returns first. Turns any attribution map into a selection
    that :func:`posthoc_accuracy` can score beside L2X's (:doc:`Chapter 13
    </notebooks/13-generative-causal-explanations>`); random scores give uniformly random ``k``-subsets.

    Args:
        scores: ``(n, G)`` group scores, or ``(n, d)`` feature scores with ``feature_mask``.
        k: number of groups kept, ``1 <= k <= G - 1``.
        feature_mask: optional ``(d,)`` (or ``(1, d)``) integer group ids ``0 .. G-1``.

    Returns:
        a bool tensor ``(n, G)`` with exactly ``k`` True entries per row, on the device of ``scores``.

    Raises:
        ValueError: bad shapes, NaN scores, a bad ``feature_mask`` or ``k`` out of range.
    """
    s = _check_inputs(scores, "scores")
    if feature_mask is not None:
        fm, n_groups = _check_feature_mask(feature_mask, s.shape[1], s.device)
        s = torch.zeros(s.shape[0], n_groups, dtype=s.dtype, device=s.device).index_add_(1, fm, s)
    k = _check_k(k, s.shape[1])
    idx = s.topk(k, dim=1).indices
    return torch.zeros(s.shape, dtype=torch.bool, device=s.device).scatter_(1, idx, True)


def _mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, d_out))


class L2XExplainer(nn.Module):
    """A trained L2X explainer: the selector network, the approximator ``q`` and the feature groups.

    The selector maps an input ``(n, d)`` to scores over the ``G`` groups (an MLP with two hidden ReLU
    layers); :meth:`select` keeps the ``k`` largest, :meth:`attribute` spreads that hard mask over the
    features. The approximator (same shape of MLP, ``G`` replaced by the number of classes ``M``)
    maps a masked input ``x * mask`` to class logits; it is the variational ``q`` of the objective and
    is kept for inspection. Build it with :func:`train_l2x`; ``history`` holds the training loss (the
    cross-entropy of ``q`` against the model's probabilities, nats) of every step.
    :doc:`Chapter 13 </notebooks/13-generative-causal-explanations>`.

    Args:
        feature_mask: ``(d,)`` int64 group ids ``0 .. G-1``; k: groups selected, ``1 <= k <= G - 1``;
        n_classes: ``M >= 2``; hidden: width of the hidden layers.

    Raises:
        ValueError: a bad ``feature_mask``, ``k``, ``n_classes`` or ``hidden``.
    """

    def __init__(self, feature_mask: torch.Tensor, k: int, n_classes: int, hidden: int = 64):
        super().__init__()
        fm = torch.as_tensor(feature_mask)
        if fm.dim() != 1:
            raise ValueError(f"feature_mask must have shape (d,), got {tuple(fm.shape)}")
        fm, self.n_groups = _check_feature_mask(fm, fm.shape[0], fm.device)
        self.n_features = int(fm.shape[0])
        self.k = _check_k(k, self.n_groups)
        self.n_classes = check_positive_int(n_classes, "n_classes", minimum=2)
        hidden = check_positive_int(hidden, "hidden")
        self.register_buffer("feature_mask", fm)
        self.selector = _mlp(self.n_features, hidden, self.n_groups)
        self.approximator = _mlp(self.n_features, hidden, self.n_classes)
        self.history: list[float] = []

    def _prepare(self, inputs) -> tuple[torch.Tensor, torch.Tensor]:
        x = _check_inputs(inputs, "inputs", self.n_features)
        w = self.selector[0].weight
        return x, x.to(dtype=w.dtype, device=w.device)

    def forward(self, inputs) -> torch.Tensor:
        """The selector's scores (logits over the groups), shape ``(n, G)``; the same as :meth:`scores`."""
        return self.scores(inputs)

    def scores(self, inputs) -> torch.Tensor:
        """The selector's scores (logits over the ``G`` groups) of every row of ``inputs`` ``(n, d)``: ``(n, G)``,
        in the dtype and on the device of the explainer (those of its training inputs)."""
        _, xm = self._prepare(inputs)
        with torch.no_grad():
            return self.selector(xm)

    def select(self, inputs) -> torch.Tensor:
        """L2X's explanation of each row of ``inputs`` ``(n, d)``: the ``k``-hot bool mask ``(n, G)`` of the
        ``k`` groups of largest score."""
        return top_k_groups(self.scores(inputs), self.k)

    def attribute(self, inputs) -> torch.Tensor:
        """The selection spread over the features, Captum-style: ``(n, d)`` with 1 on every feature of a
        selected group and 0 elsewhere, in the dtype and on the device of ``inputs``."""
        x, _ = self._prepare(inputs)
        return self.select(x)[:, self.feature_mask].to(dtype=x.dtype, device=x.device)

    def approximate(self, inputs, group_mask) -> torch.Tensor:
        """The approximator's class log-probabilities :math:`\\log q(c \\mid x \\odot V)` for group masks
        ``V`` ``(n, G)`` (relaxed or hard): ``(n, M)``, differentiable (used in training)."""
        _, xm = self._prepare(inputs)
        v = torch.as_tensor(group_mask).to(dtype=xm.dtype, device=xm.device)
        if tuple(v.shape) != (xm.shape[0], self.n_groups):
            raise ValueError(f"group_mask must have shape ({xm.shape[0]}, {self.n_groups}), got {tuple(v.shape)}")
        return torch.log_softmax(self.approximator(xm * v[:, self.feature_mask]), dim=-1)


def _model_probabilities(forward_func: Callable, x: torch.Tensor, chunk_size: int | None) -> torch.Tensor:
    """``forward_func`` on ``x`` in eval mode without gradients, checked to be ``(n, M)`` class probabilities."""
    with torch.no_grad(), eval_mode(forward_func):
        outs = [forward_func(x[a:b]) for a, b in _chunks(x.shape[0], chunk_size)]
    if not all(isinstance(o, torch.Tensor) for o in outs):
        raise ValueError(f"forward_func must return a tensor, got {type(outs[0]).__name__}")
    p = torch.cat(outs)
    if p.dim() != 2 or p.shape[0] != x.shape[0] or p.shape[1] < 2:
        raise ValueError(f"forward_func must map inputs (n, d) to class probabilities (n, M) with M >= 2, "
                         f"got {tuple(p.shape)} for inputs {tuple(x.shape)}")
    try:
        check_probabilities(p.detach().to(torch.float64), "forward_func's outputs", atol=1e-4)
    except ValueError as exc:
        raise ValueError(f"{exc}; L2X needs class probabilities: for a model returning logits pass "
                         "lambda x: model(x).softmax(-1)") from exc
    return p.to(dtype=x.dtype, device=x.device)


def train_l2x(forward_func: Callable, inputs, *, k: int, feature_mask=None, hidden: int = 64, steps: int = 1000,
              batch_size: int = 128, lr: float = 1e-3, temperature: float = 0.5, chunk_size: int | None = None,
              generator=None) -> L2XExplainer:
    """Train an L2X explainer of ``forward_func`` on ``inputs`` (Chen et al. 2018).

    The classifier's probabilities :math:`P(c \\mid x)` are computed once (in eval mode, without
    gradients, ``chunk_size`` rows at a time); then each Adam step draws a mini-batch, a relaxed
    ``k``-hot mask :math:`V` from the selector's scores (:func:`relaxed_subset`) and minimises the
    cross-entropy :math:`-\\sum_c P(c \\mid x) \\log q(c \\mid x \\odot V)` jointly in the selector and the
    approximator ``q``: the negative of the variational bound on :math:`I(X_S; Y)`. A masked-out
    feature is 0, as in the paper. The classifier is not called during training, so a step costs
    two small MLPs. Computed in the dtype and on the device of ``inputs``. :doc:`Chapter 13
    </notebooks/13-generative-causal-explanations>` compares it with saliency maps on 8x8 digits.

    Args:
        forward_func: the classifier, mapping ``(n, d)`` inputs to class *probabilities* ``(n, M)``
            (rows summing to 1, like :class:`causalbook_lib.explanations.DigitCNN`); L2X explains the
            whole output distribution, so there is no ``target``. For a model returning logits pass
            ``lambda x: model(x).softmax(-1)``. An ``nn.Module`` runs in eval mode.
        inputs: training inputs ``(n, d)``.
        k: number of groups selected, ``1 <= k <= G - 1``.
        feature_mask: ``(d,)`` or ``(1, d)`` integer group ids ``0 .. G-1`` (Captum's convention);
            default: every feature its own group.
        hidden: width of the two hidden layers of both networks.
        steps, batch_size, lr: Adam steps, mini-batch size (at most ``n`` is used) and step size.
        temperature: ``tau > 0`` of the relaxation (the paper uses 0.1 to 0.5).
        chunk_size: at most this many rows per call of ``forward_func`` (default: all at once).
        generator: ``None``, an int seed or a ``torch.Generator`` on the device of ``inputs``; it seeds
            the initialisation, the mini-batches and the Gumbel noise.

    Returns:
        the trained :class:`L2XExplainer`, in eval mode with frozen parameters, its ``history`` the
        loss of every step.

    Raises:
        ValueError: bad shapes or NaN in ``inputs``, a bad ``feature_mask``, ``k`` out of range, a
            non-positive temperature, count or learning rate, or a ``forward_func`` that does not
            return class probabilities.
    """
    if not callable(forward_func):
        raise ValueError(f"forward_func must be callable, got {type(forward_func).__name__}")
    x = _check_inputs(inputs)
    n, d = x.shape
    fm, n_groups = _check_feature_mask(feature_mask, d, x.device)
    k = _check_k(k, n_groups)
    hidden = check_positive_int(hidden, "hidden")
    steps = check_positive_int(steps, "steps")
    batch_size = check_positive_int(batch_size, "batch_size")
    lr = check_number(lr, "lr", positive=True)
    tau = check_number(temperature, "temperature", positive=True)
    probs = _model_probabilities(forward_func, x, chunk_size)
    gen = as_generator(generator, device=x.device)
    init_seed = int(torch.randint(0, 2**62, (1,), generator=gen, device=gen.device))
    with seeded_init(init_seed):
        explainer = L2XExplainer(fm.cpu(), k, probs.shape[1], hidden)
    explainer.to(dtype=x.dtype, device=x.device)
    explainer.train()
    opt = torch.optim.Adam(explainer.parameters(), lr=lr)
    m = min(batch_size, n)
    losses = torch.empty(steps, dtype=x.dtype, device=x.device)
    x = x.detach()
    for step in range(steps):
        idx = torch.randint(0, n, (m,), generator=gen, device=x.device)
        xb, pb = x[idx], probs[idx]
        mask = relaxed_subset(explainer.selector(xb), k, temperature=tau, generator=gen)
        log_q = torch.log_softmax(explainer.approximator(xb * mask[:, fm]), dim=-1)
        loss = -(pb * log_q).sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses[step] = loss.detach()
    explainer.eval()
    explainer.requires_grad_(False)
    explainer.history = losses.tolist()
    return explainer


def posthoc_accuracy(forward_func: Callable, inputs, masks, *, feature_mask=None, baseline=0.0,
                     chunk_size: int | None = None) -> torch.Tensor:
    """Whether ``forward_func`` keeps its decision on each input when only the selected features are kept.

    The post-hoc accuracy of Chen et al. (2018): for each row, the unselected features are set to
    ``baseline`` and the classifier's argmax on :math:`x_S` (selected features kept) is compared with
    its argmax on the full :math:`x`. The share of True entries is the post-hoc accuracy of a selection
    method; compare L2X's masks with random ``k``-subsets (:func:`top_k_groups` of random scores) and
    with the top ``k`` groups of a saliency map. The model runs in eval mode, without gradients.
    :doc:`Chapter 13 </notebooks/13-generative-causal-explanations>`.

    Args:
        forward_func: maps ``(n, d)`` to scores ``(n, M)`` (probabilities or logits: only the argmax counts).
        inputs: ``(n, d)``.
        masks: ``(n, d)`` feature masks of 0/1 (or bool), or ``(n, G)`` group masks with ``feature_mask``.
        feature_mask: optional ``(d,)`` (or ``(1, d)``) integer group ids ``0 .. G-1``.
        baseline: the value of a removed feature, a scalar or broadcastable to ``(n, d)`` (default 0, as
            in the paper and in L2X's training).
        chunk_size: at most this many rows per call of ``forward_func`` (default: all at once).

    Returns:
        a bool tensor ``(n,)`` on the device of ``inputs``: True where the decision is kept.

    Raises:
        ValueError: bad shapes, NaN, masks that are not 0/1, a bad ``feature_mask`` or baseline, or a
            ``forward_func`` that does not return ``(n, M)`` scores.
    """
    x = _check_inputs(inputs)
    n, d = x.shape
    m = torch.as_tensor(masks)
    if feature_mask is not None:
        fm, n_groups = _check_feature_mask(feature_mask, d, x.device)
        if tuple(m.shape) != (n, n_groups):
            raise ValueError(f"masks must be group masks of shape ({n}, {n_groups}) with feature_mask, "
                             f"got {tuple(m.shape)}")
        m = check_binary(m, "masks").to(device=x.device)[:, fm]
    else:
        if tuple(m.shape) != (n, d):
            raise ValueError(f"masks must have shape ({n}, {d}) like inputs (or pass feature_mask for group masks), "
                             f"got {tuple(m.shape)}")
        m = check_binary(m, "masks").to(device=x.device)
    base = as_float_tensor(baseline, "baseline", dtype=x.dtype).to(x.device)
    try:
        base = torch.broadcast_to(base, x.shape)
    except RuntimeError as exc:
        raise ValueError(f"baseline of shape {tuple(base.shape)} does not broadcast to inputs {tuple(x.shape)}") from exc
    kept = torch.where(m.bool(), x, base)
    both = torch.cat([x, kept])
    with torch.no_grad(), eval_mode(forward_func):
        outs = [forward_func(both[a:b]) for a, b in _chunks(2 * n, chunk_size)]
    out = torch.cat(outs) if all(isinstance(o, torch.Tensor) for o in outs) else None
    if out is None or out.dim() != 2 or out.shape[0] != 2 * n:
        got = tuple(out.shape) if out is not None else type(outs[0]).__name__
        raise ValueError(f"forward_func must map inputs (n, d) to scores (n, M), got {got} for {2 * n} rows")
    pred = out.argmax(dim=1)
    return (pred[:n] == pred[n:]).to(x.device)
