"""Unit tests for causalbook_lib.robustness (generative classifier, attacks, counterfactual fairness)."""
import numpy as np
import pytest
import torch
from torch import nn

import causalbook_lib as cb
from causalbook_lib import robustness as rb
from causalbook_lib.datasets import LoanSCMParameters, loan_feature_scm, sample_loan_data

F64 = torch.float64


def _linear_model(w, b):
    lin = nn.Linear(w.shape[1], w.shape[0]).to(F64)
    with torch.no_grad():
        lin.weight.copy_(torch.as_tensor(w, dtype=F64))
        lin.bias.copy_(torch.as_tensor(b, dtype=F64))
    return lin


@pytest.fixture
def gaussian_data():
    g = torch.Generator().manual_seed(0)
    n, d = 400, 6
    y = torch.arange(n) % 3
    means = torch.tensor([[0.2] * d, [0.5] * d, [0.8] * d], dtype=F64)
    x = means[y] + 0.08 * torch.randn(n, d, generator=g, dtype=F64)
    return x, y


def test_generative_classifier_matches_sklearn_ppca(gaussian_data):
    from sklearn.decomposition import PCA
    x, y = gaussian_data
    model = rb.GaussianGenerativeClassifier(x, y, n_components=2, min_variance=1e-12)
    ll = model.log_likelihood(x[:20])
    for c in range(3):
        ref = PCA(n_components=2).fit(x[y == c].numpy()).score_samples(x[:20].numpy())
        np.testing.assert_allclose(ll[:, c].numpy(), ref, atol=1e-8)


def test_generative_classifier_logits_are_bayes(gaussian_data):
    from scipy.stats import multivariate_normal
    x, y = gaussian_data
    model = rb.GaussianGenerativeClassifier(x, y, n_components=2, min_variance=1e-12)
    logits = model(x[:5])
    # brute force: the covariance W W^T + s^2 I rebuilt from sklearn's PPCA
    from sklearn.decomposition import PCA
    for c in range(3):
        pca = PCA(n_components=2).fit(x[y == c].numpy())
        ref = multivariate_normal(pca.mean_, pca.get_covariance()).logpdf(x[:5].numpy()) + np.log(float((y == c).double().mean()))
        np.testing.assert_allclose(logits[:, c].numpy(), ref, atol=1e-8)
    assert cb.models.accuracy(model, x, y) == 1.0


def test_generative_classifier_rejects_bad_input(gaussian_data):
    x, y = gaussian_data
    with pytest.raises(ValueError):
        rb.GaussianGenerativeClassifier(x, y, n_components=6)
    with pytest.raises(ValueError):
        rb.GaussianGenerativeClassifier(x, y, min_variance=0.0)
    with pytest.raises(ValueError):
        rb.GaussianGenerativeClassifier(x, y.double())
    with pytest.raises(ValueError):
        rb.GaussianGenerativeClassifier(x[:5], y[:5], n_components=2)  # too few per class
    model = rb.GaussianGenerativeClassifier(x, y, n_components=2)
    with pytest.raises(ValueError):
        model.log_likelihood(torch.zeros(3, 5))


def test_mlp_learns_separable_data(gaussian_data):
    x, y = gaussian_data
    torch.manual_seed(0)
    mlp = rb.train_mlp_classifier(x, y, hidden=16, epochs=100, lr=1e-2, generator=torch.Generator().manual_seed(0))
    assert cb.models.accuracy(mlp, x, y) >= 0.99
    with pytest.raises(ValueError):
        rb.train_mlp_classifier(x, y, lr=0.0)
    with pytest.raises(ValueError, match="two classes"):
        rb.train_mlp_classifier(x, torch.zeros_like(y))


def test_margin_loss_hand_case():
    z = torch.tensor([[1.0, 3.0, 2.0], [5.0, 0.0, -1.0]], dtype=F64)
    torch.testing.assert_close(rb.margin_loss(z, torch.tensor([0, 0])), torch.tensor([2.0, -5.0], dtype=F64))
    with pytest.raises(ValueError):
        rb.margin_loss(z, torch.tensor([0]))


def test_fgsm_closed_form_on_linear_model():
    w = torch.tensor([[1.0, -2.0, 0.5], [-1.0, 1.0, 0.5]])
    model = _linear_model(w, [0.0, 0.0])
    x = torch.full((2, 3), 0.5, dtype=F64)
    y = torch.tensor([0, 1])
    adv = rb.fgsm(model, x, y, 0.1)
    # gradient of z_other - z_true is w_other - w_true
    expect = torch.stack([x[0] + 0.1 * torch.sign(w[1] - w[0]).double(), x[1] + 0.1 * torch.sign(w[0] - w[1]).double()])
    torch.testing.assert_close(adv, expect)
    ce = rb.fgsm(model, x, y, 0.1, loss="ce")
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
    one = rb.pgd(model, x, y, eps, norm=norm, steps=5)
    many = rb.pgd(model, x, y, eps, norm=norm, steps=5, restarts=4, generator=7)
    again = rb.pgd(model, x, y, eps, norm=norm, steps=5, restarts=4, generator=7)
    size = (many - x).abs().amax(1) if norm == "linf" else (many - x).norm(dim=1)
    assert bool((size <= eps + 1e-9).all()) and float(many.min()) >= 0 and float(many.max()) <= 1
    assert torch.equal(many, again)
    with torch.no_grad():
        m1, m4 = rb.margin_loss(model(one), y), rb.margin_loss(model(many), y)
    assert bool((m4 >= m1 - 1e-12).all())
    with pytest.raises(ValueError, match="restarts"):
        rb.pgd(model, x, y, eps, norm=norm, restarts=0)


def test_pgd_stays_in_the_ball_and_image_range():
    torch.manual_seed(0)
    model = cb.models.make_mlp([5, 8, 3], dtype=F64)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(20, 5, generator=g, dtype=F64)
    y = torch.randint(0, 3, (20,), generator=g)
    for norm, eps in (("linf", 0.1), ("l2", 0.3)):
        adv = rb.pgd(model, x, y, eps, norm=norm, steps=10)
        size = (adv - x).abs().amax(1) if norm == "linf" else (adv - x).norm(dim=1)
        assert bool((size <= eps + 1e-9).all())
        assert float(adv.min()) >= 0 and float(adv.max()) <= 1
        # never worse than the clean point
        with torch.no_grad():
            assert bool((rb.margin_loss(model(adv), y) >= rb.margin_loss(model(x), y) - 1e-12).all())


def test_minimal_l2_perturbation_of_linear_model_is_distance_to_boundary():
    w = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    model = _linear_model(w, [0.0, 0.0])
    x = torch.tensor([[0.6, 0.4, 0.5, 0.5], [0.3, 0.55, 0.5, 0.5]], dtype=F64)
    y = torch.tensor([0, 1])
    sizes, adv = rb.minimal_perturbation(model, x, y, norm="l2", eps_max=1.0, bisections=20, steps=50)
    exact = torch.tensor([0.2, 0.25], dtype=F64) / np.sqrt(2)  # |x1 - x2| / ||w0 - w1||
    torch.testing.assert_close(sizes, exact, atol=2e-3, rtol=0)
    assert bool((model(adv).argmax(1) != y).all())
    lsizes, ladv = rb.line_search_attack(model, x, y, torch.tensor([[0.0, 1.0, 0.5, 0.5], [1.0, 0.0, 0.5, 0.5]]),
                                         torch.tensor([1, 0]), grid=200)
    assert bool((lsizes >= exact - 1e-12).all()) and bool(torch.isfinite(lsizes).all())
    assert bool((model(ladv).argmax(1) != y).all())


def test_minimal_linf_perturbation_of_linear_model():
    model = _linear_model(torch.tensor([[1.0, -1.0], [-1.0, 1.0]]), [0.0, 0.0])
    x = torch.tensor([[0.6, 0.4]], dtype=F64)
    sizes, _ = rb.minimal_perturbation(model, x, torch.tensor([0]), norm="linf", eps_max=1.0, bisections=20)
    assert float(sizes[0]) == pytest.approx(0.1, abs=2e-3)  # move both coordinates by 0.1


def test_accuracy_under_attack_starts_at_clean_accuracy():
    w = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])
    model = _linear_model(w, [0.0, 0.0])
    g = torch.Generator().manual_seed(0)
    x = torch.rand(50, 2, generator=g, dtype=F64)
    y = (x[:, 1] > x[:, 0]).long()
    acc = rb.accuracy_under_attack(model, x, y, [0.0, 0.05, 0.1, 0.5], "pgd", steps=10)
    assert float(acc[0]) == cb.models.accuracy(model, x, y) == 1.0
    assert bool((acc[1:] <= acc[:-1] + 1e-12).all()) and float(acc[-1]) == 0.0
    with pytest.raises(ValueError):
        rb.accuracy_under_attack(model, x, y, [0.1], "cw")


@pytest.mark.parametrize("kwargs", [{"eps": -0.1}, {"eps": float("nan")}, {"loss": "hinge"}])
def test_attacks_reject_bad_arguments(kwargs):
    model = cb.models.make_mlp([2, 128, 2], dtype=F64)
    x, y = torch.full((3, 2), 0.5, dtype=F64), torch.tensor([0, 1, 0])
    args = {"eps": 0.1, **kwargs}
    with pytest.raises(ValueError):
        rb.fgsm(model, x, y, args.pop("eps"), **args)


def test_attacks_reject_bad_inputs():
    model = cb.models.make_mlp([2, 128, 2], dtype=F64)
    y = torch.tensor([0, 1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        rb.pgd(model, torch.full((2, 2), 2.0, dtype=F64), y, 0.1)
    with pytest.raises(ValueError):
        rb.pgd(model, torch.full((2, 2), 0.5, dtype=F64), y, 0.1, norm="l1")
    with pytest.raises(ValueError):
        rb.pgd(model, torch.full((2, 2), 0.5, dtype=F64), y, 0.1, steps=0)
    with pytest.raises(ValueError):
        rb.minimal_perturbation(model, torch.full((2, 2), 0.5, dtype=F64), y, eps_max=0.0)
    with pytest.raises(ValueError):
        rb.line_search_attack(model, torch.full((2, 2), 0.5, dtype=F64), y, torch.zeros(3, 3), torch.tensor([0, 1, 1]))


def test_loan_counterfactual_hand_case():
    f = torch.tensor([[1.0, 0.5, 0.2, 0.1], [0.0, -1.0, 0.3, 2.0]], dtype=F64)
    u = rb.loan_abduct(f)
    # by hand: U_Edu = Edu + A; U_Inc = Inc - (-0.8 A + 0.7 Edu + 0.5 Age)
    torch.testing.assert_close(u, torch.tensor([[0.5, 1.2, 0.51], [-1.0, 0.3, 2.0 - 0.21 + 0.5]], dtype=F64))
    cf = rb.loan_counterfactual(f, 1 - f[:, 0])
    torch.testing.assert_close(cf, torch.tensor([[0.0, 0.5, 1.2, 1.6], [1.0, -1.0, -0.7, -0.8 - 0.49 - 0.5 + 2.29]],
                                                dtype=F64))
    torch.testing.assert_close(rb.loan_counterfactual(f, f[:, 0]), f)  # same world back


def test_loan_counterfactual_matches_generic_scm():
    d = sample_loan_data(500, torch.Generator().manual_seed(0))
    f = d.features()
    names = ["group", "age", "education", "income"]
    out = loan_feature_scm().counterfactual({k: f[:, i] for i, k in enumerate(names)}, {"group": 1 - f[:, 0]})
    torch.testing.assert_close(torch.stack([out[k] for k in names], 1), rb.loan_counterfactual(f, 1 - f[:, 0]))
    # the abducted noises are the true exogenous terms
    torch.testing.assert_close(rb.loan_abduct(f)[:, 1], d.u_education)
    torch.testing.assert_close(rb.loan_abduct(f)[:, 2], d.u_income)


def test_counterfactual_gap_zero_for_non_descendants():
    d = sample_loan_data(300, torch.Generator().manual_seed(1))
    f = d.features()
    cf = rb.loan_counterfactual(f, 1 - f[:, 0])
    assert float(rb.counterfactual_gap(lambda z: z[:, 1], f, cf).max()) == 0.0
    gap_edu = rb.counterfactual_gap(lambda z: z[:, 2], f, cf)
    torch.testing.assert_close(gap_edu, torch.ones_like(gap_edu))  # |edu_from_group| = 1
    p = LoanSCMParameters()
    gap_inc = rb.counterfactual_gap(lambda z: z[:, 3], f, cf)
    total = abs(p.inc_from_group + p.inc_from_edu * p.edu_from_group)  # total effect of A on income
    torch.testing.assert_close(gap_inc, torch.full_like(gap_inc, total))


def test_fairness_helpers_reject_bad_input():
    f = torch.tensor([[1.0, 0.5, 0.2, 0.1]], dtype=F64)
    with pytest.raises(ValueError):
        rb.loan_abduct(torch.zeros(2, 3))
    with pytest.raises(ValueError):
        rb.loan_abduct(torch.tensor([[2.0, 0.0, 0.0, 0.0]]))
    with pytest.raises(ValueError):
        rb.loan_counterfactual(f, 2)
    with pytest.raises(ValueError):
        rb.counterfactual_gap(lambda z: z[:, :2], f, f)
    with pytest.raises(ValueError):
        rb.counterfactual_gap(lambda z: z[:, 0], f, torch.cat([f, f]))
