"""KID and the Inception Score (gen_utils.feature_metrics), cross-checked against torchmetrics."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from _helpers import FeatureIdentity
from torchmetrics.image.inception import InceptionScore
from torchmetrics.image.kid import KernelInceptionDistance, poly_mmd

from gen_utils import feature_metrics as fm

pytestmark = pytest.mark.filterwarnings("ignore:Metric .* will save all extracted features:UserWarning")




def test_polynomial_kernel_is_the_cubic_kernel_of_binkowski_et_al():
    # catches: a wrong scale (x·y instead of x·y / d), offset or degree in the kernel
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(4, 6, generator=g), torch.randn(3, 6, generator=g)
    expected = torch.tensor([[(float(x @ y) / 6 + 1) ** 3 for y in b] for x in a], dtype=torch.float64)
    torch.testing.assert_close(fm.polynomial_kernel(a, b), expected, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("shift", [0.0, 0.5])
def test_mmd2_unbiased_equals_torchmetrics_poly_mmd(shift):
    # catches: the diagonal kept in the within-set sums (biased MMD), or wrong normalisers m(m-1), mn
    g = torch.Generator().manual_seed(1)
    a = torch.randn(200, 16, generator=g, dtype=torch.float64)
    b = torch.randn(200, 16, generator=g, dtype=torch.float64) + shift
    ref = float(poly_mmd(a, b, degree=3, gamma=None, coef=1.0))
    assert fm.mmd2_unbiased(a, b) == pytest.approx(ref, rel=1e-6, abs=1e-12)


def test_kid_equals_torchmetrics_kid_when_each_subset_is_the_whole_set():
    # catches: kid averaging something other than the unbiased MMD of its subsets (subsets of the
    # full size are permutations, so the random draws cannot make the two libraries differ)
    g = torch.Generator().manual_seed(2)
    a = torch.randn(120, 8, generator=g, dtype=torch.float64)
    b = 0.8 * torch.randn(120, 8, generator=g, dtype=torch.float64) + 0.3
    tm = KernelInceptionDistance(feature=FeatureIdentity(8), subsets=3, subset_size=120)
    tm.update(a, real=True)
    tm.update(b, real=False)
    ref = float(tm.compute()[0])
    mean, std = fm.kid(a, b, subsets=3, subset_size=120)
    assert mean == pytest.approx(ref, rel=1e-3)
    assert std == pytest.approx(0.0, abs=1e-9 * abs(mean))


def _biased_mmd2(a: torch.Tensor, b: torch.Tensor) -> float:
    """The plug-in (V-statistic) MMD², diagonal included: > 0 in expectation even for one distribution."""
    k = fm.polynomial_kernel
    return float(k(a, a).mean() + k(b, b).mean() - 2 * k(a, b).mean())


def test_kid_is_unbiased_for_one_distribution_and_positive_for_a_shift():
    # catches: a biased estimator (the plug-in MMD² sits ~50 standard errors above zero on these draws)
    g = torch.Generator().manual_seed(3)
    pairs = [(torch.randn(20, 4, generator=g), torch.randn(20, 4, generator=g)) for _ in range(400)]
    values = torch.tensor([fm.mmd2_unbiased(a, b) for a, b in pairs])
    se = float(values.std()) / math.sqrt(len(values))
    assert abs(float(values.mean())) < 4 * se
    assert sum(_biased_mmd2(a, b) for a, b in pairs) / len(pairs) > 20 * se  # so the check above has power
    mean, std = fm.kid(torch.randn(400, 4, generator=g), torch.randn(400, 4, generator=g) + 1.0,
                       subsets=10, subset_size=100)
    assert mean > 100 * se and mean > 3 * std


def test_mmd2_unbiased_rejects_bad_shapes():
    # catches: silently scoring mismatched feature widths or a single sample
    with pytest.raises(ValueError, match=r"\(M, D\)"):
        fm.mmd2_unbiased(torch.zeros(5, 3), torch.zeros(5, 4))
    with pytest.raises(ValueError, match="at least 2 samples"):
        fm.mmd2_unbiased(torch.zeros(1, 3), torch.zeros(5, 3))


def test_inception_score_limits():
    # catches: a wrong KL direction or marginal (the score must span exactly [1, C])
    confident = (50 * torch.eye(10)).repeat(30, 1)       # each class once per block: used evenly
    assert fm.inception_score(confident) == pytest.approx(10.0, abs=1e-3)
    same = torch.randn(1, 10, generator=torch.Generator().manual_seed(4)).repeat(50, 1)
    assert fm.inception_score(same) == pytest.approx(1.0, abs=1e-9)
    # confident but only 5 classes used: the score counts the classes in use
    assert fm.inception_score((50 * torch.eye(10))[:5].repeat(20, 1)) == pytest.approx(5.0, abs=1e-3)


def test_inception_score_matches_torchmetrics_with_a_custom_feature_module():
    # catches: any departure from exp(E KL(p(y|x) || p(y))) as torchmetrics computes it
    # (torchmetrics' InceptionScore takes an nn.Module; its output is treated as the logits)
    logits = 3 * torch.randn(500, 10, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    tm = InceptionScore(feature=FeatureIdentity(10), splits=1)
    tm.update(logits)
    with warnings.catch_warnings():  # the std of a single split is undefined; only the mean is compared
        warnings.simplefilter("ignore")
        ref = float(tm.compute()[0])
    assert fm.inception_score(logits) == pytest.approx(ref, rel=1e-4)
    assert 1.0 < ref < 10.0


def test_inception_score_splits_average_the_parts():
    # catches: splits ignored, or the marginal p(y) taken over the whole set instead of each part
    logits = 2 * torch.randn(300, 10, generator=torch.Generator().manual_seed(6))
    parts = [fm.inception_score(p) for p in logits.chunk(3)]
    assert fm.inception_score(logits, splits=3) == pytest.approx(sum(parts) / 3, rel=1e-12)
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        fm.inception_score(torch.zeros(10))
