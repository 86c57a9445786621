"""Chapter 14: its exported code (canaries, extraction, exposure, zlib, bias intervals, caption gender,
the Bernoulli mixture, the watermark) and the committed results' targets (issue 21), which are relations
between glued numbers."""

from __future__ import annotations

import math

import pytest
import torch
from _helpers import tiny_gpt
from notebook_checks import ROOT, glued, load

from gen_utils.chapters.ch14_responsible_generative_ai import (
    bernoulli_mixture_em,
    caption_gender,
    contains_training_text,
    exposure_bits,
    extraction_lengths,
    green_lists,
    insert_canaries,
    share_with_interval,
    watermark_z,
    watermarked_sample,
    zlib_bits,
)

NB = ROOT / "notebooks" / "14_responsible_generative_ai.ipynb"


def test_insert_canaries_counts_and_keeps_the_text():
    text = "\n".join(f"line {i}" for i in range(50))
    out = insert_canaries(text, {"SECRET A": 3, "SECRET B": 0}, torch.Generator().manual_seed(0))
    lines = out.split("\n")
    assert lines.count("SECRET A") == 3 and "SECRET B" not in lines
    assert [ln for ln in lines if not ln.startswith("SECRET")] == text.split("\n")


def test_extraction_lengths_on_a_memorised_stream():
    # a "model" that always predicts the next id of a cyclic stream reproduces it exactly
    class Cyclic(torch.nn.Module):
        block = 16
        blocks = [None]                     # one (unused) KV cache, as gu.sample makes per block

        def forward(self, idx, caches=None):
            return torch.nn.functional.one_hot((idx + 1) % 11, 11).float() * 10

    ids = torch.arange(200) % 11
    assert (extraction_lengths(Cyclic(), ids, 20, 4, 6, torch.Generator().manual_seed(0)) == 6).all()
    shuffled = torch.randint(11, (200,), generator=torch.Generator().manual_seed(1))
    assert (extraction_lengths(Cyclic(), shuffled, 20, 4, 6, torch.Generator().manual_seed(0)) < 6).any()


def test_exposure_bits_ranks_candidates():
    model = tiny_gpt()
    context = torch.tensor([1, 2, 3])
    cands = torch.stack([torch.tensor([a, b]) for a in range(11) for b in range(11)])   # 121 candidates
    with torch.no_grad():
        x = torch.cat([context.expand(len(cands), -1), cands], 1)
        lp = torch.log_softmax(model(x[:, :-1]), -1)[:, 2:].gather(-1, cands[..., None])[..., 0].sum(1)
    best, worst = int(lp.argmax()), int(lp.argmin())
    assert exposure_bits(model, context, cands, best) == pytest.approx((math.log2(121), 1))
    bits, rank = exposure_bits(model, context, cands, worst, chunk=7)
    assert rank == 121 and bits == pytest.approx(0.0)


def test_zlib_and_training_text_helpers():
    assert zlib_bits("a" * 1000) < zlib_bits("".join(chr(97 + (i * 7919) % 26) for i in range(1000)))
    corpus = "the quick brown fox jumps over the lazy dog"
    assert contains_training_text("xx quick brown fox jumps xx", corpus, n=10)
    assert not contains_training_text("quick bro-n cat", corpus, n=10)


def test_share_with_interval_covers_the_share():
    hits = torch.zeros(1000, dtype=torch.bool)
    hits[:20] = True
    s, lo, hi = share_with_interval(hits, 500, torch.Generator().manual_seed(0))
    assert s == pytest.approx(0.02) and lo < 0.02 < hi and hi - lo < 0.03


def test_caption_gender():
    assert caption_gender("A woman is cooking.") == "female"
    assert caption_gender("Two men ride bikes.") == "male"
    assert caption_gender("A man and a woman dance.") is None
    assert caption_gender("A dog runs.") is None
    assert caption_gender("Mankind's germane question") is None        # words, not substrings


def test_bernoulli_mixture_recovers_two_patterns():
    g = torch.Generator().manual_seed(0)
    a, b = torch.zeros(20), torch.ones(20)
    x = torch.stack([a if i % 2 else b for i in range(400)])
    x = torch.where(torch.rand(x.shape, generator=g) < 0.05, 1 - x, x)       # 5 % pixel noise
    w, p = bernoulli_mixture_em(x, 2, 20, g)
    assert torch.allclose(w.sort().values, torch.tensor([0.5, 0.5]), atol=0.05)
    assert torch.allclose(p.mean(1).sort().values, torch.tensor([0.05, 0.95]), atol=0.05)


def test_green_lists_and_z():
    green = green_lists(11, 0.5, key=3)
    assert (green.sum(1) == 5).all()
    assert torch.equal(green, green_lists(11, 0.5, key=3))
    assert not torch.equal(green, green_lists(11, 0.5, key=4))
    # a text made only of green transitions (gamma = 5 / 11, the lists' true share)
    ids = [0]
    for _ in range(16):
        ids.append(int(green[ids[-1]].nonzero()[0]))
    gamma = 5 / 11
    assert watermark_z(torch.tensor([ids]), green).item() == pytest.approx(
        (16 - 16 * gamma) / math.sqrt(16 * gamma * (1 - gamma)))


def test_watermarked_sampling_prefers_green_and_delta_zero_is_plain():
    model = tiny_gpt()
    green = green_lists(11, 0.5, key=1)
    prompt = torch.randint(11, (64, 2), generator=torch.Generator().manual_seed(0))
    marked = watermarked_sample(model, prompt, 12, green, 6.0, torch.Generator().manual_seed(1))
    plain = watermarked_sample(model, prompt, 12, green, 0.0, torch.Generator().manual_seed(1))
    assert watermark_z(marked[:, 1:], green).mean() > 2.5
    assert abs(watermark_z(plain[:, 1:], green).mean()) < 1.0


# --- the committed run -------------------------------------------------------------------------------


def test_committed_results_meet_issue_21s_targets():
    g = glued(load(NB))
    assert g["extraction_hits_train"] > g["extraction_hits_heldout"]
    assert g["canary_exposure_k16"] > g["canary_exposure_k1"]
    if g["run_profile"] != "smoke":
        assert g["watermark_detect_rate_200tok"] >= 0.95
        assert g["watermark_false_positive_rate"] <= 0.01


def test_the_prose_claims_hold_in_the_committed_run():
    # catches: a re-run whose numbers no longer say what the chapter's sentences say about them
    g = glued(load(NB))
    if g["run_profile"] == "smoke":
        return
    # the book's GPT: at most a few short strings, no more often from training text than held-out
    assert g["book_gpt_extraction_hits_train"] <= max(5, 2 * g["book_gpt_extraction_hits_heldout"] + 2)
    # the memoriser reproduces its training text, not held-out text; the smaller model less
    assert g["extraction_hits_train"] >= 10 * max(1, g["extraction_hits_heldout"])
    assert g["extraction_rate_train_small"] < g["extraction_rate_train"]
    assert g["canary_exposure_k16"] > 13.0 and g["canary_exposure_k0"] < 3.0
    # the copy test flags neither VAE (samples farther from the training set than held-out data)
    assert g["copy_z_subset"] > 0 and g["copy_z_full"] > 0
    # reweighting moves the minority towards the equal share it is given
    assert g["bias_sample_share_minority"] < g["bias_reweighted_share_minority"] <= 0.1 + 0.03
    # captions: fewer women in generated captions, a positive amplification with its interval above 0
    assert g["caption_women_share_generated"] < g["caption_women_share_data"]
    assert g["caption_amplification_low"] > 0
    # detection: near-perfect on the seen generator, lower on the unseen VAE, chance on the mixture
    assert g["detector_accuracy_seen"] > 0.95
    assert g["detector_accuracy_unseen"] < g["detector_accuracy_unseen_vae"] < g["detector_accuracy_seen"]
    assert abs(g["detector_accuracy_unseen"] - 0.5) < 0.05
    assert g["detector_flagged_mixture"] < 0.1                   # "calling nearly all of them real"
    # human text's z is not standard normal; some keys exceed a 1 % false-positive rate ("the key's luck")
    assert abs(g["watermark_human_z_mean"]) > 0.3 and g["watermark_keys_above_1pct"] >= 1
    # the watermark: plain samples not flagged; edits wash it out
    assert g["watermark_plain_flag_rate_200tok"] <= 0.01
    edit10, edit30 = g["watermark_detect_rate_edit10"], g["watermark_detect_rate_edit30"]
    assert edit30 < edit10 <= g["watermark_detect_rate_200tok"]
    assert g["bias_ratio_confident_high"] < 1 < g["bias_ratio_high"]         # the confident reading: under
    assert g["zlib_precision_ratio"] > 2 * g["zlib_precision_all"]


def test_share_with_interval_of_nothing_is_nan():
    assert all(math.isnan(v) for v in share_with_interval(torch.zeros(0, dtype=torch.bool), 10,
                                                          torch.Generator().manual_seed(0)))
