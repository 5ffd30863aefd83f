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
