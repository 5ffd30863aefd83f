"""Recurrent networks as SCMs: Algorithm 2 with feedback and the lag tau (Part III)."""
from __future__ import annotations

__all__: list[str] = []
