"""MNIST as tensors: read once from the official ``.gz`` files, batched by index.

No torchvision dataset objects and no per-item transforms: the 70 000 images are one
``uint8`` tensor (70 MB as float would still fit anywhere), moved to the GPU once when there
is one, and mini-batches are slices of a random permutation.
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Iterator
from functools import cache

import numpy as np
import torch

from .data import dataset_file

_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def _read_idx(path) -> np.ndarray:
    """Decode an IDX file (gzip-compressed): big-endian header, then uint8 data."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (magic {raw[:4].hex()})")
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


@cache
def _load(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    images_file, labels_file = _FILES[split]
    images = torch.from_numpy(_read_idx(dataset_file("MNIST", images_file)).copy())
    labels = torch.from_numpy(_read_idx(dataset_file("MNIST", labels_file)).astype(np.int64))
    return images, labels


def load_mnist(
    split: str = "train", device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST images and labels of one split ("train": 60 000, "test": 10 000).

    Returns images (N, 28, 28) uint8 in 0..255 and labels (N,) int64, on ``device``
    (default CPU). The files are read and verified once per process.
    """
    if split not in _FILES:
        raise ValueError(f"MNIST split must be 'train' or 'test', got {split!r}")
    images, labels = _load(split)
    if device is not None:
        images, labels = images.to(device), labels.to(device)
    return images, labels


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, H, W) → float (N, 1, H, W) in [0, 1]."""
    if images.dtype != torch.uint8:
        raise TypeError(f"to_unit expects uint8 images, got {images.dtype}")
    return images.unsqueeze(1).float().div_(255.0)


def to_pm1(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, H, W) → float (N, 1, H, W) in [-1, 1], the range of a tanh generator."""
    if images.dtype != torch.uint8:
        raise TypeError(f"to_pm1 expects uint8 images, got {images.dtype}")
    return images.unsqueeze(1).float() / 127.5 - 1


def from_pm1(images: torch.Tensor) -> torch.Tensor:
    """Float images in [-1, 1] (any shape) → the same shape in [0, 1], clamped.

    For a tanh generator's output before ``image_grid``, FID or the classifier (which expect
    [0, 1]); the clamp only matters for values that rounding pushed past ±1.
    """
    if not images.is_floating_point():
        raise TypeError(f"from_pm1 expects float images in [-1, 1], got {images.dtype}")
    return ((images + 1) / 2).clamp(0, 1)


def binarize_dynamic(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Dynamic binarisation: each pixel ~ Bernoulli(intensity), fresh on every call.

    images: float in [0, 1] (any shape) or uint8 in 0..255. Returns float {0, 1}, same shape.
    Re-sampling every epoch is what "dynamically binarised MNIST" means (Burda et al. 2016).
    """
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images
    return torch.bernoulli(x, generator=generator)


class Batches:
    """Shuffled mini-batches of aligned tensors by index permutation; re-iterable, one pass each.

    tensors: tensors sharing the first dimension N (e.g. images (N, ...) and labels (N,)).
    Each pass yields tuples of (B, ...) slices; with ``drop_last`` a short last batch is dropped.
    The permutation lives on the tensors' device, so device-resident data never leaves it.
    """

    def __init__(
        self,
        *tensors: torch.Tensor,
        batch_size: int,
        shuffle: bool = True,
        drop_last: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        if not tensors:
            raise ValueError("Batches needs at least one tensor")
        n = tensors[0].shape[0]
        if any(t.shape[0] != n for t in tensors):
            raise ValueError(f"tensors differ in length: {[t.shape[0] for t in tensors]}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.tensors, self.n, self.batch_size = tensors, n, batch_size
        self.shuffle, self.drop_last, self.generator = shuffle, drop_last, generator

    def __len__(self) -> int:
        full, rest = divmod(self.n, self.batch_size)
        return full if (self.drop_last or rest == 0) else full + 1

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        device = self.tensors[0].device
        if self.shuffle:
            order = torch.randperm(self.n, generator=self.generator).to(device)
        else:
            order = torch.arange(self.n, device=device)
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            yield tuple(t[idx] for t in self.tensors)
