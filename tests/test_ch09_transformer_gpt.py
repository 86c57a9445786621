"""Chapter 09's GPT (gen_utils.chapters.ch09_transformer_gpt), on tiny configurations."""

from __future__ import annotations

import math

import torch

from gen_utils.chapters.ch09_transformer_gpt import (
    GPT,
    KVCache,
    adamw,
    generate_text,
    lm_loss,
    nats_per_char,
    sinusoidal_positions,
)


def tiny_gpt(seed: int = 0, **kwargs) -> GPT:
    torch.manual_seed(seed)
    return GPT(vocab=11, block=8, d_model=16, n_layer=2, n_head=2, **kwargs).eval()


def test_forward_shape_and_parameter_count():
    model = tiny_gpt()
    assert model(torch.zeros(3, 5, dtype=torch.long)).shape == (3, 5, 11)
    # embeddings 11*16 + 8*16, per block 2 LayerNorms, q + kv + out (4 * (16*16 + 16)), MLP, then ln_f;
    # the head adds nothing: it is the token table (weight tying)
    per_block = 2 * 32 + 4 * (16 * 16 + 16) + (16 * 64 + 64) + (64 * 16 + 16)
    assert sum(p.numel() for p in model.parameters()) == 11 * 16 + 8 * 16 + 2 * per_block + 32
    assert model.head.weight is model.tok.weight


def test_tied_head_gets_the_gradient_of_both_uses():
    # catches a copy instead of a tie: the table must learn from the output layer too
    model = tiny_gpt()
    x = torch.tensor([[1, 2, 3]])
    model(x)[0, -1, 7].backward()                         # character 7 appears only as an output
    assert model.tok.weight.grad[7].abs().sum() > 0


def test_adamw_decays_matrices_only():
    model = tiny_gpt()
    decayed, plain = adamw(model, 1e-3).param_groups
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decayed["params"]) and all(p.dim() == 1 for p in plain["params"])
    assert len(decayed["params"]) + len(plain["params"]) == len(list(model.parameters()))
    assert any(p is model.blocks[0].ln1.weight for p in plain["params"])  # LayerNorm gains are not decayed


def test_gpt2_init_scales_the_residual_projections():
    model = GPT(vocab=11, block=8, d_model=64, n_layer=8, n_head=2)
    out_std = model.blocks[0].attn.out.weight.std().item()
    q_std = model.blocks[0].attn.q.weight.std().item()
    assert abs(q_std - 0.02) < 0.002
    assert abs(out_std - 0.02 / math.sqrt(16)) < 0.001
    assert model.blocks[0].attn.q.bias.abs().max() == 0


def test_cached_logits_equal_uncached_logits():
    model = tiny_gpt().double()
    seq = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6]])
    full = model(seq)
    caches = [KVCache() for _ in model.blocks]
    prompt = model(seq[:, :3], caches)                   # a prompt, then one position at a time
    stepped = torch.cat([prompt, *(model(seq[:, t : t + 1], caches) for t in range(3, 8))], 1)
    torch.testing.assert_close(stepped, full, rtol=0, atol=1e-12)
    caches = [KVCache() for _ in model.blocks]
    chunked = torch.cat([model(seq[:, :3], caches), model(seq[:, 3:], caches)], 1)
    torch.testing.assert_close(chunked, full, rtol=0, atol=1e-12)


def test_without_the_causal_mask_the_future_leaks():
    model = tiny_gpt()
    seq = torch.tensor([[3, 1, 4, 1, 5, 9]])
    changed = seq.clone()
    changed[0, -1] = 0
    assert torch.equal(model(seq)[:, :-1], model(changed)[:, :-1])
    for blk in model.blocks:
        blk.causal = False
    assert not torch.allclose(model(seq)[:, :-1], model(changed)[:, :-1])


def test_generate_text_is_the_same_with_and_without_the_cache():
    model = tiny_gpt()
    prompt = torch.tensor([[1, 2], [3, 4]])
    a = generate_text(model, prompt, 12, generator=torch.Generator().manual_seed(0))  # past block: a restart
    b = generate_text(model, prompt, 12, use_cache=False, generator=torch.Generator().manual_seed(0))
    assert a.shape == (2, 14) and torch.equal(a[:, :2], prompt)
    assert torch.equal(a[:, :8], b[:, :8])  # within the context both compute the same logits


def test_losses_on_an_untrained_model_are_near_log_vocab():
    model = tiny_gpt()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 11, (40,), generator=g)
    x = torch.stack([ids[i : i + 8] for i in (0, 10, 20)])
    y = torch.stack([ids[i + 1 : i + 9] for i in (0, 10, 20)])
    assert abs(lm_loss(model, (x, y)).item() - math.log(11)) < 0.1
    assert abs(nats_per_char(model, ids) - math.log(11)) < 0.1


def test_sinusoidal_positions_dtype_and_values():
    pe = sinusoidal_positions(6, 4)
    assert pe.dtype == torch.float32 and pe.shape == (6, 4)
    pe64 = sinusoidal_positions(6, 4, dtype=torch.float64)
    t = torch.arange(6, dtype=torch.float64)
    torch.testing.assert_close(pe64[:, 0], t.sin())
    torch.testing.assert_close(pe64[:, 3], (t / 100).cos())  # w_1 = 10000^(-2/4) = 1/100


def test_tiny_gpt_logits_regression():
    model = tiny_gpt()
    idx = torch.tensor([[0, 1, 2, 3, 4, 5], [3, 1, 4, 1, 5, 9]])
    with torch.no_grad():
        out = model(idx)
    # recorded with torch.manual_seed(0) on CPU (tied head); a change means the model or its
    # initialisation changed
    expected = torch.tensor([-0.06102588, -0.07298751, -0.00609459, -0.02562533])
    torch.testing.assert_close(out[0, -1, :4], expected)
    torch.testing.assert_close(out[1, :2, 0], torch.tensor([0.01305507, 0.03895881]))
    torch.testing.assert_close(out.sum(), torch.tensor(1.23941636), atol=1e-5, rtol=0)
