"""Chapter 10's encoder-decoder Transformer (gen_utils.chapters.ch10_transformer_translation), tiny."""

from __future__ import annotations

import math

import torch

import gen_utils as gu
from gen_utils.chapters.ch10_transformer_translation import (
    Transformer,
    new_caches,
    transformer_step_fn,
    warmup_inverse_sqrt,
)

SRC = [[5, 6, 7, 2], [8, 9, 10, 11, 12, 13, 2]]          # source ids ending in <eos> = 2
TGT = [[1, 14, 15, 16, 2], [1, 17, 18, 2]]               # <bos> = 1 ... <eos>


def tiny(seed: int = 0) -> Transformer:
    torch.manual_seed(seed)
    return Transformer(n_src=20, n_tgt=25, d_model=16, layers=2, heads=2, ffn=32, dropout=0.0).double().eval()


def test_forward_and_encode_shapes():
    model = tiny()
    src, tgt = gu.pad_sequences(SRC), gu.pad_sequences(TGT)
    assert model(src, tgt.tokens[:, :-1]).shape == (2, 4, 25)
    memory, src_mask = model.encode(src)
    assert memory.shape == (2, 7, 16) and src_mask.shape == (2, 1, 1, 7)
    assert model.out.weight is model.tgt_emb.weight  # weight tying


def test_padding_does_not_change_the_logits():
    model = tiny()
    with torch.no_grad():
        batched = model(gu.pad_sequences(SRC), gu.pad_sequences(TGT).tokens[:, :-1])
        alone = model(gu.pad_sequences(SRC[:1]), gu.pad_sequences(TGT[:1]).tokens[:, :-1])
        alone2 = model(gu.pad_sequences(SRC[1:]), gu.pad_sequences(TGT[1:]).tokens[:, :-1])
    torch.testing.assert_close(batched[0], alone[0], rtol=0, atol=1e-10)
    torch.testing.assert_close(batched[1, :3], alone2[0], rtol=0, atol=1e-10)  # target padded by one


def test_without_the_padding_mask_padding_leaks():
    model = tiny()
    src = gu.pad_sequences(SRC)
    with torch.no_grad():
        memory, _ = model.encode(src, use_mask=False)
        memory_alone, _ = model.encode(gu.pad_sequences(SRC[:1]), use_mask=False)
    assert not torch.allclose(memory[0, :4], memory_alone[0])


def test_return_attention_gives_the_same_logits_and_ignores_padding():
    model = tiny()
    src, tgt = gu.pad_sequences(SRC), gu.pad_sequences(TGT)
    with torch.no_grad():
        memory, src_mask = model.encode(src)
        logits = model.decode(tgt.tokens[:, :-1], memory, src_mask)
        logits_w, cross = model.decode(tgt.tokens[:, :-1], memory, src_mask, return_attention=True)
    torch.testing.assert_close(logits_w, logits, rtol=0, atol=1e-10)
    assert len(cross) == 2 and cross[-1].shape == (2, 2, 4, 7)  # (B, heads, T, S) per layer
    assert (cross[-1][0, ..., 4:] == 0).all()                    # sentence 1 has 4 real source tokens


def test_cached_greedy_decoding_equals_recomputing_the_prefix():
    model = tiny()
    with torch.no_grad():
        memory, src_mask = model.encode(gu.pad_sequences(SRC))
        kw = dict(batch_size=2, bos_id=1, eos_id=2, max_len=9)
        cached = gu.greedy_search(transformer_step_fn(model, memory, src_mask), new_caches(model), **kw)
        recomputed = gu.greedy_search(transformer_step_fn(model, memory, src_mask), None, **kw)
    assert cached == recomputed


def test_cached_log_probs_equal_recomputing_and_the_source_is_projected_once():
    # catches a cache that misplaces a position, and cross-attention keys/values projected at every step
    model = tiny()
    calls = []
    hooks = [layer.cross_attn.kv.register_forward_hook(lambda *_: calls.append(1)) for layer in model.decoder]
    prefix = torch.tensor([[1, 14, 15, 16, 17, 18], [1, 17, 18, 19, 20, 21]])
    with torch.no_grad():
        memory, src_mask = model.encode(gu.pad_sequences(SRC))
        for cache_source, projections in ((True, 1), (False, prefix.shape[1])):
            step, caches = transformer_step_fn(model, memory, src_mask, cache_source), new_caches(model)
            calls.clear()
            for t in range(1, prefix.shape[1] + 1):
                cached, caches = step(prefix[:, :t], caches)
                n = len(calls)
                recomputed, _ = step(prefix[:, :t], None)
                del calls[n:]
                torch.testing.assert_close(cached, recomputed, rtol=0, atol=1e-10)
            assert len(calls) == projections * len(model.decoder)
            assert len(caches[0]) == prefix.shape[1]
    for hook in hooks:
        hook.remove()


def test_warmup_then_inverse_sqrt():
    assert warmup_inverse_sqrt(0, 10) == 0.1
    assert warmup_inverse_sqrt(9, 10) == 1.0
    assert math.isclose(warmup_inverse_sqrt(39, 10), 0.5)
