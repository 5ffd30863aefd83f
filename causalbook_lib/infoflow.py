"""Information flow and generative causal explanations (Part IV)."""
from __future__ import annotations

__all__: list[str] = []
