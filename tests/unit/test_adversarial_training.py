"""Tests of cb.attacks.adversarial_training (PGD adversarial training, Madry et al.)."""
import pytest
import torch

import causalbook_lib as cb


def _two_feature_data(n, seed):
    """x1: a robust but noisy feature (class means 0.3 / 0.7, sd 0.2); x2: a feature that separates the
    classes perfectly but only by 0.05 on each side of 0.5, so an L-inf budget of 0.1 can flip it."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    s = y.double() * 2 - 1
    x1 = 0.5 + 0.2 * s + 0.2 * torch.randn(n, generator=g, dtype=torch.float64)
    x2 = 0.5 + 0.05 * s
    return torch.stack([x1, x2], 1).clamp(0, 1), y


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks: threads only add overhead
    yield
    torch.set_num_threads(n)


def test_adversarial_training_beats_plain_training_under_pgd(one_thread):
    x, y = _two_feature_data(300, 0)
    xt, yt = _two_feature_data(300, 1)
    kw = dict(hidden=16, epochs=100, batch_size=300, lr=3e-2, generator=0)  # full batch: fast
    plain = cb.attacks.adversarial_training(x, y, 0.0, **kw)
    robust = cb.attacks.adversarial_training(x, y, 0.1, steps=3, **kw)
    acc = {k: float(cb.attacks.accuracy_under_attack(m, xt, yt, [0.1], "pgd", steps=20))
           for k, m in (("plain", plain), ("robust", robust))}
    # plain training leans on the fragile feature x2 (clean accuracy near 1, PGD accuracy low);
    # against eps = 0.1 only x1 helps, whose best robust accuracy is P(N(0, 1) > -0.5) ~ 0.69
    assert cb.models.accuracy(plain, xt, yt) > 0.9
    assert acc["plain"] < 0.3
    assert acc["robust"] > 0.55 and acc["robust"] > acc["plain"] + 0.3
    assert acc["robust"] < 0.8  # cannot beat the robust Bayes rule by much (sampling noise)


def test_adversarial_training_is_seeded_and_eps0_matches_plain_training_shape():
    x, y = _two_feature_data(60, 2)
    a = cb.attacks.adversarial_training(x, y, 0.05, hidden=4, epochs=2, steps=2, generator=3)
    b = cb.attacks.adversarial_training(x, y, 0.05, hidden=4, epochs=2, steps=2, generator=3)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    assert [type(m) for m in a] == [torch.nn.Linear, torch.nn.ReLU, torch.nn.Linear]
    assert a[0].weight.dtype == torch.float64 and not a.training


@pytest.mark.parametrize("kwargs", [dict(eps=-0.1), dict(eps=float("nan")), dict(eps=0.1, epochs=0),
                                    dict(eps=0.1, warmup_epochs=-1), dict(eps=0.1, lr=0.0)])
def test_adversarial_training_rejects_bad_arguments(kwargs):
    x, y = _two_feature_data(20, 0)
    eps = kwargs.pop("eps")
    with pytest.raises(ValueError):
        cb.attacks.adversarial_training(x, y, eps, **kwargs)


def test_adversarial_training_rejects_images_outside_unit_interval():
    x, y = _two_feature_data(20, 0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        cb.attacks.adversarial_training(x + 2, y, 0.1)


# ---------------------------------------------------------------------------------------------
# Cross-check of cb.attacks.pgd (the inner maximisation) against torchattacks, a maintained
# attack library; skipped where torchattacks is not installed (it is not a dependency of the book).
# ---------------------------------------------------------------------------------------------
def _torchattacks_pgd(model, x, y, eps, alpha, steps):
    torchattacks = pytest.importorskip("torchattacks")
    atk = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=False)
    return atk(x, y)


def test_pgd_matches_torchattacks_on_a_linear_model():
    """Two classes, a linear model: the cross-entropy's gradient sign is the same at every iterate, so
    both implementations walk to the same clipped corner of the ball, bit for bit up to rounding."""
    with cb.utils.seeded_init(0):
        model = torch.nn.Sequential(torch.nn.Linear(6, 2)).double()
    x = torch.rand(50, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = model(x).argmax(1).detach()
    theirs = _torchattacks_pgd(model, x, y, 0.25, 0.0625, 10)
    ours = cb.attacks.pgd(model, x, y, 0.25, steps=10, step_size=0.25, loss="ce")
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)
    w = model[0].weight.detach()
    corner = (x - 0.25 * (w[y] - w[1 - y]).sign()).clamp(0, 1)  # the worst case in closed form
    torch.testing.assert_close(ours, corner, rtol=0, atol=1e-12)


def test_pgd_finds_every_adversarial_example_torchattacks_finds_on_an_mlp(one_thread):
    """Same loss (cross-entropy), same sign steps, same projection: our PGD follows torchattacks'
    trajectory and keeps its best iterate, so it succeeds wherever torchattacks' last iterate does."""
    with cb.utils.seeded_init(1):
        model = cb.models.make_mlp([16, 32, 5], dtype=torch.float64)
    x = torch.rand(200, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    y = model(x).argmax(1).detach()
    theirs = _torchattacks_pgd(model, x, y, 0.125, 0.03125, 20)
    ours = cb.attacks.pgd(model, x, y, 0.125, steps=20, step_size=0.25, loss="ce")
    with torch.no_grad():
        fooled_theirs, fooled_ours = model(theirs).argmax(1) != y, model(ours).argmax(1) != y
    assert int(fooled_theirs.sum()) > 20  # the comparison is not vacuous
    assert float((fooled_ours | ~fooled_theirs).double().mean()) >= 0.99
    assert (ours - x).abs().max() <= 0.125 + 1e-12 and bool(((ours >= 0) & (ours <= 1)).all())
