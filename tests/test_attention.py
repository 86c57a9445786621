"""Chapter 09's attention (gen_utils.chapters.ch09_transformer_gpt): written-out attention, causal
masks, multi-head attention and the KV cache, which chapter 10 imports."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gen_utils.chapters.ch09_transformer_gpt import (
    KVCache,
    MultiHeadAttention,
    causal_mask,
    dot_product_attention,
)


def test_causal_mask_square_and_with_cache():
    assert torch.equal(causal_mask(3), torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=torch.bool))
    # two new queries after three cached positions: they sit at positions 3 and 4
    m = causal_mask(2, 5)
    assert torch.equal(m, torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], dtype=torch.bool))
    with pytest.raises(ValueError, match="at least as many keys"):
        causal_mask(4, 2)


@pytest.mark.parametrize("masked", [False, True])
def test_attention_matches_sdpa(masked):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 7, 8, generator=g, dtype=torch.float64) for _ in range(3))
    mask = causal_mask(7) if masked else None
    ours, w = dot_product_attention(q, k, v, mask)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert torch.allclose(ours, ref, atol=1e-12)
    assert torch.allclose(w.sum(-1), torch.ones(2, 3, 7, dtype=torch.float64))
    if masked:
        assert (w[..., causal_mask(7).logical_not()] == 0).all()


def test_attention_rejects_mismatched_dimensions():
    with pytest.raises(ValueError, match="dimension"):
        dot_product_attention(torch.zeros(1, 2, 4), torch.zeros(1, 2, 5), torch.zeros(1, 2, 5))


def test_causal_self_attention_ignores_the_future():
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4).double().eval()
    x = torch.randn(2, 9, 16, dtype=torch.float64)
    y = mha(x, causal=True)
    x2 = x.clone()
    x2[:, 5:] = torch.randn(2, 4, 16, dtype=torch.float64)  # change positions 5.. only
    y2 = mha(x2, causal=True)
    assert torch.allclose(y[:, :5], y2[:, :5], atol=1e-12)  # outputs before 5 do not move
    assert not torch.allclose(y[:, 5:], y2[:, 5:])
    # without the mask every output depends on every position
    assert not torch.allclose(mha(x)[:, :5], mha(x2)[:, :5])


def test_multi_head_attention_matches_written_out_heads():
    torch.manual_seed(1)
    mha = MultiHeadAttention(12, 3).double().eval()
    x = torch.randn(2, 5, 12, dtype=torch.float64)
    q = mha.q(x).view(2, 5, 3, 4).transpose(1, 2)
    k, v = (t.view(2, 5, 3, 4).transpose(1, 2) for t in mha.kv(x).chunk(2, -1))
    heads, _ = dot_product_attention(q, k, v, causal_mask(5))
    ref = mha.out(heads.transpose(1, 2).reshape(2, 5, 12))
    assert torch.allclose(mha(x, causal=True), ref, atol=1e-12)
    assert torch.equal(mha.split_heads(mha.q(x)), q)


@pytest.mark.parametrize("causal", [False, True])
def test_return_attention_equals_the_fused_path(causal):
    torch.manual_seed(4)
    mha = MultiHeadAttention(16, 4).double().eval()
    x, ctx = torch.randn(2, 5, 16, dtype=torch.float64), torch.randn(2, 7, 16, dtype=torch.float64)
    keep = torch.tensor([[1] * 7, [1, 1, 1, 1, 0, 0, 0]], dtype=torch.bool)[:, None, None, :]
    for kwargs in (dict(causal=causal), dict(context=ctx, mask=keep)):
        fused = mha(x, **kwargs)
        out, weights = mha(x, **kwargs, return_attention=True)
        assert torch.allclose(out, fused, atol=1e-12)
        tk = 7 if "context" in kwargs else 5
        assert weights.shape == (2, 4, 5, tk)                  # (B, H, Tq, Tk)
        assert torch.allclose(weights.sum(-1), torch.ones(2, 4, 5, dtype=torch.float64))
    assert (weights[1, ..., 4:] == 0).all()                    # padded keys get no weight
    if causal:
        _, w = mha(x, causal=True, return_attention=True)
        assert (w[..., causal_mask(5).logical_not()] == 0).all()


def test_cached_steps_equal_the_uncached_pass():
    torch.manual_seed(2)
    mha = MultiHeadAttention(16, 2).double().eval()
    x = torch.randn(3, 8, 16, dtype=torch.float64)
    full = mha(x, causal=True)
    cache = KVCache()
    prefix = mha(x[:, :3], causal=True, cache=cache)          # a prompt of 3 positions at once
    steps = [mha(x[:, t : t + 1], causal=True, cache=cache) for t in range(3, 8)]  # then one by one
    assert len(cache) == 8
    assert torch.allclose(torch.cat([prefix, *steps], 1), full, atol=1e-12)
    # a chunk of several new positions after a cache needs the bottom-right aligned mask
    cache2 = KVCache()
    mha(x[:, :5], causal=True, cache=cache2)
    assert torch.allclose(mha(x[:, 5:], causal=True, cache=cache2), full[:, 5:], atol=1e-12)


def test_cross_attention_with_padding_mask():
    torch.manual_seed(3)
    mha = MultiHeadAttention(8, 2).double().eval()
    x, ctx = torch.randn(2, 4, 8, dtype=torch.float64), torch.randn(2, 6, 8, dtype=torch.float64)
    keep = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]], dtype=torch.bool)
    y = mha(x, context=ctx, mask=keep[:, None, None, :])
    ctx2 = ctx.clone()
    ctx2[1, 3:] = 99.0                                         # padding positions must not matter
    assert torch.allclose(y, mha(x, context=ctx2, mask=keep[:, None, None, :]), atol=1e-12)
    with pytest.raises(ValueError, match="self-attention"):
        mha(x, context=ctx, cache=KVCache())


def test_heads_must_divide_the_width():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3)


# --- masks that would broadcast onto the wrong axis (the reliability sweep) --------------------

def test_a_two_dimensional_padding_mask_is_refused_even_when_batch_equals_queries():
    torch.manual_seed(0)
    mha = MultiHeadAttention(8, 2).eval()
    x = torch.randn(3, 3, 8)  # B == Tq == 3: a (B, Tk) mask would broadcast as (Tq, Tk)
    padding = torch.tensor([[True, True, False]] * 3)
    with pytest.raises(ValueError, match=r"4-D masks.*mask\[:, None, None, :\]"):
        mha(x, mask=padding)
    mha(x, mask=padding[:, None, None, :])  # the right way works
    with pytest.raises(ValueError, match=r"does not end in \(3 or 1, 3\)"):
        dot_product_attention(x, x, x, torch.ones(3, dtype=torch.bool))
    with pytest.raises(TypeError, match="bool"):
        dot_product_attention(x, x, x, torch.ones(3, 3))


def test_a_misshaped_mask_is_refused_before_the_causal_mask_is_merged():
    # catches a caller's mask that broadcasting would reject with a bare error (or, with a matching
    # size, silently apply along the wrong axis) once it is combined with the causal mask
    attn = MultiHeadAttention(16, 2)
    x = torch.randn(3, 5, 16)
    with pytest.raises(ValueError, match="does not end in"):
        attn(x, mask=torch.ones(3, 1, 4, 5, dtype=torch.bool), causal=True)
