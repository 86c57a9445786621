"""FID, label accuracy and the shipped MNIST classifier (gen_utils.fid, gen_utils.mnist_classifier)."""

from __future__ import annotations

import math

import pytest
import torch
from _helpers import FeatureIdentity, real_file
from torch.nn import functional as F

import gen_utils as gu
from gen_utils import fid
from gen_utils import mnist_classifier as mc


def _random_spd(d: int, g: torch.Generator) -> torch.Tensor:
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    return a @ a.T / d + 0.1 * torch.eye(d, dtype=torch.float64)


def _reference_fid(mu1, cov1, mu2, cov2) -> float:
    """Independent route: Tr((S1 S2)^{1/2}) = Σ sqrt(λ_i) over the (real, ≥ 0) eigenvalues of S1 S2."""
    lam = torch.linalg.eigvals(cov1 @ cov2)
    assert lam.imag.abs().max() < 1e-8
    tr = lam.real.clamp(min=0).sqrt().sum()
    return float((mu1 - mu2).square().sum() + cov1.trace() + cov2.trace() - 2 * tr)


def _denman_beavers_sqrtm(m: torch.Tensor, iters: int = 50) -> torch.Tensor:
    """Matrix square root by the Denman–Beavers iteration (a third, iterative reference)."""
    y, z = m.clone(), torch.eye(len(m), dtype=m.dtype)
    for _ in range(iters):
        y, z = (y + torch.linalg.inv(z)) / 2, (z + torch.linalg.inv(y)) / 2
    return y


def test_frechet_distance_matches_reference_computations():
    g = torch.Generator().manual_seed(0)
    for d in (1, 3, 16):
        mu1 = torch.randn(d, generator=g, dtype=torch.float64)
        mu2 = torch.randn(d, generator=g, dtype=torch.float64)
        c1, c2 = _random_spd(d, g), _random_spd(d, g)
        got = fid.frechet_distance(mu1, c1, mu2, c2)
        assert got == pytest.approx(_reference_fid(mu1, c1, mu2, c2), rel=1e-8, abs=1e-10)
        tr_db = _denman_beavers_sqrtm(c1 @ c2).trace().item()
        ref_db = float((mu1 - mu2).square().sum() + c1.trace() + c2.trace()) - 2 * tr_db
        assert got == pytest.approx(ref_db, rel=1e-6, abs=1e-8)


def test_frechet_distance_closed_forms():
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2
    t = torch.tensor
    one = fid.frechet_distance(t([1.0]), t([[4.0]]), t([-2.0]), t([[9.0]]))
    assert one == pytest.approx(9.0 + 1.0)
    # diagonal covariances: ||mu1 - mu2||^2 + Σ (sqrt(a_i) - sqrt(b_i))^2
    a, b = t([1.0, 2.0, 0.5, 3.0], dtype=torch.float64), t([0.3, 2.0, 4.0, 1.0], dtype=torch.float64)
    mu1, mu2 = t([0.0, 1.0, 2.0, 3.0], dtype=torch.float64), t([1.0, 1.0, 0.0, 3.0], dtype=torch.float64)
    expected = (mu1 - mu2).square().sum() + (a.sqrt() - b.sqrt()).square().sum()
    got = fid.frechet_distance(mu1, torch.diag(a), mu2, torch.diag(b))
    assert got == pytest.approx(expected.item(), rel=1e-10)


def test_frechet_distance_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shape mismatch"):
        fid.frechet_distance(torch.zeros(3), torch.eye(3), torch.zeros(2), torch.eye(2))


def test_fid_of_a_set_with_itself_is_zero_and_symmetric():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(2_000, 32, generator=g) @ torch.randn(32, 32, generator=g)
    b = a[:, torch.randperm(32, generator=g)] + 0.5
    assert fid.fid_from_features(a, a) == pytest.approx(0.0, abs=1e-6)
    assert fid.fid_from_features(a, b) == pytest.approx(fid.fid_from_features(b, a), rel=1e-8)
    assert fid.fid_from_features(a, b) > 1.0


def test_gaussian_stats_rejects_a_single_sample():
    with pytest.raises(ValueError, match="N >= 2"):
        fid.gaussian_stats(torch.zeros(1, 4))


def test_weights_are_small_verified_and_weights_only():
    assert mc.WEIGHTS.is_file()
    assert mc.WEIGHTS.stat().st_size < 1_000_000
    assert mc.sha256sum(mc.WEIGHTS) == mc.WEIGHTS_SHA256
    state = torch.load(mc.WEIGHTS, map_location="cpu", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    net = gu.load_mnist_classifier()
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    feats, logits = gu.classifier_outputs(torch.rand(5, 28, 28))
    assert feats.shape == (5, mc.FEATURE_DIM) and logits.shape == (5, 10)


def test_wrong_checksum_is_refused(monkeypatch):
    mc._load_cpu.cache_clear()
    monkeypatch.setattr(mc, "WEIGHTS_SHA256", "0" * 64)
    try:
        with pytest.raises(ValueError, match="sha256"):
            mc.load_mnist_classifier()
    finally:
        mc._load_cpu.cache_clear()


def test_classifier_outputs_rejects_other_shapes():
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        gu.classifier_outputs(torch.rand(4, 3, 32, 32))


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = math.ceil(3 * sigma)
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-t**2 / (2 * sigma**2))
    k = k / k.sum()
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1))


def test_fid_grows_monotonically_with_blur():
    real_file("MNIST/raw/t10k-images-idx3-ubyte.gz")
    x, _ = gu.load_mnist("test")
    x = gu.to_unit(x)
    ref, _ = gu.classifier_outputs(x[:2_000])
    test = x[2_000:4_000]
    scores = [fid.fid_from_features(ref, gu.classifier_outputs(_gaussian_blur(test, s) if s else test)[0])
              for s in (0, 0.5, 1.0, 1.5, 2.5)]
    assert all(a < b for a, b in zip(scores, scores[1:], strict=False)), scores
    assert scores[0] < 0.1 * scores[-1]


def test_label_accuracy_and_full_test_accuracy():
    """The shipped classifier's recorded accuracy (≥ 99.0 %) on the real 10 000 test images."""
    real_file("MNIST/raw/t10k-images-idx3-ubyte.gz")
    x, y = gu.load_mnist("test")
    acc = gu.label_accuracy(gu.to_unit(x), y)
    assert acc >= 0.99, f"classifier test accuracy {acc:.4f} < 0.99"
    assert acc == pytest.approx(mc.TEST_ACCURACY, abs=1e-4)
    wrong = gu.label_accuracy(gu.to_unit(x[:1_000]), (y[:1_000] + 1) % 10)
    assert wrong < 0.02
    with pytest.raises(ValueError, match="labels"):
        gu.label_accuracy(gu.to_unit(x[:3]), y[:2])


def test_fid_floor_is_small_and_mnist_fid_uses_the_test_set():
    real_file("MNIST/raw/train-images-idx3-ubyte.gz")
    floor = gu.mnist_fid_floor(n=2_000)
    noise = gu.mnist_fid(torch.rand(500, 1, 28, 28, generator=torch.Generator().manual_seed(0)))
    assert 0 < floor < 0.01 * noise


# --- what the classifier metrics refuse (the reliability sweep) -------------------------------

@pytest.mark.parametrize(("images", "error", "match"), [
    (torch.rand(4, 1, 28, 28) * 255, ValueError, r"span \[0.*, 2\d\d.*x / 255"),
    (torch.rand(4, 1, 28, 28) * 2 - 1, ValueError, r"span \[-.*\(x \+ 1\) / 2"),
    (torch.randint(0, 256, (4, 1, 28, 28)), TypeError, "dtype torch.int64.*uint8"),
    (torch.zeros(0, 1, 28, 28), ValueError, "N = 0"),
], ids=["0..255 float", "[-1, 1]", "int64", "empty"])
def test_classifier_metrics_refuse_images_they_would_score_wrongly(images, error, match):
    with pytest.raises(error, match=match):
        mc.classifier_outputs(images)


def test_nan_pixels_are_named():
    images = torch.rand(4, 1, 28, 28)
    images[2, 0, 5, 5] = float("nan")
    with pytest.raises(ValueError, match="1 pixels are NaN"):
        mc.classifier_outputs(images)


def test_uint8_bool_and_unit_floats_are_accepted():
    x = torch.randint(0, 256, (3, 28, 28), dtype=torch.uint8)
    f_u8, _ = mc.classifier_outputs(x)
    f_float, _ = mc.classifier_outputs(x.float() / 255)
    torch.testing.assert_close(f_u8, f_float)
    mc.classifier_outputs(x > 128)


def test_fid_from_fewer_samples_than_dimensions_warns():
    g = torch.Generator().manual_seed(0)
    with pytest.warns(UserWarning, match="from 10 samples of 128-dimensional.*biased upwards"):
        fid.fid_from_features(torch.randn(10, 128, generator=g), torch.randn(500, 128, generator=g))


# --- cross-checks against torchmetrics, and FID∞ ------------------------------------------------



@pytest.mark.parametrize("shift", [0.0, 0.3, 2.0])
def test_fid_from_features_matches_torchmetrics(shift):
    # catches: a biased (1/N) covariance, a dropped trace term or a wrong matrix square root, which would
    # all make the book's FID disagree with torchmetrics' FrechetInceptionDistance on the same features
    from torchmetrics.image.fid import FrechetInceptionDistance

    g = torch.Generator().manual_seed(2)
    mix = torch.randn(16, 16, generator=g, dtype=torch.float64) / 4
    a = torch.randn(500, 16, generator=g, dtype=torch.float64) @ mix
    b = torch.randn(500, 16, generator=g, dtype=torch.float64) @ (mix + 0.1 * shift) + shift
    tm = FrechetInceptionDistance(feature=FeatureIdentity(16))
    tm.update(a, real=True)
    tm.update(b, real=False)
    ref = float(tm.compute())
    assert fid.fid_from_features(a, b) == pytest.approx(ref, rel=1e-3, abs=1e-9)


def test_fit_fid_infinity_recovers_the_intercept_and_slope():
    # catches: a fit in N instead of 1/N, or intercept and slope returned in the wrong order
    ns = [500, 1_000, 2_000, 5_000, 10_000]
    a, b = fid.fit_fid_infinity(ns, [3.25 + 1_700.0 / n for n in ns])
    assert a == pytest.approx(3.25, rel=1e-9)
    assert b == pytest.approx(1_700.0, rel=1e-9)


def test_fit_fid_infinity_rejects_mismatched_or_too_few_points():
    # catches: lstsq silently broadcasting mismatched lists, or a "fit" through a single point
    with pytest.raises(ValueError, match="as many FIDs as sample sizes"):
        fid.fit_fid_infinity([100, 200, 400], [1.0, 2.0])
    with pytest.raises(ValueError, match="at least two"):
        fid.fit_fid_infinity([100], [1.0])
