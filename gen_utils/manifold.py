"""k-nearest-neighbour manifold metrics: precision, recall, density and coverage.

Each real sample x_i gets a radius r_i, the distance to its k-th nearest other real sample; the union of
the balls B(x_i, r_i) estimates the support of the real distribution (and likewise for the fakes).

* precision (Kynkäänniemi et al. 2019): share of fakes inside some real ball — fidelity;
* recall: share of reals inside some fake ball (radii from the fakes' own k-NN) — diversity;
* density (Naeem et al. 2020): (1/(kM)) Σ_j #{i: fake y_j in B(x_i, r_i)} — how many real balls cover a
  fake, 1 in expectation for identical distributions, so not bounded by 1;
* coverage (Naeem et al. 2020): share of real balls that contain at least one fake.

Membership is strict (d < r), as in the reference implementation (the ``prdc`` package). Distances
are computed in row chunks, so 10,000 × 10,000 pairs fit in modest memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

CHUNK = 1024


@dataclass(frozen=True)
class PRDC:
    """precision, recall, density and coverage of fakes against reals (see the module docstring)."""

    precision: float
    recall: float
    density: float
    coverage: float


def _check(real: torch.Tensor, fake: torch.Tensor, k: int) -> None:
    if real.dim() != 2 or fake.dim() != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"expected features (N, D) and (M, D), "
                         f"got {tuple(real.shape)} and {tuple(fake.shape)}")
    if not 1 <= k < min(len(real), len(fake)):
        raise ValueError(f"k = {k} must be at least 1 and below both set sizes ({len(real)}, {len(fake)})")


def knn_radii(x: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each row of x (N, D) to its k-th nearest *other* row → (N,)."""
    out = []
    for i in range(0, len(x), CHUNK):
        d = torch.cdist(x[i:i + CHUNK], x)
        out.append(d.kthvalue(k + 1, dim=1).values)  # the (k+1)-th smallest: the 1st is the point itself
    return torch.cat(out)


def prdc(real: torch.Tensor, fake: torch.Tensor, k: int = 5) -> PRDC:
    """Precision, recall, density and coverage of fake features (M, D) against real features (N, D)."""
    _check(real, fake, k)
    real, fake = real.float(), fake.float()
    r_real, r_fake = knn_radii(real, k), knn_radii(fake, k)
    in_real_ball = torch.zeros(len(fake), dtype=torch.long)   # per fake: how many real balls contain it
    real_covered = torch.zeros(len(real), dtype=torch.bool)   # per real: is its nearest fake inside its ball
    real_recalled = torch.zeros(len(real), dtype=torch.bool)  # per real: inside some fake ball
    for i in range(0, len(real), CHUNK):
        d = torch.cdist(real[i:i + CHUNK], fake)                        # (chunk, M)
        inside = d < r_real[i:i + CHUNK, None]
        in_real_ball += inside.sum(0)
        real_covered[i:i + CHUNK] = inside.any(1)
        real_recalled[i:i + CHUNK] = (d < r_fake[None, :]).any(1)
    return PRDC(
        precision=float((in_real_ball > 0).float().mean()),
        recall=float(real_recalled.float().mean()),
        density=float(in_real_ball.sum() / (k * len(fake))),
        coverage=float(real_covered.float().mean()),
    )
