"""Tabular data: the Berkeley admissions table, iris and digits loaders (Parts I-II)."""
from __future__ import annotations

__all__: list[str] = []
