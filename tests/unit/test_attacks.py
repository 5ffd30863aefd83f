"""Unit tests for causalbook_lib.attacks (FGSM, PGD, minimal perturbations, accuracy under attack)."""
import numpy as np
import pytest
import torch
from torch import nn

import causalbook_lib as cb

F64 = torch.float64



def _linear_model(w, b):
    lin = nn.Linear(w.shape[1], w.shape[0]).to(F64)
    with torch.no_grad():
        lin.weight.copy_(torch.as_tensor(w, dtype=F64))
        lin.bias.copy_(torch.as_tensor(b, dtype=F64))
    return lin




def test_margin_loss_hand_case():
    z = torch.tensor([[1.0, 3.0, 2.0], [5.0, 0.0, -1.0]], dtype=F64)
    torch.testing.assert_close(cb.attacks.margin_loss(z, torch.tensor([0, 0])), torch.tensor([2.0, -5.0], dtype=F64))
    with pytest.raises(ValueError):
        cb.attacks.margin_loss(z, torch.tensor([0]))


def test_fgsm_closed_form_on_linear_model():
    w = torch.tensor([[1.0, -2.0, 0.5], [-1.0, 1.0, 0.5]])
    model = _linear_model(w, [0.0, 0.0])
    x = torch.full((2, 3), 0.5, dtype=F64)
    y = torch.tensor([0, 1])
    adv = cb.attacks.fgsm(model, x, y, 0.1)
    # gradient of z_other - z_true is w_other - w_true
    expect = torch.stack([x[0] + 0.1 * torch.sign(w[1] - w[0]).double(), x[1] + 0.1 * torch.sign(w[0] - w[1]).double()])
    torch.testing.assert_close(adv, expect)
    ce = cb.attacks.fgsm(model, x, y, 0.1, loss="ce")
    torch.testing.assert_close(ce, expect)  # two classes: same sign pattern


@pytest.mark.parametrize("norm, eps", [("linf", 0.1), ("l2", 0.3)])
def test_pgd_restarts_stay_in_the_ball_never_weaken_and_are_reproducible(norm, eps):
    """Random restarts (review m15): the first run is the plain attack, the others start at random
    points of the ball; the best iterate over all runs is kept, so the margin never drops."""
    torch.manual_seed(0)
    model = cb.models.make_mlp([5, 8, 3], dtype=F64)
    g = torch.Generator().manual_seed(2)
    x = torch.rand(40, 5, generator=g, dtype=F64)
    y = torch.randint(0, 3, (40,), generator=g)
    one = cb.attacks.pgd(model, x, y, eps, norm=norm, steps=5)
    many = cb.attacks.pgd(model, x, y, eps, norm=norm, steps=5, restarts=4, generator=7)
    again = cb.attacks.pgd(model, x, y, eps, norm=norm, steps=5, restarts=4, generator=7)
    size = (many - x).abs().amax(1) if norm == "linf" else (many - x).norm(dim=1)
    assert bool((size <= eps + 1e-9).all()) and float(many.min()) >= 0 and float(many.max()) <= 1
    assert torch.equal(many, again)
    with torch.no_grad():
        m1, m4 = cb.attacks.margin_loss(model(one), y), cb.attacks.margin_loss(model(many), y)
    assert bool((m4 >= m1 - 1e-12).all())
    with pytest.raises(ValueError, match="restarts"):
        cb.attacks.pgd(model, x, y, eps, norm=norm, restarts=0)


def test_pgd_stays_in_the_ball_and_image_range():
    torch.manual_seed(0)
    model = cb.models.make_mlp([5, 8, 3], dtype=F64)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(20, 5, generator=g, dtype=F64)
    y = torch.randint(0, 3, (20,), generator=g)
    for norm, eps in (("linf", 0.1), ("l2", 0.3)):
        adv = cb.attacks.pgd(model, x, y, eps, norm=norm, steps=10)
        size = (adv - x).abs().amax(1) if norm == "linf" else (adv - x).norm(dim=1)
        assert bool((size <= eps + 1e-9).all())
        assert float(adv.min()) >= 0 and float(adv.max()) <= 1
        # never worse than the clean point
        with torch.no_grad():
            assert bool((cb.attacks.margin_loss(model(adv), y) >= cb.attacks.margin_loss(model(x), y) - 1e-12).all())


def test_minimal_l2_perturbation_of_linear_model_is_distance_to_boundary():
    w = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    model = _linear_model(w, [0.0, 0.0])
    x = torch.tensor([[0.6, 0.4, 0.5, 0.5], [0.3, 0.55, 0.5, 0.5]], dtype=F64)
    y = torch.tensor([0, 1])
    sizes, adv = cb.attacks.minimal_perturbation(model, x, y, norm="l2", eps_max=1.0, bisections=20, steps=50)
    exact = torch.tensor([0.2, 0.25], dtype=F64) / np.sqrt(2)  # |x1 - x2| / ||w0 - w1||
    torch.testing.assert_close(sizes, exact, atol=2e-3, rtol=0)
    assert bool((model(adv).argmax(1) != y).all())
    lsizes, ladv = cb.attacks.line_search_attack(model, x, y, torch.tensor([[0.0, 1.0, 0.5, 0.5], [1.0, 0.0, 0.5, 0.5]]),
                                         torch.tensor([1, 0]), grid=200)
    assert bool((lsizes >= exact - 1e-12).all()) and bool(torch.isfinite(lsizes).all())
    assert bool((model(ladv).argmax(1) != y).all())


def test_minimal_linf_perturbation_of_linear_model():
    model = _linear_model(torch.tensor([[1.0, -1.0], [-1.0, 1.0]]), [0.0, 0.0])
    x = torch.tensor([[0.6, 0.4]], dtype=F64)
    sizes, _ = cb.attacks.minimal_perturbation(model, x, torch.tensor([0]), norm="linf", eps_max=1.0, bisections=20)
    assert float(sizes[0]) == pytest.approx(0.1, abs=2e-3)  # move both coordinates by 0.1


def test_accuracy_under_attack_starts_at_clean_accuracy():
    w = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])
    model = _linear_model(w, [0.0, 0.0])
    g = torch.Generator().manual_seed(0)
    x = torch.rand(50, 2, generator=g, dtype=F64)
    y = (x[:, 1] > x[:, 0]).long()
    acc = cb.attacks.accuracy_under_attack(model, x, y, [0.0, 0.05, 0.1, 0.5], "pgd", steps=10)
    assert float(acc[0]) == cb.models.accuracy(model, x, y) == 1.0
    assert bool((acc[1:] <= acc[:-1] + 1e-12).all()) and float(acc[-1]) == 0.0
    with pytest.raises(ValueError):
        cb.attacks.accuracy_under_attack(model, x, y, [0.1], "cw")


@pytest.mark.parametrize("kwargs", [{"eps": -0.1}, {"eps": float("nan")}, {"loss": "hinge"}])
def test_attacks_reject_bad_arguments(kwargs):
    model = cb.models.make_mlp([2, 128, 2], dtype=F64)
    x, y = torch.full((3, 2), 0.5, dtype=F64), torch.tensor([0, 1, 0])
    args = {"eps": 0.1, **kwargs}
    with pytest.raises(ValueError):
        cb.attacks.fgsm(model, x, y, args.pop("eps"), **args)


def test_attacks_reject_bad_inputs():
    model = cb.models.make_mlp([2, 128, 2], dtype=F64)
    y = torch.tensor([0, 1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        cb.attacks.pgd(model, torch.full((2, 2), 2.0, dtype=F64), y, 0.1)
    with pytest.raises(ValueError):
        cb.attacks.pgd(model, torch.full((2, 2), 0.5, dtype=F64), y, 0.1, norm="l1")
    with pytest.raises(ValueError):
        cb.attacks.pgd(model, torch.full((2, 2), 0.5, dtype=F64), y, 0.1, steps=0)
    with pytest.raises(ValueError):
        cb.attacks.minimal_perturbation(model, torch.full((2, 2), 0.5, dtype=F64), y, eps_max=0.0)
    with pytest.raises(ValueError):
        cb.attacks.line_search_attack(model, torch.full((2, 2), 0.5, dtype=F64), y, torch.zeros(3, 3), torch.tensor([0, 1, 1]))
