"""Chapter 08's GRU encoder-decoder with additive attention (gen_utils.chapters.ch08_seq2seq_attention)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import gen_utils as gu
from gen_utils.chapters.ch08_seq2seq_attention import (
    Seq2Seq,
    Seq2SeqConfig,
    additive_attention,
    seq2seq_greedy,
    seq2seq_loss,
    seq2seq_step_fn,
)

SRC = [[5, 6, 7, 2], [8, 9, 10, 11, 12, 13, 2]]          # source ids ending in <eos> = 2
TGT = [[1, 14, 15, 16, 2], [1, 17, 18, 2]]               # <bos> = 1 ... <eos>


def tiny(attention: bool = True, seed: int = 0) -> Seq2Seq:
    torch.manual_seed(seed)
    c = Seq2SeqConfig(n_src=20, n_tgt=25, emb=8, enc_hidden=6, dec_hidden=10, attn_dim=5, pre_dim=7)
    return Seq2Seq(c, attention).double().eval()


def test_additive_attention_is_a_distribution_that_ignores_padding():
    torch.manual_seed(0)
    B, S, Hd, A, He2 = 2, 5, 4, 3, 6
    W, v = nn.Linear(Hd, A, bias=False), nn.Linear(A, 1, bias=False)
    keys, annotations = torch.randn(B, S, A), torch.randn(B, S, He2)
    mask = torch.tensor([[True, True, True, False, False], [True] * 5])
    s_prev = torch.randn(B, Hd)
    context, alpha = additive_attention(s_prev, keys, annotations, mask, W, v)
    assert context.shape == (B, He2) and alpha.shape == (B, S)
    torch.testing.assert_close(alpha.sum(-1), torch.ones(B))
    assert (alpha[0, 3:] == 0).all()
    # what sits in the padded positions does not matter
    annotations2 = annotations.clone()
    annotations2[0, 3:] = 100.0
    keys2 = keys.clone()
    keys2[0, 3:] = -7.0
    context2, alpha2 = additive_attention(s_prev, keys2, annotations2, mask, W, v)
    torch.testing.assert_close(context2[0], context[0])
    torch.testing.assert_close(alpha2[0], alpha[0])


@pytest.mark.parametrize("attention", [True, False])
def test_forward_shapes(attention):
    model = tiny(attention)
    src, tgt = gu.pad_sequences(SRC), gu.pad_sequences(TGT)
    logits, alphas = model(src, tgt.tokens[:, :-1])
    assert logits.shape == (2, 4, 25)
    if attention:
        assert alphas.shape == (2, 4, 7)
        assert (alphas[0, :, 4:] == 0).all()         # zero weight on the first sentence's padding
    else:
        assert alphas is None


def test_padding_does_not_change_the_logits():
    model = tiny()
    with torch.no_grad():
        batched, _ = model(gu.pad_sequences(SRC), gu.pad_sequences(TGT).tokens[:, :-1])
        alone, _ = model(gu.pad_sequences(SRC[:1]), gu.pad_sequences(TGT[:1]).tokens[:, :-1])
    torch.testing.assert_close(batched[0], alone[0], rtol=0, atol=1e-10)


def test_loss_ignores_padding_and_regression():
    model = tiny()
    src, tgt = gu.pad_sequences(SRC), gu.pad_sequences(TGT)
    loss = seq2seq_loss(model, src, tgt)
    logits, _ = model(src, tgt.tokens[:, :-1])
    logp = torch.log_softmax(logits.float(), -1).gather(-1, tgt.tokens[:, 1:, None]).squeeze(-1)
    real = tgt.mask[:, 1:]
    torch.testing.assert_close(loss, -(logp * real).sum() / real.sum())
    torch.testing.assert_close(loss.item(), 3.314685821533203, rtol=1e-5, atol=0)


def test_greedy_via_translate_keeps_the_input_order():
    model = tiny()
    src_vocab = gu.WordVocab([[f"w{i}" for i in range(16)]], min_freq=1)   # 4 specials + 16 words = 20 ids
    tgt_vocab = gu.WordVocab([[f"v{i}" for i in range(21)]], min_freq=1)   # 25 ids
    sentences = [["w3", "w4"], ["w1", "w2", "w5", "w6", "w7"], ["w8"], ["w9", "w10", "w11"]]
    # one batch: gu.translate sorts it by length inside, so the same max_len (2 S + 10) applies to both
    translated = gu.translate(model, sentences, seq2seq_greedy, src_vocab, tgt_vocab, batch=4)
    with torch.no_grad():
        direct = seq2seq_greedy(model, gu.pad_sequences([src_vocab.encode(s, bos=False) for s in sentences]))
    assert translated == [tgt_vocab.decode(h) for h in direct]
    assert len({tuple(t) for t in translated}) > 1    # distinct outputs, so a mixed-up order would show
    assert model.training is False                    # gu.translate puts the mode back


def test_beam_of_one_is_greedy():
    model = tiny()
    src = gu.pad_sequences(SRC[:1])
    greedy = seq2seq_greedy(model, src)[0]
    with torch.no_grad():
        memory, s0 = model.encode(src)
        best = gu.beam_search(seq2seq_step_fn(model, memory), s0, beam_size=1, bos_id=1, eos_id=2,
                              max_len=2 * src.tokens.shape[1] + 10)[0]
    assert best.tokens == greedy
