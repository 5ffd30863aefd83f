"""Attribution maps: average causal effects, gradients and Integrated Gradients via Captum (Part II)."""
from __future__ import annotations

__all__: list[str] = []
