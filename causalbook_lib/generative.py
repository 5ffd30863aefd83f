"""Generative models: a conditional beta-VAE and causal effects of its latents (Part III)."""
from __future__ import annotations

__all__: list[str] = []
