"""Causal graphs on networkx.DiGraph: d-separation and graph surgery (Part I)."""
from __future__ import annotations

__all__: list[str] = []
