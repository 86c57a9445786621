"""Paired bootstrap resampling for corpus-level text metrics (Koehn 2004).

Corpus BLEU and chrF are functions of sums of per-sentence statistics (n-gram matches and totals,
lengths), so a bootstrap resample of the test set only re-adds rows of statistics. sacreBLEU extracts
those rows itself (``Metric._extract_corpus_statistics`` and ``_compute_score_from_stats``, the same
private methods its own ``sacrebleu.significance`` module uses), so the scores here are sacreBLEU's.

For two systems A and B on the same sentences, each resample draws sentence indices with replacement
and scores both systems on the *same* indices; the spread of score(A) − score(B) over resamples gives a
confidence interval, and the share of resamples in which A does not beat B is Koehn's p-value for
"A is better than B".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

METRICS = ("bleu", "chrf")


@dataclass(frozen=True)
class PairedBootstrap:
    """delta = score(A) − score(B) on the full set; (low, high): the 95 % percentile interval of the
    resampled differences; p_value: share of resamples with score(A) − score(B) <= 0; deltas: all of them."""

    delta: float
    low: float
    high: float
    p_value: float
    deltas: np.ndarray


def _metric(name: str):
    import sacrebleu

    if name not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {name!r}")
    return sacrebleu.metrics.BLEU() if name == "bleu" else sacrebleu.metrics.CHRF()


def sentence_stats(hypotheses: Sequence[str], references: Sequence[str], metric: str = "bleu") -> np.ndarray:
    """sacreBLEU's per-sentence sufficient statistics (S, K) for one system (single reference)."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    m = _metric(metric)
    return np.array(m._extract_corpus_statistics(list(hypotheses), [list(references)]), dtype=np.float64)


def score_from_stats(stats: np.ndarray, metric: str = "bleu") -> float:
    """The corpus score (0..100) of summed statistics (K,), as sacreBLEU computes it."""
    return float(_metric(metric)._compute_score_from_stats(list(stats)).score)


def paired_bootstrap(hyps_a: Sequence[str], hyps_b: Sequence[str], references: Sequence[str],
                     metric: str = "bleu", n: int = 1000, seed: int = 12345) -> PairedBootstrap:
    """Koehn's paired bootstrap of score(A) − score(B) on ``n`` resamples of the sentences."""
    sa, sb = sentence_stats(hyps_a, references, metric), sentence_stats(hyps_b, references, metric)
    m = _metric(metric)
    idx = np.random.default_rng(seed).choice(len(sa), size=(n, len(sa)), replace=True)  # as sacreBLEU draws
    deltas = np.array([m._compute_score_from_stats(list(sa[i].sum(0))).score
                       - m._compute_score_from_stats(list(sb[i].sum(0))).score for i in idx])
    delta = score_from_stats(sa.sum(0), metric) - score_from_stats(sb.sum(0), metric)
    low, high = np.percentile(deltas, [2.5, 97.5])
    return PairedBootstrap(delta=delta, low=float(low), high=float(high),
                           p_value=float((deltas <= 0).mean()), deltas=deltas)
