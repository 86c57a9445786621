"""The book's pretrained character GPT (gen_utils.pretrained_gpt, loaded by chapter 12's exported
load_shakespeare_gpt): its vocabulary, weights and score."""

from __future__ import annotations

import math

import pytest
import torch

import gen_utils as gu
from gen_utils import pretrained_gpt as pg
from gen_utils.chapters.ch12_adapting_language_models import load_shakespeare_gpt


def test_vocab_is_sorted_and_covers_the_corpora():
    # catches: a character of Shakespeare or Multi30k (de, en) that the model cannot encode
    tok = pg.char_tokenizer()
    assert len(tok) == pg.CONFIG["vocab"]
    seen = set(gu.load_shakespeare()) | set("<>")
    for split in ("train", "val", "test"):
        for de, en in gu.load_multi30k(split):
            seen |= set(de) | set(en)
    assert seen == set(pg.VOCAB)


def test_weights_load_and_reproduce_the_recorded_validation_loss():
    # catches: damaged weights, or a recipe/architecture change without new weights
    from gen_utils.chapters.ch09_transformer_gpt import nats_per_char

    model = load_shakespeare_gpt()
    _, val = gu.shakespeare_split()
    nats = nats_per_char(model, pg.char_tokenizer().encode(val))
    assert nats == pytest.approx(pg.VAL_NATS_PER_CHAR, abs=1e-3)
    assert nats / math.log(2) < 2.3                     # better than chapter 09's cpu model (2.28 bits/char)


def test_each_load_is_a_fresh_copy():
    a, b = load_shakespeare_gpt(), load_shakespeare_gpt()
    with torch.no_grad():
        a.tok.weight.zero_()
    assert b.tok.weight.abs().sum() > 0


def test_a_damaged_file_is_refused(monkeypatch, tmp_path):
    bad = tmp_path / "w.pt"
    bad.write_bytes(b"not weights")
    monkeypatch.setattr(pg, "WEIGHTS", bad)
    pg.pretrained_state_dict.cache_clear()
    with pytest.raises(ValueError, match="sha256"):
        load_shakespeare_gpt()
    pg.pretrained_state_dict.cache_clear()
