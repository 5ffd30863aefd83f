"""The fallback where float64 does not exist (Apple's MPS), checked on the CPU.

MPS refuses float64 tensors. This machine has no MPS device, so the tests here make the CPU play
one: ``cb.utils.NO_FLOAT64_DEVICE_TYPES`` is set to ``{"cpu"}`` (the library's one switch), and a
``TorchDispatchMode`` raises, as MPS does, on every operation that would produce a float64 tensor.
The estimators that people call on their own models must then run on a float32 model and float32
inputs without ever making a float64 tensor, and agree with their float64 results (computed
normally, outside the simulation) to float32 accuracy.

The tests can fail: on the library before the fallback, 12 of the 20 failed (the rest, such as
gradients, Integrated Gradients and Shapley values, already kept a float32 model in float32). Most
failed before the simulation started: `ace_map`, `local_ace`, `CausalACE`, `taylor_expectation`
and the attacks turned float32 data into float64, and so could not run a float32 model at all,
even on the CPU; the references here run such a model outside the simulation.
"""
from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

import causalbook_lib as cb
import causalbook_lib.utils as cbu


class _NoFloat64(TorchDispatchMode):
    """Raise, as MPS does, when an operation would make a float64 tensor."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.dtype == torch.float64:
                raise TypeError(f"{func} made a float64 tensor on a device without float64 (simulated MPS)")
        return out


@pytest.fixture
def device():  # overrides the suite's device fixture: these tests simulate their own device
    return torch.device("cpu")


@pytest.fixture
def no_float64(monkeypatch):
    """Run the block as if the CPU had no float64."""
    monkeypatch.setattr(cbu, "NO_FLOAT64_DEVICE_TYPES", frozenset({"cpu"}))

    def run(fn, *args, **kwargs):
        with _NoFloat64():
            return fn(*args, **kwargs)

    return run


def test_the_simulation_refuses_float64(no_float64):
    assert cb.utils.accumulation_dtype(torch.zeros(1)) == torch.float32
    assert not cb.utils.has_float64("cpu")
    with pytest.raises(TypeError, match="float64"):
        no_float64(lambda: torch.zeros(2, dtype=torch.float64))
    with pytest.raises(TypeError, match="float64"):
        no_float64(lambda: torch.ones(2).double() * 2)
    assert no_float64(lambda: torch.ones(2) * 2).dtype == torch.float32


def test_accumulation_dtype_by_device():
    assert cb.utils.accumulation_dtype("cpu") == torch.float64
    assert cb.utils.accumulation_dtype(torch.device("mps")) == torch.float32
    assert cb.utils.accumulation_dtype("cuda") == torch.float64
    assert cb.utils.has_float64(torch.nn.Linear(2, 2)) and cb.utils.has_float64()
    assert not cb.utils.has_float64("mps:0")
    with pytest.raises(ValueError, match="a tensor, a module, a torch.device or a device name"):
        cb.utils.accumulation_dtype(3.5)


def _mlp(k=3, out=2, seed=0):
    with cb.utils.seeded_init(seed):
        return cb.models.make_mlp([k, 8, out], "tanh", dtype=torch.float32).eval().requires_grad_(False)


def _close(a, b, rtol=2e-4, atol=2e-5):
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    assert a.dtype != torch.float64, "the fallback result must not be float64"
    torch.testing.assert_close(a.double(), b.double(), rtol=rtol, atol=atol)


def _data(n=64, k=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, k, generator=g) * 0.5


# --- attribution -------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["hvp", "hessian", "finite_difference", "mc"])
def test_ace_map_and_local_ace(no_float64, method):
    net, X = _mlp(), _data()
    f = lambda x: net(x)[:, 0]  # noqa: E731
    kw = dict(num=7, data=X) if method == "mc" else dict(num=7, mean=X.mean(0), cov=torch.cov(X.T))
    ref = cb.attribution.ace_map(f, -1.0, 1.0, method=method, **kw)
    got = no_float64(cb.attribution.ace_map, f, -1.0, 1.0, method=method, **kw)
    _close(got.ace, ref.ace)
    _close(got.expectations, ref.expectations)
    ref = cb.attribution.local_ace(net, X[:4], -1.0, 1.0, target=1, method=method, **kw)
    got = no_float64(cb.attribution.local_ace, net, X[:4], -1.0, 1.0, target=1, method=method, **kw)
    _close(got, ref)


@pytest.mark.parametrize("method", ["hvp", "mc"])
def test_causal_ace(no_float64, method):
    net, X = _mlp(), _data()
    explainer = cb.attribution.CausalACE(net)
    kw = dict(data=X, low=-1.0, high=1.0, num=5, method=method)
    _close(no_float64(explainer.attribute, X[:3], target=1, **kw), explainer.attribute(X[:3], target=1, **kw))
    _close(no_float64(explainer.global_ace, target=0, **kw).ace, explainer.global_ace(target=0, **kw).ace)


def test_gradients_and_integrated_gradients(no_float64):
    net, X = _mlp(), _data()
    _close(no_float64(cb.attribution.gradients, net, X[:4], target=0), cb.attribution.gradients(net, X[:4], target=0))
    ref = cb.attribution.integrated_gradients(net, X[:4], torch.zeros(3), target=1, return_delta=True)
    got = no_float64(cb.attribution.integrated_gradients, net, X[:4], torch.zeros(3), target=1, return_delta=True)
    _close(got[0], ref[0])
    _close(got[1], ref[1], atol=1e-5)


def test_ablate_channels(no_float64):
    net, X = _mlp(), _data()
    off = torch.tensor([[1, 0, 0, 0, 0, 0, 0, 0], [0, 1, 1, 0, 0, 0, 0, 0]], dtype=torch.bool)
    ref = cb.attribution.ablate_channels(net, net[1], X[:5], off, target=0)
    _close(no_float64(cb.attribution.ablate_channels, net, net[1], X[:5], off, target=0), ref)


def test_shapley_values(no_float64):
    net, X = _mlp(), _data()
    ref = cb.shapley.shapley_values(net, X[:3], X[:20], target=0)
    _close(no_float64(cb.shapley.shapley_values, net, X[:3], X[:20], target=0), ref)


# --- interventions -----------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["hvp", "hessian", "finite_difference"])
def test_interventional_expectation(no_float64, method):
    net, X = _mlp(), _data()
    f = lambda x: net(x)[:, 0]  # noqa: E731
    mean, cov, alphas = X.mean(0), torch.cov(X.T), torch.linspace(-1, 1, 5)
    ref = cb.interventions.interventional_expectation(f, mean, cov, 1, alphas, method=method)
    got = no_float64(cb.interventions.interventional_expectation, f, mean, cov, 1, alphas, method=method)
    _close(got, ref, rtol=1e-3, atol=1e-4)
    ref = cb.interventions.interventional_expectation_all(f, mean, cov, alphas, method=method)
    got = no_float64(cb.interventions.interventional_expectation_all, f, mean, cov, alphas, method=method)
    _close(got, ref, rtol=1e-3, atol=1e-4)


def test_interventional_expectation_mc_and_taylor_engine(no_float64):
    net, X = _mlp(), _data()
    f = lambda x: net(x)[:, 0]  # noqa: E731
    alphas = torch.linspace(-1, 1, 5)
    _close(no_float64(cb.interventions.interventional_expectation_mc, f, X, 2, alphas),
           cb.interventions.interventional_expectation_mc(f, X, 2, alphas))
    means, covs = X[:4], torch.cov(X.T).expand(4, 3, 3).contiguous()
    _close(no_float64(cb.interventions.taylor_expectation, f, means, covs),
           cb.interventions.taylor_expectation(f, means, covs))


def test_mlp_interventional_expectation_all(no_float64):
    net, X = _mlp(out=1), _data()
    mean, cov, alphas = X.mean(0), torch.cov(X.T), torch.linspace(-1, 1, 5)
    ref = cb.interventions.mlp_interventional_expectation_all(net, mean, cov, alphas)
    got = no_float64(cb.interventions.mlp_interventional_expectation_all, net, mean, cov, alphas)
    _close(got, ref, rtol=1e-3, atol=1e-4)


# --- information flow --------------------------------------------------------------------------

def _decoder_and_classifier():
    decoder = torch.nn.Linear(2, 3, bias=False)  # a float32 decoder, as on MPS
    with torch.no_grad():
        decoder.weight.copy_(torch.tensor([[1.0, 0.3, 0.0], [0.0, 1.0, 0.5]]).T)
    decoder.requires_grad_(False)
    classifier = cb.infoflow.HyperplaneClassifier(torch.tensor([[1.0, -0.5, 0.25]]), steepness=2.0)
    return decoder, classifier


def test_information_flows(no_float64):
    decoder, classifier = _decoder_and_classifier()
    ref = cb.infoflow.information_flow(decoder, classifier, 1, 1, 64, 64, generator=0)
    got = no_float64(cb.infoflow.information_flow, decoder, classifier, 1, 1, 64, 64, generator=0)
    assert abs(got - ref) <= 1e-4 * max(1.0, abs(ref))
    ref = cb.infoflow.per_factor_information_flow(decoder, classifier, 2, 32, 32, generator=0)
    _close(no_float64(cb.infoflow.per_factor_information_flow, decoder, classifier, 2, 32, 32, generator=0), ref)
    ref = cb.infoflow.information_flow_objective(decoder, classifier, 1, 1, 32, 32, generator=0)
    _close(no_float64(cb.infoflow.information_flow_objective, decoder, classifier, 1, 1, 32, 32, generator=0), ref)


def test_plugin_and_bias_corrected_flow(no_float64):
    g = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(16, 16, 3, generator=g), -1)
    _close(no_float64(cb.infoflow.plugin_information_flow, p), cb.infoflow.plugin_information_flow(p.double()))
    _close(no_float64(cb.infoflow.bias_corrected_information_flow, p),
           cb.infoflow.bias_corrected_information_flow(p.double()), atol=1e-4)


# --- recurrent models --------------------------------------------------------------------------

def _rnn_and_data():
    with cb.utils.seeded_init(0):
        model = cb.recurrent.RecurrentRegressor(2, 6, 2, cell="gru").eval()
    g = torch.Generator().manual_seed(3)
    return model, torch.randn(40, 6, 2, generator=g)


def test_recurrent_estimators(no_float64):
    model, data = _rnn_and_data()
    kw = dict(t_hat=2, feature=0, alphas=torch.linspace(-1, 1, 4), t=4)
    ref = cb.recurrent.interventional_expectation_rnn(model, data, **kw)
    got = no_float64(cb.recurrent.interventional_expectation_rnn, model, data, **kw)
    for name in ("taylor", "plug_in", "mc"):
        _close(getattr(got, name), getattr(ref, name), rtol=1e-3, atol=1e-4)
    ref = cb.recurrent.causal_attribution_map(model, data, data[:3], t=4, grid=5)
    got = no_float64(cb.recurrent.causal_attribution_map, model, data, data[:3], t=4, grid=5)
    _close(got.ace, ref.ace, rtol=1e-3, atol=1e-4)
    _close(got.ace_mc, ref.ace_mc, rtol=1e-3, atol=1e-4)
    lengths = torch.full((5,), 6)
    _close(no_float64(cb.recurrent.last_step_output, model, data[:5], lengths),
           cb.recurrent.last_step_output(model, data[:5], lengths))


# --- attacks -----------------------------------------------------------------------------------

def test_attacks_on_a_float32_model(no_float64):
    net = _mlp(k=5, out=3)
    g = torch.Generator().manual_seed(2)
    x, y = torch.rand(16, 5, generator=g), torch.randint(0, 3, (16,), generator=g)
    clean = cb.attacks.margin_loss(net(x), y)
    for attack in (cb.attacks.fgsm, lambda *a: cb.attacks.pgd(*a, steps=5, restarts=2, generator=0)):
        ref = attack(net, x, y, 0.1)
        got = no_float64(attack, net, x, y, 0.1)
        assert got.dtype == ref.dtype == torch.float32
        assert float((got - x).abs().max()) <= 0.1 + 1e-6 and 0 <= float(got.min()) and float(got.max()) <= 1
        # the attack is the same up to float32 round-off in the loss: the margins it reaches agree
        _close(cb.attacks.margin_loss(net(got), y), cb.attacks.margin_loss(net(ref), y), rtol=1e-3, atol=1e-4)
        assert bool((cb.attacks.margin_loss(net(got), y) >= clean - 1e-5).all())
    sizes, _ = no_float64(cb.attacks.minimal_perturbation, net, x[:4], y[:4], steps=5, bisections=4)
    assert sizes.dtype == torch.float32
