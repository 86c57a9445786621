"""Chapter 07's recurrent cells and character LM (gen_utils.chapters.ch07_rnn_language_models), tiny."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from gen_utils.chapters.ch07_rnn_language_models import (
    CharLM,
    GRUCell,
    LSTMCell,
    RNNCell,
    chunks,
    detach,
    exposure_bias,
    next_char_probs,
    rnn_nats_per_char,
    streams,
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


def test_exposure_bias_shapes():
    torch.manual_seed(0)
    model = CharLM("rnn", vocab=11, emb=4, hidden=6)
    ids = torch.randint(0, 11, (300,), generator=torch.Generator().manual_seed(1))
    forced, free, own, truth, ctx = exposure_bias(model, ids, n=8, context=20, horizon=5)
    assert forced.shape == free.shape == (5,)
    assert own.shape == truth.shape == (3, 5) and ctx.shape == (3, 20)
    assert forced[0] == free[0]                      # the first prediction is the same in both
