"""Unit tests for causalbook_lib.fairness (counterfactual fairness on the loan SCM)."""
import pytest
import torch

import causalbook_lib as cb
from causalbook_lib.datasets import LoanSCMParameters, loan_feature_scm, sample_loan_data

F64 = torch.float64


def test_loan_counterfactual_hand_case():
    f = torch.tensor([[1.0, 0.5, 0.2, 0.1], [0.0, -1.0, 0.3, 2.0]], dtype=F64)
    u = cb.fairness.loan_abduct(f)
    # by hand: U_Edu = Edu + A; U_Inc = Inc - (-0.8 A + 0.7 Edu + 0.5 Age)
    torch.testing.assert_close(u, torch.tensor([[0.5, 1.2, 0.51], [-1.0, 0.3, 2.0 - 0.21 + 0.5]], dtype=F64))
    cf = cb.fairness.loan_counterfactual(f, 1 - f[:, 0])
    torch.testing.assert_close(cf, torch.tensor([[0.0, 0.5, 1.2, 1.6], [1.0, -1.0, -0.7, -0.8 - 0.49 - 0.5 + 2.29]],
                                                dtype=F64))
    torch.testing.assert_close(cb.fairness.loan_counterfactual(f, f[:, 0]), f)  # same world back


def test_loan_counterfactual_matches_generic_scm():
    d = sample_loan_data(500, torch.Generator().manual_seed(0))
    f = d.features()
    names = ["group", "age", "education", "income"]
    out = loan_feature_scm().counterfactual({k: f[:, i] for i, k in enumerate(names)}, {"group": 1 - f[:, 0]})
    torch.testing.assert_close(torch.stack([out[k] for k in names], 1), cb.fairness.loan_counterfactual(f, 1 - f[:, 0]))
    # the abducted noises are the true exogenous terms
    torch.testing.assert_close(cb.fairness.loan_abduct(f)[:, 1], d.u_education)
    torch.testing.assert_close(cb.fairness.loan_abduct(f)[:, 2], d.u_income)


def test_counterfactual_gap_zero_for_non_descendants():
    d = sample_loan_data(300, torch.Generator().manual_seed(1))
    f = d.features()
    cf = cb.fairness.loan_counterfactual(f, 1 - f[:, 0])
    assert float(cb.fairness.counterfactual_gap(lambda z: z[:, 1], f, cf).max()) == 0.0
    gap_edu = cb.fairness.counterfactual_gap(lambda z: z[:, 2], f, cf)
    torch.testing.assert_close(gap_edu, torch.ones_like(gap_edu))  # |edu_from_group| = 1
    p = LoanSCMParameters()
    gap_inc = cb.fairness.counterfactual_gap(lambda z: z[:, 3], f, cf)
    total = abs(p.inc_from_group + p.inc_from_edu * p.edu_from_group)  # total effect of A on income
    torch.testing.assert_close(gap_inc, torch.full_like(gap_inc, total))


def test_fairness_helpers_reject_bad_input():
    f = torch.tensor([[1.0, 0.5, 0.2, 0.1]], dtype=F64)
    with pytest.raises(ValueError):
        cb.fairness.loan_abduct(torch.zeros(2, 3))
    with pytest.raises(ValueError):
        cb.fairness.loan_abduct(torch.tensor([[2.0, 0.0, 0.0, 0.0]]))
    with pytest.raises(ValueError):
        cb.fairness.loan_counterfactual(f, 2)
    with pytest.raises(ValueError):
        cb.fairness.counterfactual_gap(lambda z: z[:, :2], f, f)
    with pytest.raises(ValueError):
        cb.fairness.counterfactual_gap(lambda z: z[:, 0], f, torch.cat([f, f]))


def test_one_encoding_of_the_loan_model():
    """The sampler, the abduction and the counterfactuals all run on cb.datasets.loan_scm: changing a
    coefficient of the parameters changes all three consistently."""
    p = cb.datasets.LoanSCMParameters(edu_from_group=-2.0, inc_from_edu=0.3)
    model = cb.datasets.loan_scm(p)
    assert model.names == ["group", "age", "education", "income", "repay"]
    d = cb.datasets.sample_loan_data(200, torch.Generator().manual_seed(0), params=p)
    torch.testing.assert_close(d.education, -2.0 * d.group + d.u_education)
    u = cb.fairness.loan_abduct(d.features(), p)
    torch.testing.assert_close(u[:, 1], d.u_education)
    torch.testing.assert_close(u[:, 2], d.u_income)
    cf = cb.fairness.loan_counterfactual(d.features(), 0, p)
    torch.testing.assert_close(cf[:, 2], d.u_education)             # Edu' = -2 * 0 + U_Edu
