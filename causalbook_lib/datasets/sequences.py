"""Sequence data: the synthetic sign task of Chattopadhyay et al. (Part III)."""
from __future__ import annotations

__all__: list[str] = []
