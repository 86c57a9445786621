"""Paired bootstrap for corpus BLEU and chrF (gen_utils.significance), cross-checked against sacreBLEU."""

from __future__ import annotations

import random

import numpy as np
import pytest
import sacrebleu
from sacrebleu.significance import _paired_bs_test

from gen_utils import significance as sig

WORDS = ("a man is riding a red bike down the street while two dogs run behind him in the rain "
         "the girl in a blue dress plays with her little brother on the green grass near a lake").split()


def _corpus(n: int = 30, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 12))) for _ in range(n)]


def _edit(sentences: list[str], rate: float, seed: int) -> list[str]:
    """Replace each word with probability ``rate``, and drop the last word of every third sentence."""
    rng = random.Random(seed)
    out = []
    for i, s in enumerate(sentences):
        words = [rng.choice(WORDS) if rng.random() < rate else w for w in s.split()]
        out.append(" ".join(words[:-1] if i % 3 == 0 else words))
    return out


REFS = _corpus()
GOOD = _edit(REFS, 0.1, seed=1)
BAD = _edit(REFS, 0.5, seed=2)


@pytest.mark.parametrize("metric", ["bleu", "chrf"])
def test_summed_sentence_stats_give_sacrebleus_corpus_score(metric):
    # catches: statistics extracted with the references in the wrong nesting, or scores of averaged
    # per-sentence scores instead of corpus scores of summed statistics
    corpus_score = sacrebleu.corpus_bleu if metric == "bleu" else sacrebleu.corpus_chrf
    for hyps in (GOOD, BAD):
        stats = sig.sentence_stats(hyps, REFS, metric)
        assert stats.shape[0] == len(REFS)
        got = sig.score_from_stats(stats.sum(0), metric)
        assert got == pytest.approx(corpus_score(hyps, [REFS]).score, abs=1e-9)
    assert sig.score_from_stats(sig.sentence_stats(GOOD, REFS, metric).sum(0), metric) > 0


def test_identical_systems_differ_by_exactly_zero():
    # catches: the two systems resampled on different indices (the deltas would then scatter around 0)
    result = sig.paired_bootstrap(GOOD, list(GOOD), REFS, metric="chrf", n=200)
    assert result.delta == 0.0
    assert np.all(result.deltas == 0.0) and result.low == 0.0 and result.high == 0.0
    assert result.p_value == 1.0   # A never beats B, so "A is better" is not supported


@pytest.mark.parametrize("metric", ["bleu", "chrf"])
def test_a_clearly_better_system_is_significant(metric):
    # catches: the difference taken the wrong way round (B − A), or a p-value counting wins instead of losses
    result = sig.paired_bootstrap(GOOD, BAD, REFS, metric=metric, n=300)
    assert result.delta > 0 and 0 < result.low < result.delta < result.high
    assert result.p_value < 0.05
    assert len(result.deltas) == 300
    flipped = sig.paired_bootstrap(BAD, GOOD, REFS, metric=metric, n=300)
    np.testing.assert_allclose(flipped.deltas, -result.deltas, atol=1e-9)
    assert flipped.p_value > 0.95


@pytest.mark.parametrize("metric", ["bleu", "chrf"])
def test_deltas_reproduce_sacrebleus_paired_bootstrap_p_value(metric):
    # catches: resampling indices drawn differently from sacreBLEU (same seed, same rng.choice call),
    # so our resampled differences would not be sacreBLEU's. sacreBLEU's own p-value is the Moses one:
    # p = (#{i: |d_i| − mean|d| > |delta|} + 1) / (n + 1), computed here from our deltas.
    m = sacrebleu.metrics.BLEU() if metric == "bleu" else sacrebleu.metrics.CHRF()
    bl_stats = m._extract_corpus_statistics(BAD, [REFS])
    baseline = {metric: (bl_stats, m._aggregate_and_compute(bl_stats))}
    # a pair of systems close enough that the p-value is not just 1/(n+1)
    close = _edit(REFS, 0.45, seed=3)
    _, results = _paired_bs_test(baseline, "close", close, [REFS], {metric: m}, n_samples=300, seed=12345)
    ours = sig.paired_bootstrap(close, BAD, REFS, metric=metric, n=300, seed=12345)
    d = np.abs(ours.deltas)
    moses_p = (np.sum(d - d.mean() > abs(ours.delta)) + 1) / (len(d) + 1)
    assert moses_p == pytest.approx(results[metric].p_value, abs=1e-12)
    assert abs(ours.delta) == pytest.approx(abs(results[metric].score - baseline[metric][1].score), abs=1e-9)


def test_unknown_metric_and_length_mismatch_raise():
    # catches: a typo ("BLEU", "ter") silently scored with a default metric, or a truncated corpus
    with pytest.raises(ValueError, match="metric must be one of"):
        sig.sentence_stats(GOOD, REFS, metric="ter")
    with pytest.raises(ValueError, match="metric must be one of"):
        sig.paired_bootstrap(GOOD, BAD, REFS, metric="BLEU", n=10)
    with pytest.raises(ValueError, match="29 hypotheses but 30 references"):
        sig.sentence_stats(GOOD[:-1], REFS)
