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


def _numpy(x) -> np.ndarray:
    """Float numpy array of ``x``; a tensor is detached and brought to the CPU first (CUDA, MPS)."""
    if hasattr(x, "detach"):
        x = x.detach().to("cpu")
        if x.is_floating_point():
            x = x.double()  # numpy has no bfloat16
    return np.asarray(x, dtype=float)


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
                   label: str | None = None, annotate: str | None = None):
    """Draw a 2-D array of signed effects with a diverging map centred at zero; return the image.

    ``annotate`` (a format string such as ``"{:.2f}"``) also writes each value in its cell, so that
    sign and size do not rest on colour alone; use it for small arrays (a few dozen cells).
    """
    v = _numpy(values)
    if v.ndim != 2:
        raise ValueError(f"values must be a 2-D array, got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError("values must be finite")
    m = vmax if vmax is not None else max(float(np.abs(v).max()), 1e-12)
    im = ax.imshow(v, cmap=DIVERGING, norm=TwoSlopeNorm(vcenter=0.0, vmin=-m, vmax=m))
    if annotate is not None:
        for (r, c), value in np.ndenumerate(v):  # white text on the darkest cells, black elsewhere
            ax.text(c, r, annotate.format(value), ha="center", va="center", fontsize=8,
                    color="white" if abs(value) > 0.6 * m else "black")
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


# ---- Part I: causal graphs -------------------------------------------------------------------
def draw_dag(ax, graph, *, pos=None, highlight=(), shaded=(), dashed_edges=(), title=None, node_size=900,
             font_size=9):
    """Draw a causal DAG on ``ax``: nodes left to right by topological generation (unless ``pos``).

    ``highlight`` nodes (for example the intervened or conditioned nodes) are drawn as orange
    squares with a thick outline, ``shaded`` nodes (latent, unobserved) as grey circles with a
    dashed outline, every other node as a light blue circle: colour is never the only cue, so the
    figure reads in greyscale and for colour-blind readers. ``dashed_edges`` are drawn dashed and
    grey (for example edges cut by surgery, drawn for comparison). Returns the positions used.
    Raises ``ValueError`` if the graph has a cycle or a listed node is not in it.
    """
    import networkx as nx

    from .graphs import check_dag

    check_dag(graph)
    highlight, shaded = list(highlight), list(shaded)  # any iterable, read more than once below
    for group, nm in ((highlight, "highlight"), (shaded, "shaded")):
        bad = [v for v in group if v not in graph]
        if bad:
            raise ValueError(f"{nm} names node(s) {bad} that are not in the graph")
    if pos is None:  # columns by topological generation, rows in the graph's node order
        order = {v: k for k, v in enumerate(graph.nodes)}
        pos = {}
        for layer, nodes in enumerate(nx.topological_generations(graph)):
            nodes = sorted(nodes, key=order.get)
            for k, v in enumerate(nodes):
                y = (len(nodes) - 1) / 2 - k if len(nodes) > 1 else 0.3 * (-1) ** layer
                pos[v] = np.array([float(layer), y])
    highlight, shaded = set(highlight), set(shaded) - set(highlight)
    # (group, colour, marker, outline width, outline style): shape and outline repeat the colour's message
    groups = [("plain", "#9ECAE9", "o", 1.0, "solid"), ("shaded", "#BBBBBB", "o", 1.5, "dashed"),
              ("highlight", PALETTE[1], "s", 2.5, "solid")]
    for name, colour, marker, width, style in groups:
        nodes = [v for v in graph if (v in highlight) == (name == "highlight") and (v in shaded) == (name == "shaded")]
        if not nodes:
            continue
        drawn = nx.draw_networkx_nodes(graph, pos, ax=ax, nodelist=nodes, node_color=colour, node_shape=marker,
                                       node_size=node_size, edgecolors="#333333", linewidths=width)
        drawn.set_linestyle(style)
        drawn.set_gid(f"dag-nodes-{name}")
    nx.draw_networkx_labels(graph, pos, ax=ax, font_size=font_size)
    dashed_edges = list(dashed_edges)
    cut = set(dashed_edges)
    for edges, style, colour in (([e for e in graph.edges if e not in cut], "solid", "#333333"),
                                 (list(dashed_edges), "dashed", "#999999")):
        for marker in ("o", "s"):  # arrows stop at the edge of the target's marker (squares reach further)
            part = [e for e in edges if (e[1] in highlight) == (marker == "s")]
            if part:
                nx.draw_networkx_edges(graph, pos, ax=ax, edgelist=part, arrows=True, arrowsize=16,
                                       node_size=node_size, node_shape=marker, style=style, edge_color=colour)
    ax.set_axis_off()
    ax.margins(0.15)
    if title:
        ax.set_title(title)
    return pos


__all__ += ["draw_dag"]


# ---- Part V (chapters 16-17) ----
def _image_grid(images, side: int, row_titles):
    """Check a (rows, cols, side * side) array of images and its row titles; return it as numpy, rows, cols."""
    a = _numpy(images)
    if a.ndim != 3 or a.shape[2] != side * side:
        raise ValueError(f"images must have shape (rows, cols, {side * side}), got {a.shape}")
    rows, cols = a.shape[:2]
    if row_titles is not None and len(row_titles) != rows:
        raise ValueError(f"row_titles must have {rows} entries, got {len(row_titles)}")
    return a, rows, cols


def _bare_image(ax, image, cmap, vmin, vmax) -> None:
    """Draw one small image in ``ax`` without ticks or grid (the cells of the image grids)."""
    ax.imshow(image, cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)


def image_rows(images, *, side: int, row_titles=None, cmap: str = "gray_r", vmin: float = 0.0, vmax: float = 1.0,
               cell: float = 0.55):
    """Draw a grid of flat square images: ``images`` has shape (rows, cols, side * side).

    Each row gets its title (``row_titles``) on the left. Returns ``(fig, axes)``. Used for
    generated faces (:doc:`chapter 16 </notebooks/16-causal-generation>`) and adversarial digits (:doc:`chapter 17 </notebooks/17-robustness-fairness>`).

    Raises:
        ValueError: ``images`` is not 3-D with last dimension ``side ** 2``, or the number of row
            titles does not match the number of rows.
    """
    a, rows, cols = _image_grid(images, side, row_titles)
    fig, axes = plt.subplots(rows, cols, figsize=(cell * cols + (1.6 if row_titles else 0.2), cell * rows + 0.2),
                             squeeze=False)
    for r in range(rows):
        for c in range(cols):
            ax = axes[r, c]
            _bare_image(ax, a[r, c].reshape(side, side), cmap, vmin, vmax)
            for spine in ax.spines.values():
                spine.set_visible(False)
        if row_titles is not None:
            axes[r, 0].set_ylabel(row_titles[r], rotation=0, ha="right", va="center", fontsize=9)
    fig.subplots_adjust(wspace=0.05, hspace=0.05, left=0.25 if row_titles else 0.02, right=0.98)
    return fig, axes


__all__ += ["image_rows"]


# ---- Parts III-IV (chapters 10 and 13) ----
def sweep_grid_with_borders(images, probabilities, *, side: int = 8, row_titles=None, col_titles=None,
                            class_names=None, cell: float = 0.6, linewidth: float = 3.0, class_labels: bool = True):
    """Latent sweeps with the classifier's decision as a coloured border (O'Shaughnessy et al., Figs. 3/13).

    ``images`` has shape (rows, cols, side * side); ``probabilities`` has shape (rows, cols, M), the
    classifier's class probabilities for each image. Each border takes the colour of the predicted
    class (palette order) and its opacity grows with the winning probability. Colour is not the only
    cue: with ``class_labels`` (the default) the predicted class is also written in the top-left
    corner of each image (its name from ``class_names``, else its index), so the decision can be read
    without telling the colours apart. Returns ``(fig, axes)``.

    Raises:
        ValueError: shapes that do not match, or titles of the wrong length.
    """
    a, rows, cols = _image_grid(images, side, row_titles)
    p = _numpy(probabilities)
    if p.ndim != 3 or p.shape[:2] != a.shape[:2]:
        raise ValueError(f"probabilities must have shape (rows, cols, M) = {a.shape[:2]} + (M,), got {p.shape}")
    m = p.shape[2]
    if col_titles is not None and len(col_titles) != cols:
        raise ValueError(f"col_titles must have {cols} entries, got {len(col_titles)}")
    fig, axes = plt.subplots(rows, cols, figsize=(cell * cols + (1.4 if row_titles else 0.3), cell * rows + 0.9),
                             squeeze=False)
    for r in range(rows):
        for c in range(cols):
            ax = axes[r, c]
            _bare_image(ax, a[r, c].reshape(side, side), "gray_r", 0.0, 1.0)
            k = int(p[r, c].argmax())
            for spine in ax.spines.values():
                spine.set_visible(True)
                spine.set_color(PALETTE[k % len(PALETTE)])
                spine.set_alpha(float(np.clip(2 * p[r, c, k] - 1 if m == 2 else p[r, c, k], 0.15, 1.0)))
                spine.set_linewidth(linewidth)
            if class_labels:  # the decision as text too, in a box that keeps it legible over the image
                ax.text(0.04, 0.96, str(class_names[k]) if class_names is not None and k < len(class_names) else str(k),
                        transform=ax.transAxes, ha="left", va="top", fontsize=7, color="black",
                        bbox={"boxstyle": "square,pad=0.12", "facecolor": "white", "edgecolor": "none",
                              "alpha": 0.85}, gid="predicted-class")
            if r == 0 and col_titles is not None:
                ax.set_title(col_titles[c], fontsize=8)
        if row_titles is not None:
            axes[r, 0].set_ylabel(row_titles[r], rotation=0, ha="right", va="center", fontsize=9)
    if class_names is not None:
        from matplotlib.patches import Patch
        handles = [Patch(facecolor="none", edgecolor=PALETTE[k % len(PALETTE)], linewidth=linewidth,
                         label=f"classified {name} (corner label {name})" if class_labels else f"classified {name}")
                   for k, name in enumerate(class_names)]
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8)
    fig.subplots_adjust(wspace=0.12, hspace=0.12, left=0.2 if row_titles else 0.02, right=0.98,
                        bottom=0.12 if class_names is not None else 0.02)
    return fig, axes


__all__ += ["sweep_grid_with_borders"]
