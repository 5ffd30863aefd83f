"""Unit tests for the counterfactual-explanation search of causalbook_lib.causalgen (chapter 16)."""
import itertools

import numpy as np
import pytest
import torch

import causalbook_lib as cb
from causalbook_lib import causalgen as G


def test_binary_states_follow_the_controllers_order(device):
    states = G.binary_states(5, device=device)
    assert states.shape == (32, 5) and states.dtype == torch.float64 and states.device.type == device.type
    np.testing.assert_array_equal(states.cpu().numpy(), np.array(list(itertools.product((0, 1), repeat=5))))
    truth = cb.causalgen.CausalController.from_tables(cb.datasets.FACE_PARENTS, cb.datasets.FACE_CPTS)
    np.testing.assert_array_equal(states.cpu().numpy(), truth.joint()[0].cpu().numpy())
    with pytest.raises(ValueError, match="d"):
        G.binary_states(0)


def test_decode_attribute_grid_is_every_latent_with_every_state_in_any_chunks(device):
    decode = lambda z, c: torch.cat([z, 10 * c], dim=1)  # noqa: E731  an image that shows both inputs
    z = torch.tensor([[0.5], [-1.0], [2.0]], dtype=torch.float64, device=device)
    grid = G.decode_attribute_grid(decode, z, 3)
    assert grid.shape == (8, 3, 4) and grid.dtype == torch.float64 and grid.device.type == device.type
    states = G.binary_states(3, device=device)
    for s in range(8):
        for i in range(3):
            np.testing.assert_array_equal(grid[s, i].cpu().numpy(), torch.cat([z[i], 10 * states[s]]).cpu().numpy())
    for chunk in (1, 5):
        np.testing.assert_array_equal(G.decode_attribute_grid(decode, z, 3, chunk_size=chunk).cpu().numpy(),
                                      grid.cpu().numpy())
    with pytest.raises(ValueError, match="latents"):
        G.decode_attribute_grid(decode, torch.zeros(3), 3)


def _brute_force(w, b, attributes):
    """For each row: the closest state (Hamming) with w.c + b > 0, ties by the larger score, then the first."""
    out = []
    for a in attributes.tolist():
        best = None
        for s, c in enumerate(itertools.product((0, 1), repeat=len(a))):
            score = float(np.dot(w, c) + b)
            if score > 0:
                key = (sum(ci != ai for ci, ai in zip(c, a)), -score, s)
                best = key if best is None or key < best else best
        out.append(best)
    return out


def test_minimal_edits_match_a_brute_force_search(device):
    gen = torch.Generator().manual_seed(0)
    d, n = 4, 12
    w, b = torch.randn(d, generator=gen, dtype=torch.float64, device="cpu"), -1.0
    attributes = torch.randint(0, 2, (n, d), generator=gen, device="cpu").double()
    attributes[0] = torch.tensor([1.0, 1.0, 1.0, 1.0]) * (w > 0)  # the best state: already the target if it can be
    # the "image" of a state is the state itself; the classifier scores (not target, target) = (0, w.c + b)
    grid = G.decode_attribute_grid(lambda z, c: c + 0 * z, torch.zeros(n, 1, dtype=torch.float64, device=device), d)
    w_dev = w.to(device)
    f = lambda x: torch.stack([torch.zeros(len(x), dtype=x.dtype, device=x.device), x @ w_dev + b], dim=1)  # noqa: E731
    edits = G.minimal_attribute_edits(f, grid, attributes.to(device), target=1, chunk_size=7)
    assert edits.index.device.type == device.type
    states = G.binary_states(d)
    for i, ref in enumerate(_brute_force(w.numpy(), b, attributes)):
        if ref is None:
            assert not edits.found[i] and edits.distance[i] == -1
            np.testing.assert_array_equal(edits.attributes[i].cpu().numpy(), attributes[i].numpy())
        else:
            assert edits.found[i] and int(edits.distance[i]) == ref[0]
            np.testing.assert_array_equal(edits.attributes[i].cpu().numpy(), states[ref[2]].cpu().numpy())
            np.testing.assert_array_equal(edits.images[i].cpu().numpy(), states[ref[2]].cpu().numpy())
            assert int(edits.index[i]) == ref[2]
    assert bool(edits.found.any())


def test_on_faces_the_edit_is_the_attribute_the_classifier_reads(device):
    # a classifier of "Male" that reads only the mustache bar: for a woman, the answer is "add a mustache"
    mask = torch.as_tensor(cb.datasets.face_templates()["mustache"].ravel(), dtype=torch.float64, device=device)
    f = lambda x: torch.stack([0.5 * torch.ones(len(x), dtype=x.dtype, device=x.device), x @ mask / mask.sum()], dim=1)  # noqa: E731
    women = torch.tensor([[1, 0, 0, 0, 1], [0, 0, 1, 0, 0]], dtype=torch.float64, device="cpu")
    grid = torch.stack([cb.datasets.face_images(s.expand(2, 5)) for s in G.binary_states(5, device="cpu")])
    edits = G.minimal_attribute_edits(f, grid.to(device), women.to(device), target=1)
    expected = women.clone()
    expected[:, 3] = 1
    np.testing.assert_array_equal(edits.attributes.cpu().numpy(), expected.numpy())
    assert edits.distance.tolist() == [1, 1]
    assert edits.decided.shape == (32, 2) and int(edits.decided.sum(0)[0]) == 16  # half the states carry a mustache


def test_minimal_edits_reject_bad_input():
    grid = torch.zeros(8, 2, 5)
    f = lambda x: torch.zeros(len(x), 2)  # noqa: E731
    a = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"\(2 \*\* d, n, ...\)"):
        G.minimal_attribute_edits(f, torch.zeros(4, 2, 5), a, 1)
    with pytest.raises(ValueError, match="0 and 1|binary|0/1"):
        G.minimal_attribute_edits(f, grid, torch.full((2, 3), 0.5), 1)
    with pytest.raises(ValueError, match="target"):
        G.minimal_attribute_edits(f, grid, a, 2)
    with pytest.raises(ValueError, match="target"):
        G.minimal_attribute_edits(f, grid, a, -1)
    with pytest.raises(ValueError, match="scores"):
        G.minimal_attribute_edits(lambda x: torch.zeros(len(x)), grid, a, 0)
    with pytest.raises(ValueError, match="shape"):
        G.minimal_attribute_edits(f, grid, torch.zeros(3), 0)
