"""Precision, recall, density and coverage (gen_utils.manifold), cross-checked against the prdc package."""

from __future__ import annotations

import pytest
import torch
from prdc import compute_prdc

from gen_utils import manifold


def _sets(n_real: int, n_fake: int, d: int, shift: float, scale: float, seed: int):
    g = torch.Generator().manual_seed(seed)
    real = torch.randn(n_real, d, generator=g)
    fake = scale * torch.randn(n_fake, d, generator=g) + shift
    return real, fake


@pytest.mark.parametrize(("n_real", "n_fake", "shift", "scale", "k"), [
    (300, 300, 0.0, 1.0, 5),
    (300, 300, 0.5, 1.0, 3),
    (300, 200, 0.0, 0.6, 5),    # a narrower generator: high precision, low recall
    (200, 350, 0.3, 1.4, 3),    # a wider one, more fakes than reals
])
def test_prdc_equals_the_reference_package(n_real, n_fake, shift, scale, k, capsys):
    # catches: radii from the k-th instead of the (k+1)-th neighbour, <= instead of <, density divided
    # by the number of reals, recall using the real radii, or coverage counting fakes instead of reals
    real, fake = _sets(n_real, n_fake, 20, shift, scale, seed=n_real + n_fake + k)
    ref = compute_prdc(real.numpy(), fake.numpy(), nearest_k=k)
    got = manifold.prdc(real, fake, k=k)
    for name in ("precision", "recall", "density", "coverage"):
        assert getattr(got, name) == pytest.approx(float(ref[name]), abs=1e-6), name
    capsys.readouterr()  # compute_prdc prints the set sizes


def test_identical_sets_score_perfectly_and_disjoint_sets_score_zero():
    # catches: inverted or non-strict membership (d > r, d <= r), or a point as its own neighbour
    real, _ = _sets(100, 1, 5, 0.0, 1.0, seed=0)
    same = manifold.prdc(real, real.clone(), k=3)
    assert (same.precision, same.recall, same.coverage) == (1.0, 1.0, 1.0)
    # each ball holds its centre and k - 1 others; the k-th neighbour sits on the sphere, outside under
    # strict membership (d < r), so density is exactly 1 (with d <= r it would be (k + 1) / k)
    assert same.density == 1.0
    far = manifold.prdc(real, real + 100.0, k=3)
    assert (far.precision, far.recall, far.density, far.coverage) == (0.0, 0.0, 0.0, 0.0)


def test_knn_radii_excludes_the_point_itself():
    # catches: the 0 distance of each point to itself being taken as its 1st neighbour
    x = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
    assert manifold.knn_radii(x, 1).tolist() == [1.0, 1.0, 2.0, 4.0]
    assert manifold.knn_radii(x, 2).tolist() == [3.0, 2.0, 3.0, 6.0]


@pytest.mark.parametrize(("real", "fake", "k", "match"), [
    (torch.zeros(10, 3), torch.zeros(10, 4), 3, r"\(N, D\) and \(M, D\)"),
    (torch.zeros(10), torch.zeros(10, 1), 3, r"\(N, D\) and \(M, D\)"),
    (torch.zeros(10, 3), torch.zeros(10, 3), 0, "k = 0 must be at least 1"),
    (torch.zeros(10, 3), torch.zeros(5, 3), 5, r"below both set sizes \(10, 5\)"),
])
def test_prdc_rejects_bad_shapes_and_k(real, fake, k, match):
    # catches: scoring mismatched features, or a k so large that kthvalue fails with an opaque error
    with pytest.raises(ValueError, match=match):
        manifold.prdc(real, fake, k=k)


def test_chunking_does_not_change_the_result(monkeypatch):
    # catches: chunk offsets that misalign the radii of a chunk's rows, or a last partial chunk dropped
    real, fake = _sets(230, 170, 8, 0.4, 1.2, seed=7)
    whole = manifold.prdc(real, fake, k=4)
    radii = manifold.knn_radii(real, 4)
    monkeypatch.setattr(manifold, "CHUNK", 37)
    assert manifold.prdc(real, fake, k=4) == whole
    torch.testing.assert_close(manifold.knn_radii(real, 4), radii, rtol=0, atol=0)
