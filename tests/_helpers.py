"""Small shared helpers for the gen_utils unit tests (a plain module, not a conftest).

Test modules import what they need (``from _helpers import ...``); pytest puts ``tests/`` on
``sys.path`` because the folder is not a package.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before anything imports pyplot

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import gen_utils as gu  # noqa: E402
from gen_utils import corpora, data, mnist, runtime  # noqa: E402


def clear_data_caches() -> None:
    """Forget every per-process cache of dataset contents and verified files."""
    mnist._load.cache_clear()
    corpora.load_shakespeare.cache_clear()
    corpora._multi30k_lines.cache_clear()
    data._VERIFIED.clear()


def reset_run() -> None:
    """Forget the Run that ``gu.setup`` stored (so ``pick``/``run`` see a fresh session)."""
    runtime._RUN = None


def real_file(relpath: str) -> Path:
    """Path of a file below the real data root; skips the test when it is not there."""
    root = gu.data_root()
    path = root / relpath
    if not path.is_file():
        pytest.skip(f"{relpath} not found under the data root {root} (set GEN_UTILS_DATA)")
    return path


def md5_bytes(blob: bytes) -> str:
    return hashlib.md5(blob).hexdigest()


def write_idx_gz(path: Path, array: np.ndarray) -> str:
    """Write a uint8 array as a gzip-compressed IDX file; returns the file's md5."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.GzipFile(path, "wb", mtime=0) as f:
        f.write(header + array.tobytes())
    return md5_bytes(path.read_bytes())


def register_file(monkeypatch: pytest.MonkeyPatch, dataset: str, name: str, relpath: str,
                  md5: str, urls: tuple[str, ...] = ()) -> None:
    """Make ``gen_utils.data`` expect ``dataset/name`` at ``relpath`` with ``md5`` (test-local)."""
    files = dict(data.DATASETS.get(dataset, {}))
    files[name] = data.DataFile(relpath, md5, urls)
    monkeypatch.setitem(data.DATASETS, dataset, files)



class FeatureIdentity(torch.nn.Module):
    """Returns its input and has ``num_features``: handed to torchmetrics as the feature extractor, it
    makes torchmetrics score exactly the features that our own metrics score."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def tiny_gpt(seed: int = 0, block: int = 16):
    """Chapter 09's GPT at toy size (vocabulary 11, 2 layers, d 16), seeded, in eval mode."""
    from gen_utils.chapters.ch09_transformer_gpt import GPT

    torch.manual_seed(seed)
    return GPT(vocab=11, block=block, d_model=16, n_layer=2, n_head=2).eval()
