"""Data generators for the survey's out-of-distribution chapters (Part V)."""
from __future__ import annotations

__all__: list[str] = []
