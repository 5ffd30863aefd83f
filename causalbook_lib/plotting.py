"""One shared figure style for the book: a colour-blind-safe palette and common plot helpers.

Chapters call :func:`use_style` once. Signed effects are drawn with a diverging map centred at zero
(:func:`signed_heatmap`). Part-specific plotting helpers are appended below the shared ones.
"""
from __future__ import annotations

import matplotlib


import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402

__all__ = ["PALETTE", "use_style", "signed_heatmap", "new_figure"]

#: Okabe-Ito colour-blind-safe palette.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
#: Diverging colour map for signed quantities (centred at zero by :func:`signed_heatmap`).
DIVERGING = "RdBu_r"


def use_style() -> None:
    """Apply the book's matplotlib style (palette, font sizes, grid, figure size and dpi)."""
    plt.rcParams.update({
        "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
        "figure.figsize": (6.4, 4.0),
        "figure.dpi": 100,
        "savefig.dpi": 120,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "font.size": 10,
        "axes.titlesize": 11,
        "legend.frameon": False,
        "image.cmap": "viridis",
    })


def new_figure(nrows: int = 1, ncols: int = 1, *, width: float = 6.4, height: float = 4.0, **kwargs):
    """``plt.subplots`` with the book's sizes; returns ``(fig, axes)``."""
    if nrows < 1 or ncols < 1:
        raise ValueError(f"nrows and ncols must be >= 1, got {nrows} and {ncols}")
    return plt.subplots(nrows, ncols, figsize=(width, height), constrained_layout=True, **kwargs)


def signed_heatmap(ax, values, *, title: str | None = None, colorbar: bool = True, vmax: float | None = None,
                   label: str | None = None):
    """Draw a 2-D array of signed effects with a diverging map centred at zero; return the image."""
    v = np.asarray(values, dtype=float)
    if v.ndim != 2:
        raise ValueError(f"values must be a 2-D array, got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError("values must be finite")
    m = vmax if vmax is not None else max(float(np.abs(v).max()), 1e-12)
    im = ax.imshow(v, cmap=DIVERGING, norm=TwoSlopeNorm(vcenter=0.0, vmin=-m, vmax=m))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    if title:
        ax.set_title(title)
    if colorbar:
        cb = ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        if label:
            cb.set_label(label)
    return im
