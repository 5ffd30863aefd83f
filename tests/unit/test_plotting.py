"""cb.plotting: the figures say what the chapters say they show (limits, colours, layout), and the
helpers take tensors from any device and reject bad shapes."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import causalbook_lib as cb  # noqa: E402
from causalbook_lib import plotting as P  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_use_style_sets_the_palette():
    P.use_style()
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    assert colours == P.PALETTE and plt.rcParams["axes.spines.top"] is False


def test_signed_heatmap_is_centred_at_zero_and_takes_tensors():
    fig, ax = P.new_figure()
    values = torch.tensor([[1.0, -3.0], [0.5, 2.0]], dtype=torch.bfloat16)
    im = P.signed_heatmap(ax, values, label="ACE")
    assert im.norm.vcenter == 0.0 and (im.norm.vmin, im.norm.vmax) == (-3.0, 3.0)
    assert np.allclose(im.get_array(), [[1.0, -3.0], [0.5, 2.0]])
    assert im.get_cmap().name == P.DIVERGING
    with pytest.raises(ValueError, match="2-D"):
        P.signed_heatmap(ax, np.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        P.signed_heatmap(ax, np.array([[np.nan, 0.0]]))


def test_new_figure_validates():
    with pytest.raises(ValueError, match="nrows"):
        P.new_figure(0, 1)


def test_draw_dag_places_every_node_and_dashes_the_cut_edge():
    g = nx.DiGraph([("z", "x"), ("z", "y"), ("x", "y")])
    fig, ax = P.new_figure()
    pos = P.draw_dag(ax, g, dashed_edges=[("z", "x")], highlight=["x"])
    assert set(pos) == {"z", "x", "y"}
    dashed = [p for p in ax.patches if p.get_linestyle() in ("--", "dashed")]
    assert len(dashed) == 1


def _node_groups(ax):
    return {c.get_gid(): c for c in ax.collections if (c.get_gid() or "").startswith("dag-nodes-")}


def _dashed(collection):
    offset, pattern = collection.get_linestyle()[0]
    return pattern is not None and len(pattern) > 0


def test_draw_dag_marks_highlighted_and_latent_nodes_by_more_than_colour():
    """Colour is never the only cue: a highlighted node is a square with a thicker outline, a latent
    (shaded) node has a dashed outline; a greyscale or colour-blind reader can tell them apart."""
    g = nx.DiGraph([("c", "x0"), ("c", "x1"), ("x0", "y"), ("x1", "y")])
    fig, ax = P.new_figure()
    P.draw_dag(ax, g, highlight=["x0"], shaded=["c"], dashed_edges=[("c", "x0")])
    groups = _node_groups(ax)
    assert set(groups) == {"dag-nodes-plain", "dag-nodes-shaded", "dag-nodes-highlight"}
    assert [len(groups[k].get_offsets()) for k in ("dag-nodes-plain", "dag-nodes-shaded", "dag-nodes-highlight")] \
        == [2, 1, 1]
    # the marker's shape: a square has 4 corners (5 vertices with the closing one), a circle many more
    square = groups["dag-nodes-highlight"].get_paths()[0].vertices
    circle = groups["dag-nodes-plain"].get_paths()[0].vertices
    assert len(square) == 5 and len(circle) > 8
    assert groups["dag-nodes-highlight"].get_linewidths()[0] > groups["dag-nodes-plain"].get_linewidths()[0]
    assert _dashed(groups["dag-nodes-shaded"]) and not _dashed(groups["dag-nodes-plain"])
    assert not _dashed(groups["dag-nodes-highlight"])
    # highlight wins over shaded: a node in both is drawn once, as a highlighted square
    fig, ax = P.new_figure()
    P.draw_dag(ax, g, highlight=["c"], shaded=["c"])
    groups = _node_groups(ax)
    assert "dag-nodes-shaded" not in groups and len(groups["dag-nodes-highlight"].get_offsets()) == 1
    # the cut edge is drawn dashed even when it is no longer in the graph (after surgery), once
    fig, ax = P.new_figure()
    P.draw_dag(ax, nx.DiGraph([("c", "x1"), ("x0", "y"), ("x1", "y")]), highlight=["x0"],
               dashed_edges=(e for e in [("c", "x0")]), pos={"c": (0, 0), "x0": (1, 1), "x1": (1, -1), "y": (2, 0)})
    assert len([p for p in ax.patches if p.get_linestyle() in ("--", "dashed")]) == 1
    assert len(ax.patches) == 4
    with pytest.raises(ValueError, match="highlight names node"):
        P.draw_dag(ax, g, highlight=["nope"])


def test_image_rows_and_sweep_grid_layout():
    images = torch.rand(2, 3, 16)
    fig, axes = P.image_rows(images, side=4, row_titles=["a", "b"])
    assert axes.shape == (2, 3) and axes[1, 0].get_ylabel() == "b"
    probs = torch.tensor([[[0.9, 0.1]] * 3, [[0.2, 0.8]] * 3])
    fig, axes = P.sweep_grid_with_borders(images, probs, side=4, class_names=["3", "8"])
    top, bottom = axes[0, 0].spines["left"], axes[1, 0].spines["left"]
    assert matplotlib.colors.to_hex(top.get_edgecolor()).lower() == P.PALETTE[0].lower()
    assert matplotlib.colors.to_hex(bottom.get_edgecolor()).lower() == P.PALETTE[1].lower()
    with pytest.raises(ValueError, match="images must have shape"):
        P.image_rows(torch.rand(2, 3, 15), side=4)
    with pytest.raises(ValueError, match="row_titles"):
        P.image_rows(images, side=4, row_titles=["only one"])
    with pytest.raises(ValueError, match="probabilities"):
        P.sweep_grid_with_borders(images, probs[:, :2], side=4)


def test_check_finite():
    cb.utils.check_finite(torch.tensor([1, 2]), "ints")  # integers are always finite
    cb.utils.check_finite(np.array([0.0, 1.0]), "arr")
    with pytest.raises(ValueError, match="x must be finite.*2 NaN or infinite"):
        cb.utils.check_finite(torch.tensor([1.0, float("nan"), float("inf")]), "x")


def _corner_labels(axes):
    return [[[t.get_text() for t in ax.texts if t.get_gid() == "predicted-class"] for ax in row] for row in axes]


def test_sweep_grid_writes_the_decision_as_text_too():
    """Colour is never the only cue: each image carries its predicted class as text in a corner."""
    images = torch.rand(2, 3, 16)
    probs = torch.tensor([[[0.9, 0.1], [0.4, 0.6], [0.8, 0.2]], [[0.2, 0.8]] * 3])
    fig, axes = P.sweep_grid_with_borders(images, probs, side=4, class_names=["3", "8"])
    assert _corner_labels(axes) == [[["3"], ["8"], ["3"]], [["8"], ["8"], ["8"]]]
    label = axes[0, 0].texts[0]
    x, y = label.get_position()
    assert label.get_transform() == axes[0, 0].transAxes and x < 0.2 and y > 0.8  # top-left corner
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["classified 3 (corner label 3)", "classified 8 (corner label 8)"]
    # without names the class index is written; class_labels=False restores the colour-only figure
    fig, axes = P.sweep_grid_with_borders(images, torch.softmax(torch.tensor([[[0.0, 2.0, 1.0]] * 3] * 2), -1), side=4)
    assert _corner_labels(axes) == [[["1"]] * 3] * 2
    fig, axes = P.sweep_grid_with_borders(images, probs, side=4, class_names=["3", "8"], class_labels=False)
    assert _corner_labels(axes) == [[[]] * 3] * 2
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["classified 3", "classified 8"]


def test_signed_heatmap_can_print_its_values():
    fig, ax = P.new_figure()
    P.signed_heatmap(ax, np.array([[0.5, -1.0], [0.0, 0.25]]), annotate="{:+.2f}")
    texts = {(t.get_position(), t.get_text()) for t in ax.texts}
    assert texts == {((0, 0), "+0.50"), ((1, 0), "-1.00"), ((0, 1), "+0.00"), ((1, 1), "+0.25")}
    dark = [t for t in ax.texts if t.get_text() == "-1.00"][0]
    assert matplotlib.colors.to_hex(dark.get_color()) == "#ffffff"  # legible on the darkest cell
    fig, ax = P.new_figure()
    P.signed_heatmap(ax, np.array([[0.5, -1.0]]))
    assert len(ax.texts) == 0  # off by default
