"""Robustness and fairness: analysis by synthesis, gradient attacks, counterfactual fairness (Part V)."""
from __future__ import annotations

__all__: list[str] = []
