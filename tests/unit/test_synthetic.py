"""Unit tests for causalbook_lib.datasets.synthetic (Part V generators)."""
import itertools

import numpy as np
import pytest
import torch

import causalbook_lib as cb
from causalbook_lib.datasets import synthetic as syn

ALL_COMBOS = torch.tensor(list(itertools.product((0, 1), repeat=5)), dtype=torch.float64)


def test_templates_do_not_overlap():
    total = sum(syn.face_templates().values())
    assert total.shape == (12, 12)
    assert total.max() == 1


def test_render_faces_noiseless_matches_formula():
    g = torch.Generator().manual_seed(0)
    imgs = syn.render_faces(ALL_COMBOS, g, noise_std=0.0, dtype=torch.float64)
    t = {k: torch.as_tensor(v.ravel()) for k, v in syn.face_templates().items()}
    young, male, bald, mustache, smiling = ALL_COMBOS.unbind(1)
    base = (t["eyes"] + t["mouth"] + (1 - bald)[:, None] * t["top_hair"] + (1 - male)[:, None] * t["side_hair"]
            + (1 - young)[:, None] * t["wrinkles"] + mustache[:, None] * t["mustache"] + smiling[:, None] * t["smile"])
    intensity = imgs.max(1).values
    assert torch.all((intensity >= 0.8) & (intensity <= 1.0))
    torch.testing.assert_close(imgs, intensity[:, None] * base)


def test_judge_recovers_every_combination():
    g = torch.Generator().manual_seed(1)
    a = ALL_COMBOS.repeat(50, 1)
    imgs = syn.render_faces(a, g, noise_std=0.1)
    assert torch.equal(syn.judge_face_attributes(imgs), a)


def test_sample_face_attributes_matches_exact_marginals():
    g = torch.Generator().manual_seed(2)
    x = syn.sample_face_attributes(100_000, g)
    # hand-calculated marginals: P(Bald) = 0.4*0.5*(0.02+0.45) + 0.6*0.5*(0+0.10) = 0.124
    # P(Mustache) = 0.4*0.5*0.5 + 0.6*0.5*0.3 = 0.19
    exact = torch.tensor([0.6, 0.5, 0.124, 0.19, 0.5], dtype=torch.float64)
    torch.testing.assert_close(x.mean(0), exact, atol=0.006, rtol=0)
    assert not bool(((x[:, 1] == 0) & (x[:, 3] == 1)).any())  # no woman has a mustache


def test_sample_loan_data_satisfies_structural_equations():
    g = torch.Generator().manual_seed(3)
    d = syn.sample_loan_data(5000, g)
    p = d.params
    torch.testing.assert_close(d.education, p.edu_from_group * d.group + d.u_education)
    torch.testing.assert_close(d.income, p.inc_from_group * d.group + p.inc_from_edu * d.education
                               + p.inc_from_age * d.age + d.u_income)
    score = p.rep_from_edu * d.education + p.rep_from_inc * d.income + p.rep_from_age * d.age + d.u_repay
    assert torch.equal(d.repay, (score > p.rep_threshold).double())
    assert abs(float(d.group.mean()) - 0.4) < 0.03
    assert abs(float(d.u_income.std()) - 0.6) < 0.03
    assert d.features().shape == (5000, 4)


def test_loan_feature_scm_counterfactual_hand_case():
    m = syn.loan_feature_scm()
    f64 = torch.float64
    obs = {"group": torch.tensor([1.0], dtype=f64), "age": torch.tensor([0.5], dtype=f64),
           "education": torch.tensor([0.2], dtype=f64), "income": torch.tensor([0.1], dtype=f64)}
    out = m.counterfactual(obs, {"group": 0.0})
    # by hand: U_Edu = 0.2 + 1 = 1.2, U_Inc = 0.1 - (-0.8 + 0.14 + 0.25) = 0.51
    assert float(out["education"][0]) == pytest.approx(1.2, abs=1e-12)
    assert float(out["income"][0]) == pytest.approx(0.84 + 0.25 + 0.51, abs=1e-12)


def test_loan_feature_scm_samples_match_moments():
    m = syn.loan_feature_scm()
    v = m.sample(100_000, torch.Generator().manual_seed(4))
    # E[Edu] = -1 * 0.4 ; E[Inc] = -0.8*0.4 + 0.7*(-0.4) = -0.6
    assert float(v["education"].mean()) == pytest.approx(-0.4, abs=0.02)
    assert float(v["income"].mean()) == pytest.approx(-0.6, abs=0.02)


@pytest.mark.parametrize("bad", [torch.zeros(3, 4), torch.full((2, 5), 2.0), torch.full((2, 5), float("nan"))])
def test_render_faces_rejects_bad_attributes(bad):
    with pytest.raises(ValueError):
        syn.render_faces(bad)


def test_render_faces_rejects_bad_noise():
    with pytest.raises(ValueError):
        syn.render_faces(torch.zeros(2, 5), noise_std=-1.0)


@pytest.mark.parametrize("kwargs", [{"images": torch.zeros(2, 10)}, {"images": torch.full((1, 144), float("inf"))},
                                    {"images": torch.zeros(1, 144), "threshold": 1.5}])
def test_judge_rejects_bad_input(kwargs):
    with pytest.raises(ValueError):
        syn.judge_face_attributes(**kwargs)


@pytest.mark.parametrize("n", [0, -1, 2.5, True])
def test_samplers_reject_bad_n(n):
    with pytest.raises(ValueError):
        syn.sample_face_attributes(n)
    with pytest.raises(ValueError):
        syn.sample_loan_data(n)


def test_loan_rejects_bad_parameters():
    with pytest.raises(ValueError):
        syn.sample_loan_data(10, params=syn.LoanSCMParameters(p_group=1.0))
    with pytest.raises(ValueError):
        syn.sample_loan_data(10, params=syn.LoanSCMParameters(noise_inc=0.0))
    with pytest.raises(ValueError):
        syn.loan_feature_scm(syn.LoanSCMParameters(p_group=0.0))


def test_exported_through_datasets():
    for name in syn.__all__:
        assert hasattr(cb.datasets, name)


def test_datasets_is_a_leaf_that_imports_no_model_module():
    """cb.datasets may build on the SCM engine and the utilities, never on a model or method module."""
    import ast
    import pathlib

    import causalbook_lib.datasets as ds

    allowed = {"utils", "scm", "graphs"}
    for path in pathlib.Path(ds.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level >= 2:
                names = [node.module] if node.module else [a.name for a in node.names]
                assert set(n.split(".")[0] for n in names) <= allowed, (path.name, names)
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                assert not node.module.startswith("causalbook_lib"), (path.name, node.module)


def test_face_attributes_are_the_causal_controllers_draws():
    ctrl = cb.causalgen.CausalController.from_tables(cb.datasets.FACE_PARENTS, cb.datasets.FACE_CPTS)
    a = cb.datasets.sample_face_attributes(500, torch.Generator().manual_seed(5))
    assert torch.equal(a, ctrl.sample(500, torch.Generator().manual_seed(5)))


def test_entangled_faces_overlap_only_at_the_stated_pixels():
    import itertools

    combos = torch.tensor(list(itertools.product((0, 1), repeat=5)), dtype=torch.float64)
    plain, ent = syn.face_images(combos), syn.face_images(combos, entangled=True)
    assert plain.shape == ent.shape == (32, 144) and float(plain.max()) == 1.0 and float(ent.max()) == 1.0
    overlap = torch.zeros(12, 12, dtype=torch.bool)
    for r, c in syn.ENTANGLED_OVERLAP:
        overlap[r, c] = True
    row8 = torch.zeros(12, 12, dtype=torch.bool)
    row8[8] = True
    male, mustache = combos[:, 1], combos[:, 3]
    for i in range(32):
        diff = (ent[i] - plain[i]).reshape(12, 12)
        assert bool((diff[~row8] == 0).all())                      # only row 8 ever changes
        if mustache[i] == 1:
            assert bool((ent[i].reshape(12, 12)[row8] == 1).all())  # the whole row is mustache
            assert bool((diff[overlap] == (male[i] == 1).double()).all())  # +1 only where no hair was
        else:
            assert bool((diff == 0).all())
    # the effects add in the plain faces and do not in the entangled ones
    woman_mustache = torch.tensor([[1.0, 0, 0, 1, 0]])
    man_mustache, woman = torch.tensor([[1.0, 1, 0, 1, 0]]), torch.tensor([[1.0, 0, 0, 0, 0]])
    man = torch.tensor([[1.0, 1, 0, 0, 0]])
    for flag, adds in ((False, True), (True, False)):
        f = lambda a: syn.face_images(a, entangled=flag)  # noqa: E731
        additive = f(woman) + f(man_mustache) - f(man)
        assert torch.equal(additive, f(woman_mustache)) == adds
    imgs = syn.render_faces(woman_mustache, torch.Generator().manual_seed(0), noise_std=0.0, entangled=True)
    assert float(imgs.reshape(12, 12)[8, 0]) <= 1.0
