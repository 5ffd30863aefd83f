"""Causal regressors: Bayesian polynomial regression of interventional expectations (Part II)."""
from __future__ import annotations

__all__: list[str] = []
