"""Unit tests for causalbook_lib.attribution.ablate_channels (switching off filters; chapter 17)."""
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from causalbook_lib import attribution as A

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from captum.attr import LayerFeatureAblation


def _cnn(device, dtype=torch.float32):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Conv2d(3, 5, 3), nn.ReLU(), nn.Flatten(),
                        nn.Linear(5 * 2 * 2, 4), nn.Softmax(dim=-1))
    return net.to(device=device, dtype=dtype).eval()


def _randn(*shape, seed, device, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype, device="cpu").to(device)


def test_singletons_match_captum_layer_feature_ablation(device):
    net = _cnn(device)
    x = _randn(7, 1, 6, 6, seed=1, device=device)
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2], device=device)
    ours = A.ablate_channels(net, net[2], x, torch.eye(5, dtype=torch.bool, device=device), target=y)  # (5, 7)
    assert ours.shape == (5, 7) and ours.device.type == device.type
    captum = LayerFeatureAblation(net, net[2]).attribute(
        x, target=y, layer_mask=torch.arange(5, device=device).reshape(1, 5, 1, 1))
    drop = net(x).detach().gather(1, y[:, None])[:, 0] - ours                            # Captum: f(x) - f(ablated)
    np.testing.assert_allclose(drop.T.cpu().numpy(), captum[:, :, 0, 0].detach().cpu().numpy(), atol=1e-6)


def test_overlapping_subsets_of_a_linear_layer_have_the_closed_form(device):
    torch.manual_seed(2)
    first, second = nn.Linear(3, 4, dtype=torch.float64), nn.Linear(4, 2, dtype=torch.float64)
    net = nn.Sequential(first, second).to(device)
    x = _randn(6, 3, seed=3, device=device, dtype=torch.float64)
    off = torch.tensor([[0, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [1, 1, 1, 1]], device=device)
    out = A.ablate_channels(net, first, x, off, baseline=0.5)                             # (4, 6, 2)
    h = first(x).detach()
    expected = torch.stack([second(torch.where(o.bool(), torch.full_like(h, 0.5), h)).detach() for o in off])
    np.testing.assert_allclose(out.cpu().numpy(), expected.cpu().numpy(), atol=1e-12)
    np.testing.assert_allclose(out[0].cpu().numpy(), net(x).detach().cpu().numpy(), atol=1e-12)  # nothing off
    assert out.dtype == torch.float64


def test_chunks_targets_and_one_subset_give_the_same_numbers(device):
    net = _cnn(device, torch.float64)
    x = _randn(5, 1, 6, 6, seed=3, device=device, dtype=torch.float64)
    off = (torch.rand(6, 5, generator=torch.Generator().manual_seed(4), device="cpu") < 0.5).to(device)
    full = A.ablate_channels(net, net[2], x, off)                                          # (6, 5, 4)
    for chunk in (1, 4, 7):
        np.testing.assert_allclose(A.ablate_channels(net, net[2], x, off, chunk_size=chunk).cpu().numpy(),
                                   full.cpu().numpy())
    np.testing.assert_allclose(A.ablate_channels(net, net[2], x, off, target=2).cpu().numpy(), full[..., 2].cpu().numpy())
    np.testing.assert_allclose(A.ablate_channels(net, net[2], x, off[3]).cpu().numpy(), full[3].cpu().numpy())
    assert net[2]._forward_hooks == {}                                                    # the hook is removed


def test_ablate_channels_rejects_bad_input(device):
    net = _cnn(device)
    x = _randn(2, 1, 6, 6, seed=5, device=device)
    none_off = torch.zeros(1, 5, dtype=torch.bool, device=device)
    with pytest.raises(ValueError, match="columns, one per channel"):
        A.ablate_channels(net, net[2], x, torch.ones(1, 4, dtype=torch.bool, device=device))
    with pytest.raises(ValueError, match="0/1"):
        A.ablate_channels(net, net[2], x, torch.full((1, 5), 2, device=device))
    with pytest.raises(ValueError, match="never called"):
        A.ablate_channels(net, nn.Linear(2, 2), x, none_off)
    with pytest.raises(ValueError, match="per input row"):
        A.ablate_channels(net, net[2], x, none_off, target=[0, 1, 2])
    with pytest.raises(ValueError, match="floating"):
        A.ablate_channels(net, net[2], x.long(), none_off)
    with pytest.raises(ValueError, match="shape"):
        A.ablate_channels(net, net[2], x, torch.zeros(2, 2, 5, dtype=torch.bool, device=device))
    assert net[2]._forward_hooks == {}
