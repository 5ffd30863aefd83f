"""Interventional expectations E[y | do(x_i = alpha)]: Monte Carlo and second-order Taylor (Part II)."""
from __future__ import annotations

__all__: list[str] = []
