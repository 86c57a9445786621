"""gen_utils.metrics: nats and bits, bits/dim, perplexity, log-mean-exp, corpus BLEU."""

from __future__ import annotations

import math

import pytest
import torch

import gen_utils as gu


def test_nats_bits_round_trip():
    assert gu.nats_to_bits(math.log(2)) == pytest.approx(1.0)
    assert gu.bits_to_nats(1.0) == pytest.approx(math.log(2))
    assert gu.nats_to_bits(1.0) == pytest.approx(1.4426950408889634)
    for v in (0.0, 0.37, 5.0, 1234.5):
        assert gu.bits_to_nats(gu.nats_to_bits(v)) == pytest.approx(v)
    t = torch.tensor([0.5, 1.0, 2.0])
    assert torch.allclose(gu.bits_to_nats(gu.nats_to_bits(t)), t)
    assert torch.allclose(gu.nats_to_bits(t), t / math.log(2))


def test_bits_per_dim():
    assert gu.bits_per_dim(784 * math.log(2), 784) == pytest.approx(1.0)
    # A uniform model over 256 pixel values costs exactly 8 bits per dimension.
    assert gu.bits_per_dim(784 * math.log(256), 784) == pytest.approx(8.0)
    nll = torch.tensor([784 * math.log(2), 2 * 784 * math.log(2)])
    assert torch.allclose(gu.bits_per_dim(nll, 784), torch.tensor([1.0, 2.0]))


def test_perplexity():
    assert gu.perplexity(0.0) == 1.0
    assert gu.perplexity(math.log(65)) == pytest.approx(65.0)  # uniform over 65 characters
    t = gu.perplexity(torch.tensor([0.0, math.log(10)]))
    assert isinstance(t, torch.Tensor) and torch.allclose(t, torch.tensor([1.0, 10.0]))


def test_log_mean_exp_is_stable_for_large_values():
    x = torch.tensor([1000.0, 1000.0, 1000.0])
    assert gu.log_mean_exp(x).item() == pytest.approx(1000.0)
    x = torch.tensor([-1000.0, -1000.0])
    assert gu.log_mean_exp(x).item() == pytest.approx(-1000.0)
    x = torch.tensor([1000.0, -1000.0])
    assert gu.log_mean_exp(x).item() == pytest.approx(1000.0 - math.log(2))
    assert torch.isinf(torch.log(torch.exp(torch.tensor([1000.0])).mean()))  # the naive form


def test_log_mean_exp_equals_the_naive_form_on_small_values():
    x = torch.randn(4, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    naive = torch.log(torch.exp(x).mean(dim=0))
    assert torch.allclose(gu.log_mean_exp(x, dim=0), naive)
    naive1 = torch.log(torch.exp(x).mean(dim=1, keepdim=True))
    out = gu.log_mean_exp(x, dim=1, keepdim=True)
    assert out.shape == (4, 1) and torch.allclose(out, naive1)
    assert torch.allclose(gu.log_mean_exp(x), torch.log(torch.exp(x).mean(dim=-1)))


def test_log_mean_exp_importance_sampling_shape():
    log_w = torch.zeros(16, 5)  # k = 16 samples for 5 examples, all weights equal
    assert torch.allclose(gu.log_mean_exp(log_w, dim=0), torch.zeros(5))


# --- corpus BLEU ----------------------------------------------------------------------------

HYPS = ["Two young, White males are outside near many bushes.", "A dog runs in the snow."]


def test_bleu_identical_is_100_with_a_13a_signature():
    score, sig = gu.corpus_bleu(HYPS, HYPS)
    assert score == pytest.approx(100.0)
    assert isinstance(sig, str)
    assert "tok:13a" in sig and "nrefs:1" in sig and "case:mixed" in sig


def test_bleu_partial_and_no_overlap():
    refs = ["a man is riding a red bike down the street", "two dogs play in the grass"]
    hyps = ["a man is riding a blue bike down the road", "two dogs play in the grass"]
    score, _ = gu.corpus_bleu(hyps, refs)
    assert 30 < score < 100
    score, _ = gu.corpus_bleu(["qq rr ss tt", "uu vv ww xx"], refs)
    assert score == pytest.approx(0.0)


def test_bleu_tokenize_none_on_pretokenised_text():
    hyp = ["the cat sat on the mat."]
    ref = ["the cat sat on the mat ."]
    score_13a, sig_13a = gu.corpus_bleu(hyp, ref)
    score_none, sig_none = gu.corpus_bleu(hyp, ref, tokenize="none")
    assert score_13a == pytest.approx(100.0)  # 13a splits off the full stop
    assert score_none < 100.0  # "mat." != "mat ." without tokenisation
    assert "tok:none" in sig_none and "tok:13a" in sig_13a
    same, _ = gu.corpus_bleu(ref, ref, tokenize="none")
    assert same == pytest.approx(100.0)


def test_bleu_lowercase():
    score, sig = gu.corpus_bleu(["A DOG RUNS IN THE SNOW ."], ["a dog runs in the snow ."])
    assert score < 10
    score, sig = gu.corpus_bleu(["A DOG RUNS IN THE SNOW ."], ["a dog runs in the snow ."],
                                lowercase=True)
    assert score == pytest.approx(100.0) and "case:lc" in sig


def test_bleu_length_mismatch():
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        gu.corpus_bleu(HYPS, HYPS[:1])


def test_corpus_bleu_refuses_strings_and_empty_corpora():
    with pytest.raises(TypeError, match="one string.*character by character"):
        gu.corpus_bleu("a cat sat .", "a cat sat .")
    with pytest.raises(TypeError, match="must be strings.*got a list"):
        gu.corpus_bleu([["a", "cat"]], ["a cat"])
    with pytest.raises(ValueError, match="no hypotheses"):
        gu.corpus_bleu([], [])


def test_lowercase_bleu_refuses_strings():
    with pytest.raises(TypeError, match="token lists"):
        gu.lowercase_bleu(["a man rides a horse ."], [["a", "man"]])
    with pytest.raises(TypeError, match="token lists"):
        gu.lowercase_bleu("a man", "a man")
