"""The 2-D "ring of Gaussians" toy used by the GAN chapters, and its mode-coverage metric.

Data: an equal-weight mixture of ``n_modes`` isotropic Gaussians (standard deviation ``std``)
whose means sit evenly on a circle of radius ``radius``. A generated point is *high quality*
if it lies within 3 standard deviations of some mean; a mode is *covered* if at least
``min_share`` of the generated points are high-quality points of that mode (the fair share
is 1 / n_modes). Counting covered modes is the standard way to measure mode collapse on this
toy (Metz et al. 2017, Srivastava et al. 2017).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Ring:
    """A ring of ``n_modes`` Gaussians of standard deviation ``std`` on a circle of ``radius``."""

    n_modes: int = 8
    radius: float = 2.0
    std: float = 0.05

    def centres(self, device: torch.device | str | None = None) -> torch.Tensor:
        """Means of the modes, (n_modes, 2); mode k at angle 2πk / n_modes."""
        angle = 2 * math.pi * torch.arange(self.n_modes, device=device) / self.n_modes
        return self.radius * torch.stack([angle.cos(), angle.sin()], 1)

    def sample(self, n: int, generator: torch.Generator | None = None,
               device: torch.device | str | None = None) -> torch.Tensor:
        """n points (n, 2): a uniformly chosen mode plus N(0, std² I) noise.

        ``generator`` must live on ``device`` (default CPU) when given.
        """
        k = torch.randint(self.n_modes, (n,), generator=generator, device=device)
        noise = torch.randn(n, 2, generator=generator, device=device)
        return self.centres(device)[k] + self.std * noise

    def _good_counts(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(high-quality mask (N,), high-quality points per mode (n_modes,)) of points x (N, 2)."""
        if x.dim() != 2 or x.shape[1] != 2 or len(x) == 0:
            raise ValueError(f"expected generated points (N >= 1, 2), got {tuple(x.shape)}")
        dist, nearest = torch.cdist(x.detach().float(), self.centres(x.device)).min(1)
        good = dist < 3 * self.std
        return good, torch.bincount(nearest[good], minlength=self.n_modes)

    def mode_shares(self, x: torch.Tensor) -> torch.Tensor:
        """Share of the generated points x (N, 2) that are high-quality points of each mode, (n_modes,).

        A point is high quality if it lies within 3 std of its nearest mean. The shares sum to the
        high-quality share; data gives about 0.99 / n_modes each (P(|N(0, I_2)| < 3) ≈ 0.989).
        """
        return self._good_counts(x)[1].float().cpu() / len(x)

    def coverage(self, x: torch.Tensor, min_share: float = 0.01) -> tuple[int, float]:
        """(modes covered, share of high-quality points) of generated points x (N, 2).

        A mode is covered if at least ``min_share`` · N of the points are high-quality points of it
        (see ``mode_shares``).
        """
        good, counts = self._good_counts(x)
        return int((counts >= min_share * len(x)).sum()), good.float().mean().item()
