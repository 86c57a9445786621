"""Find, verify and (when online) download the book's datasets.

Every dataset lives under one data root:

1. ``$GEN_UTILS_DATA`` when set (CI points it at the read-only ``../shared/data``);
2. else ``data/`` in the repository checkout that holds this package (git-ignored);
3. else ``~/.cache/gen_utils/data`` (a pip-installed package, e.g. on Colab).

Files are read in place and never unpacked into the root, so the root may be read-only.
Each file's md5 is checked once per process. A missing file is downloaded from the official
URL into the root (short timeout); offline, the error names the dataset, the path searched
and the variable to set.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

DATA_ENV = "GEN_UTILS_DATA"
DOWNLOAD_TIMEOUT_S = 4.0  # per socket operation once connected
CONNECT_BUDGET_S = 8.0  # total time to get an answer from any mirror (DNS included)


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset: its path below the root, md5 and download URLs (tried in order)."""

    relpath: str
    md5: str
    urls: tuple[str, ...]


_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
_MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
_MULTI30K_URL = "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw/"
_MULTI30K_MD5 = {
    "train.en.gz": "0065d13af80720a55ca8153d126e6627",
    "train.de.gz": "81ff90b99829c0cd4b1b587d394afd39",
    "train.fr.gz": "6cb767741dcad3931f966fefbc05203f",
    "val.en.gz": "2b69aa9253948ac9f67e94917272dd40",
    "val.de.gz": "6e0e229eb049e3fc99a1ef02fb2d5f91",
    "val.fr.gz": "93fc564584b7e5ba410c761ea5a1c682",
    "test_2016_flickr.en.gz": "ff2c0fcb4893a13bd73414306bc250ae",
    "test_2016_flickr.de.gz": "efd67d314d98489b716b145475101932",
    "test_2016_flickr.fr.gz": "08dc7cd4a662f31718412de95ca9bfe3",
}

DATASETS: dict[str, dict[str, DataFile]] = {
    "MNIST": {
        name: DataFile(f"MNIST/raw/{name}", md5, tuple(m + name for m in _MNIST_MIRRORS))
        for name, md5 in _MNIST_MD5.items()
    },
    "tinyshakespeare": {
        "input.txt": DataFile(
            "tinyshakespeare/input.txt",
            "6fb458f1232090904fb40fe944165e91",
            (
                "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/"
                "tinyshakespeare/input.txt",
            ),
        )
    },
    "multi30k": {
        name: DataFile(f"multi30k/{name}", md5, (_MULTI30K_URL + name,))
        for name, md5 in _MULTI30K_MD5.items()
    },
}


class DatasetNotFoundError(FileNotFoundError):
    """A dataset file is missing and could not be downloaded."""


class ChecksumError(ValueError):
    """A dataset file exists but its md5 differs from the published one."""


def data_root() -> Path:
    """The data root (see the module docstring for the order in which it is chosen)."""
    env = os.environ.get(DATA_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").exists() and (checkout / "_config.yml").exists():
        return checkout / "data"
    return Path.home() / ".cache" / "gen_utils" / "data"


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    """Hex md5 of a file."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


_VERIFIED: set[tuple[str, int, float]] = set()


def _verify(dataset: str, path: Path, md5: str) -> None:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime)
    if key in _VERIFIED:
        return
    got = md5sum(path)
    if got != md5:
        raise ChecksumError(
            f"{dataset}: checksum mismatch for {path} (md5 {got}, expected {md5}). "
            "The file is corrupt or a different version; delete it (or point "
            f"{DATA_ENV} at a good copy) and load again to re-download."
        )
    _VERIFIED.add(key)


def _open(url: str, deadline: float):
    """urlopen with a hard wall-clock limit on the connection phase (DNS lookups ignore timeouts)."""
    box: dict = {}

    def target() -> None:
        try:
            box["response"] = urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S)
        except BaseException as e:  # handed to the caller below
            box["error"] = e

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(max(deadline, 0.0))
    if worker.is_alive():
        raise TimeoutError(f"no answer within {CONNECT_BUDGET_S:.0f} s (offline?)")
    if "error" in box:
        raise box["error"]
    return box["response"]


def _download(urls: tuple[str, ...], dest: Path) -> str | None:
    """Try each URL; return None on success, else the last error as text.

    All mirrors together get ``CONNECT_BUDGET_S`` to answer, so an offline machine fails fast.
    """
    error = "no URL"
    created = [d for d in (dest.parent, *dest.parent.parents) if not d.exists()]
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return f"cannot create {dest.parent}: {e}"
    error = _try_urls(urls, dest)
    if error is not None:
        for d in created:  # deepest first: a failed download leaves no empty folders behind
            try:
                d.rmdir()
            except OSError:
                break
    return error


def _try_urls(urls: tuple[str, ...], dest: Path) -> str | None:
    """Download ``dest`` from the first URL that answers; None on success, else the last error."""
    error = "no URL"
    start = time.monotonic()
    for url in urls:
        tmp = dest.with_name(dest.name + ".part")
        try:
            with _open(url, CONNECT_BUDGET_S - (time.monotonic() - start)) as r, open(tmp, "wb") as f:
                while block := r.read(1 << 20):
                    f.write(block)
            tmp.replace(dest)
            return None
        except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException) as e:
            error = f"{url}: {e}"
            tmp.unlink(missing_ok=True)
    return error


def dataset_file(dataset: str, name: str, *, download: bool = True) -> Path:
    """Path of one verified file of ``dataset`` (e.g. ``dataset_file("MNIST", "t10k-labels-idx1-ubyte.gz")``).

    Downloads it into the data root when missing (if ``download``); raises DatasetNotFoundError
    naming the dataset, the path searched and ``GEN_UTILS_DATA`` when that fails, and
    ChecksumError when the md5 differs.
    """
    try:
        spec = DATASETS[dataset][name]
    except KeyError:
        known = {d: sorted(f) for d, f in DATASETS.items()}
        raise KeyError(f"Unknown dataset file {dataset}/{name}; known files: {known}") from None
    path = data_root() / spec.relpath
    if not path.exists():
        reason = _download(spec.urls, path) if download else "downloads disabled"
        if reason is not None:
            raise DatasetNotFoundError(
                f"{dataset} not found: looked for {path} (data root {data_root()}). "
                f"Set {DATA_ENV} to a folder that holds {spec.relpath}, or go online so it can "
                f"be downloaded (last attempt: {reason})."
            )
    _verify(dataset, path, spec.md5)
    return path
