"""Causal generation: causal controllers over attributes feeding conditional generators (Part V)."""
from __future__ import annotations

__all__: list[str] = []
