"""The data-copying test (gen_utils.copying): Mann–Whitney z against scipy, and the test's behaviour."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import mannwhitneyu

from gen_utils import copying as cp

# A 2-D mixture of two tight and two wide, well-separated clusters: nearest-neighbour distances are
# much smaller in the tight ones, so which clusters a generator visits changes the global distances.
CENTERS = torch.tensor([[0.0, 0.0], [20.0, 0.0], [0.0, 20.0], [20.0, 20.0]])
SDS = torch.tensor([0.3, 0.3, 2.0, 2.0])


def _mixture(n: int, components: list[int], g: torch.Generator) -> torch.Tensor:
    c = torch.tensor(components)[torch.randint(len(components), (n,), generator=g)]
    return CENTERS[c] + SDS[c, None] * torch.randn(n, 2, generator=g)


def _phi(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2))


@pytest.fixture(scope="module")
def split():
    """train, held-out and a generator for fresh draws, all from the full mixture (fixed seed)."""
    g = torch.Generator().manual_seed(0)
    return _mixture(2_000, [0, 1, 2, 3], g), _mixture(1_000, [0, 1, 2, 3], g), g


@pytest.fixture(scope="module")
def reference(split):
    """The split prepared once (k-means is the slow part) for the global test and for 8 cells."""
    train, held, _ = split
    return {cells: cp.CopyTestReference(train, held, cells=cells) for cells in (1, 8)}


@pytest.mark.parametrize("case", ["continuous", "shifted", "heavy ties", "unequal sizes"])
def test_mann_whitney_z_matches_scipy(case):
    # catches: U counted the wrong way round (a > b vs a < b), ties not given 1/2 or the tie correction
    # of the variance missing (the heavy-ties case: most distances are exactly 0, as with copies)
    g = torch.Generator().manual_seed(1)
    if case == "heavy ties":
        # 60 % and 30 % exact zeros, the rest in {1, 2, 3}: four distinct values among 200 numbers
        a = torch.randint(1, 4, (80,), generator=g).float() * (torch.rand(80, generator=g) >= 0.6)
        b = torch.randint(1, 4, (120,), generator=g).float() * (torch.rand(120, generator=g) >= 0.3)
    else:
        m = 37 if case == "unequal sizes" else 100
        a = torch.randn(m, generator=g, dtype=torch.float64) - (0.4 if case == "shifted" else 0.0)
        b = torch.randn(100, generator=g, dtype=torch.float64)
    # float64 inputs: scipy returns its p-value in the input's precision
    ref = mannwhitneyu(a.double().numpy(), b.double().numpy(), alternative="less", method="asymptotic",
                       use_continuity=False)
    assert _phi(cp.mann_whitney_z(a, b)) == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-15)


def test_mann_whitney_z_sign_and_errors():
    # catches: the sign flipped (copying must give z << 0), and undefined cases passing silently
    assert cp.mann_whitney_z(torch.zeros(30) + 0.1 * torch.arange(30), torch.arange(30.0) + 10) < -6
    with pytest.raises(ValueError, match="non-empty"):
        cp.mann_whitney_z(torch.zeros(0), torch.ones(3))
    with pytest.raises(ValueError, match="all distances are equal"):
        cp.mann_whitney_z(torch.zeros(5), torch.zeros(5))


def test_nearest_distances_is_the_minimum_over_the_training_set(monkeypatch):
    # catches: a max instead of a min, or chunks that drop or misplace rows
    g = torch.Generator().manual_seed(2)
    x, train = torch.randn(50, 3, generator=g), torch.randn(70, 3, generator=g)
    expected = torch.cdist(x.double(), train.double()).min(1).values.float()
    monkeypatch.setattr(cp, "CHUNK", 16)
    torch.testing.assert_close(cp.nearest_distances(x, train), expected)
    with pytest.raises(ValueError, match=r"\(N, D\) and \(M, D\)"):
        cp.nearest_distances(x, train[:, :2])


def test_copies_are_flagged(split, reference):
    # catches: a test that cannot see memorisation (copies sit at distance ~0 from the training set)
    train, held, g = split
    picked = train[torch.randint(len(train), (1_000,), generator=g)]
    copies = picked + 1e-3 * torch.randn(1_000, 2, generator=g)
    result = reference[8].test(copies)
    assert result.p_value < 1e-3 and result.z < -10
    assert result.median_gen < 0.01 * result.median_held


def test_fresh_samples_are_not_flagged(reference):
    # catches: a miscalibrated statistic that flags honest samples from the training distribution
    fresh = _mixture(1_000, [0, 1, 2, 3], torch.Generator().manual_seed(10))
    for cells in (1, 8):
        assert reference[cells].test(fresh).p_value > 0.01, cells


def test_mode_dropping_is_not_mistaken_for_copying_when_cells_are_used(reference):
    # catches: cells not separating regions (the global test flags a generator that visits only the
    # tight clusters, because its samples are closer to training data there, though nothing is copied)
    dropped = _mixture(1_000, [0, 1], torch.Generator().manual_seed(11))   # fresh draws, tight clusters only
    assert reference[1].test(dropped).p_value < 1e-6
    per_cell = reference[8].test(dropped)
    assert per_cell.p_value > 0.01
    assert per_cell.cells_used < 8          # the cells of the dropped clusters hold no samples


def test_one_cell_is_the_global_mann_whitney_test(split):
    # catches: weights or standardisation that change the statistic when there is a single cell
    train, held, _ = split
    gen = _mixture(500, [0, 1, 2, 3], torch.Generator().manual_seed(12)) * 1.05
    result = cp.copy_test(gen, held, train, cells=1)
    z = cp.mann_whitney_z(cp.nearest_distances(gen, train), cp.nearest_distances(held, train))
    assert result.z == pytest.approx(z, rel=1e-12)
    assert result.c_t == pytest.approx(z, rel=1e-12) and result.cells_used == 1
    assert result.p_value == pytest.approx(_phi(z), rel=1e-12)


def test_cells_are_combined_with_held_out_weights_and_standardised(split, reference):
    # catches: per-cell z's averaged without the held-out shares π_j, or C_T reported as z without
    # standardising it (C_T has variance Σπ²/(Σπ)² < 1 under the null, so p-values would be too large)
    train, held, _ = split
    gen = _mixture(1_000, [0, 1, 2, 3], torch.Generator().manual_seed(13)) * 0.97
    result = reference[8].test(gen)
    centroids = reference[8].centroids
    cell_gen, cell_held = cp.assign_cells(gen, centroids), cp.assign_cells(held, centroids)
    d_gen, d_held = cp.nearest_distances(gen, train), cp.nearest_distances(held, train)
    zs, pis = [], []
    for j in range(8):
        a, b = d_gen[cell_gen == j], d_held[cell_held == j]
        if len(a) >= 20 and len(b) >= 20:
            zs.append(cp.mann_whitney_z(a, b))
            pis.append(len(b) / len(held))
    c_t = sum(p * z for p, z in zip(pis, zs, strict=True)) / sum(pis)
    assert result.cells_used == len(zs) > 1
    assert result.c_t == pytest.approx(c_t, rel=1e-9)
    assert result.z == pytest.approx(c_t * sum(pis) / math.sqrt(sum(p * p for p in pis)), rel=1e-9)
    assert result.p_value == pytest.approx(_phi(result.z), rel=1e-9)


def test_a_prepared_reference_gives_copy_tests_result_after_other_generators(split, reference):
    # catches: state left over from one generator's test changing the next one's result, or a reference
    # whose cells differ from those copy_test builds
    train, held, g = split
    copies = train[:600] + 1e-3 * torch.randn(600, 2, generator=g)
    fresh = _mixture(600, [0, 1, 2, 3], torch.Generator().manual_seed(14))
    reference[8].test(copies)
    assert reference[8].test(fresh) == cp.copy_test(fresh, held, train, cells=8)


def test_kmeans_finds_well_separated_centroids(split):
    # catches: centroids not updated to their members' means, or assignments to the farthest centroid
    train, _, _ = split
    centroids = cp.kmeans(train, 4, generator=torch.Generator().manual_seed(0))
    nearest = torch.cdist(CENTERS, centroids).min(1).values
    assert nearest.max() < 0.5, centroids
    assert sorted(cp.assign_cells(CENTERS, centroids).tolist()) == [0, 1, 2, 3]


def test_no_usable_cell_raises(split):
    # catches: an empty set of cells turning into a NaN statistic instead of an error
    train, held, _ = split
    with pytest.raises(ValueError, match="no cell holds 50 generated"):
        cp.copy_test(held[:30], held, train, cells=1, min_per_cell=50)
