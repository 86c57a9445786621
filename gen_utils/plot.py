"""Figures in one style. Every function returns the matplotlib Figure it drew.

Colours mean the same thing in every chapter: ``COLORS["real"]`` for data, ``COLORS["generated"]``
for model samples, ``COLORS["train"]`` / ``COLORS["val"]`` for the two curves of a run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
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
               scale: float = 0.8) -> Figure:
    """Show a batch of images as one grid.

    images: (N, C, H, W) with C in {1, 3}, or (N, H, W); float values in [0, 1] (uint8 is
    divided by 255). Raises ValueError for any other shape, naming the shape it got.
    """
    shape = tuple(images.shape)
    if images.dtype in (torch.uint8, np.uint8):
        images = images.float() / 255 if isinstance(images, torch.Tensor) else images / 255.0
    x = _numpy(images)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] not in (1, 3) or x.shape[0] == 0:
        raise ValueError(
            f"image_grid expects (N, C, H, W) with C in {{1, 3}} or (N, H, W), N > 0; got {shape}"
        )
    n, c, h, w = x.shape
    ncol = min(nrow, n)
    nrows = -(-n // ncol)
    pad = 2
    grid = np.ones((c, nrows * (h + pad) + pad, ncol * (w + pad) + pad), dtype=np.float32)
    for i in range(n):
        r, q = divmod(i, ncol)
        grid[:, pad + r * (h + pad): pad + r * (h + pad) + h,
             pad + q * (w + pad): pad + q * (w + pad) + w] = x[i]
    fig, ax = plt.subplots(figsize=(scale * ncol * w / 28 + 0.2, scale * nrows * h / 28 + 0.4))
    img = grid[0] if c == 1 else grid.transpose(1, 2, 0)
    ax.imshow(np.clip(img, 0, 1), cmap="gray" if c == 1 else None, vmin=0, vmax=1,
              interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def _smooth(y: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(y) < window:
        return y
    kernel = np.ones(window) / window
    return np.convolve(y, kernel, mode="valid")


def loss_curves(history: Mapping[str, Sequence[float]], keys: Sequence[str] = ("loss",),
                eval_keys: Sequence[str] = (), title: str = "Training loss",
                ylabel: str = "loss (nats)", smooth: int = 20,
                logy: bool = False) -> Figure:
    """Plot per-step ``keys`` (smoothed over ``smooth`` steps) and evaluation ``eval_keys``.

    history: as returned in ``TrainResult.history`` (``step``, per-step keys, ``eval_step``).
    """
    fig, ax = plt.subplots()
    steps = np.asarray(history.get("step", []))
    for i, k in enumerate(keys):
        if k not in history:
            raise KeyError(f"history has no {k!r}; it has {sorted(history)}")
        y = _smooth(np.asarray(history[k], dtype=float), smooth)
        x = steps[len(steps) - len(y):] if len(steps) else np.arange(len(y))
        ax.plot(x, y, label=f"{k} (train)", color=COLORS["train"] if i == 0 else None)
    for i, k in enumerate(eval_keys):
        if k not in history:
            raise KeyError(f"history has no {k!r}; it has {sorted(history)}")
        ax.plot(history["eval_step"], history[k], "o-", label=k,
                color=COLORS["val"] if i == 0 else None)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


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
            ylabel: str = "", cmap: str = "viridis", colorbar: bool = True) -> Figure:
    """Show a (rows, cols) matrix, e.g. attention weights (target × source)."""
    m = _numpy(matrix)
    if m.ndim != 2:
        raise ValueError(f"heatmap expects a 2-D matrix, got shape {tuple(m.shape)}")
    rows, cols = m.shape
    fig, ax = plt.subplots(figsize=(min(1.2 + 0.35 * cols, 10), min(1.0 + 0.3 * rows, 8)))
    im = ax.imshow(m, cmap=cmap, aspect="auto")
    ax.grid(False)
    if x_labels is not None:
        ax.set_xticks(range(cols), labels=list(x_labels), rotation=60, ha="right")
    if y_labels is not None:
        ax.set_yticks(range(rows), labels=list(y_labels))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if colorbar:
        fig.colorbar(im, ax=ax)
    fig.tight_layout()
    return fig
