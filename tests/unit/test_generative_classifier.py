"""Unit tests for the classifiers of chapter 17 in causalbook_lib.models: the Gaussian generative (analysis-by-synthesis) classifier and the MLP baseline."""
import numpy as np
import pytest
import torch

import causalbook_lib as cb

F64 = torch.float64



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
    model = cb.models.GaussianGenerativeClassifier(x, y, n_components=2, min_variance=1e-12)
    ll = model.log_likelihood(x[:20])
    for c in range(3):
        ref = PCA(n_components=2).fit(x[y == c].numpy()).score_samples(x[:20].numpy())
        np.testing.assert_allclose(ll[:, c].numpy(), ref, atol=1e-8)


def test_generative_classifier_logits_are_bayes(gaussian_data):
    from scipy.stats import multivariate_normal
    x, y = gaussian_data
    model = cb.models.GaussianGenerativeClassifier(x, y, n_components=2, min_variance=1e-12)
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
        cb.models.GaussianGenerativeClassifier(x, y, n_components=6)
    with pytest.raises(ValueError):
        cb.models.GaussianGenerativeClassifier(x, y, min_variance=0.0)
    with pytest.raises(ValueError):
        cb.models.GaussianGenerativeClassifier(x, y.double())
    with pytest.raises(ValueError):
        cb.models.GaussianGenerativeClassifier(x[:5], y[:5], n_components=2)  # too few per class
    model = cb.models.GaussianGenerativeClassifier(x, y, n_components=2)
    with pytest.raises(ValueError):
        model.log_likelihood(torch.zeros(3, 5))


def test_mlp_learns_separable_data(gaussian_data):
    x, y = gaussian_data
    torch.manual_seed(0)
    mlp = cb.models.train_mlp_classifier(x, y, hidden=16, epochs=100, lr=1e-2, generator=torch.Generator().manual_seed(0))
    assert cb.models.accuracy(mlp, x, y) >= 0.99
    with pytest.raises(ValueError):
        cb.models.train_mlp_classifier(x, y, lr=0.0)
    with pytest.raises(ValueError, match="two classes"):
        cb.models.train_mlp_classifier(x, torch.zeros_like(y))
