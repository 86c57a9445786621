"""Sample-quality metrics for MNIST generators: FID and label accuracy with the shipped classifier.

FID (Heusel et al. 2017) fits a Gaussian to the features of real and of generated images and
reports the squared Fréchet (2-Wasserstein) distance between the two Gaussians,

    FID = ||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r^{1/2} S_g S_r^{1/2})^{1/2}).

The features are the 128-d penultimate activations of ``gen_utils.mnist_classifier`` instead of
Inception's, so the numbers are comparable within this book only. The book's convention: N = 10 000
generated images against the 10 000 test images; ``mnist_fid_floor`` (10 000 training images vs
the test set) gives the scale.
"""

from __future__ import annotations

import warnings
from functools import cache

import torch

from .mnist_classifier import classifier_outputs

FID_N = 10_000


def gaussian_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (D,) and unbiased covariance (D, D) of features (N, D), in float64."""
    if features.dim() != 2 or features.shape[0] < 2:
        raise ValueError(f"gaussian_stats expects features (N >= 2, D), got {tuple(features.shape)}")
    f = features.double()
    mu = f.mean(0)
    d = f - mu
    return mu, d.T @ d / (f.shape[0] - 1)


def _sqrt_psd(m: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a symmetric positive semi-definite matrix via eigh."""
    w, v = torch.linalg.eigh((m + m.T) / 2)
    return (v * w.clamp(min=0).sqrt()) @ v.T


def frechet_distance(mu1: torch.Tensor, cov1: torch.Tensor, mu2: torch.Tensor, cov2: torch.Tensor) -> float:
    """Fréchet distance between N(mu1, cov1) and N(mu2, cov2); mu (D,), cov (D, D).

    Tr((S1 S2)^{1/2}) is computed as Tr((S1^{1/2} S2 S1^{1/2})^{1/2}): the two matrices are similar,
    and the second is symmetric PSD, so both square roots come from a float64 eigendecomposition
    (no complex parts to discard, unlike a general sqrtm).
    """
    mu1, mu2, cov1, cov2 = (t.detach().double().cpu() for t in (mu1, mu2, cov1, cov2))
    if mu1.shape != mu2.shape or cov1.shape != cov2.shape or cov1.shape != (mu1.numel(), mu1.numel()):
        raise ValueError(f"shape mismatch: mu {tuple(mu1.shape)}, {tuple(mu2.shape)}; "
                         f"cov {tuple(cov1.shape)}, {tuple(cov2.shape)}")
    s1 = _sqrt_psd(cov1)
    w = torch.linalg.eigvalsh(s1 @ cov2 @ s1)
    tr_covmean = w.clamp(min=0).sqrt().sum()
    value = (mu1 - mu2).square().sum() + cov1.trace() + cov2.trace() - 2 * tr_covmean
    return max(float(value), 0.0)


def warn_if_few(features: torch.Tensor) -> None:
    """Warn when there are fewer samples than feature dimensions: the covariance is then singular
    and FID is biased upwards (it keeps falling as N grows), so it cannot be compared."""
    n, d = features.shape
    if n < d:
        warnings.warn(f"FID from {n} samples of {d}-dimensional features: the covariance estimate is "
                      f"singular and the FID is biased upwards; use N >= {d} (the book uses 10,000)",
                      stacklevel=3)


def fid_from_features(feats1: torch.Tensor, feats2: torch.Tensor) -> float:
    """FID between two feature sets (N1, D) and (N2, D)."""
    warn_if_few(feats1)
    warn_if_few(feats2)
    return frechet_distance(*gaussian_stats(feats1), *gaussian_stats(feats2))


@cache
def _test_stats() -> tuple[torch.Tensor, torch.Tensor]:
    from .mnist import load_mnist, to_unit

    feats, _ = classifier_outputs(to_unit(load_mnist("test")[0]))
    return gaussian_stats(feats)


def mnist_fid(images: torch.Tensor, batch_size: int = 1000) -> float:
    """FID of images (N, 1, 28, 28) in [0, 1] (or uint8) against the 10 000 MNIST test images.

    Use N = ``FID_N`` (10 000) for numbers reported in the book: FID is biased upwards for small N.
    Features are computed in batches on the images' device, without gradients.
    """
    feats, _ = classifier_outputs(images, batch_size=batch_size)
    warn_if_few(feats)
    return frechet_distance(*gaussian_stats(feats), *_test_stats())


def mnist_fid_floor(n: int = FID_N, seed: int = 0) -> float:
    """Real-vs-real FID: ``n`` random MNIST training images against the test set (the scale of FID)."""
    from .mnist import load_mnist, to_unit

    x, _ = load_mnist("train")
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
    return mnist_fid(to_unit(x[idx]))


def label_accuracy(images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    """Share of images (N, 1, 28, 28) that the classifier assigns the intended labels (N,).

    For a label-conditional generator: ``label_accuracy(G(z, y), y)``.
    """
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    _, logits = classifier_outputs(images, batch_size=batch_size)
    return (logits.argmax(1) == labels.cpu()).float().mean().item()


def fit_fid_infinity(ns, fids) -> tuple[float, float]:
    """Least-squares fit of FID_N = a + b / N (Chong & Forsyth 2020): returns (a = FID∞, b).

    ns: sample sizes; fids: the FID measured at each. FID's bias is, to first order, proportional to
    1/N, so ``a`` estimates the FID of infinitely many samples and lets runs with different N be compared.
    """
    n = torch.as_tensor(ns, dtype=torch.float64)
    f = torch.as_tensor(fids, dtype=torch.float64)
    if n.shape != f.shape or n.numel() < 2:
        raise ValueError(f"need as many FIDs as sample sizes, at least two; got {n.numel()} and {f.numel()}")
    design = torch.stack([torch.ones_like(n), 1.0 / n], 1)
    a, b = torch.linalg.lstsq(design, f[:, None]).solution.flatten().tolist()
    return a, b
