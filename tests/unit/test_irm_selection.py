"""Tests of causalbook_lib.irm.leave_one_environment_out: folds, scores, selection and validation."""
import pytest
import torch

import causalbook_lib as cb
from causalbook_lib import irm as inv


def _envs(n=300, seed=0):
    x, y = cb.datasets.irm_linear_sem(n, (0.5, 1.0, 1.5), generator=seed)  # three environments
    return [(x[e], y[e]) for e in range(len(x))]


def test_fold_accuracies_are_those_of_direct_fits():
    envs = _envs()
    setting = dict(hidden=8, steps=20, lr=1e-2)
    sel = inv.leave_one_environment_out(envs, [setting], methods=("erm", "irm"), seeds=(0, 1))
    assert sel.accuracy.shape == (1, 3, 2, 2) and sel.score.shape == (1, 2)
    for e in range(3):  # each fold trains on the other two environments and is scored on the held-out one
        fit = inv.fit_invariant_classifiers([p for j, p in enumerate(envs) if j != e],
                                            methods=("erm", "irm"), seeds=(0, 1), **setting)
        assert torch.equal(sel.accuracy[0, e].flatten(), fit.accuracy(*envs[e]))
    assert torch.allclose(sel.score[0], sel.accuracy[0].mean(dim=(0, 2)))


def test_selects_the_setting_that_generalises_to_held_out_environments():
    # one step of training leaves a random classifier (about chance on held-out environments);
    # 150 steps learn the causes, which predict the label in every environment
    envs = _envs()
    settings = [dict(hidden=8, steps=1, lr=1e-3), dict(hidden=8, steps=150, lr=1e-2)]
    sel = inv.leave_one_environment_out(envs, settings, methods=("erm",), seeds=(0, 1))
    assert sel.selected == {"erm": 1}
    assert float(sel.score[1, 0]) > float(sel.score[0, 0]) + 0.1
    # ties go to the first setting
    same = inv.leave_one_environment_out(envs, [settings[1], settings[1]], methods=("erm",), seeds=(0,))
    assert same.selected == {"erm": 0}


def test_follows_input_dtype_and_device():
    envs = [(x.float(), y.float()) for x, y in _envs(60)]
    sel = inv.leave_one_environment_out(envs, [dict(hidden=4, steps=2)], methods=("erm",), seeds=(0,))
    assert sel.accuracy.dtype == torch.float64 and sel.accuracy.device == envs[0][0].device


@pytest.mark.parametrize("envs_n, settings, match", [
    (1, [dict(steps=2)], "at least two training environments"),
    (3, [], "non-empty list"),
    (3, [("steps", 2)], "must be a dict"),
    (3, [dict(steps=2, methods=("erm",))], "may set only"),
    (3, [dict(steps=0)], "steps"),
])
def test_validation(envs_n, settings, match):
    envs = _envs(40)[:envs_n]
    with pytest.raises(ValueError, match=match):
        inv.leave_one_environment_out(envs, settings, methods=("erm",), seeds=(0,))


def _reference_linear(x, y, irm, steps, lr=0.05, penalty_weight=1e4, anneal_steps=100):
    """The loop chapter 15 used to write by hand, kept here as the reference."""
    w = torch.zeros(x.shape[0], x.shape[-1], dtype=x.dtype, requires_grad=True)
    b = torch.zeros(x.shape[0], 1, dtype=x.dtype, requires_grad=True)
    optimiser = torch.optim.Adam([w, b], lr=lr)
    for step in range(steps):
        logits = torch.einsum("send,sd->sen", x, w) + b[..., None]
        loss = inv.environment_risks(logits, y).mean(1)
        if irm:
            lam = penalty_weight if step >= anneal_steps else 1.0
            loss = (loss + lam * inv.irmv1_penalty(logits, y).mean(1)) / lam
        optimiser.zero_grad(); loss.sum().backward(); optimiser.step()
    return w.detach(), b.detach()


def _sem_sets(n=400, seeds=(0, 1)):
    draws = [cb.datasets.irm_linear_sem(n, (0.5, 1.5), generator=s) for s in seeds]
    return torch.stack([d[0] for d in draws]), torch.stack([d[1] for d in draws])


@pytest.mark.parametrize("method", ["erm", "irm"])
def test_linear_fit_matches_the_hand_written_loop(method):
    x, y = _sem_sets()
    fit = inv.fit_linear_invariant(x, y, method=method, steps=150)
    w, b = _reference_linear(x, y, method == "irm", steps=150)
    assert fit.weight.shape == (2, 4) and fit.bias.shape == (2, 1) and fit.method == method
    assert torch.allclose(fit.weight, w, rtol=0, atol=1e-12) and torch.allclose(fit.bias, b, rtol=0, atol=1e-12)


def test_linear_erm_reaches_the_pooled_logistic_optimum():
    from sklearn.linear_model import LogisticRegression
    x, y = _sem_sets(seeds=(0,))
    fit = inv.fit_linear_invariant(x, y, method="erm", steps=3000, lr=0.05)
    pooled = LogisticRegression(C=1e8, tol=1e-10, max_iter=10000).fit(x[0].reshape(-1, 4).numpy(), y[0].reshape(-1).numpy())
    assert torch.allclose(fit.weight[0], torch.as_tensor(pooled.coef_[0]), atol=2e-3)


def test_linear_irm_moves_towards_the_invariant_coefficients():
    x, y = _sem_sets(n=2000)
    truth = torch.tensor([1.0, -0.5, 0.0, 0.0], dtype=torch.float64)
    err = {m: (inv.fit_linear_invariant(x, y, method=m).weight - truth).norm(dim=1) for m in ("erm", "irm")}
    assert bool((err["irm"] < err["erm"]).all())


def test_linear_fit_validation_and_dtype():
    x, y = _sem_sets(n=20)
    fit = inv.fit_linear_invariant(x.float(), y.float(), steps=2)
    assert fit.weight.dtype == torch.float32 and fit.weight.device == x.device
    with pytest.raises(ValueError, match="shape"):
        inv.fit_linear_invariant(x[0], y[0])
    with pytest.raises(ValueError, match="binary labels"):
        inv.fit_linear_invariant(x, y[..., :-1])
    with pytest.raises(ValueError, match="method"):
        inv.fit_linear_invariant(x, y, method="dro")
    with pytest.raises(ValueError, match="finite"):
        inv.fit_linear_invariant(x.clone().fill_(float("nan")), y)
