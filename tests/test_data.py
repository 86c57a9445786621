"""gen_utils.data: the data root, md5 verification, downloads and their errors.

Network access is faked (``urlopen`` replaced) except where a test says otherwise, so these
tests behave the same online and offline.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import time
import urllib.error
from pathlib import Path

import pytest
from _helpers import md5_bytes, real_file, register_file

import gen_utils as gu
from gen_utils import data

PAYLOAD = b"hello, generative world\n" * 100


@pytest.fixture
def root(tmp_path, monkeypatch):
    """An empty data root."""
    r = tmp_path / "root"
    r.mkdir()
    monkeypatch.setenv("GEN_UTILS_DATA", str(r))
    return r


@pytest.fixture
def toy(monkeypatch):
    """A one-file dataset "toy" whose file is ``toy/a.txt`` = PAYLOAD, with two mirrors."""
    register_file(monkeypatch, "toy", "a.txt", "toy/a.txt", md5_bytes(PAYLOAD),
                  ("http://mirror-one.invalid/a.txt", "http://mirror-two.invalid/a.txt"))


class FakeResponse(io.BytesIO):
    """What ``urlopen`` returns: a readable context manager."""


def fake_urlopen(served: dict[str, bytes], calls: list):
    """An ``urlopen`` that serves ``served[url]`` and raises URLError for other URLs."""

    def urlopen(url, timeout=None):
        calls.append((url, timeout))
        if url in served:
            return FakeResponse(served[url])
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    return urlopen


# --- data root ------------------------------------------------------------------------------

def test_data_root_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("GEN_UTILS_DATA", str(tmp_path))
    assert gu.data_root() == tmp_path
    monkeypatch.setenv("GEN_UTILS_DATA", "~/somewhere")
    assert gu.data_root() == Path.home() / "somewhere"


@pytest.mark.parametrize("value", [None, "", "   "])
def test_data_root_defaults_to_data_in_the_checkout(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("GEN_UTILS_DATA", raising=False)
    else:
        monkeypatch.setenv("GEN_UTILS_DATA", value)
    checkout = Path(data.__file__).resolve().parent.parent
    assert (checkout / "pyproject.toml").exists()  # the tests run from a checkout
    assert gu.data_root() == checkout / "data"


def test_md5sum_matches_hashlib(tmp_path):
    f = tmp_path / "blob.bin"
    blob = bytes(range(256)) * 1000
    f.write_bytes(blob)
    assert data.md5sum(f) == hashlib.md5(blob).hexdigest()
    assert data.md5sum(f, chunk=7) == hashlib.md5(blob).hexdigest()


def test_every_known_file_has_a_plausible_spec():
    assert set(data.DATASETS) >= {"MNIST", "tinyshakespeare", "multi30k"}
    assert len(data.DATASETS["MNIST"]) == 4 and len(data.DATASETS["multi30k"]) == 9
    for dataset, files in data.DATASETS.items():
        for name, spec in files.items():
            assert spec.relpath.startswith(dataset + "/") and spec.relpath.endswith(name)
            assert len(spec.md5) == 32 and int(spec.md5, 16) >= 0
            assert spec.urls and all(u.startswith(("http://", "https://")) for u in spec.urls)
            assert all(u.endswith(name) for u in spec.urls)


def test_worst_case_download_attempt_is_bounded():
    # A black-holed network costs one timeout per mirror; every file must give up in < 10 s.
    for files in data.DATASETS.values():
        for spec in files.values():
            assert len(spec.urls) * data.DOWNLOAD_TIMEOUT_S < 10


# --- lookup and errors ----------------------------------------------------------------------

def test_unknown_file_is_a_key_error_listing_known_files():
    with pytest.raises(KeyError) as info:
        gu.dataset_file("MNIST", "train-images.zip")
    assert "MNIST/train-images.zip" in str(info.value)
    assert "t10k-labels-idx1-ubyte.gz" in str(info.value)


def test_missing_file_without_download(root, toy, monkeypatch):
    monkeypatch.setattr(data.urllib.request, "urlopen", lambda *a, **k: pytest.fail("network"))
    with pytest.raises(gu.DatasetNotFoundError) as info:
        gu.dataset_file("toy", "a.txt", download=False)
    msg = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    for part in ("toy", str(root / "toy" / "a.txt"), "GEN_UTILS_DATA", "downloads disabled"):
        assert part in msg


def test_offline_download_fails_with_a_helpful_message(root, toy, monkeypatch):
    calls = []
    monkeypatch.setattr(data.urllib.request, "urlopen", fake_urlopen({}, calls))
    start = time.perf_counter()
    with pytest.raises(gu.DatasetNotFoundError) as info:
        gu.dataset_file("toy", "a.txt")
    assert time.perf_counter() - start < 1
    assert [url for url, _ in calls] == list(data.DATASETS["toy"]["a.txt"].urls)
    assert all(timeout == data.DOWNLOAD_TIMEOUT_S for _, timeout in calls)
    msg = str(info.value)
    for part in ("toy not found", str(root / "toy" / "a.txt"), "GEN_UTILS_DATA",
                 "mirror-two.invalid", "Name or service not known"):
        assert part in msg
    toy_dir = root / "toy"
    assert not toy_dir.exists() or not list(toy_dir.iterdir())  # nothing left behind


def test_a_hanging_connection_fails_within_the_budget(root, toy, monkeypatch):
    # DNS lookups ignore socket timeouts; the connection phase has a hard wall-clock budget.
    monkeypatch.setattr(data, "CONNECT_BUDGET_S", 0.5)
    monkeypatch.setattr(data.urllib.request, "urlopen", lambda *a, **k: time.sleep(30))
    start = time.perf_counter()
    with pytest.raises(gu.DatasetNotFoundError, match="no answer within"):
        gu.dataset_file("toy", "a.txt")
    assert time.perf_counter() - start < 2


def test_download_falls_back_to_the_second_mirror(root, toy, monkeypatch):
    calls = []
    served = {"http://mirror-two.invalid/a.txt": PAYLOAD}
    monkeypatch.setattr(data.urllib.request, "urlopen", fake_urlopen(served, calls))
    path = gu.dataset_file("toy", "a.txt")
    assert path == root / "toy" / "a.txt"
    assert path.read_bytes() == PAYLOAD
    assert len(calls) == 2
    assert [p.name for p in path.parent.iterdir()] == ["a.txt"]  # the .part file was renamed
    # Present now: a second lookup does not touch the network.
    monkeypatch.setattr(data.urllib.request, "urlopen", lambda *a, **k: pytest.fail("network"))
    assert gu.dataset_file("toy", "a.txt") == path


def test_interrupted_download_leaves_no_file(root, toy, monkeypatch):
    class Broken(FakeResponse):
        def read(self, n=-1):
            raise ConnectionResetError("connection reset by peer")

    monkeypatch.setattr(data.urllib.request, "urlopen", lambda url, timeout=None: Broken(b""))
    with pytest.raises(gu.DatasetNotFoundError, match="connection reset"):
        gu.dataset_file("toy", "a.txt")
    assert not (root / "toy").exists() and root.is_dir()  # no file, and no empty folder left behind


def test_download_of_wrong_bytes_is_a_checksum_error(root, toy, monkeypatch):
    served = {"http://mirror-one.invalid/a.txt": b"<html>captive portal</html>"}
    monkeypatch.setattr(data.urllib.request, "urlopen", fake_urlopen(served, []))
    with pytest.raises(gu.ChecksumError, match="checksum mismatch"):
        gu.dataset_file("toy", "a.txt")


def test_unwritable_root_reports_why(tmp_path, toy, monkeypatch):
    not_a_dir = tmp_path / "file-not-dir"
    not_a_dir.write_text("x")
    monkeypatch.setenv("GEN_UTILS_DATA", str(not_a_dir))
    monkeypatch.setattr(data.urllib.request, "urlopen", lambda *a, **k: pytest.fail("network"))
    with pytest.raises(gu.DatasetNotFoundError, match="cannot create"):
        gu.dataset_file("toy", "a.txt")


# --- verification ---------------------------------------------------------------------------

def test_good_file_is_verified_once_per_process(root, toy, monkeypatch):
    f = root / "toy" / "a.txt"
    f.parent.mkdir()
    f.write_bytes(PAYLOAD)
    hashed = []
    real_md5sum = data.md5sum
    monkeypatch.setattr(data, "md5sum", lambda p: hashed.append(p) or real_md5sum(p))
    assert gu.dataset_file("toy", "a.txt") == f
    assert gu.dataset_file("toy", "a.txt") == f
    assert hashed == [f]


def test_changed_file_is_verified_again(root, toy):
    f = root / "toy" / "a.txt"
    f.parent.mkdir()
    f.write_bytes(PAYLOAD)
    gu.dataset_file("toy", "a.txt")
    f.write_bytes(PAYLOAD + b"!")  # a different size: no longer the verified file
    with pytest.raises(gu.ChecksumError):
        gu.dataset_file("toy", "a.txt", download=False)


def test_one_changed_byte_is_a_checksum_error(root, toy):
    f = root / "toy" / "a.txt"
    f.parent.mkdir()
    blob = bytearray(PAYLOAD)
    blob[10] ^= 0x01
    f.write_bytes(bytes(blob))
    with pytest.raises(gu.ChecksumError) as info:
        gu.dataset_file("toy", "a.txt")
    assert isinstance(info.value, ValueError)
    msg = str(info.value)
    for part in ("checksum mismatch", str(f), md5_bytes(PAYLOAD), md5_bytes(bytes(blob)),
                 "GEN_UTILS_DATA"):
        assert part in msg


def test_flipped_byte_in_a_real_mnist_file(tmp_path, monkeypatch):
    src = real_file("MNIST/raw/t10k-labels-idx1-ubyte.gz")
    dest = tmp_path / "MNIST" / "raw" / src.name
    dest.parent.mkdir(parents=True)
    shutil.copyfile(src, dest)
    blob = bytearray(dest.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    dest.write_bytes(bytes(blob))
    monkeypatch.setenv("GEN_UTILS_DATA", str(tmp_path))
    with pytest.raises(gu.ChecksumError, match="checksum mismatch") as info:
        gu.dataset_file("MNIST", src.name)
    assert str(dest) in str(info.value)


@pytest.mark.parametrize(
    ("dataset", "name"),
    [(d, n) for d, files in data.DATASETS.items() for n in files],
)
def test_real_files_match_their_published_md5(dataset, name):
    real_file(data.DATASETS[dataset][name].relpath)
    path = gu.dataset_file(dataset, name, download=False)
    assert path == gu.data_root() / data.DATASETS[dataset][name].relpath
