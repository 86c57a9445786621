"""Sample-quality scores computed from classifier outputs: KID and the Inception Score.

Both take the outputs of a fixed network (the book uses ``gen_utils.mnist_classifier``'s 128-d
features and 10 logits instead of Inception's, so the numbers compare within this book only).

KID (Bińkowski et al. 2018) is the squared maximum mean discrepancy between the two feature sets under
the polynomial kernel k(x, y) = (x·y / d + 1)^3, estimated without bias:

    MMD²_u = 1/(m(m-1)) Σ_{i≠j} k(x_i, x_j) + 1/(n(n-1)) Σ_{i≠j} k(y_i, y_j) − 2/(mn) Σ_{i,j} k(x_i, y_j),

so its expectation is exactly 0 when both sets come from one distribution, at any sample size
(FID's plug-in estimate is biased upwards, and more so for small N).

The Inception Score (Salimans et al. 2016) is exp(E_x KL(p(y|x) ‖ p(y))), p(y) = E_x p(y|x): high when
each image is classified confidently *and* the classes are used evenly; at most the number of classes.
"""

from __future__ import annotations

import math

import torch


def polynomial_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """k(a_i, b_j) = (a_i·b_j / d + 1)^3 for features a (M, D), b (N, D) → (M, N), in float64."""
    d = a.shape[1]
    return (a.double() @ b.double().T / d + 1.0) ** 3


def mmd2_unbiased(a: torch.Tensor, b: torch.Tensor) -> float:
    """Unbiased MMD² (the KID of one subset) between features a (M, D) and b (N, D), M, N >= 2."""
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"expected features (M, D) and (N, D), got {tuple(a.shape)} and {tuple(b.shape)}")
    m, n = len(a), len(b)
    if m < 2 or n < 2:
        raise ValueError(f"the unbiased MMD needs at least 2 samples per set, got {m} and {n}")
    k_aa, k_bb = polynomial_kernel(a, a), polynomial_kernel(b, b)
    within_a = (k_aa.sum() - k_aa.diagonal().sum()) / (m * (m - 1))  # i != j only: that removes the bias
    within_b = (k_bb.sum() - k_bb.diagonal().sum()) / (n * (n - 1))
    return float(within_a + within_b - 2 * polynomial_kernel(a, b).mean())


def kid(a: torch.Tensor, b: torch.Tensor, subsets: int = 100, subset_size: int = 1000,
        generator: torch.Generator | None = None) -> tuple[float, float]:
    """KID between features a (M, D) and b (N, D): (mean, standard deviation) over random subsets.

    Each subset draws ``subset_size`` rows of each set without replacement (as Bińkowski et al. and
    torchmetrics do); the standard deviation is over subsets, so the standard error of the mean is
    roughly std / sqrt(subsets) only when the subsets barely overlap.
    """
    size = min(subset_size, len(a), len(b))
    if size < 2:
        raise ValueError(f"KID needs subsets of at least 2 samples; the sets have {len(a)} and {len(b)} rows")
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    values = []
    for _ in range(subsets):
        ia, ib = torch.randperm(len(a), generator=g)[:size], torch.randperm(len(b), generator=g)[:size]
        values.append(mmd2_unbiased(a[ia], b[ib]))
    values = torch.tensor(values)
    return float(values.mean()), float(values.std()) if subsets > 1 else 0.0


def inception_score(logits: torch.Tensor, splits: int = 1) -> float:
    """exp(E_x KL(p(y|x) ‖ p(y))) from classifier logits (N, C); the mean over ``splits`` equal parts.

    Salimans et al. report the mean over 10 splits of 5,000 images; ``splits=1`` scores the whole set.
    Lies in [1, C]: 1 when every image gets the same prediction, C when each is one confident class
    and the classes are used equally.
    """
    if logits.dim() != 2:
        raise ValueError(f"expected logits (N, C), got shape {tuple(logits.shape)}")
    scores = []
    for part in logits.double().chunk(splits):
        log_p = part.log_softmax(1)                                       # log p(y|x)
        log_marginal = log_p.logsumexp(0) - math.log(len(part))            # log p(y) = log mean_x p(y|x)
        kl = (log_p.exp() * (log_p - log_marginal)).sum(1)                 # KL(p(y|x) || p(y)) per image
        scores.append(float(kl.mean().exp()))
    return sum(scores) / len(scores)
