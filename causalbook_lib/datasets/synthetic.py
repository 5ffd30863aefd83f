"""Data generators for the survey's generation, robustness and fairness chapters (Part V)."""
from __future__ import annotations

__all__: list[str] = []
