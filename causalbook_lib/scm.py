"""Structural causal models: the 4-tuple (X, U, f, P_U), ancestral sampling and do() (Part I)."""
from __future__ import annotations

__all__: list[str] = []
