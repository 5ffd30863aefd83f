"""cb.models: one definition of classification accuracy (in the model's dtype and device), and StackedMLP."""
import pytest
import torch
from torch import nn

import causalbook_lib as cb


def _net(dtype):
    net = nn.Linear(3, 2).to(dtype)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]]))
        net.bias.zero_()
    return net


@pytest.mark.parametrize("model_dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("input_dtype", [torch.float32, torch.float64])
def test_accuracy_follows_the_model_dtype(model_dtype, input_dtype):
    x = torch.tensor([[1.0, 0, 0], [-1.0, 0, 0], [2.0, 5, 5], [-0.5, 1, 1]], dtype=input_dtype)
    y = torch.tensor([0, 1, 1, 1])                 # the third row is labelled wrongly
    assert cb.models.accuracy(_net(model_dtype), x, y) == 0.75
    assert cb.models.accuracy(_net(model_dtype), x, y, chunk_size=3) == 0.75


def test_accuracy_takes_plain_callables_and_probabilities():
    x = torch.linspace(-1, 1, 10)[:, None]
    probs = lambda v: torch.cat([torch.sigmoid(-5 * v), torch.sigmoid(5 * v)], 1)  # noqa: E731
    y = (x[:, 0] > 0).long()
    assert cb.models.accuracy(probs, x, y) == 1.0
    assert cb.models.accuracy(probs, x, 1 - y) == 0.0


@pytest.mark.parametrize("args, match", [
    ((torch.zeros(4, 3), torch.zeros(3, dtype=torch.long)), "labels"),
    ((torch.zeros(4, 3), torch.zeros(4)), "labels"),
    ((torch.full((4, 3), float("nan")), torch.zeros(4, dtype=torch.long)), "inputs"),
    ((torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)), "inputs"),
])
def test_accuracy_validates_its_inputs(args, match):
    with pytest.raises(ValueError, match=match):
        cb.models.accuracy(_net(torch.float32), *args)


def test_accuracy_rejects_scores_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"\(n, M\)"):
        cb.models.accuracy(lambda v: v[:, 0], torch.zeros(4, 3), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="callable"):
        cb.models.accuracy("net", torch.zeros(4, 3), torch.zeros(4, dtype=torch.long))


# ---- StackedMLP (many small MLPs in one batched pass) ----

def test_stacked_mlp_matches_separate_linear_layers():
    net = cb.models.StackedMLP(3, 5, 4, 2, seeds=[0, 1, 2], dtype=torch.float64)
    x = torch.randn(7, 5, dtype=torch.float64)
    out = net(x)
    assert out.shape == (3, 7, 2)
    for m in range(3):
        h = x
        for layer, (w, b) in enumerate(zip(net.weights, net.biases)):
            h = h @ w[m] + b[m]
            h = torch.relu(h) if layer < len(net.weights) - 1 else h
        assert torch.allclose(out[m], h)
    # a model's initialisation depends only on its own seed
    other = cb.models.StackedMLP(2, 5, 4, 2, seeds=[2, 9], dtype=torch.float64)
    assert torch.equal(other.weights[0][0], net.weights[0][2])
    assert torch.allclose(net.squared_norms()[1], sum(p[1].pow(2).sum() for p in net.parameters()))


def test_stacked_mlp_bad_input():
    with pytest.raises(ValueError):
        cb.models.StackedMLP(2, 5, 4, 1, seeds=[0])
    with pytest.raises(ValueError):
        cb.models.StackedMLP(2, 5, 0, 1)
    with pytest.raises(ValueError):
        cb.models.StackedMLP(2, 5, 4, 1, output="softmax")
    with pytest.raises(ValueError):
        cb.models.StackedMLP(2, 5, 4, 1)(torch.zeros(3, 4))
