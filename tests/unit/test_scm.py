"""Unit tests of causalbook_lib.scm: sampling moments, do(), counterfactuals and bad input."""
import math

import networkx as nx
import pytest
import torch

import causalbook_lib as cb
from causalbook_lib.scm import (SCM, Variable, additive, bernoulli, linear_gaussian, linear_gaussian_moments,
                                no_noise, normal_noise, uniform_noise)

# z -> x -> y and z -> y: a confounded linear Gaussian model used throughout
NAMES = ["z", "x", "y"]
WEIGHTS = {("z", "x"): 2.0, ("x", "y"): 3.0, ("z", "y"): -1.0}
STD = {"z": 1.0, "x": 1.0, "y": 0.5}
INTERCEPT = {"z": 0.5, "y": 1.0}


def confounded():
    return linear_gaussian(NAMES, WEIGHTS, STD, INTERCEPT)


def gen(seed=0):
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def test_graph_and_order():
    scm = confounded()
    assert set(scm.graph.edges) == {("z", "x"), ("x", "y"), ("z", "y")}
    assert scm.names == ["z", "x", "y"]
    assert scm.parents("y") == ("x", "z")
    assert "z" in scm.describe() and repr(scm).startswith("SCM(")


def test_topological_order_independent_of_insertion():
    scm = SCM({"y": additive(["x"], lambda pa: pa["x"], normal_noise()),
               "x": additive([], lambda pa: torch.zeros(()), normal_noise())})
    assert scm.names == ["x", "y"]


def test_sampling_moments_match_closed_form():
    n = 200_000
    s = confounded().sample(n, gen(1))
    x = torch.stack([s[v] for v in NAMES], 1)
    mean, cov = linear_gaussian_moments(NAMES, WEIGHTS, STD, INTERCEPT)
    # hand check of the closed form: E[z]=.5, E[x]=1, E[y]=1+3-.5=3.5; Var z=1, Var x=5, Var y = Var(x + ...)
    assert torch.allclose(mean, torch.tensor([0.5, 1.0, 3.5], dtype=torch.float64))
    # y = 3x - z + 1 + u_y = 3(2z + u_x) - z + ... = 5 z + 3 u_x + u_y  -> Var = 25 + 9 + 0.25
    assert math.isclose(float(cov[2, 2]), 34.25)
    se_mean = torch.sqrt(torch.diag(cov) / n)
    assert torch.all((x.mean(0) - mean).abs() < 5 * se_mean)
    emp = torch.cov(x.T)
    # standard error of a covariance entry: sqrt((S_ii S_jj + S_ij^2)/n) for Gaussians
    se_cov = torch.sqrt((torch.outer(torch.diag(cov), torch.diag(cov)) + cov ** 2) / n)
    assert torch.all((emp - cov).abs() < 5 * se_cov)


def test_do_is_graph_surgery_and_matches_hand_computed_means():
    scm = confounded()
    after = scm.do({"x": 2.0})
    assert set(after.graph.edges) == {("x", "y"), ("z", "y")}
    assert set(scm.graph.edges) == {("z", "x"), ("x", "y"), ("z", "y")}  # original unchanged
    # E[y | do(x=2)] = 1 + 3*2 - E[z] = 6.5; E[z | do(x=2)] = 0.5 (z is not a descendant of x)
    s = after.sample(100_000, gen(2))
    assert torch.all(s["x"] == 2.0)
    assert abs(float(s["y"].mean()) - 6.5) < 5 * math.sqrt(1.25 / 100_000)
    assert abs(float(s["z"].mean()) - 0.5) < 5 * math.sqrt(1 / 100_000)
    mean, cov = linear_gaussian_moments(NAMES, WEIGHTS, STD, INTERCEPT, interventions={"x": 2.0})
    assert torch.allclose(mean, torch.tensor([0.5, 2.0, 6.5], dtype=torch.float64))
    assert float(cov[1, 1]) == 0.0 and math.isclose(float(cov[2, 2]), 1.25)
    est = scm.interventional_mean("y", {"x": 2.0}, 100_000, gen(3))
    assert abs(float(est) - 6.5) < 0.02


def test_conditioning_differs_from_intervening():
    # E[y | x] = 1 + 3x - E[z | x]; (z, x) jointly Gaussian: E[z|x] = .5 + (2/5)(x - 1)
    # so the regression slope of y on x is 3 - 0.4 = 2.6 while the causal slope is 3.
    s = confounded().sample(200_000, gen(4))
    x, y = s["x"], s["y"]
    slope = float(((x - x.mean()) * (y - y.mean())).mean() / x.var())
    assert abs(slope - 2.6) < 0.01
    causal = float(confounded().interventional_mean("y", {"x": 1.0}, 100_000, gen(5))
                   - confounded().interventional_mean("y", {"x": 0.0}, 100_000, gen(5)))
    assert abs(causal - 3.0) < 1e-9  # common random numbers: the noise cancels exactly


def test_sample_is_reproducible_and_returns_noise():
    scm = confounded()
    a, na = scm.sample(50, gen(7), return_noise=True)
    b = scm.sample(50, gen(7))
    assert all(torch.equal(a[v], b[v]) for v in NAMES)
    again = scm.evaluate(na)
    assert all(torch.equal(a[v], again[v]) for v in NAMES)
    # x = 2 z + u_x exactly
    assert torch.allclose(a["x"], 2 * a["z"] + na["x"])


def test_counterfactual_hand_calculated():
    scm = confounded()
    # a unit with z = 1, x = 3, y = 10: u_x = 3 - 2 = 1, u_y = 10 - (1 + 9 - 1) = 1
    obs = {"z": torch.tensor([1.0], dtype=torch.float64), "x": torch.tensor([3.0], dtype=torch.float64),
           "y": torch.tensor([10.0], dtype=torch.float64)}
    cf = scm.counterfactual(obs, {"x": 0.0})
    # had x been 0: y = 1 + 0 - 1 + u_y = 1
    assert float(cf["y"]) == pytest.approx(1.0)
    assert float(cf["z"]) == 1.0 and float(cf["x"]) == 0.0
    cf2 = scm.counterfactual(obs, {"z": 0.0})
    # had z been 0: x = 0 + u_x = 1, y = 1 + 3 - 0 + 1 = 5
    assert float(cf2["x"]) == pytest.approx(1.0) and float(cf2["y"]) == pytest.approx(5.0)


def test_counterfactual_batched_matches_noise_replay():
    scm = confounded()
    values, noise = scm.sample(1000, gen(8), return_noise=True)
    cf = scm.counterfactual(values, {"x": torch.linspace(-1, 1, 1000, dtype=torch.float64)})
    replay = scm.do({"x": torch.linspace(-1, 1, 1000, dtype=torch.float64)}).evaluate(noise)
    assert torch.allclose(cf["y"], replay["y"], atol=1e-12)


def test_counterfactual_with_binary_root_upstream():
    scm = SCM({"male": bernoulli([], 0.5),
               "x": additive(["male"], lambda pa: 2 * pa["male"], normal_noise()),
               "y": additive(["x"], lambda pa: -pa["x"], normal_noise())})
    values, noise = scm.sample(100, gen(9), return_noise=True)
    cf = scm.counterfactual(values, {"x": 1.0})
    assert torch.equal(cf["male"], values["male"])
    assert torch.allclose(cf["y"], -1.0 + noise["y"])
    cf = scm.counterfactual(values, {"male": 1.0})  # male's own noise is not needed
    assert torch.allclose(cf["x"], 2.0 + noise["x"]) and torch.allclose(cf["y"], -cf["x"] + noise["y"])
    child = SCM({"x": additive([], lambda pa: torch.zeros(()), normal_noise()),
                 "b": bernoulli(["x"], lambda pa: torch.sigmoid(pa["x"]))})
    with pytest.raises(ValueError, match="not invertible"):
        child.counterfactual(child.sample(10, gen()), {"x": 1.0})


def test_bernoulli_rates_match_probabilities():
    scm = SCM({"a": bernoulli([], 0.3),
               "b": bernoulli(["a"], lambda pa: 0.2 + 0.6 * pa["a"])})
    s = scm.sample(200_000, gen(10))
    assert set(torch.unique(s["a"]).tolist()) == {0.0, 1.0}
    assert abs(float(s["a"].mean()) - 0.3) < 5 * math.sqrt(0.21 / 200_000)
    # P(b = 1) = 0.2 + 0.6 * 0.3 = 0.38;  P(b = 1 | do(a = 1)) = 0.8
    assert abs(float(s["b"].mean()) - 0.38) < 0.005
    assert abs(float(scm.interventional_mean("b", {"a": 1.0}, 100_000, gen(11))) - 0.8) < 0.005


def test_do_variants():
    scm = confounded()
    per_unit = scm.do({"x": torch.arange(5, dtype=torch.float64)})
    assert torch.equal(per_unit.sample(5, gen())["x"], torch.arange(5, dtype=torch.float64))
    with pytest.raises(ValueError, match="batch"):
        per_unit.sample(6, gen())
    rnd = scm.do({"x": uniform_noise(-1.0, 1.0)})
    s = rnd.sample(50_000, gen(12))
    assert s["x"].min() >= -1 and s["x"].max() <= 1 and abs(float(s["x"].mean())) < 0.02
    assert abs(float(torch.corrcoef(torch.stack([s["x"], s["z"]]))[0, 1])) < 0.02
    soft = scm.do({"x": additive(["z"], lambda pa: -pa["z"], no_noise())})
    s = soft.sample(10, gen())
    assert torch.allclose(s["x"], -s["z"]) and ("z", "x") in soft.graph.edges


def test_noise_samplers():
    g = gen(13)
    u = normal_noise(2.0, 1.0)(100_000, g)
    assert u.dtype == torch.float64 and abs(float(u.mean()) - 1) < 0.03 and abs(float(u.std()) - 2) < 0.03
    v = uniform_noise(-2.0, 3.0)(100_000, g)
    assert float(v.min()) >= -2 and float(v.max()) < 3 and abs(float(v.mean()) - 0.5) < 0.03
    assert torch.equal(no_noise()(4), torch.zeros(4, dtype=torch.float64))


def test_exported_in_namespace():
    assert cb.scm.SCM is SCM and "SCM" in cb.scm.__all__


# ----------------------------------------------------------------------------- bad input
def root():
    return additive([], lambda pa: torch.zeros(()), normal_noise())


@pytest.mark.parametrize("variables, match", [
    ({}, "non-empty"),
    ({"x": root(), "y": additive(["w"], lambda pa: pa["w"])}, "unknown parent"),
    ({"x": additive(["y"], lambda pa: pa["y"]), "y": additive(["x"], lambda pa: pa["x"])}, "cycle"),
    ({"x": additive(["x"], lambda pa: pa["x"])}, "itself"),
    ({"x": 3.0}, "must be a Variable"),
    ({"": root()}, "non-empty strings"),
])
def test_bad_models(variables, match):
    with pytest.raises(ValueError, match=match):
        SCM(variables)


def test_bad_variables():
    with pytest.raises(ValueError, match="parents"):
        Variable("x", mechanism=lambda pa, u: u)
    with pytest.raises(ValueError, match="repeat"):
        Variable(("x", "x"), mechanism=lambda pa, u: u)
    with pytest.raises(ValueError, match="mechanism"):
        Variable((), mechanism=None)
    with pytest.raises(ValueError, match="noise"):
        Variable((), mechanism=lambda pa, u: u, noise=3)
    with pytest.raises(ValueError, match="g must be callable"):
        additive([], 2.0)
    with pytest.raises(ValueError, match="probability"):
        bernoulli([], 1.5)
    with pytest.raises(ValueError, match="std"):
        normal_noise(-1.0)
    with pytest.raises(ValueError, match="low"):
        uniform_noise(1.0, 1.0)


def test_bad_sampling_and_do():
    scm = confounded()
    with pytest.raises(ValueError, match="n must be"):
        scm.sample(0)
    with pytest.raises(ValueError, match="unknown"):
        scm.do({"w": 1.0})
    with pytest.raises(ValueError, match="non-empty"):
        scm.do({})
    with pytest.raises(ValueError, match="number, a tensor"):
        scm.do({"x": "one"})
    with pytest.raises(ValueError, match="finite"):
        scm.do({"x": float("nan")})
    with pytest.raises(ValueError, match="0-d or 1-d"):
        scm.do({"x": torch.zeros(2, 2)})
    with pytest.raises(ValueError, match="unknown"):
        scm.parents("w")
    with pytest.raises(ValueError, match="missing"):
        scm.evaluate({"z": torch.zeros(3)})
    bad = SCM({"x": Variable((), mechanism=lambda pa, u: torch.zeros(2), noise=normal_noise())})
    with pytest.raises(ValueError, match="returned shape"):
        bad.sample(5)
    bad_noise = SCM({"x": Variable((), mechanism=lambda pa, u: u, noise=lambda n, g: torch.zeros(n + 1))})
    with pytest.raises(ValueError, match="noise sampler"):
        bad_noise.sample(5)
    cyc = SCM({"x": root(), "y": additive(["x"], lambda pa: pa["x"])})
    with pytest.raises(ValueError, match="cycle"):
        cyc.do({"x": additive(["y"], lambda pa: pa["y"])})


def test_bad_counterfactuals():
    scm = confounded()
    obs = {v: torch.zeros(3, dtype=torch.float64) for v in NAMES}
    with pytest.raises(ValueError, match="needs the observed"):
        scm.counterfactual({"x": obs["x"]}, {"x": 1.0})
    with pytest.raises(ValueError, match="first dimension"):
        scm.counterfactual({"z": torch.zeros(3), "x": torch.zeros(2), "y": torch.zeros(3)}, {"x": 1.0})
    with pytest.raises(ValueError, match="values"):
        scm.counterfactual(obs, {"x": uniform_noise()})
    with pytest.raises(ValueError, match="unknown"):
        scm.counterfactual(obs, {"w": 1.0})
    mult = SCM({"x": root(), "y": Variable(("x",), mechanism=lambda pa, u: pa["x"] * u, noise=normal_noise())})
    with pytest.raises(ValueError, match="not invertible"):
        mult.counterfactual({"x": torch.ones(2), "y": torch.ones(2)}, {"x": 2.0})


def test_bad_linear_specs():
    with pytest.raises(ValueError, match="pair"):
        linear_gaussian(["a", "b"], {("a", "c"): 1.0}, {})
    with pytest.raises(ValueError, match="std"):
        linear_gaussian(["a"], {}, {"a": -1.0})
    with pytest.raises(ValueError, match="distinct"):
        linear_gaussian(["a", "a"], {}, {})
    with pytest.raises(ValueError, match="acyclic"):
        linear_gaussian_moments(["a", "b"], {("a", "b"): 1.0, ("b", "a"): 1.0}, {})
    with pytest.raises(ValueError, match="unknown"):
        linear_gaussian_moments(NAMES, WEIGHTS, STD, interventions={"w": 1.0})


def test_graph_is_a_copy():
    scm = confounded()
    g = scm.graph
    g.add_edge("y", "z")
    assert nx.is_directed_acyclic_graph(scm.graph)


def test_categorical_frequencies_and_bad_input():
    from causalbook_lib.scm import categorical
    p = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)
    scm = SCM({"c": categorical([], p),
               "d": categorical(["c"], lambda pa: torch.stack([pa["c"] / 2, 1 - pa["c"] / 2], 1))})
    s = scm.sample(200_000, gen(14))
    freq = torch.bincount(s["c"].long(), minlength=3).double() / 200_000
    assert torch.allclose(freq, p, atol=0.005)
    # P(d = 0) = sum_c p_c * c / 2 = (0.5 + 0.6) / 2 = 0.55
    assert abs(float((s["d"] == 0).double().mean()) - 0.55) < 0.005
    with pytest.raises(ValueError, match="sum to 1"):
        categorical([], [0.5, 0.6])
    with pytest.raises(ValueError, match="length >= 2"):
        categorical([], [1.0])
    bad = SCM({"c": categorical([], lambda pa: torch.tensor([0.7, 0.7], dtype=torch.float64))})
    with pytest.raises(ValueError, match="sum to 1"):
        bad.sample(3)


def _tiny_network_and_inputs():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double()
    variables = {"c": additive([], lambda pa: torch.zeros(()), normal_noise())}
    for k in range(3):
        variables[f"x{k}"] = additive(["c"], lambda pa, k=k: (k + 1) * pa["c"], normal_noise(0.5))
    return net, variables


def test_network_scm_full_and_reduced_agree_with_forward():
    from causalbook_lib.scm import network_scm
    net, variables = _tiny_network_and_inputs()
    full = network_scm(net, variables, ["x0", "x1", "x2"])
    red = network_scm(net, variables, ["x0", "x1", "x2"], reduced=True)
    assert {"h1_0", "h1_3", "y_0", "y_1"} <= set(full.names) and "h1_0" not in red.names
    assert full.parents("y_0") == ("h1_0", "h1_1", "h1_2", "h1_3") and red.parents("y_1") == ("x0", "x1", "x2")
    a, noise = full.sample(500, gen(20), return_noise=True)
    b = red.evaluate({k: v for k, v in noise.items() if k in red.names})
    x = torch.stack([a["x0"], a["x1"], a["x2"]], 1)
    with torch.no_grad():
        out = net(x)
    for j in range(2):
        assert torch.allclose(a[f"y_{j}"], out[:, j], atol=1e-12)
        assert torch.allclose(b[f"y_{j}"], out[:, j], atol=1e-12)
    # the hidden neuron equals tanh of the first layer
    with torch.no_grad():
        assert torch.allclose(a["h1_2"], torch.tanh(net[0](x))[:, 2], atol=1e-12)


def test_network_scm_with_relu_agrees_with_forward():
    """network_scm with ReLU hidden units (review m17): every neuron is a variable, and the sampled
    outputs and hidden neurons equal the network's own forward pass."""
    from causalbook_lib.scm import network_scm
    _, variables = _tiny_network_and_inputs()
    torch.manual_seed(4)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)).double()
    full = network_scm(net, variables, ["x0", "x1", "x2"])
    a = full.sample(400, gen(21))
    x = torch.stack([a["x0"], a["x1"], a["x2"]], 1)
    with torch.no_grad():
        out, hidden = net(x), torch.relu(net[0](x))
    for j in range(2):
        assert torch.allclose(a[f"y_{j}"], out[:, j], atol=1e-12)
    for j in range(4):
        assert torch.allclose(a[f"h1_{j}"], hidden[:, j], atol=1e-12)
    assert bool((hidden == 0).any()) and bool((hidden > 0).any())  # both sides of the kink are visited


def test_network_scm_bad_input():
    from causalbook_lib.scm import network_scm
    net, variables = _tiny_network_and_inputs()
    with pytest.raises(ValueError, match="Sequential"):
        network_scm(net[0], variables, ["x0", "x1", "x2"])
    with pytest.raises(ValueError, match="takes 3 inputs"):
        network_scm(net, variables, ["x0", "x1"])
    with pytest.raises(ValueError, match="not among"):
        network_scm(net, variables, ["x0", "x1", "w"])
    with pytest.raises(ValueError, match="only Linear"):
        network_scm(torch.nn.Sequential(torch.nn.Conv1d(1, 1, 1)), variables, ["x0"])
    with pytest.raises(ValueError, match="clashes"):
        network_scm(net, {**variables, "y_0": variables["c"]}, ["x0", "x1", "x2"])


def test_variables_and_sample_noise():
    scm = confounded()
    vars_ = scm.variables
    assert set(vars_) == set(NAMES) and all(isinstance(v, Variable) for v in vars_.values())
    vars_.pop("z")
    assert "z" in scm.variables  # a copy
    noise = scm.sample_noise(1000, gen(30))
    assert list(noise) == scm.names and all(u.shape == (1000,) for u in noise.values())
    # z has sd 1, y has sd 0.5
    assert abs(float(noise["y"].std()) - 0.5) < 0.05 and abs(float(noise["z"].std()) - 1) < 0.1
    with pytest.raises(ValueError, match="n must be"):
        scm.sample_noise(-1)


def test_binary_scm_frequencies_match_its_tables():
    from causalbook_lib.scm import binary_scm, parent_configuration_index, probability_table

    parents = {"a": (), "b": (), "c": ("a", "b")}
    tables = {"a": {(): 0.3}, "b": torch.tensor([0.6]), "c": {(0, 0): 0.1, (0, 1): 0.5, (1, 0): 0.8, (1, 1): 1.0}}
    model = binary_scm(parents, tables)
    v = model.sample(200_000, torch.Generator().manual_seed(0))
    for (a, b), p in tables["c"].items():
        sel = (v["a"] == a) & (v["b"] == b)
        freq = float(v["c"][sel].mean())
        se = max((p * (1 - p) / int(sel.sum())) ** 0.5, 1e-12)
        assert abs(freq - p) <= 5 * se + 1e-12, (a, b, freq, p)
    assert float(v["a"].mean()) == pytest.approx(0.3, abs=5 * (0.21 / 2e5) ** 0.5)
    # the first parent is the most significant bit
    assert parent_configuration_index(torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]])).tolist() == [0, 1, 2, 3]
    torch.testing.assert_close(probability_table(("a", "b"), tables["c"]),
                               torch.tensor([0.1, 0.5, 0.8, 1.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="lacks the parent configuration"):
        probability_table(("a",), {(0,): 0.5})
    with pytest.raises(ValueError, match="2 entries"):
        probability_table(("a",), [0.5])
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        probability_table((), [1.5])
    with pytest.raises(ValueError, match="one table per variable"):
        binary_scm(parents, {"a": [0.5]})
