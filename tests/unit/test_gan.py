"""Unit tests for causalbook_lib.gan (conditional GAN with CausalGAN's labeller and anti-labeller)."""
import pytest
import torch

from causalbook_lib import gan


def _gaussian_data(n=2000, seed=0, dtype=torch.float32):
    """x | c ~ N(mu_c, 0.5^2) in 1-D with mu_0 = -2, mu_1 = +2 and P(c = 1) = 0.3."""
    g = torch.Generator().manual_seed(seed)
    c = (torch.rand(n, 1, generator=g) < 0.3).to(dtype)
    x = (4 * c - 2) + 0.5 * torch.randn(n, 1, generator=g, dtype=dtype)
    return x, c


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: see conftest.py


@pytest.fixture(scope="module")
def gaussian_fit(one_thread):
    x, c = _gaussian_data()
    return gan.train_conditional_gan(x, c, noise_dim=4, hidden=32, steps=500, batch_size=128, lr=2e-3, generator=0)


def test_recovers_per_label_means(gaussian_fit):
    # ground truth: the class-conditional means are -2 and +2 (standard deviation 0.5). Small GANs
    # under-disperse (about 0.25 here), so the spread is only required not to collapse.
    g = torch.Generator().manual_seed(1)
    for label, mean in ((0.0, -2.0), (1.0, 2.0)):
        xs = gaussian_fit.generator.generate(torch.full((4000, 1), label), generator=g)
        assert float(xs.mean()) == pytest.approx(mean, abs=0.3)
        assert 0.05 < float(xs.std()) < 1.0


def test_history_keys_and_lengths(gaussian_fit):
    assert set(gaussian_fit.history) == {"discriminator", "generator"}
    assert all(len(v) == 500 for v in gaussian_fit.history.values())
    assert gaussian_fit.labeller is None and gaussian_fit.anti_labeller is None


def test_image_only_discriminator_with_labeller_carries_the_labels():
    # CausalGAN's set-up: D sees images only, so only the labeller ties images to labels
    x, c = _gaussian_data(seed=2)
    res = gan.train_conditional_gan(x, c, noise_dim=4, hidden=32, conditioning="none", labeller_weight=1.0,
                                    anti_labeller_weight=0.2, steps=300, lr=2e-3, generator=3)
    assert set(res.history) == {"discriminator", "generator", "labeller_real", "labeller_fake", "anti_labeller"}
    # the labeller learnt the real labels (Bayes accuracy is Phi(4) ~ 1)
    with torch.no_grad():
        acc = float(((res.labeller(x) > 0).float() == c).float().mean())
    assert acc > 0.97
    labels = torch.cat([torch.zeros(2000, 1), torch.ones(2000, 1)])
    xs = res.generator.generate(labels, generator=4)
    assert float(((xs > 0).float() == labels).float().mean()) > 0.9


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shapes_and_dtype(dtype):
    x, c = _gaussian_data(n=64, dtype=dtype)
    x = torch.cat([x, -x, x ** 2], dim=1)
    c = torch.cat([c, 1 - c], dim=1)
    for cond in ("concat", "projection"):
        res = gan.train_conditional_gan(x, c, hidden=8, steps=3, conditioning=cond, labeller_weight=0.5, generator=0)
        out = res.generator.generate(c[:5], generator=0)
        assert out.shape == (5, 3) and out.dtype == dtype
        assert res.discriminator(x, c).shape == (64,)
        assert res.labeller(x).shape == (64, 2)


def test_reproducible_with_seed():
    x, c = _gaussian_data(n=200)
    a = gan.train_conditional_gan(x, c, hidden=8, steps=20, generator=5)
    b = gan.train_conditional_gan(x, c, hidden=8, steps=20, generator=5)
    d = gan.train_conditional_gan(x, c, hidden=8, steps=20, generator=6)
    torch.testing.assert_close(a.generator.generate(c, generator=1), b.generator.generate(c, generator=1),
                               rtol=0, atol=0)
    assert a.history == b.history
    assert not torch.equal(a.generator.generate(c, generator=1), d.generator.generate(c, generator=1))


def test_validation():
    x, c = _gaussian_data(n=50)
    with pytest.raises(ValueError, match="floating"):
        gan.train_conditional_gan(torch.ones(50, 1, dtype=torch.long), c)
    with pytest.raises(ValueError, match="shape"):
        gan.train_conditional_gan(x[:, 0], c)
    with pytest.raises(ValueError, match="matching"):
        gan.train_conditional_gan(x, c[:10])
    with pytest.raises(ValueError, match="binary"):
        gan.train_conditional_gan(x, c + 0.5)
    with pytest.raises(ValueError, match="finite"):
        gan.train_conditional_gan(torch.full((50, 1), float("nan")), c)
    with pytest.raises(ValueError, match="conditioning"):
        gan.train_conditional_gan(x, c, conditioning="film")
    with pytest.raises(ValueError, match=">= 0"):
        gan.train_conditional_gan(x, c, labeller_weight=-1.0)
    with pytest.raises(ValueError, match="labeller_weight > 0"):
        gan.train_conditional_gan(x, c, conditioning="none")
    with pytest.raises(ValueError, match="steps"):
        gan.train_conditional_gan(x, c, steps=0)
    with pytest.raises(ValueError, match="lr"):
        gan.train_conditional_gan(x, c, lr=0.0)
    with pytest.raises(ValueError, match="generator"):
        gan.train_conditional_gan(x, c, generator=-1)
    with pytest.raises(ValueError, match="hidden"):
        gan.ConditionalGenerator(3, 2, hidden=0)
    with pytest.raises(ValueError, match="conditioning"):
        gan.ConditionalDiscriminator(3, 2, conditioning="bogus")
    res = gan.train_conditional_gan(x, c, hidden=4, steps=1, generator=0)
    with pytest.raises(ValueError, match="shape"):
        res.generator.generate(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="binary"):
        res.generator.generate(torch.full((4, 1), 0.5))


def test_within_label_spread_by_hand():
    # group (0, 1): pixels [0, 2] and [2, 2] -> stds (sqrt 2, 0), mean sqrt(2)/2;
    # group (1, 1): pixels [1, 1], [1, 3], [1, 5] -> stds (0, 2), mean 1; group (0, 0) has one image, skipped
    x = torch.tensor([[0.0, 2.0], [2.0, 2.0], [1.0, 1.0], [1.0, 3.0], [1.0, 5.0], [9.0, 9.0]], dtype=torch.float64)
    c = torch.tensor([[0, 1], [0, 1], [1, 1], [1, 1], [1, 1], [0, 0]])
    assert gan.within_label_spread(x, c, min_count=2) == pytest.approx((2 ** 0.5 / 2 + 1) / 2, abs=1e-12)
    assert gan.within_label_spread(x, c, min_count=3) == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ValueError, match="min_count"):
        gan.within_label_spread(x, c, min_count=4)
    with pytest.raises(ValueError, match="binary"):
        gan.within_label_spread(x, c * 2)
