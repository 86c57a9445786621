"""gen_utils.decoding: greedy and beam search through a step function."""

from __future__ import annotations

import math

import pytest
import torch

import gen_utils as gu

BOS, EOS = 0, 1


def table_step(table: dict[tuple[int, ...], dict[int, float]], vocab: int):
    """A step function from a table: generated prefix (without bos) → {token: probability}.

    Prefixes missing from the table predict eos with probability 1 (up to a floor).
    """

    def step(prefix: torch.Tensor, state):
        rows = []
        for row in prefix[:, 1:].tolist():
            p = torch.full((vocab,), 1e-9)
            for tok, q in table.get(tuple(row), {EOS: 1.0}).items():
                p[tok] = q
            rows.append((p / p.sum()).log())
        return torch.stack(rows), state

    return step


# bos → a (0.6) or b (0.4); after a every continuation is unlikely; after b, eos is almost sure.
# Greedy takes a; the best sequence is b eos (0.4 * 0.9 = 0.36 > 0.6 * 0.3 = 0.18).
A, B, C, D = 2, 3, 4, 5
TOY = {
    (): {A: 0.6, B: 0.4},
    (A,): {EOS: 0.3, C: 0.25, D: 0.25, B: 0.2},
    (B,): {EOS: 0.9, C: 0.1},
}


def random_lm(vocab: int, seed: int):
    """A fixed random bigram 'model' with a (K, 1) dummy state that counts steps."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(vocab, vocab, generator=g) * 2.0

    def step(prefix, state):
        return torch.log_softmax(logits[prefix[:, -1]], -1), state + 1

    return step


def test_beam_finds_better_sequence_than_greedy():
    step = table_step(TOY, vocab=6)
    greedy = gu.greedy_search(step, None, batch_size=1, bos_id=BOS, eos_id=EOS, max_len=5)
    assert greedy == [[A]]
    best = gu.beam_search(step, None, beam_size=2, bos_id=BOS, eos_id=EOS, max_len=5,
                          length_norm=0.0)[0]
    assert best.tokens == [B] and best.finished
    assert best.log_prob == pytest.approx(math.log(0.4 * 0.9), abs=1e-5)
    assert best.log_prob > math.log(0.6 * 0.3)


@pytest.mark.parametrize("seed", range(5))
def test_beam_one_is_greedy(seed):
    step = random_lm(vocab=12, seed=seed)
    greedy = gu.greedy_search(step, torch.zeros(1, 1), batch_size=1, bos_id=BOS, eos_id=EOS,
                              max_len=15)
    beam = gu.beam_search(step, torch.zeros(1, 1), beam_size=1, bos_id=BOS, eos_id=EOS,
                          max_len=15)
    assert beam[0].tokens == greedy[0]


def test_greedy_batch_equals_one_by_one():
    step = random_lm(vocab=12, seed=3)
    batched = gu.greedy_search(step, torch.zeros(1, 1), batch_size=1, bos_id=BOS, eos_id=EOS, max_len=10)
    # a batch whose rows are identical gives identical rows
    four = gu.greedy_search(step, torch.zeros(4, 1), batch_size=4, bos_id=BOS, eos_id=EOS, max_len=10)
    assert four == batched * 4


def test_eos_ends_a_hypothesis_and_is_not_returned():
    step = table_step({(): {C: 0.9, D: 0.1}, (C,): {EOS: 1.0}, (D,): {EOS: 1.0}}, vocab=6)
    hyps = gu.beam_search(step, None, beam_size=2, bos_id=BOS, eos_id=EOS, max_len=10, n_best=2)
    assert [h.tokens for h in hyps] == [[C], [D]]
    assert all(h.finished and EOS not in h.tokens for h in hyps)
    # eos's own log-probability is counted, and the score is normalised by length 2 (C, eos)
    assert hyps[0].log_prob == pytest.approx(math.log(0.9), abs=1e-5)
    assert hyps[0].score == pytest.approx(math.log(0.9) / 2, abs=1e-5)
    # greedy stops each row at its first eos
    assert gu.greedy_search(step, None, batch_size=1, bos_id=BOS, eos_id=EOS, max_len=10) == [[C]]


def test_immediate_eos_gives_empty_output():
    step = table_step({(): {EOS: 0.99, C: 0.01}}, vocab=6)
    best = gu.beam_search(step, None, beam_size=3, bos_id=BOS, eos_id=EOS, max_len=4)[0]
    assert best.tokens == [] and best.finished


def test_max_len_caps_the_output():
    # a model that never ends: eos has (almost) no probability
    never_ends = lambda prefix, state: (  # noqa: E731
        torch.log_softmax(torch.tensor([[0.0, -1e9, 1.0, 0.5, 0.0, 0.0]]).expand(prefix.shape[0], -1), -1),
        state,
    )
    hyps = gu.beam_search(never_ends, None, beam_size=3, bos_id=BOS, eos_id=EOS, max_len=7, n_best=3)
    assert len(hyps) == 3
    assert all(len(h.tokens) == 7 and not h.finished for h in hyps)
    assert hyps[0].tokens == [A] * 7
    out = gu.greedy_search(never_ends, None, batch_size=2, bos_id=BOS, eos_id=EOS, max_len=7)
    assert out == [[A] * 7, [A] * 7]


def test_length_norm_prefers_longer_outputs():
    # short: eos at once (0.5); long: c c c eos with high per-token probability
    table = {(): {EOS: 0.5, C: 0.5}, (C,): {C: 0.95, EOS: 0.05}, (C, C): {C: 0.95, EOS: 0.05},
             (C, C, C): {EOS: 1.0}}
    step = table_step(table, vocab=6)
    raw = gu.beam_search(step, None, beam_size=3, bos_id=BOS, eos_id=EOS, max_len=6, length_norm=0.0)
    mean = gu.beam_search(step, None, beam_size=3, bos_id=BOS, eos_id=EOS, max_len=6, length_norm=1.0)
    assert raw[0].tokens == []
    assert mean[0].tokens == [C, C, C]


def test_state_is_reordered_with_the_beams():
    # state (K, 1) = sum of the tokens the model has read; it must follow its beam when the
    # beams are pruned and re-ordered, otherwise the assertion inside the step fails
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(40, 8, generator=g)
    logits[:, EOS] = -1e9

    def step(prefix, state):
        assert torch.equal(state[:, 0], prefix[:, :-1].sum(1)), "state did not follow its beam"
        new_state = state + prefix[:, -1:]
        return torch.log_softmax(logits[new_state[:, 0] % 40], -1), new_state

    hyps = gu.beam_search(step, torch.zeros(1, 1, dtype=torch.long), beam_size=4, bos_id=BOS,
                          eos_id=EOS, max_len=8, n_best=4)
    assert len(hyps) == 4 and all(len(h.tokens) == 8 for h in hyps)
    scores = [h.score for h in hyps]
    assert scores == sorted(scores, reverse=True)


def test_custom_reorder_for_batch_second_state():
    seen = []

    def step(prefix, state):  # GRU-style state (layers, K, H)
        assert state.shape[1] == prefix.shape[0]
        seen.append(state.shape)
        return torch.log_softmax(torch.randn(prefix.shape[0], 6, generator=g), -1), state

    g = torch.Generator().manual_seed(0)
    gu.beam_search(step, torch.zeros(2, 1, 4), beam_size=4, bos_id=BOS, eos_id=EOS, max_len=6,
                   reorder_state=lambda s, i: s.index_select(1, i))
    assert seen[0] == (2, 1, 4) and any(s[1] > 1 for s in seen)


def test_bad_step_output_is_reported():
    bad = lambda prefix, state: (torch.zeros(6), state)  # noqa: E731
    with pytest.raises(ValueError, match="shape"):
        gu.beam_search(bad, None, beam_size=2, bos_id=BOS, eos_id=EOS, max_len=3)
    with pytest.raises(ValueError, match="at least 1"):
        gu.beam_search(bad, None, beam_size=0, bos_id=BOS, eos_id=EOS, max_len=3)


def test_nan_log_probs_are_refused_by_both_searches():
    def step(prefix, state):
        lp = torch.log_softmax(torch.zeros(prefix.shape[0], 5), -1)
        lp[0, 2] = float("nan")
        return lp, state

    with pytest.raises(ValueError, match="NaN log-probs"):
        gu.greedy_search(step, None, batch_size=2, bos_id=1, eos_id=2, max_len=3)
    with pytest.raises(ValueError, match="NaN log-probs"):
        gu.beam_search(step, None, beam_size=2, bos_id=1, eos_id=2, max_len=3)
