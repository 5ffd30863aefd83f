"""Invariance and independent mechanisms: ERM against IRMv1, competing experts (Part V)."""
from __future__ import annotations

__all__: list[str] = []
