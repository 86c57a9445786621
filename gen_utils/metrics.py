"""Metrics in the units the book uses: nats, bits, bits/dim, perplexity, BLEU."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

LN2 = math.log(2.0)


def nats_to_bits(nats: float | torch.Tensor) -> float | torch.Tensor:
    """1 nat = 1/ln 2 ≈ 1.4427 bits."""
    return nats / LN2


def bits_to_nats(bits: float | torch.Tensor) -> float | torch.Tensor:
    """1 bit = ln 2 ≈ 0.6931 nats."""
    return bits * LN2


def bits_per_dim(nll_nats: float | torch.Tensor, dims: int) -> float | torch.Tensor:
    """Negative log-likelihood of one example in nats → bits per dimension (e.g. dims = 784)."""
    return nll_nats / (dims * LN2)


def perplexity(nats_per_token: float | torch.Tensor) -> float | torch.Tensor:
    """exp(mean NLL per token in nats): the effective number of equally likely choices."""
    if isinstance(nats_per_token, torch.Tensor):
        return torch.exp(nats_per_token)
    return math.exp(nats_per_token)


def log_mean_exp(x: torch.Tensor, dim: int = -1, keepdim: bool = False) -> torch.Tensor:
    """log(mean(exp(x))) along ``dim`` without overflow: logsumexp(x) − log n.

    The importance-sampled log-likelihood log p(x) ≈ log (1/k) Σ_i p(x, z_i)/q(z_i|x) is
    ``log_mean_exp(log_p_xz - log_q_z, dim=0)`` over k samples.
    """
    n = x.shape[dim]
    return torch.logsumexp(x, dim=dim, keepdim=keepdim) - math.log(n)


def corpus_bleu(
    hypotheses: Sequence[str],
    references: Sequence[str],
    *,
    tokenize: str = "13a",
    lowercase: bool = False,
) -> tuple[float, str]:
    """Corpus BLEU with sacrebleu: returns (score in 0..100, sacrebleu's signature).

    hypotheses, references: one detokenised string per sentence (single reference).
    For BLEU on text that is already tokenised and lower-cased (the convention of many
    tutorials), pass space-joined tokens with ``tokenize="none"``.
    """
    import sacrebleu

    for name, corpus in (("hypotheses", hypotheses), ("references", references)):
        if isinstance(corpus, str):
            raise TypeError(f"{name} is one string: pass a list with one string per sentence "
                            "(a bare string would be scored character by character)")
        if len(corpus) == 0:
            raise ValueError(f"no {name}: BLEU needs at least one sentence")
        bad = next((type(s).__name__ for s in corpus if not isinstance(s, str)), None)
        if bad:
            raise TypeError(f"{name} must be strings, one per sentence; got a {bad} "
                            "(for token lists, join them with spaces, or use gu.lowercase_bleu)")
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    metric = sacrebleu.metrics.BLEU(tokenize=tokenize, lowercase=lowercase)
    result = metric.corpus_score(list(hypotheses), [list(references)])
    return float(result.score), str(metric.get_signature())
