"""Chapter 07's recurrent cells and character LM (gen_utils.chapters.ch07_rnn_language_models), tiny."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from gen_utils.chapters.ch01_generative_modeling import NGram
from gen_utils.chapters.ch07_rnn_language_models import (
    CharLM,
    GRUCell,
    LSTMCell,
    NGramLM,
    RNNCell,
    chunks,
    detach,
    greedy_agreement,
    kl_by_offset,
    next_char_probs,
    rnn_nats_per_char,
    rollout,
    streams,
    uncounted_share,
    unroll,
)

E, H = 5, 7


def inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(3, E, generator=g, dtype=torch.float64),
            torch.randn(3, H, generator=g, dtype=torch.float64),
            torch.randn(3, H, generator=g, dtype=torch.float64))


def test_cell_shapes_and_unroll():
    torch.manual_seed(0)
    e = torch.randn(2, 4, E)
    h0 = torch.zeros(2, H)
    for cell, state in ((RNNCell(E, H), h0), (GRUCell(E, H), h0), (LSTMCell(E, H), (h0, h0))):
        out, last = unroll(cell, e, state)
        assert out.shape == (2, 4, H)
        last_h = last[0] if isinstance(last, tuple) else last
        torch.testing.assert_close(out[:, -1], last_h)


def test_rnn_cell_equals_nn_rnncell():
    torch.manual_seed(0)
    ours, ref = RNNCell(E, H).double(), nn.RNNCell(E, H).double()
    with torch.no_grad():
        ref.weight_ih.copy_(ours.W_xh.weight)
        ref.bias_ih.copy_(ours.W_xh.bias)
        ref.weight_hh.copy_(ours.W_hh.weight)
        ref.bias_hh.zero_()
    e, h, _ = inputs()
    torch.testing.assert_close(ours(e, h), ref(e, h), rtol=0, atol=1e-12)


def test_lstm_cell_equals_nn_lstmcell():
    torch.manual_seed(0)
    ours, ref = LSTMCell(E, H).double(), nn.LSTMCell(E, H).double()
    with torch.no_grad():
        ref.weight_ih.copy_(ours.W.weight)
        ref.bias_ih.copy_(ours.W.bias)
        ref.weight_hh.copy_(ours.U.weight)
        ref.bias_hh.zero_()                      # our U has no bias: W's bias is the only one
    e, h, c = inputs()
    (h1, c1), (h2, c2) = ours(e, (h, c)), ref(e, (h, c))
    torch.testing.assert_close(h1, h2, rtol=0, atol=1e-12)
    torch.testing.assert_close(c1, c2, rtol=0, atol=1e-12)


def test_gru_cell_equals_nn_grucell():
    torch.manual_seed(0)
    ours, ref = GRUCell(E, H).double(), nn.GRUCell(E, H).double()
    with torch.no_grad():
        ref.weight_ih.copy_(ours.W.weight)
        ref.bias_ih.copy_(ours.W.bias)
        ref.weight_hh.copy_(ours.U.weight)
        ref.bias_hh.copy_(ours.U.bias)
    e, h, _ = inputs()
    torch.testing.assert_close(ours(e, h), ref(e, h), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_charlm_forward_shapes_and_carried_state(kind):
    torch.manual_seed(0)
    model = CharLM(kind, vocab=11, emb=4, hidden=6).eval()
    x = torch.randint(0, 11, (3, 8))
    logits, state = model(x)
    assert logits.shape == (3, 8, 11)
    # reading in two chunks with the state carried over equals reading at once
    first, state1 = model(x[:, :5])
    second, _ = model(x[:, 5:], detach(state1))
    torch.testing.assert_close(torch.cat([first, second], 1), logits)


def test_lstm_forget_gate_bias_starts_at_one():
    model = CharLM("lstm", vocab=11, emb=4, hidden=6)
    assert torch.equal(model.rnn.bias_hh_l0[6:12], torch.ones(6))


def test_streams_and_chunks():
    ids = torch.arange(21)
    x, y = streams(ids, 4)
    assert x.shape == y.shape == (4, 5)
    torch.testing.assert_close(y, x + 1)            # targets are the next characters
    walk = chunks(x, y, 2)
    starts = [next(walk)[0] for _ in range(3)]
    assert starts == [0, 2, 0]                      # two chunks fit in a stream of 5; then a new pass


def test_next_char_probs_top_k_and_temperature():
    z = torch.tensor([2.0, 1.0, 0.5, -1.0])
    p = next_char_probs(z, 1.0, top_k=2)
    assert (p > 0).sum() == 2 and math.isclose(p.sum().item(), 1.0, rel_tol=1e-6)
    assert next_char_probs(z, 0.01).argmax() == 0


def test_untrained_nll_is_near_log_vocab_and_regression():
    torch.manual_seed(0)
    model = CharLM("lstm", vocab=11, emb=4, hidden=6)
    ids = torch.randint(0, 11, (200,), generator=torch.Generator().manual_seed(1))
    nll = rnn_nats_per_char(model, ids, n_streams=4, chunk=16)
    assert abs(nll - math.log(11)) < 0.2
    assert model.training                            # left in train mode, as the chapter's loop expects
    torch.testing.assert_close(nll, 2.4422809201843885, rtol=1e-5, atol=0)


def test_top_p_keeps_the_smallest_nucleus():
    z = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    p = next_char_probs(z, 1.0, top_p=0.8)           # 0.5 + 0.3 reaches 0.8: two characters
    torch.testing.assert_close(p, torch.tensor([0.625, 0.375, 0.0, 0.0]))
    p = next_char_probs(z, 1.0, top_p=0.81)          # one more is needed
    assert (p > 0).sum() == 3
    assert (next_char_probs(z, 1.0, top_p=0.1) > 0).sum() == 1   # the arg-max is always kept


def test_ngram_lm_matches_chapter01_and_carries_its_state():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 5, 400)
    table, counted = NGramLM(ids, 3, 5, 0.1), NGram(ids, 3, 5, 0.1)
    x = torch.from_numpy(ids[:30])
    logp, _ = table(x[None])
    for t in range(2, 30):
        np.testing.assert_allclose(logp[0, t].exp().numpy(), counted.next_probs(ids[: t + 1]), atol=1e-6)
    first, state = table(x[None, :11])
    second, _ = table(x[None, 11:], state)
    assert torch.equal(torch.cat([first, second], 1), logp)
    assert state.tolist() == [ids[9:11].tolist()]    # the last n - 1 ids


def test_rollout_greedy_and_seeded():
    torch.manual_seed(0)
    model = CharLM("lstm", vocab=11, emb=4, hidden=6)
    ctx = torch.randint(0, 11, (3, 5), generator=torch.Generator().manual_seed(1))
    assert torch.equal(rollout(model, ctx, 7), rollout(model, ctx, 7))
    a = rollout(model, ctx, 7, torch.Generator().manual_seed(2))
    assert a.shape == (3, 7) and torch.equal(a, rollout(model, ctx, 7, torch.Generator().manual_seed(2)))
    assert model.training


def test_kl_by_offset_is_zero_for_the_teacher_itself_and_positive_otherwise():
    rng = np.random.default_rng(0)
    teacher = NGramLM(rng.integers(0, 11, 500), 2, 11, 0.1)
    ctx = torch.randint(0, 11, (4, 6), generator=torch.Generator().manual_seed(1))
    written = torch.randint(0, 11, (4, 5), generator=torch.Generator().manual_seed(2))
    np.testing.assert_allclose(kl_by_offset(teacher, teacher, ctx, written), np.zeros(5), atol=1e-6)
    torch.manual_seed(0)
    kl = kl_by_offset(teacher, CharLM("rnn", vocab=11, emb=4, hidden=6), ctx, written)
    assert kl.shape == (5,) and (kl > 0).all()


def test_counted_only_kl_and_uncounted_share():
    # a bigram teacher counted on ids 0..4 only: after any of 5..10 its row is uniform
    rng = np.random.default_rng(0)
    teacher = NGramLM(rng.integers(0, 5, 2_000), 2, 11, 0.1)
    ctx = torch.tensor([[1, 2, 7], [3, 4, 0], [0, 9, 1], [2, 2, 2]])
    written = torch.tensor([[1, 8, 2, 3], [6, 0, 10, 4], [1, 1, 1, 1], [5, 6, 7, 8]])
    # the history of offset k ends with ctx[:, -1] (k = 1) or written[:, k - 2]
    last = torch.cat([ctx[:, -1:], written[:, :-1]], 1)
    uncounted = (last >= 5).float()
    np.testing.assert_allclose(uncounted_share(teacher, ctx, written), uncounted.mean(0).numpy())
    torch.manual_seed(0)
    student = CharLM("rnn", vocab=11, emb=4, hidden=6)
    per_row = np.stack([kl_by_offset(teacher, student, ctx[i : i + 1], written[i : i + 1]) for i in range(4)])
    counted = 1 - uncounted.numpy()
    expected = (per_row * counted).sum(0) / counted.sum(0)
    np.testing.assert_allclose(kl_by_offset(teacher, student, ctx, written, counted_only=True), expected,
                               rtol=1e-5)
    np.testing.assert_allclose(kl_by_offset(teacher, student, ctx, written), per_row.mean(0), rtol=1e-5)


def test_greedy_agreement_shapes():
    torch.manual_seed(0)
    model = CharLM("rnn", vocab=11, emb=4, hidden=6)
    ctx = torch.randint(0, 11, (8, 20), generator=torch.Generator().manual_seed(1))
    truth = torch.randint(0, 11, (8, 5), generator=torch.Generator().manual_seed(2))
    forced, free, own = greedy_agreement(model, ctx, truth)
    assert forced.shape == free.shape == (5,) and own.shape == (8, 5)
    assert forced[0] == free[0]                      # the first prediction is the same in both
