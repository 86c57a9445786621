"""gen_utils.plot: every function returns a Figure; image_grid's accepted shapes and errors."""

from __future__ import annotations

import warnings

import _helpers  # noqa: F401  (selects the Agg backend before pyplot is used)
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

import gen_utils as gu
from gen_utils import plot


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def grid_array(fig):
    (ax,) = fig.axes
    (img,) = ax.images
    return np.asarray(img.get_array())


# --- image_grid -----------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("images", "grid_shape"),
    [
        (torch.rand(5, 1, 8, 6), (2 + 8 + 2, 2 + 5 * (6 + 2))),
        (torch.rand(5, 8, 6), (12, 42)),
        (torch.rand(5, 3, 8, 6), (12, 42, 3)),
        (torch.randint(0, 256, (5, 8, 6), dtype=torch.uint8), (12, 42)),
        (np.random.default_rng(0).random((5, 8, 6)), (12, 42)),
        (np.random.default_rng(0).integers(0, 256, (5, 1, 8, 6), dtype=np.uint8), (12, 42)),
    ],
    ids=["N1HW", "NHW", "N3HW", "uint8", "numpy", "numpy-uint8"],
)
def test_image_grid_accepted_shapes(images, grid_shape):
    fig = gu.image_grid(images)
    assert isinstance(fig, Figure)
    grid = grid_array(fig)
    assert grid.shape == grid_shape
    assert 0.0 <= grid.min() and grid.max() <= 1.0


def test_image_grid_layout_and_values():
    x = torch.zeros(10, 1, 4, 4)
    x[3] = 1.0
    fig = gu.image_grid(x, nrow=4, title="samples")
    grid = grid_array(fig)
    assert grid.shape == (3 * 6 + 2, 4 * 6 + 2)  # 10 images in rows of 4 -> 3 rows
    # image 3 is row 0, column 3: rows 2..5, columns 2 + 3*6 .. +4
    assert (grid[2:6, 20:24] == 1.0).all()
    assert (grid[2:6, 2:6] == 0.0).all()
    assert (grid[0:2, :] == 1.0).all()  # the white border
    assert grid[14:18, 14:26].min() == 1.0  # empty cells of the last row stay white
    assert fig.axes[0].get_title() == "samples"


def test_image_grid_uint8_is_scaled():
    x = torch.zeros(1, 28, 28, dtype=torch.uint8)
    x[0, :2, :2] = torch.tensor([[0, 255], [51, 255]], dtype=torch.uint8)
    grid = grid_array(gu.image_grid(x))
    np.testing.assert_allclose(grid[2:4, 2:4], [[0.0, 1.0], [0.2, 1.0]], rtol=1e-6)


def test_image_grid_few_images_fit_in_one_row():
    assert grid_array(gu.image_grid(torch.rand(2, 28, 28), nrow=8)).shape == (32, 62)


@pytest.mark.parametrize(
    "shape", [(28, 28), (4, 2, 8, 8), (4, 4, 8, 8), (0, 8, 8), (2, 1, 1, 8, 8), (784,)]
)
def test_image_grid_rejects_bad_shapes(shape):
    with pytest.raises(ValueError) as info:
        gu.image_grid(torch.zeros(shape))
    assert str(shape) in str(info.value)


def test_image_grid_on_real_mnist():
    _helpers.real_file("MNIST/raw/t10k-images-idx3-ubyte.gz")
    _helpers.real_file("MNIST/raw/t10k-labels-idx1-ubyte.gz")
    x, _ = gu.load_mnist("test")
    grid = grid_array(gu.image_grid(gu.to_unit(x[:16])))
    assert grid.shape == (2 * 30 + 2, 8 * 30 + 2)
    assert grid.max() == 1.0 and grid.min() == 0.0


# --- loss_curves ----------------------------------------------------------------------------

def history(n=100):
    steps = list(range(1, n + 1))
    return {"step": steps, "loss": [1.0 / s for s in steps], "kl": [0.5] * n,
            "eval_step": [50, 100], "val_loss": [0.2, 0.1]}


def test_loss_curves_lines():
    fig = gu.loss_curves(history(), eval_keys=("val_loss",), smooth=10, title="VAE")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    train_line, val_line = ax.get_lines()
    x, y = train_line.get_data()
    assert len(x) == len(y) == 91  # valid moving average over 10 steps
    assert x[0] == 10 and x[-1] == 100  # aligned to the step that ends each window
    assert y[0] == pytest.approx(np.mean([1.0 / s for s in range(1, 11)]))
    assert list(val_line.get_xdata()) == [50, 100] and list(val_line.get_ydata()) == [0.2, 0.1]
    assert ax.get_title() == "VAE" and ax.get_xlabel() == "step"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["loss (train)", "val_loss"]
    assert train_line.get_color() == plot.COLORS["train"]
    assert val_line.get_color() == plot.COLORS["val"]


def test_loss_curves_options():
    fig = gu.loss_curves(history(5), keys=("loss", "kl"), smooth=20, logy=True)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    assert [len(line.get_xdata()) for line in ax.get_lines()] == [5, 5]  # too short to smooth


def test_loss_curves_every_line_has_its_own_colour():
    # catches: lines after the first falling back to matplotlib's C0, the same blue as the train line
    h = dict(history(), recon=[1.0] * 100, val_kl=[0.3, 0.2])
    fig = gu.loss_curves(h, keys=("loss", "recon", "kl"), eval_keys=("val_loss", "val_kl"), smooth=1)
    colours = [matplotlib.colors.to_hex(line.get_color()) for line in fig.axes[0].get_lines()]
    assert colours[0] == plot.COLORS["train"] and colours[3] == plot.COLORS["val"]
    assert len(set(colours)) == 5, colours


def test_loss_curves_unknown_key():
    with pytest.raises(KeyError, match="'recon'"):
        gu.loss_curves(history(), keys=("recon",))
    with pytest.raises(KeyError, match="'bleu'"):
        gu.loss_curves(history(), eval_keys=("bleu",))


# --- scatter_2d / heatmap -------------------------------------------------------------------

def test_scatter_2d_plain_and_labelled():
    pts = torch.randn(300, 2)
    fig = gu.scatter_2d(pts, title="latents")
    assert isinstance(fig, Figure)
    (coll,) = fig.axes[0].collections
    np.testing.assert_allclose(coll.get_offsets(), pts.numpy(), rtol=1e-6)

    labels = torch.arange(300) % 3
    fig = gu.scatter_2d(pts, labels, max_points=100)
    ax = fig.axes[0]
    assert len(ax.collections) == 3
    assert sum(len(c.get_offsets()) for c in ax.collections) == 100
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["0", "1", "2"]


def test_scatter_2d_rejects_other_shapes():
    with pytest.raises(ValueError, match=r"\(10, 3\)"):
        gu.scatter_2d(np.zeros((10, 3)))


def test_heatmap():
    m = torch.rand(3, 4)
    fig = gu.heatmap(m, x_labels=list("abcd"), y_labels=["x", "y", "z"], title="attention")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    np.testing.assert_allclose(np.asarray(ax.images[0].get_array()), m.numpy())
    assert [t.get_text() for t in ax.get_xticklabels()] == list("abcd")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["x", "y", "z"]
    assert len(fig.axes) == 2  # with the colorbar
    assert len(gu.heatmap(m, colorbar=False).axes) == 1


def test_heatmap_colour_scale_and_label():
    m = np.array([[0.2, 0.3], [0.4, 0.5]])
    im = gu.heatmap(m).axes[0].images[0]
    assert im.get_clim() == (0.2, 0.5)                   # default: the matrix's own range
    fig = gu.heatmap(m, vmin=0, vmax=1, colorbar_label="attention weight")
    assert fig.axes[0].images[0].get_clim() == (0, 1)    # fixed: shared by several heat maps
    assert fig.axes[1].get_ylabel() == "attention weight"
    assert gu.heatmap(m).axes[1].get_ylabel() == ""


def test_heatmap_rejects_non_matrices():
    with pytest.raises(ValueError, match=r"\(2, 3, 4\)"):
        gu.heatmap(np.zeros((2, 3, 4)))


# --- style ----------------------------------------------------------------------------------

def test_style_and_colors():
    assert plot.COLORS["real"] != plot.COLORS["generated"]
    assert plot.COLORS["train"] != plot.COLORS["val"]
    matplotlib.rcParams["axes.spines.top"] = True
    plot.use_style()
    assert matplotlib.rcParams["axes.spines.top"] is False
    assert matplotlib.rcParams["image.cmap"] == "gray"
    assert matplotlib.get_backend().lower() == "agg"


# --- smooth, ax= and row_labels= ------------------------------------------------------------

def test_smooth_is_a_trailing_moving_average():
    y = gu.smooth([1, 2, 3, 4, 5, 6], window=3)
    np.testing.assert_allclose(y, [2, 3, 4, 5])
    np.testing.assert_allclose(gu.smooth(torch.tensor([1.0, 3.0]), window=5), [1, 3])  # too short: as is
    np.testing.assert_allclose(gu.smooth(np.arange(4.0), window=1), np.arange(4.0))
    with pytest.raises(ValueError, match="1-D"):
        gu.smooth(np.zeros((2, 3)))


def test_image_grid_and_loss_curves_draw_into_a_given_axes():
    fig, axes = plt.subplots(1, 2)
    out = gu.image_grid(torch.rand(6, 1, 28, 28), nrow=3, ax=axes[0], title="left")
    assert out is fig and axes[0].get_title() == "left" and len(axes[0].images) == 1
    out = gu.loss_curves({"step": [1, 2, 3], "loss": [3.0, 2.0, 1.0]}, smooth=1, ax=axes[1],
                         labels={"loss": "GAN"})
    assert out is fig and [t.get_text() for t in axes[1].get_legend().get_texts()] == ["GAN"]
    plt.close(fig)


def test_image_grid_row_labels_sit_beside_their_rows():
    fig = gu.image_grid(torch.rand(20, 1, 28, 28), nrow=10, row_labels=["zero", "one"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["zero", "one"]
    ticks = ax.get_yticks()
    assert 0 < ticks[0] < 30 < ticks[1] < 60  # the middle of each 28-pixel row (2-pixel padding)
    with pytest.raises(ValueError, match="3 labels for a grid of 2 rows"):
        gu.image_grid(torch.rand(20, 1, 28, 28), nrow=10, row_labels=["a", "b", "c"])
    plt.close("all")


# --- wrong inputs are named (the reliability sweep) -----------------------------------------

def test_image_grid_hints_at_the_permute_for_channels_last():
    with pytest.raises(ValueError, match=r"looks like \(N, H, W, C\).*permute\(0, 3, 1, 2\)"):
        gu.image_grid(torch.rand(4, 28, 28, 3))
    with pytest.warns(UserWarning, match=r"drew \(3, 28, 28\) as 3 grey images.*images\[None\]"):
        gu.image_grid(torch.rand(3, 28, 28))
    plt.close("all")


def test_image_grid_rejects_integer_types_other_than_uint8():
    with pytest.raises(TypeError, match="torch.int64.*uint8"):
        gu.image_grid(torch.randint(0, 256, (4, 1, 8, 8)))


def test_image_grid_warns_outside_the_range_and_takes_a_value_range():
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    with pytest.warns(UserWarning, match=r"span \[-.*value_range=\(0.0, 1.0\).*value_range=\(-1, 1\)"):
        gu.image_grid(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = gu.image_grid(x, value_range=(-1, 1))  # rescaled, no warning
    grid = grid_array(fig)
    assert grid.min() >= 0 and grid.max() <= 1
    x[0, 0, 0, 0] = float("nan")
    with pytest.warns(UserWarning, match="1 NaN"):
        gu.image_grid(x, value_range=(-1, 1))
    plt.close("all")


def test_smooth_steps_over_a_nan_instead_of_spreading_it():
    y = np.arange(31, dtype=float)
    y[10] = np.nan
    s = gu.smooth(y, window=20)
    assert np.isfinite(s).all() and len(s) == 12
    np.testing.assert_allclose(s[-1], np.mean(y[11:]))


def test_image_grid_takes_bool_images_from_torch_and_numpy():
    for images in (torch.rand(2, 8, 8) > 0.5, np.random.default_rng(0).random((2, 8, 8)) > 0.5):
        grid = grid_array(gu.image_grid(images))
        assert set(np.unique(grid)) <= {0.0, 1.0}
    plt.close("all")
