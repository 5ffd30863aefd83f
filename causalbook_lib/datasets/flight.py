"""A simulated landing data set from a documented SCM (Part III)."""
from __future__ import annotations

__all__: list[str] = []
