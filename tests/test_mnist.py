"""gen_utils.mnist: IDX reading, load_mnist (real and synthetic), to_unit, binarize, Batches."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest
import torch
from _helpers import real_file, register_file, write_idx_gz

import gen_utils as gu
from gen_utils import mnist

README_COUNTS = {
    "train": {0: 5923, 1: 6742, 2: 5958, 3: 6131, 4: 5842, 5: 5421, 6: 5918, 7: 6265, 8: 5851,
              9: 5949},
    "test": {0: 980, 1: 1135, 2: 1032, 3: 1010, 4: 982, 5: 892, 6: 958, 7: 1028, 8: 974,
             9: 1009},
}


@pytest.fixture
def synthetic_mnist(tmp_path, monkeypatch):
    """A tiny MNIST "test" split (5 images of 4x3) in a tmp root, registered with its md5s."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 4, 3), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    for name, array in (("t10k-images-idx3-ubyte.gz", images),
                        ("t10k-labels-idx1-ubyte.gz", labels)):
        md5 = write_idx_gz(tmp_path / "MNIST" / "raw" / name, array)
        register_file(monkeypatch, "MNIST", name, f"MNIST/raw/{name}", md5)
    monkeypatch.setenv("GEN_UTILS_DATA", str(tmp_path))
    return images, labels


# --- reading --------------------------------------------------------------------------------

def test_read_idx_round_trip(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx_gz(tmp_path / "a.gz", array)
    out = mnist._read_idx(tmp_path / "a.gz")
    assert out.shape == (2, 3, 4) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, array)


def test_read_idx_rejects_other_types(tmp_path):
    import gzip
    import struct

    with gzip.open(tmp_path / "f.gz", "wb") as f:  # dtype 0x0D = float32
        f.write(struct.pack(">HBBI", 0, 0x0D, 1, 1) + b"\0\0\0\0")
    with pytest.raises(ValueError, match="not an unsigned-byte IDX file"):
        mnist._read_idx(tmp_path / "f.gz")


def test_load_synthetic_split(synthetic_mnist):
    images, labels = synthetic_mnist
    x, y = gu.load_mnist("test")
    assert x.dtype == torch.uint8 and tuple(x.shape) == (5, 4, 3)
    assert y.dtype == torch.int64 and y.tolist() == [3, 1, 4, 1, 5]
    assert torch.equal(x, torch.from_numpy(images))
    x.add_(0)  # the returned tensor is writable (a copy, not a read-only numpy buffer)


def test_load_is_cached_per_process(synthetic_mnist, tmp_path):
    first = gu.load_mnist("test")
    shutil.rmtree(tmp_path / "MNIST")  # cached: the files are not read again
    second = gu.load_mnist("test")
    assert second[0] is first[0] and second[1] is first[1]


def test_load_to_device(synthetic_mnist):
    x, y = gu.load_mnist("test", device="meta")
    assert x.device.type == "meta" and y.device.type == "meta"
    assert gu.load_mnist("test", device="cpu")[0].device.type == "cpu"


def test_invalid_split():
    with pytest.raises(ValueError, match="'valid'"):
        gu.load_mnist("valid")


# --- missing and corrupt files --------------------------------------------------------------

def test_empty_data_root_fails_fast_and_says_where(tmp_path, monkeypatch):
    # The real download path (no fake urlopen): offline, it must give up quickly.
    monkeypatch.setenv("GEN_UTILS_DATA", str(tmp_path))
    start = time.perf_counter()
    try:
        gu.load_mnist()
    except gu.DatasetNotFoundError as e:
        error = e
    else:
        pytest.skip("the network is online here: MNIST was downloaded into the tmp root")
    seconds = time.perf_counter() - start
    assert seconds < 10, f"load_mnist took {seconds:.1f} s to fail"
    msg = str(error)
    for part in ("MNIST", str(tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"),
                 "GEN_UTILS_DATA"):
        assert part in msg


def test_flipped_byte_in_mnist_is_a_checksum_error(tmp_path, monkeypatch):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copyfile(real_file(f"MNIST/raw/{name}"), raw / name)
    labels = raw / "t10k-labels-idx1-ubyte.gz"
    blob = bytearray(labels.read_bytes())
    blob[100] ^= 0x01
    labels.write_bytes(bytes(blob))
    monkeypatch.setenv("GEN_UTILS_DATA", str(tmp_path))
    with pytest.raises(gu.ChecksumError) as info:
        gu.load_mnist("test")
    assert "checksum mismatch" in str(info.value) and str(labels) in str(info.value)


# --- the real files -------------------------------------------------------------------------

@pytest.mark.parametrize(("split", "n", "first_label"), [("train", 60000, 5), ("test", 10000, 7)])
def test_real_mnist(split, n, first_label):
    for name in mnist._FILES[split]:
        real_file(f"MNIST/raw/{name}")
    x, y = gu.load_mnist(split)
    assert tuple(x.shape) == (n, 28, 28) and x.dtype == torch.uint8
    assert tuple(y.shape) == (n,) and y.dtype == torch.int64
    assert int(y[0]) == first_label
    assert dict(enumerate(torch.bincount(y, minlength=10).tolist())) == README_COUNTS[split]
    assert int(x.min()) == 0 and int(x.max()) == 255
    # Pixels are mostly background: the mean intensity of MNIST is about 0.13.
    assert 0.12 < x.float().mean().item() / 255 < 0.14


# --- to_unit / binarize_dynamic -------------------------------------------------------------

def test_to_unit():
    x = torch.tensor([[[0, 51], [255, 102]]], dtype=torch.uint8)
    u = gu.to_unit(x)
    assert u.shape == (1, 1, 2, 2) and u.dtype == torch.float32
    assert torch.allclose(u[0, 0], torch.tensor([[0.0, 0.2], [1.0, 0.4]]))
    assert x.dtype == torch.uint8 and int(x[0, 1, 0]) == 255  # input untouched
    with pytest.raises(TypeError, match="uint8"):
        gu.to_unit(u)


@pytest.mark.parametrize("intensity", [0.1, 0.5, 0.8])
def test_binarize_dynamic_mean_matches_intensity(intensity):
    x = torch.full((50, 1, 28, 28), intensity)
    b = gu.binarize_dynamic(x, generator=torch.Generator().manual_seed(0))
    assert b.shape == x.shape and b.dtype == torch.float32
    assert set(b.unique().tolist()) <= {0.0, 1.0}
    assert abs(b.mean().item() - intensity) < 0.01  # 39 200 draws: std < 0.0026


def test_binarize_dynamic_is_fresh_each_call_and_seedable():
    x = torch.full((1000,), 0.5)
    assert not torch.equal(gu.binarize_dynamic(x), gu.binarize_dynamic(x))
    a = gu.binarize_dynamic(x, generator=torch.Generator().manual_seed(3))
    b = gu.binarize_dynamic(x, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_binarize_dynamic_uint8_extremes():
    x = torch.tensor([0, 255, 0, 255], dtype=torch.uint8)
    assert gu.binarize_dynamic(x).tolist() == [0.0, 1.0, 0.0, 1.0]



def test_to_pm1_and_from_pm1_round_trip():
    x = torch.tensor([[[0, 255], [128, 1]]], dtype=torch.uint8)
    pm1 = gu.to_pm1(x)
    assert pm1.shape == (1, 1, 2, 2) and pm1.dtype == torch.float32
    assert pm1.min().item() == -1.0 and pm1.max().item() == 1.0
    torch.testing.assert_close(gu.from_pm1(pm1), gu.to_unit(x))
    assert gu.from_pm1(torch.tensor([-1.2, 1.3])).tolist() == [0.0, 1.0]  # clamped
    with pytest.raises(TypeError, match="uint8"):
        gu.to_pm1(pm1)
    with pytest.raises(TypeError, match="float"):
        gu.from_pm1(x)


# --- Batches --------------------------------------------------------------------------------

def _epoch_indices(batches):
    return torch.cat([b[0] for b in batches]).tolist()


def test_batches_cover_every_index_once_per_epoch():
    n = 103
    idx = torch.arange(n)
    batches = gu.Batches(idx, idx * 10, batch_size=10, generator=torch.Generator().manual_seed(0))
    assert len(batches) == 11
    epochs = []
    for _ in range(3):
        seen = []
        sizes = []
        for xb, yb in batches:
            assert torch.equal(yb, xb * 10)  # aligned tensors stay aligned
            seen += xb.tolist()
            sizes.append(len(xb))
        assert sorted(seen) == list(range(n))
        assert sizes == [10] * 10 + [3]
        epochs.append(seen)
    assert epochs[0] != epochs[1] != epochs[2]  # a fresh permutation each pass
    assert epochs[0] != list(range(n))


def test_batches_drop_last():
    idx = torch.arange(10)
    b = gu.Batches(idx, batch_size=3, drop_last=True, generator=torch.Generator().manual_seed(1))
    assert len(b) == 3
    out = [xb for (xb,) in b]
    assert [len(x) for x in out] == [3, 3, 3]
    assert len(set(torch.cat(out).tolist())) == 9
    assert len(gu.Batches(idx, batch_size=5, drop_last=True)) == 2  # nothing to drop
    assert len(gu.Batches(idx, batch_size=11, drop_last=True)) == 0
    assert list(gu.Batches(idx, batch_size=11, drop_last=True)) == []


def test_batches_without_shuffle_are_in_order():
    idx = torch.arange(7)
    assert _epoch_indices(gu.Batches(idx, batch_size=3, shuffle=False)) == list(range(7))


def test_batches_reproducible_with_a_seeded_generator():
    idx = torch.arange(50)

    def run(seed):
        b = gu.Batches(idx, batch_size=8, generator=torch.Generator().manual_seed(seed))
        return [_epoch_indices(b), _epoch_indices(b)]

    assert run(0) == run(0)
    assert run(0) != run(1)


def test_batches_argument_errors():
    with pytest.raises(ValueError, match=r"\[5, 4\]"):
        gu.Batches(torch.zeros(5), torch.zeros(4), batch_size=2)
    with pytest.raises(ValueError, match="at least one tensor"):
        gu.Batches(batch_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        gu.Batches(torch.zeros(5), batch_size=0)


def test_batches_stay_on_the_tensors_device():
    # "meta" tensors stand in for a GPU: the permutation must follow the data's device.
    x, y = torch.empty(10, 1, 28, 28, device="meta"), torch.empty(10, device="meta")
    for xb, yb in gu.Batches(x, y, batch_size=4):
        assert xb.device.type == "meta" and yb.device.type == "meta"
    x = torch.arange(10.0)
    assert all(xb.device.type == "cpu" for (xb,) in gu.Batches(x, batch_size=4))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_batches_on_cuda():
    x = torch.arange(100, device="cuda")
    b = gu.Batches(x, batch_size=32, generator=torch.Generator().manual_seed(0))
    seen = []
    for (xb,) in b:
        assert xb.is_cuda
        seen += xb.tolist()
    assert sorted(seen) == list(range(100))
