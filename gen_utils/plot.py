"""Figures in one style. Every function returns the matplotlib Figure it drew.

Colours mean the same thing in every chapter: ``COLORS["real"]`` for data, ``COLORS["generated"]``
for model samples, ``COLORS["train"]`` / ``COLORS["val"]`` for the two curves of a run.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

COLORS = {
    "real": "#1f77b4",
    "generated": "#d62728",
    "train": "#1f77b4",
    "val": "#ff7f0e",
    "model": "#2ca02c",
    "baseline": "#7f7f7f",
}

STYLE = {
    "figure.dpi": 90,
    "savefig.dpi": 90,
    "figure.figsize": (6.0, 3.6),
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "font.size": 10,
    "axes.titlesize": 11,
    "legend.frameon": False,
    "image.cmap": "gray",
}


def use_style() -> None:
    """Apply the book's matplotlib style (called on import)."""
    matplotlib.rcParams.update(STYLE)


use_style()


def _numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x)


def image_grid(images: torch.Tensor | np.ndarray, nrow: int = 8, title: str | None = None,
               scale: float = 0.8, ax: Axes | None = None,
               row_labels: Sequence[str] | None = None,
               value_range: tuple[float, float] = (0.0, 1.0)) -> Figure:
    """Show a batch of images as one grid, row by row.

    images: (N, C, H, W) with C in {1, 3}, or (N, H, W); float values in ``value_range``
    (default [0, 1]; pass (-1, 1) for a tanh generator's output), uint8 or bool. Raises
    ValueError for any other shape, naming the shape it got and, for (N, H, W, C), the permute
    that fixes it; TypeError for integer types other than uint8. Values outside the range
    (or NaN) are drawn clipped, with a warning giving the range seen.
    nrow: images per row (the grid has ceil(N / nrow) rows).
    ax: draw into this Axes (e.g. one panel of a larger figure) instead of a new figure.
    row_labels: one label per row, written on the left (e.g. the digit each row asks for).
    Returns the Figure that holds the grid.
    """
    x = _images_nchw(images, value_range)
    n, c, h, w = x.shape
    ncol = min(nrow, n)
    nrows = -(-n // ncol)
    if row_labels is not None and len(row_labels) != nrows:
        raise ValueError(f"row_labels has {len(row_labels)} labels for a grid of {nrows} rows "
                         f"({n} images, {ncol} per row)")
    pad = 2
    grid = np.ones((c, nrows * (h + pad) + pad, ncol * (w + pad) + pad), dtype=np.float32)
    for i in range(n):
        r, q = divmod(i, ncol)
        grid[:, pad + r * (h + pad): pad + r * (h + pad) + h,
             pad + q * (w + pad): pad + q * (w + pad) + w] = x[i]
    if ax is None:
        _, ax = plt.subplots(figsize=(scale * ncol * w / 28 + 0.2 + 0.3 * (row_labels is not None),
                                      scale * nrows * h / 28 + 0.4))
    img = grid[0] if c == 1 else grid.transpose(1, 2, 0)
    ax.imshow(np.clip(img, 0, 1), cmap="gray" if c == 1 else None, vmin=0, vmax=1,
              interpolation="nearest")
    ax.grid(False)
    if row_labels is None:
        ax.set_axis_off()
    else:  # keep the y axis for the labels, hide everything else
        ax.set_xticks([])
        ax.set_yticks([pad + r * (h + pad) + h / 2 for r in range(nrows)], labels=list(row_labels))
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
    if title:
        ax.set_title(title)
    ax.figure.tight_layout()
    return ax.figure


def _images_nchw(images: torch.Tensor | np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """(N, C, H, W) float numpy array in [0, 1] from what ``image_grid`` accepts."""
    shape = tuple(images.shape)
    if isinstance(images, torch.Tensor) and images.dtype == torch.bool:
        images = images.float()
    elif isinstance(images, np.ndarray) and images.dtype == np.bool_:
        images = images.astype(np.float32)
    if images.dtype in (torch.uint8, np.uint8):
        images = images.float() / 255 if isinstance(images, torch.Tensor) else images / 255.0
        value_range = (0.0, 1.0)
    elif isinstance(images, torch.Tensor) and not images.is_floating_point() or \
            isinstance(images, np.ndarray) and images.dtype.kind in "iub":
        raise TypeError(f"image_grid takes float images in {list(value_range)} or uint8 in 0..255, "
                        f"got {images.dtype}: convert with x.to(torch.uint8) or x.float() / 255")
    x = _numpy(images)
    if x.ndim == 3 and x.shape[0] == 3 and x.shape[1] > 3:
        warnings.warn(f"image_grid drew {shape} as 3 grey images; for one colour image (C, H, W) pass "
                      "images[None]", stacklevel=3)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        raise ValueError(f"image_grid expects (N, C, H, W); {shape} looks like (N, H, W, C): pass "
                         "images.permute(0, 3, 1, 2)")
    if x.ndim != 4 or x.shape[1] not in (1, 3) or x.shape[0] == 0:
        raise ValueError(
            f"image_grid expects (N, C, H, W) with C in {{1, 3}} or (N, H, W), N > 0; got {shape}"
        )
    lo, hi = value_range
    return _clip_with_warning((x - lo) / (hi - lo), value_range)


def _clip_with_warning(x: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """x rescaled to [0, 1]; warn (naming the range seen) if anything lies outside or is NaN."""
    finite = np.isfinite(x)
    inside = finite.all() and x.min() >= -1e-6 and x.max() <= 1 + 1e-6
    if not inside:
        lo, hi = value_range
        seen = x[finite] * (hi - lo) + lo
        span = f"[{seen.min():.3g}, {seen.max():.3g}]" if seen.size else "nothing finite"
        nan = f" with {int((~finite).sum())} NaN/inf" if not finite.all() else ""
        warnings.warn(f"image_grid: values span {span}{nan}, outside value_range={tuple(value_range)}: "
                      "drawn clipped. For a tanh output pass value_range=(-1, 1); for 0..255 use uint8",
                      stacklevel=4)
        x = np.nan_to_num(x, nan=0.0)
    return x


def smooth(values: Sequence[float] | np.ndarray | torch.Tensor, window: int = 20) -> np.ndarray:
    """Moving average over ``window`` steps (``mode="valid"``: len(values) - window + 1 points).

    Returns the values unchanged (as an array) when there are fewer than ``window`` of them or
    ``window <= 1``. To plot against steps, use the last ``len(result)`` step numbers, as
    ``loss_curves`` does: each point is the mean of the window that ends there.
    """
    y = _numpy(values).astype(float) if isinstance(values, torch.Tensor) else np.asarray(values, float)
    if y.ndim != 1:
        raise ValueError(f"smooth expects a 1-D sequence, got shape {y.shape}")
    if window <= 1 or len(y) < window:
        return y
    finite = np.isfinite(y)
    if finite.all():
        return np.convolve(y, np.ones(window) / window, mode="valid")
    # NaN/inf steps are left out of their windows instead of turning every window they touch NaN
    sums = np.convolve(np.where(finite, y, 0.0), np.ones(window), mode="valid")
    counts = np.convolve(finite.astype(float), np.ones(window), mode="valid")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def loss_curves(history: Mapping[str, Sequence[float]], keys: Sequence[str] = ("loss",),
                eval_keys: Sequence[str] = (), title: str = "Training loss",
                ylabel: str = "loss (nats)", smooth: int = 20,
                logy: bool = False, ax: Axes | None = None,
                labels: Mapping[str, str] | None = None) -> Figure:
    """Plot per-step ``keys`` (smoothed over ``smooth`` steps) and evaluation ``eval_keys``.

    history: as returned in ``TrainResult.history`` (``step``, per-step keys, ``eval_step``).
    ax: draw into this Axes instead of a new figure. labels: legend label per key (default
    ``"<key> (train)"`` for per-step keys and the key itself for evaluations).
    """
    smooth_window = smooth
    labels = dict(labels or {})
    if ax is None:
        _, ax = plt.subplots()
    steps = np.asarray(history.get("step", []))
    # Lines after the first train / eval line take the next tab10 colours not already used, so no two
    # lines share a colour (matplotlib's own cycle would restart at C0, the train blue).
    used = {COLORS["train"], COLORS["val"]}
    spare = iter(c for c in map(matplotlib.colors.to_hex, plt.get_cmap("tab10").colors) if c not in used)
    for i, k in enumerate(keys):
        if k not in history:
            raise KeyError(f"history has no {k!r}; it has {sorted(history)}")
        y = _smooth_array(history[k], smooth_window)
        x = steps[len(steps) - len(y):] if len(steps) else np.arange(len(y))
        ax.plot(x, y, label=labels.get(k, f"{k} (train)"), color=COLORS["train"] if i == 0 else next(spare))
    for i, k in enumerate(eval_keys):
        if k not in history:
            raise KeyError(f"history has no {k!r}; it has {sorted(history)}")
        ax.plot(history["eval_step"], history[k], "o-", label=labels.get(k, k),
                color=COLORS["val"] if i == 0 else next(spare))
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    ax.figure.tight_layout()
    return ax.figure


_smooth_array = smooth  # loss_curves' ``smooth`` argument shadows the function inside it


def scatter_2d(points: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray | None = None,
               title: str = "", xlabel: str = "$z_1$", ylabel: str = "$z_2$",
               max_points: int = 5000, size: float = 3.0) -> Figure:
    """Scatter (N, 2) points, coloured by integer ``labels`` (N,) with a legend when given."""
    p = _numpy(points)
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"scatter_2d expects (N, 2) points, got {tuple(p.shape)}")
    p = p[:max_points]
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    if labels is None:
        ax.scatter(p[:, 0], p[:, 1], s=size, color=COLORS["real"], alpha=0.6)
    else:
        lab = _numpy(labels)[:max_points].astype(int)
        for k in np.unique(lab):
            sel = lab == k
            ax.scatter(p[sel, 0], p[sel, 1], s=size, alpha=0.6, label=str(k),
                       color=plt.cm.tab10(k % 10))
        ax.legend(markerscale=3, fontsize=8, loc="best", ncol=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def heatmap(matrix: torch.Tensor | np.ndarray, x_labels: Sequence[str] | None = None,
            y_labels: Sequence[str] | None = None, title: str = "", xlabel: str = "",
            ylabel: str = "", cmap: str = "viridis", colorbar: bool = True,
            vmin: float | None = None, vmax: float | None = None, colorbar_label: str = "") -> Figure:
    """Show a (rows, cols) matrix, e.g. attention weights (target × source).

    vmin, vmax: the values drawn as the ends of the colour map; None (the default) takes the matrix's
    own minimum and maximum. Fix them (e.g. 0 and 1 for attention weights) so that several heat maps
    share one scale. colorbar_label: the colour bar's label (what a colour means, with its unit).
    """
    m = _numpy(matrix)
    if m.ndim != 2:
        raise ValueError(f"heatmap expects a 2-D matrix, got shape {tuple(m.shape)}")
    rows, cols = m.shape
    fig, ax = plt.subplots(figsize=(min(1.2 + 0.35 * cols, 10), min(1.0 + 0.3 * rows, 8)))
    im = ax.imshow(m, cmap=cmap, aspect="auto", vmin=vmin, vmax=vmax)
    ax.grid(False)
    if x_labels is not None:
        ax.set_xticks(range(cols), labels=list(x_labels), rotation=60, ha="right")
    if y_labels is not None:
        ax.set_yticks(range(rows), labels=list(y_labels))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if colorbar:
        fig.colorbar(im, ax=ax, label=colorbar_label or None)
    fig.tight_layout()
    return fig
