"""The ring-of-Gaussians toy and its mode-coverage metric (gen_utils.ring)."""

from __future__ import annotations

import math

import pytest
import torch

import gen_utils as gu


def test_centres_lie_evenly_on_the_circle():
    ring = gu.Ring(n_modes=8, radius=2.0)
    c = ring.centres()
    assert c.shape == (8, 2)
    assert torch.allclose(c.norm(dim=1), torch.full((8,), 2.0))
    angles = torch.atan2(c[:, 1], c[:, 0]).remainder(2 * math.pi)
    assert torch.allclose(angles, 2 * math.pi * torch.arange(8) / 8, atol=1e-5)


def test_samples_are_reproducible_and_have_the_right_spread():
    ring = gu.Ring()
    a = ring.sample(20_000, generator=torch.Generator().manual_seed(0))
    b = ring.sample(20_000, generator=torch.Generator().manual_seed(0))
    assert a.shape == (20_000, 2) and torch.equal(a, b)
    dist, nearest = torch.cdist(a, ring.centres()).min(1)
    share = torch.bincount(nearest, minlength=8).float() / len(a)
    assert torch.allclose(share, torch.full((8,), 1 / 8), atol=0.01)
    # the distance to the mean of a 2-D Gaussian is Rayleigh: E = std * sqrt(pi / 2)
    assert dist.mean().item() == pytest.approx(ring.std * math.sqrt(math.pi / 2), rel=0.02)


def test_coverage_of_real_data_is_complete():
    ring = gu.Ring()
    modes, quality = ring.coverage(ring.sample(2_000, generator=torch.Generator().manual_seed(1)))
    assert modes == 8
    assert quality > 0.98  # P(|N(0, I_2)| < 3) = 1 - exp(-4.5) ≈ 0.989


def test_coverage_counts_collapsed_and_off_ring_samples():
    ring = gu.Ring()
    g = torch.Generator().manual_seed(2)
    centres = ring.centres()[torch.tensor([0, 3])]
    two_modes = centres.repeat(500, 1) + 0.01 * torch.randn(1_000, 2, generator=g)
    assert ring.coverage(two_modes) == (2, 1.0)
    origin = torch.zeros(1_000, 2)
    assert ring.coverage(origin) == (0, 0.0)
    # a mode with fewer than min_share of the points is not covered
    mixed = torch.cat([ring.centres()[:1].repeat(995, 1), ring.centres()[1:2].repeat(5, 1)])
    assert ring.coverage(mixed, min_share=0.01)[0] == 1
    assert ring.coverage(mixed, min_share=0.005)[0] == 2


def test_coverage_rejects_other_shapes():
    with pytest.raises(ValueError, match=r"\(N >= 1, 2\)"):
        gu.Ring().coverage(torch.zeros(10, 3))


def test_mode_shares_split_the_high_quality_share_by_mode():
    ring = gu.Ring()
    centres = ring.centres()
    x = torch.cat([centres[:1].repeat(600, 1), centres[5:6].repeat(300, 1), torch.zeros(100, 2)])
    shares = ring.mode_shares(x)
    expected = torch.zeros(8)
    expected[0], expected[5] = 0.6, 0.3   # the 100 points at the origin are near no mode
    assert torch.allclose(shares, expected)
    assert shares.sum().item() == pytest.approx(ring.coverage(x)[1])


def test_an_even_circle_covers_every_mode_without_learning_them():
    # points spread evenly over the circle: each mode's 3-std window is an arc of 2 asin(1.5 std / r)
    # radians, so each mode gets that over 2 pi, above the 1 % that counts as covered
    ring = gu.Ring()
    angle = torch.arange(8_000) * (2 * math.pi / 8_000)
    circle = ring.radius * torch.stack([angle.cos(), angle.sin()], 1)
    arc_share = 2 * math.asin(1.5 * ring.std / ring.radius) / math.pi
    assert torch.allclose(ring.mode_shares(circle), torch.full((8,), arc_share), atol=2e-4)
    assert ring.coverage(circle)[0] == 8
