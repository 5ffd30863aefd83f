"""The models that chapters train and explain, and how well they classify.

* :func:`make_mlp` builds a fully connected network, :func:`train_classifier` trains it with
  cross-entropy and Adam, and :func:`iris_classifier` is the Iris network of Part II
  (chapters :doc:`04 </notebooks/04-interventional-expectations>` to :doc:`06 </notebooks/06-scaling>`);
  the digits classifier of :doc:`chapter 17 </notebooks/17-robustness-fairness>` is a
  :func:`make_mlp` too;
* :func:`accuracy` is the share of rows that a classifier labels correctly, used by
  :doc:`chapter 13 </notebooks/13-generative-causal-explanations>` (the black boxes that generative
  causal explanations explain) and chapter 17 (clean and attacked accuracy).

The vocabulary follows Captum: the model is ``forward_func``, a callable (often an ``nn.Module``)
mapping inputs ``(n, ...)`` to scores ``(n, M)``, logits or probabilities alike.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Callable

import torch
from torch import nn

from .utils import as_generator, check_features_labels, check_finite, check_positive_int, seeded_init

__all__ = ["make_mlp", "StackedMLP", "GaussianGenerativeClassifier", "train_classifier", "train_mlp_classifier",
           "iris_classifier", "accuracy", "eval_mode"]


def _module_dtype_device(forward_func) -> tuple[torch.dtype | None, torch.device | None]:
    """The dtype and device of ``forward_func``'s first floating parameter (None, None if it has none)."""
    if isinstance(forward_func, nn.Module):
        for p in forward_func.parameters():
            if p.is_floating_point():
                return p.dtype, p.device
    return None, None


def accuracy(forward_func: Callable[[torch.Tensor], torch.Tensor], inputs, labels, *,
             chunk_size: int | None = None) -> float:
    """Share of the rows of ``inputs`` whose largest score under ``forward_func`` is at ``labels``.

    The model is evaluated without gradients and in its own dtype and on its own device: when
    ``forward_func`` is an ``nn.Module`` with floating parameters, floating ``inputs`` are cast to
    their dtype and moved to their device (a float32 network accepts float64 data and the other way
    round). Its training mode is left as it is, so a network with dropout should be put in eval mode
    first.

    Args:
        forward_func: maps ``(n, ...)`` inputs to ``(n, M)`` scores (logits or probabilities).
        inputs: a finite tensor of shape ``(n, ...)``.
        labels: integer class labels, shape ``(n,)``.
        chunk_size: at most this many rows per call of ``forward_func`` (default: all at once).

    Returns:
        the accuracy, a float in [0, 1].

    Raises:
        ValueError: ``inputs`` or ``labels`` of the wrong shape or type, non-finite inputs, or scores
            that are not of shape ``(n, M)``.
    """
    if not callable(forward_func):
        raise ValueError(f"forward_func must be callable, got {type(forward_func).__name__}")
    x = torch.as_tensor(inputs)
    y = torch.as_tensor(labels)
    if x.dim() < 1 or x.shape[0] == 0:
        raise ValueError(f"inputs must have shape (n, ...) with n >= 1, got {tuple(x.shape)}")
    if y.dim() != 1 or y.shape[0] != x.shape[0] or y.is_floating_point() or y.dtype == torch.bool:
        raise ValueError(f"labels must be a 1-D integer tensor with {x.shape[0]} entries, got shape "
                         f"{tuple(y.shape)} and dtype {y.dtype}")
    check_finite(x, "inputs")
    dtype, device = _module_dtype_device(forward_func)
    if x.is_floating_point() and dtype is not None:
        x = x.to(device=device, dtype=dtype)
    step = x.shape[0] if chunk_size is None else check_positive_int(chunk_size, "chunk_size")
    correct = 0
    with torch.no_grad():
        for start in range(0, x.shape[0], step):
            rows = x[start:start + step]
            scores = forward_func(rows)
            if not isinstance(scores, torch.Tensor) or scores.dim() != 2 or scores.shape[0] != rows.shape[0]:
                shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
                raise ValueError(f"forward_func must return scores of shape (n, M), got {shape}")
            correct += int((scores.argmax(-1).cpu() == y[start:start + step].cpu()).sum())
    return correct / x.shape[0]


def make_mlp(sizes, activation: str = "relu", *, dtype: torch.dtype = torch.float32) -> nn.Sequential:
    """A fully connected network with layer sizes ``sizes`` (e.g. ``[4, 8, 3]``) and ``activation``
    (``"relu"``, ``"tanh"``, ``"softplus"`` or ``"gelu"``) between layers; the last layer is linear.

    The weights are drawn in float32 (PyTorch's default initialisation, from the global RNG: build under
    :func:`causalbook_lib.utils.seeded_init` to fix them with a seed) and then
    converted to ``dtype``, so the same seed gives the same network, up to rounding, in either dtype.

    Raises:
        ValueError: an unknown activation, fewer than two sizes, or a size that is not a positive integer.
    """
    acts = {"relu": nn.ReLU, "tanh": nn.Tanh, "softplus": nn.Softplus, "gelu": nn.GELU}
    if activation not in acts:
        raise ValueError(f"activation must be one of {sorted(acts)}, got {activation!r}")
    sizes = [check_positive_int(s, "layer size") for s in sizes]
    if len(sizes) < 2:
        raise ValueError(f"sizes must list at least an input and an output size, got {sizes}")
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(acts[activation]())
    return nn.Sequential(*layers).to(dtype)


def train_classifier(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int = 500,
                     batch_size: int | None = None, lr: float = 3e-4, weight_decay: float = 1e-4,
                     generator=None) -> list[float]:
    """Train ``model`` (logits out) with cross-entropy and Adam; return the loss of each epoch.

    ``batch_size=None`` trains on the full batch (one step per epoch); otherwise each epoch visits the
    rows in a random order drawn from ``generator`` (``None``, an int seed or a ``torch.Generator``, as
    in :func:`causalbook_lib.utils.as_generator`; the initialisation is the caller's, see
    :func:`causalbook_lib.utils.seeded_init`). Runs on one thread (restored afterwards): for small
    networks that is the fastest setting. Used for the Iris classifiers of Part II.

    Raises:
        ValueError: shapes of ``x`` (n, k) and ``y`` (n,) that do not match, or bad hyper-parameters.
    """
    if x.dim() != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"x must be (n, k) and y (n,), got {tuple(x.shape)} and {tuple(y.shape)}")
    epochs = check_positive_int(epochs, "epochs")
    n = x.shape[0]
    bs = n if batch_size is None else check_positive_int(batch_size, "batch_size")
    if not lr > 0 or not weight_decay >= 0:
        raise ValueError(f"lr must be > 0 and weight_decay >= 0, got {lr} and {weight_decay}")
    gen = as_generator(generator)
    params = list(model.parameters())
    # PyTorch's fused Adam (one kernel per step, not one per tensor and operation) halves the training
    # time of the Iris network, whose steps are all overhead; it exists for CPU and CUDA tensors.
    fused = all(p.device.type in ("cpu", "cuda") for p in params) or None
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused)
    loss_fn = nn.CrossEntropyLoss()
    losses = []
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batches: one thread is fastest and immune to a busy machine
    try:
        for _ in range(epochs):
            order = torch.randperm(n, generator=gen, device=gen.device) if bs < n else torch.arange(n, device=gen.device)
            total = 0.0
            for start in range(0, n, bs):
                idx = order[start:start + bs]
                opt.zero_grad()
                loss = loss_fn(model(x[idx]), y[idx])
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
            losses.append(total / n)
    finally:
        torch.set_num_threads(threads)
    model.eval()
    return losses


def iris_classifier(activation: str = "relu", *, generator=0, epochs: int = 500, batch_size: int = 10,
                    lr: float = 3e-3, weight_decay: float = 1e-4):
    """The Iris classifier of Part II: a 4-8-3 MLP on min-max scaled iris (Chattopadhyay et al., Sec. 5.1).

    The authors trained a ReLU 4-8-3 network with Adam (lr 3e-4, weight decay 1e-4) for 500 epochs
    with batch size 1 (75,000 steps). The book keeps the architecture, the optimiser, the weight decay
    and the 500 epochs, but uses batches of 10 and a learning rate ten times larger (3e-3). Adam's
    step length is set by the learning rate, not by the gradient's scale, so what this keeps is the
    total path length, steps times learning rate (7,500 x 3e-3 = 75,000 x 3e-4), with ten times
    fewer steps, which a laptop trains in seconds. (The "linear scaling rule" is SGD reasoning and
    does not apply to Adam.) Chapters :doc:`04 </notebooks/04-interventional-expectations>` and
    :doc:`05 </notebooks/05-causal-regressors>` use it.

    Args:
        activation: ``"relu"`` (as in the paper) or a smooth variant (``"tanh"``, ``"softplus"``, ``"gelu"``).
        generator: the initialisation and the batch order (``None``, an int seed or a
            ``torch.Generator``, as in :func:`causalbook_lib.utils.as_generator`; an int ``s`` runs
            the initialisation after ``torch.manual_seed(s)`` and draws the batch order from a
            generator seeded with ``s``). Torch's global random state is left as it was.
        epochs, batch_size, lr, weight_decay: training settings (defaults as described above).

    Returns:
        ``(model, split, accuracy)``: the trained network in float64 and eval mode (logits out), the
        :class:`~causalbook_lib.datasets.tabular.TabularSplit` of all 150 rows (float64), and the
        training accuracy.
    """
    from .datasets import load_iris_scaled

    split = load_iris_scaled(dtype=torch.float32)
    order = as_generator(generator)  # validates; an int seeds the initialisation and the order alike
    init = generator if isinstance(generator, int) else order
    with seeded_init(init):
        model = make_mlp([4, 8, 3], activation)
    train_classifier(model, split.x_train, split.y_train, epochs=epochs, batch_size=batch_size, lr=lr,
                     weight_decay=weight_decay, generator=order)
    model = model.double().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    split = load_iris_scaled(dtype=torch.float64)
    with torch.no_grad():
        accuracy = float((model(split.x_train).argmax(1) == split.y_train).double().mean())
    return model, split, accuracy


@contextmanager
def eval_mode(*parts):
    """Evaluate in eval mode: switch every ``nn.Module`` among ``parts`` (or the module a bound method
    such as ``vae.decode`` belongs to) to eval mode for the body, then restore the ``training`` flag of
    each of their submodules. Plain functions are left alone, so wrapping a module in a function
    (``lambda x: clf(x)``) keeps its current mode, for example dropout on."""
    modules = []
    for part in parts:
        owner = part if isinstance(part, nn.Module) else getattr(part, "__self__", None)
        if isinstance(owner, nn.Module):
            modules.append(owner)
    saved = [(m, m.training) for module in modules for m in module.modules()]
    for module in modules:
        module.eval()
    try:
        yield
    finally:
        for m, mode in saved:
            m.training = mode


class StackedMLP(nn.Module):
    """``n_models`` independent ReLU MLPs with identical shapes, evaluated in one batched pass.

    Layer :math:`l` of model :math:`m` computes :math:`h \\mapsto W^{(m)}_l h + b^{(m)}_l`; the
    weights of all models are stored in one tensor of shape ``(n_models, fan_in, fan_out)`` and
    applied with :func:`torch.baddbmm`. Models share nothing, so the gradient of a sum of
    per-model losses gives each model exactly its own gradient, and an element-wise optimiser
    (Adam) then trains each model as if it were alone. Model ``m`` is initialised like
    ``torch.nn.Linear`` (uniform in :math:`\\pm 1/\\sqrt{\\text{fan\\_in}}`) from ``seeds[m]``.

    Args:
        n_models: number of models M.
        in_features, hidden, out_features: layer sizes.
        n_hidden_layers: number of hidden ReLU layers (0 gives affine models).
        seeds: one non-negative integer per model (default ``0..M-1``).
        output: ``"linear"`` (logits) or ``"sigmoid"`` (values in (0, 1)).

    Raises:
        ValueError: non-positive sizes, a wrong number of seeds or an unknown ``output``.
    """

    def __init__(self, n_models: int, in_features: int, hidden: int, out_features: int, *,
                 n_hidden_layers: int = 2, seeds=None, output: str = "linear", dtype: torch.dtype = torch.float32):
        super().__init__()
        self.n_models = check_positive_int(n_models, "n_models")
        sizes = [check_positive_int(in_features, "in_features")]
        sizes += [check_positive_int(hidden, "hidden")] * check_positive_int(n_hidden_layers, "n_hidden_layers", minimum=0)
        sizes += [check_positive_int(out_features, "out_features")]
        if output not in ("linear", "sigmoid"):
            raise ValueError(f"output must be 'linear' or 'sigmoid', got {output!r}")
        self.output = output
        seeds = list(range(self.n_models)) if seeds is None else [check_positive_int(s, "seed", minimum=0) for s in seeds]
        if len(seeds) != self.n_models:
            raise ValueError(f"need one seed per model ({self.n_models}), got {len(seeds)}")
        self.seeds = seeds
        weights = [[] for _ in range(len(sizes) - 1)]
        biases = [[] for _ in range(len(sizes) - 1)]
        for s in seeds:  # a loop over models at construction only, so each model depends on its own seed
            g = torch.Generator().manual_seed(s)
            for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
                bound = 1.0 / math.sqrt(fan_in)
                weights[layer].append((torch.rand(fan_in, fan_out, generator=g, dtype=torch.float64, device=g.device) * 2 - 1) * bound)
                biases[layer].append((torch.rand(1, fan_out, generator=g, dtype=torch.float64, device=g.device) * 2 - 1) * bound)
        self.weights = nn.ParameterList([nn.Parameter(torch.stack(w).to(dtype)) for w in weights])
        self.biases = nn.ParameterList([nn.Parameter(torch.stack(b).to(dtype)) for b in biases])
        self.sizes = sizes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Evaluate every model: ``x`` of shape ``(n, in)`` (shared) or ``(M, n, in)``; returns ``(M, n, out)``."""
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.n_models, -1, -1)
        if x.dim() != 3 or x.shape[0] != self.n_models or x.shape[2] != self.sizes[0]:
            raise ValueError(f"x must have shape (n, {self.sizes[0]}) or ({self.n_models}, n, {self.sizes[0]}), "
                             f"got {tuple(x.shape)}")
        h = x.to(self.weights[0].dtype)
        for layer, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)
            if layer < len(self.weights) - 1:
                h = torch.relu(h)
        return torch.sigmoid(h) if self.output == "sigmoid" else h

    def squared_norms(self) -> torch.Tensor:
        """Sum of squared parameters of each model, shape ``(M,)`` (the L2 regulariser)."""
        return sum(p.pow(2).flatten(1).sum(1) for p in self.parameters())


def train_mlp_classifier(x, y, *, hidden: int = 128, epochs: int = 150, batch_size: int = 64, lr: float = 1e-3,
                         weight_decay: float = 1e-4, generator=None) -> nn.Sequential:
    """Train a one-hidden-layer ReLU network ``d -> hidden -> classes`` (:func:`make_mlp`, float64) with
    :func:`train_classifier` (cross-entropy, Adam); return it in eval mode.

    ``generator`` (``None``, an int seed or a ``torch.Generator``, :func:`causalbook_lib.utils.as_generator`)
    seeds the initial weights (through :func:`causalbook_lib.utils.seeded_init`) and then draws the
    mini-batch order, so one seed gives one model and torch's global random state is left as it was.
    The network is built on the device of ``x``.

    Raises:
        ValueError: bad shapes or non-positive hyper-parameters.
    """
    x, y = check_features_labels(x, y)
    hidden = check_positive_int(hidden, "hidden")
    n_classes = int(y.max()) + 1
    if n_classes < 2:
        raise ValueError(f"y must hold labels of at least two classes (0, 1, ...), got only {n_classes}")
    gen = as_generator(generator)
    with seeded_init(gen):
        model = make_mlp([x.shape[1], hidden, n_classes], "relu", dtype=torch.float64).to(x.device)
    train_classifier(model, x.to(torch.float64), y, epochs=epochs, batch_size=batch_size, lr=lr,
                     weight_decay=weight_decay, generator=gen)
    return model


class GaussianGenerativeClassifier(nn.Module):
    """Classify by Bayes' rule with one probabilistic-PCA Gaussian per class (:doc:`chapter 17 </notebooks/17-robustness-fairness>`).

    Math: ``p(x | y) = N(x; mu_y, W_y W_y^T + s_y^2 I)`` with ``W_y`` the top ``q`` principal
    directions of class ``y`` scaled by ``sqrt(lambda_k - s_y^2)`` and ``s_y^2`` the mean of the
    discarded eigenvalues (the form of Tipping and Bishop's maximum-likelihood solution), floored at
    ``min_variance``. Eigenvalues are those of the class's sample covariance with the 1/(n - 1)
    normalisation, as in scikit-learn's ``PCA.score_samples``, which computes the same density; the
    maximum-likelihood estimate proper would use 1/n, so these are the unbiased-covariance version of
    it. The logits are ``log p(x | y) + log p(y)``; their softmax is ``p(y | x)``.
    It is the analysis-by-synthesis idea (model label -> image, then invert with Bayes) with an
    exact likelihood instead of the ABS model's VAE lower bound. Computations are in float64.

    Args:
        x: (n, d) training images; y: (n,) integer labels 0..C-1.
        n_components: ``q``, the latent dimension of each class model (1 <= q < d).
        min_variance: floor on ``s_y^2`` (> 0), which keeps the covariances invertible.
    Raises:
        ValueError: bad shapes, a class with fewer than ``q + 2`` examples, or bad hyper-parameters.
    """

    def __init__(self, x, y, n_components: int = 8, min_variance: float = 1e-2):
        super().__init__()
        x, y = check_features_labels(x, y)
        x = x.to(torch.float64)
        d = x.shape[1]
        q = check_positive_int(n_components, "n_components")
        if q >= d:
            raise ValueError(f"n_components must be smaller than the dimension {d}, got {q}")
        if not min_variance > 0:
            raise ValueError(f"min_variance must be positive, got {min_variance!r}")
        classes = int(y.max()) + 1
        means, precisions, logdets, priors = [], [], [], []
        for c in range(classes):
            xc = x[y == c]
            if len(xc) < q + 2:
                raise ValueError(f"class {c} has {len(xc)} examples; it needs at least n_components + 2 = {q + 2}")
            mu = xc.mean(0)
            cov = torch.cov(xc.T, correction=1)
            evals, evecs = torch.linalg.eigh(cov)
            evals, evecs = evals.flip(0), evecs.flip(1)
            s2 = max(float(evals[q:].mean()), min_variance)
            w = evecs[:, :q] * torch.sqrt((evals[:q] - s2).clamp_min(0.0))
            c_mat = w @ w.T + s2 * torch.eye(d, dtype=torch.float64)
            means.append(mu)
            precisions.append(torch.linalg.cholesky(torch.linalg.inv(c_mat)))
            logdets.append(torch.linalg.slogdet(c_mat)[1])
            priors.append(len(xc) / len(x))
        self.register_buffer("means", torch.stack(means))
        #: Cholesky factors L_y of the precision matrices, C_y^{-1} = L_y L_y^T: shape (C, d, d).
        self.register_buffer("precision_factors", torch.stack(precisions))
        self.register_buffer("logdets", torch.stack(logdets))
        self.register_buffer("log_priors", torch.log(torch.tensor(priors, dtype=torch.float64)))
        self.dim = d

    def log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(x | y)`` for every class: shape (n, C), float64."""
        x = torch.as_tensor(x, dtype=torch.float64)
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (n, {self.dim}), got {tuple(x.shape)}")
        diff = x[:, None, :] - self.means[None]                      # (n, C, d)
        quad = torch.einsum("ncd,cde->nce", diff, self.precision_factors).square().sum(2)  # diff^T C^-1 diff
        return -0.5 * (quad + self.logdets + self.dim * math.log(2 * math.pi))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``log p(x | y) + log p(y)``: shape (n, C), float64."""
        return self.log_likelihood(x) + self.log_priors
