"""Chapter 12: its exported code (BPE, LoRA, left-padded decoding) and the committed results' targets
(issue 19), which are relations between glued numbers."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from _helpers import tiny_gpt
from notebook_checks import ROOT, glued, load

from gen_utils.chapters.ch12_adapting_language_models import (
    LoRALinear,
    add_lora,
    bits_per_char,
    bpe_decode,
    bpe_encode,
    library_bpe,
    library_merges,
    merge_lora,
    padded_logits,
    train_bpe,
)

NB = ROOT / "notebooks" / "12_adapting_language_models.ipynb"
TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
        "First Citizen:\nYou are all resolved rather to die than to famish?\n") * 20


def test_our_bpe_learns_the_librarys_merges_and_tokens():
    # catches: pair counts across words, a wrong tie-break, an encoder that ignores the merge order
    ours = train_bpe(TEXT, 40)
    lib = library_bpe([TEXT], 256 + 40)
    from gen_utils.chapters.ch12_adapting_language_models import byte_symbols
    sym = byte_symbols()
    assert [tuple("".join(sym[b] for b in t) for t in pair) for pair in ours] == library_merges(lib)
    held = "You are all resolved, speak!"
    assert ["".join(sym[b] for b in t) for t in bpe_encode(held, ours)] == lib.encode(held).tokens


@pytest.mark.parametrize("s", ["", " ", "héllo wörld 東京 🙂", "a\tb  c\n\n", "x²"])
def test_bpe_round_trip(s):
    assert bpe_decode(bpe_encode(s, train_bpe(TEXT, 20))) == s


def test_bits_per_char():
    assert bits_per_char(math.log(2), 10, 10) == pytest.approx(1.0)
    assert bits_per_char(2 * math.log(2), 5, 10) == pytest.approx(1.0)     # 5 tokens of 2 chars
    with pytest.raises(ValueError, match="positive"):
        bits_per_char(1.0, 0, 10)


def test_lora_starts_at_the_base_and_merges_exactly():
    base = tiny_gpt()
    x = torch.randint(11, (2, 16))
    lora = add_lora(copy.deepcopy(base), r=2, alpha=4)
    assert torch.equal(lora(x), base(x))                                   # B = 0 at the start
    assert sum(p.numel() for p in lora.parameters() if p.requires_grad) == 2 * 2 * ((16 + 16) + (16 + 32))
    with torch.no_grad():
        for m in lora.modules():
            if isinstance(m, LoRALinear):
                m.B.normal_(0, 0.1)
        out = lora(x)
        assert (out - base(x)).abs().max() > 1e-3
        assert (merge_lora(copy.deepcopy(lora))(x) - out).abs().max() <= 1e-5


def test_lora_scaling_and_rank_validation():
    lin = torch.nn.Linear(8, 8)
    assert LoRALinear(lin, 4, 8).scale == 2.0
    assert LoRALinear(lin, 4, 8, scale_by_rank=False).scale == 8.0
    with pytest.raises(ValueError, match="rank"):
        LoRALinear(lin, 0, 8)


def test_lora_equals_peft_with_the_same_matrices():
    # catches: a scaling or orientation convention that differs from the peft library's
    import peft  # in requirements.txt (the `test` extra): CI runs this check
    base = tiny_gpt()
    ours = add_lora(copy.deepcopy(base), r=2, alpha=4)
    ref = peft.inject_adapter_in_model(peft.LoraConfig(r=2, lora_alpha=4, target_modules=["q", "kv"],
                                                       lora_dropout=0.0), copy.deepcopy(base))
    with torch.no_grad():
        for blk, mine in zip(ref.blocks, ours.blocks, strict=True):
            for name in ("q", "kv"):
                getattr(mine.attn, name).B.normal_(0, 0.1)
                getattr(blk.attn, name).lora_A["default"].weight.copy_(getattr(mine.attn, name).A)
                getattr(blk.attn, name).lora_B["default"].weight.copy_(getattr(mine.attn, name).B)
        x = torch.randint(11, (2, 16))
        assert (ref.eval()(x) - ours(x)).abs().max() <= 1e-5


def test_left_padded_logits_equal_each_row_alone():
    # catches: padding keys visible to real queries, positions counted from the padding, NaN leaking
    model = tiny_gpt()
    rows = [torch.randint(11, (n,)) for n in (5, 9, 12)]
    width = 12
    n_pad = torch.tensor([width - len(r) for r in rows])
    idx = torch.stack([torch.nn.functional.pad(r, (width - len(r), 0)) for r in rows])
    with torch.no_grad():
        out = padded_logits(model, idx, n_pad)
        assert torch.isfinite(out).all()
        for i, r in enumerate(rows):
            assert (out[i, n_pad[i]:] - model(r[None])[0]).abs().max() <= 1e-5


def test_committed_results_meet_issue_19s_targets():
    g = glued(load(NB))
    # LoRA r = 4 trains at most 2 % of the weights that full fine-tuning trains
    assert g["lora_r4_trainable_params"] <= 0.02 * g["full_ft_trainable_params"]
    # both fine-tuned variants beat training from scratch at the same number of steps
    assert g["ft_caption_bits_per_char"] < g["scratch_caption_bits_per_char"]
    assert g["lora_r4_caption_bits_per_char"] < g["scratch_caption_bits_per_char"]
    # LoRA forgets less than full fine-tuning
    assert g["lora_shakespeare_bits_per_char_after"] < g["ft_shakespeare_bits_per_char_after"]
    # the failure mode shows more forgetting than the fine-tuning it is compared with
    assert g["hot_ft_shakespeare_bits_per_char_after"] > g["ft_shakespeare_bits_per_char_after"]


def test_char_and_bpe_models_had_the_same_wall_clock_budget():
    # catches: step counts that no longer give the two tokenizers equal training time (cpu runs only)
    g = glued(load(NB))
    if g["run_profile"] == "cpu":
        ratio = g["bpe_train_seconds"] / g["char_train_seconds"]
        assert 0.8 <= ratio <= 1.25, ratio


def test_the_prose_claims_hold_in_the_committed_run():
    # catches: a re-run whose numbers no longer say what the chapter's sentences say about them
    g = glued(load(NB))
    # "the BPE model's loss per token is far higher" while it wins per character
    assert g["bpe_val_nats_per_token"] > g["char_val_nats_per_token"]
    assert g["bpe_val_bits_per_char"] < g["char_val_bits_per_char"]
    # "even before any step on captions, the pretrained model is ahead of the steps from scratch"
    assert g["base_caption_bits_per_char"] < g["scratch_caption_bits_per_char"]
    # "LoRA learns less and forgets less than full fine-tuning"
    assert g["lora_r4_caption_bits_per_char"] > g["ft_caption_bits_per_char"]
    # "training the last block only adapted better than LoRA at rank 4 and forgot less"
    assert g["last_block_caption_bits_per_char"] < g["lora_r4_caption_bits_per_char"]
    assert g["last_block_shakespeare_bits_per_char_after"] < g["lora_shakespeare_bits_per_char_after"]
    # "LoRA's caption score improves with the rank"
    r1, r4, r16 = (g[f"lora_r{r}_caption_bits_per_char"] for r in (1, 4, 16))
    assert r1 > r4 > r16
    # "with alpha / r the best rate is the same at every rank; with alpha alone it falls"
    assert len(set(g["sweep_best_lrs_alpha_over_r"].strip("'").split(", "))) == 1
    assert g["sweep_best_lr_drop_alpha"] > 1
    assert g["sweep_r16_alpha_over_r_at_tuned"] < g["sweep_r16_alpha_at_tuned"]
    # "the high rate does not even adapt better" and forgets far more
    assert g["hot_ft_caption_bits_per_char"] > g["ft_caption_bits_per_char"]
    # the source matters: BLEU drops when each sentence gets another sentence's German
    assert g["decoder_only_shuffled_source_bleu"] < g["decoder_only_bleu"]
