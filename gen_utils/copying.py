"""A data-copying test: are generated samples closer to the training set than fresh real data is?

A model that returns its training images (or near copies) has perfect-looking samples, and FID or
precision cannot tell. Meehan, Chaudhuri & Dasgupta (2020) compare two distributions of distances:

* d_gen: the distance from each generated sample to its nearest training example;
* d_held: the distance from each held-out real example (never trained on) to its nearest training
  example.

With no copying, both come from the same distribution. Copying makes d_gen stochastically smaller.
Their test statistic is the Mann–Whitney U statistic, standardised: Z_U = (U − mn/2) / sqrt(mn(m+n+1)/12),
with U = #{(i, j): d_gen_i > d_held_j} (ties count 1/2), so Z_U ≪ 0 flags copying. Meehan et al. also
compute it per cell of a partition of the training set and average (their C_T): within a cell,
samples and held-out data are compared only with each other, so a generator that merely changes how
often each region is visited (dropping modes) is not mistaken for a copier. This module partitions
the feature space with k-means on the training features, keeps the cells holding at least
``min_per_cell`` generated samples and ``min_per_cell`` held-out points, and combines the per-cell
statistics Z_j with the held-out share π_j of each cell: C_T = Σ π_j Z_j / Σ π_j. Under the null each
Z_j is approximately N(0, 1) and the cells are independent, so C_T / sqrt(Σ π_j²) · Σ π_j is
approximately N(0, 1), which gives the one-sided p-value. ``cells=1`` is the global test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

CHUNK = 1024


@dataclass(frozen=True)
class CopyTest:
    """Result of ``copy_test``: the standardised statistic z, its one-sided p-value, Meehan et al.'s C_T,
    the number of cells used and the median nearest-training distances of samples and held-out data."""

    z: float
    p_value: float
    c_t: float
    cells_used: int
    median_gen: float
    median_held: float


def nearest_distances(x: torch.Tensor, train: torch.Tensor) -> torch.Tensor:
    """Distance from each row of x (N, D) to its nearest row of train (M, D) → (N,)."""
    if x.dim() != 2 or train.dim() != 2 or x.shape[1] != train.shape[1]:
        raise ValueError(f"expected features (N, D) and (M, D), "
                         f"got {tuple(x.shape)} and {tuple(train.shape)}")
    x, train = x.float(), train.float()
    return torch.cat([torch.cdist(x[i:i + CHUNK], train).min(1).values for i in range(0, len(x), CHUNK)])


def mann_whitney_z(a: torch.Tensor, b: torch.Tensor) -> float:
    """Standardised Mann–Whitney U of samples a (m,) against b (n,): negative when a tends to be smaller.

    U counts pairs with a_i > b_j (ties 1/2), computed from mid-ranks; the variance carries the tie
    correction mn/12 · (m+n+1 − Σ(t³−t)/((m+n)(m+n−1))), so heavy ties (exact copies at distance 0) are
    handled.
    """
    m, n = len(a), len(b)
    if m < 1 or n < 1:
        raise ValueError(f"both samples must be non-empty, got sizes {m} and {n}")
    values = torch.cat([a.double().flatten(), b.double().flatten()])
    uniq, inverse, counts = values.unique(return_inverse=True, return_counts=True)
    # mid-rank of each distinct value: ranks below it plus the middle of its tied block
    below = torch.cumsum(counts, 0) - counts
    ranks = (below + (counts + 1) / 2.0)[inverse]
    u = float(ranks[:m].sum()) - m * (m + 1) / 2
    t = counts.double()
    N = m + n
    tie = float((t ** 3 - t).sum()) / (N * (N - 1)) if N > 1 else 0.0
    var = m * n / 12.0 * (N + 1 - tie)
    if var <= 0:
        raise ValueError("all distances are equal: the test is undefined")
    return (u - m * n / 2) / math.sqrt(var)


def kmeans(x: torch.Tensor, k: int, iters: int = 20,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """Lloyd's k-means on rows of x (N, D): returns the centroids (k, D); starts from k random rows."""
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    x = x.float()
    centroids = x[torch.randperm(len(x), generator=g)[:k]].clone()
    for _ in range(iters):
        assign = assign_cells(x, centroids)
        for j in range(k):
            members = x[assign == j]
            if len(members):                       # an empty cell keeps its old centroid
                centroids[j] = members.mean(0)
    return centroids


def assign_cells(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Index of the nearest centroid (K, D) for each row of x (N, D) → (N,)."""
    x = x.float()
    return torch.cat([torch.cdist(x[i:i + CHUNK], centroids).argmin(1) for i in range(0, len(x), CHUNK)])


class CopyTestReference:
    """The training and held-out features of a copy test, prepared once for many generators.

    train (M, D): the generator's training data; held (K, D): real data from the same distribution,
    never trained on (a random split of one set). Precomputes the k-means cells (``cells``; 1 for the
    global test) and the held-out distances, so ``test(gen)`` only measures the samples.
    """

    def __init__(self, train: torch.Tensor, held: torch.Tensor, cells: int = 20, min_per_cell: int = 20,
                 generator: torch.Generator | None = None) -> None:
        self.train, self.cells, self.min_per_cell = train.float(), cells, min_per_cell
        self.centroids = None if cells == 1 else kmeans(self.train, cells, generator=generator)
        self.d_held, self.cell_held = nearest_distances(held, self.train), self._cells(held)

    def _cells(self, x: torch.Tensor) -> torch.Tensor:
        if self.centroids is None:
            return torch.zeros(len(x), dtype=torch.long)
        return assign_cells(x, self.centroids)

    def test(self, gen: torch.Tensor) -> CopyTest:
        """Copy test of generated features gen (N, D); see ``copy_test``."""
        d_gen, cell_gen = nearest_distances(gen, self.train), self._cells(gen)
        zs, weights = [], []
        for j in range(self.cells):
            a, b = d_gen[cell_gen == j], self.d_held[self.cell_held == j]
            if len(a) >= self.min_per_cell and len(b) >= self.min_per_cell:
                zs.append(mann_whitney_z(a, b))
                weights.append(len(b) / len(self.d_held))    # π_j: the held-out share of cell j
        if not zs:
            raise ValueError(f"no cell holds {self.min_per_cell} generated and {self.min_per_cell} held-out "
                             "points: use fewer cells or more samples")
        w, z_cells = torch.tensor(weights, dtype=torch.float64), torch.tensor(zs, dtype=torch.float64)
        c_t = float((w * z_cells).sum() / w.sum())
        z = c_t * float(w.sum() / w.square().sum().sqrt())    # C_T standardised to N(0, 1) under the null
        p = 0.5 * math.erfc(-z / math.sqrt(2))                  # Φ(z), the lower tail of N(0, 1)
        return CopyTest(z=z, p_value=p, c_t=c_t, cells_used=len(zs),
                        median_gen=float(d_gen.median()), median_held=float(self.d_held.median()))


def copy_test(gen: torch.Tensor, held: torch.Tensor, train: torch.Tensor, cells: int = 20,
              min_per_cell: int = 20, generator: torch.Generator | None = None) -> CopyTest:
    """Test generated features gen (N, D) for copying of train (M, D), against held-out reals held (K, D).

    Returns the combined, standardised statistic (``z``) and its one-sided p-value Φ(z): small when the
    samples sit closer to the training data than held-out real data does. ``held`` must come from the
    same distribution as ``train`` and must not overlap it (a random split of one set), or the test
    compares two different distributions. ``cells`` k-means cells of the training features (1: global).
    For several generators against one reference, build a ``CopyTestReference`` once.
    """
    return CopyTestReference(train, held, cells, min_per_cell, generator).test(gen)
