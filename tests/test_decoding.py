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


# --- Sampling rules on logits (chapter 13) ---------------------------------------------------------

SUBSETS = torch.tensor([[(m >> i) & 1 for i in range(6)] for m in range(1, 64)], dtype=torch.bool)  # (63, 6)


def kept(logits: torch.Tensor) -> set[int]:
    """Indices of a 1-D filtered logits vector that were not set to -inf."""
    return set(torch.isfinite(logits).nonzero().flatten().tolist())


def test_top_p_keeps_the_smallest_set_with_mass_at_least_p():
    # catches: the classic off-by-one (dropping the token whose probability crosses p, or keeping
    # one more), ranking by logit order reversed, or a set that is not the smallest one
    g = torch.Generator().manual_seed(0)
    for seed in range(150):
        logits = torch.randn(6, generator=g) * (0.3 + 3 * seed / 150)  # flat to peaked
        probs = logits.softmax(-1).double()
        masses = SUBSETS.double() @ probs  # (63,) mass of every non-empty subset
        for p in [0.05, 0.3, 0.5, 0.9, 0.99, *torch.rand(3, generator=g).tolist()]:
            out = gu.top_p_logits(logits, p)
            size = int(SUBSETS[masses >= p].sum(1).min())  # brute force: the smallest sufficient size
            best = SUBSETS[masses >= p][SUBSETS[masses >= p].sum(1) == size]
            assert len(kept(out)) == size, (seed, p)
            assert any(kept(out) == set(b.nonzero().flatten().tolist()) for b in best), (seed, p)
            assert int(logits.argmax()) in kept(out)  # the most probable token always survives
            assert torch.equal(out[torch.isfinite(out)], logits[torch.isfinite(out)])  # kept ones unchanged


def test_top_p_when_p_is_exactly_a_cumulative_sum():
    # catches: `<=` for `<` (or `>` for `>=`) at the boundary: a set whose mass equals p is enough
    q = torch.tensor([0.125, 0.5, 0.0625, 0.25, 0.0625])  # dyadic: every sum below is exact in float32
    logits = q.log()
    assert torch.equal(logits.softmax(-1), q), "softmax(log q) is not exact here; the test needs it"
    assert kept(gu.top_p_logits(logits, 0.5)) == {1}
    assert kept(gu.top_p_logits(logits, 0.75)) == {1, 3}
    assert kept(gu.top_p_logits(logits, 0.875)) == {1, 3, 0}
    # random distributions: p equal to the float32 cumulative sum of the m most probable tokens keeps
    # exactly m; the next float32 above p needs one more token
    g = torch.Generator().manual_seed(1)
    for _ in range(30):
        logits = torch.randn(1, 6, generator=g) * 2
        cum = logits.float().softmax(-1).sort(dim=-1, descending=True, stable=True).values.cumsum(-1)[0]
        for m in range(1, 6):
            p = cum[m - 1]
            above = float(torch.nextafter(p, torch.tensor(2.0)))
            assert len(kept(gu.top_p_logits(logits, float(p))[0])) == m
            assert len(kept(gu.top_p_logits(logits, above)[0])) == m + 1


def test_top_p_one_keeps_everything_and_bad_p_is_refused():
    # catches: p = 1 dropping tokens whose probability is lost to rounding in the cumulative sum;
    # p outside (0, 1] silently accepted
    logits = torch.tensor([[5.0, 0.0, -30.0, -80.0], [1.0, 1.0, 1.0, 1.0]])
    assert torch.equal(gu.top_p_logits(logits, 1.0), logits)
    assert len(kept(gu.top_p_logits(logits[0], 1e-6))) == 1
    for p in [0.0, -0.1, 1.5]:
        with pytest.raises(ValueError, match="p="):
            gu.top_p_logits(logits, p)


def test_top_k_keeps_exactly_the_k_largest():
    # catches: keeping k - 1 or k + 1 entries, keeping the smallest, changing the kept values
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(8, 20, generator=g)
    for k in range(1, 20):
        out = gu.top_k_logits(logits, k)
        assert torch.equal(torch.isfinite(out).sum(1), torch.full((8,), k))
        for row in range(8):
            assert kept(out[row]) == set(logits[row].topk(k).indices.tolist())
        assert torch.equal(out[torch.isfinite(out)], logits[torch.isfinite(out)])


def test_top_k_keeps_ties_identity_for_large_k_and_errors():
    # catches: dropping one of several tokens tied at the k-th value (an arbitrary choice), k >= V
    # not being a no-op, k = 0 silently giving all -inf (softmax of that is NaN)
    assert kept(gu.top_k_logits(torch.tensor([1.0, 3.0, 3.0, 2.0]), 2)) == {1, 2}
    assert kept(gu.top_k_logits(torch.tensor([1.0, 3.0, 3.0, 2.0]), 1)) == {1, 2}
    assert kept(gu.top_k_logits(torch.tensor([1.0, 3.0, 2.0, 2.0]), 2)) == {1, 2, 3}
    logits = torch.randn(3, 7)
    assert torch.equal(gu.top_k_logits(logits, 7), logits)
    assert torch.equal(gu.top_k_logits(logits, 50), logits)
    with pytest.raises(ValueError, match="k=0"):
        gu.top_k_logits(logits, 0)


def test_temperature_zero_is_greedy():
    # catches: temperature 0 dividing by zero (NaN) or still drawing; temperature multiplying the
    # logits instead of dividing them (1e-4 would then make the draw almost uniform)
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(64, 30, generator=g)
    assert torch.equal(gu.sample_next(logits, temperature=0), logits.argmax(-1))
    gap = logits.clone()
    gap[torch.arange(64), logits.argmax(-1)] += 1.0  # the best token leads by at least 1
    for seed in range(3):
        draws = gu.sample_next(gap, temperature=1e-4, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(draws, logits.argmax(-1))
    with pytest.raises(ValueError, match="temperature"):
        gu.sample_next(logits, temperature=-1.0)


def test_temperature_one_draws_from_the_softmax():
    # catches: sampling from the wrong distribution (logits not softmaxed, an extra temperature,
    # a filter applied when none was asked for, an argmax instead of a draw)
    logits = torch.tensor([1.0, 0.0, -1.0, 2.0, 0.5])
    n = 20_000
    draws = gu.sample_next(logits.expand(n, -1), generator=torch.Generator().manual_seed(4))
    freq = torch.bincount(draws, minlength=5).double() / n
    assert draws.shape == (n,) and draws.dtype == torch.long
    assert torch.allclose(freq, logits.softmax(-1).double(), atol=0.015)  # about 4 standard errors


def test_filters_come_after_the_temperature():
    # catches: top-p applied before the temperature. At temperature 1 the 0.9-nucleus of these
    # logits is {0, 1}; at temperature 10 the distribution is almost flat and the nucleus is all 5.
    logits = torch.tensor([3.0, 1.0, 0.0, -1.0, -2.0]).expand(2000, -1)
    assert kept(gu.top_p_logits(logits[0], 0.9)) == {0, 1}
    draws = gu.sample_next(logits, temperature=10.0, top_p=0.9, generator=torch.Generator().manual_seed(5))
    assert set(draws.tolist()) == {0, 1, 2, 3, 4}
    # top-k = 1 and a tiny top-p leave only the argmax to draw
    assert set(gu.sample_next(logits, top_k=1).tolist()) == {0}
    assert set(gu.sample_next(logits, top_p=1e-3).tolist()) == {0}


def test_repetition_penalty_by_hand():
    # catches: dividing negative logits (which makes a seen token MORE likely), penalising ids seen
    # in another row, penalising a token twice when it was seen twice, penalty 1 not a no-op
    logits = torch.tensor([[2.0, -2.0, 1.0, -1.0, 0.5], [2.0, -2.0, 1.0, -1.0, 0.5]])
    previous = torch.tensor([[0, 1, 1], [2, 3, 3]])
    out = gu.repetition_penalty_logits(logits, previous, 2.0)
    assert torch.equal(out, torch.tensor([[1.0, -4.0, 1.0, -1.0, 0.5], [2.0, -2.0, 0.5, -2.0, 0.5]]))
    assert torch.equal(gu.repetition_penalty_logits(logits, previous, 1.0), logits)
    with pytest.raises(ValueError, match="penalty"):
        gu.repetition_penalty_logits(logits, previous, 0.5)
    with pytest.raises(ValueError, match="same B"):
        gu.repetition_penalty_logits(logits, previous[:1], 2.0)
    with pytest.raises(ValueError, match="previous_ids"):
        gu.sample_next(logits, repetition_penalty=1.5)
    # with temperature 0 the penalty still applies: in row 0 the seen token 0 (2 / 4) loses to token 2
    greedy = gu.sample_next(logits, temperature=0, repetition_penalty=4.0, previous_ids=previous)
    assert greedy.tolist() == [2, 0]


def test_filters_agree_with_hugging_face():
    # catches: any difference from the reference implementations that chapter 13 cites. HF's top-p
    # sorts ascending and removes tokens while their cumulative mass is <= 1 - p; that is the same
    # set as ours (keep a token iff the mass of the more probable ones is < p) up to rounding when
    # p is within ~1e-7 of a cumulative sum, which random p here does not hit.
    lp = pytest.importorskip("transformers.generation.logits_process")
    g = torch.Generator().manual_seed(6)
    logits = torch.randn(200, 20, generator=g) * 2
    previous = torch.randint(0, 20, (200, 12), generator=g)
    for penalty in [1.0, 1.3, 2.0]:
        hf = lp.RepetitionPenaltyLogitsProcessor(penalty=penalty)(previous, logits.clone())
        assert torch.allclose(gu.repetition_penalty_logits(logits, previous, penalty), hf)
    for k in [1, 3, 10, 19]:
        assert torch.equal(gu.top_k_logits(logits, k), lp.TopKLogitsWarper(top_k=k)(previous, logits.clone()))
    for p in [0.1, 0.5, 0.8, 0.95, *torch.rand(4, generator=g).tolist()]:
        hf = lp.TopPLogitsWarper(top_p=p)(previous, logits.clone())
        assert torch.equal(torch.isfinite(gu.top_p_logits(logits, p)), torch.isfinite(hf)), p


# --- sample(): chapter 09's GPT, with and without its key/value cache -----------------------------


def tiny_gpt():
    from gen_utils.chapters.ch09_transformer_gpt import GPT

    torch.manual_seed(0)
    model = GPT(vocab=11, block=16, d_model=16, n_layer=2, n_head=2)
    for p in model.parameters():  # larger weights than GPT-2's init: decisive logits, no near-ties
        if p.dim() == 2:
            torch.nn.init.normal_(p, 0.0, 0.5)
    return model


def test_sample_temperature_zero_equals_argmax_without_cache():
    # catches: a cache that misreads positions (off by one at the first step, fed twice, not fed),
    # or taking logits from the wrong position
    model = tiny_gpt()
    prompt = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
    from gen_utils.chapters.ch09_transformer_gpt import KVCache

    out = gu.sample(model, prompt, 12, temperature=0, cache=KVCache)  # 16 = block: no cache restart
    assert torch.equal(gu.sample(model, prompt, 12, temperature=0), out)  # the uncached path too
    ref = prompt
    with torch.no_grad():
        for _ in range(12):
            ref = torch.cat([ref, model(ref)[:, -1].argmax(-1, keepdim=True)], 1)
    assert out.shape == (2, 16)
    assert torch.equal(out, ref)


def test_sample_past_the_block_follows_generate_text():
    # catches: a crash once the cache holds model.block positions, a restart that differs from
    # chapter 09's (wrong window, positions not reset); draws not reproducible from the seed
    from gen_utils.chapters.ch09_transformer_gpt import KVCache, generate_text

    model = tiny_gpt()
    prompt = torch.tensor([[1, 2, 3], [4, 5, 6]])
    out = gu.sample(model, prompt, 40, generator=torch.Generator().manual_seed(7), cache=KVCache)
    assert out.shape == (2, 43) and torch.equal(out[:, :3], prompt)
    assert int(out.min()) >= 0 and int(out.max()) < 11
    ref = generate_text(model, prompt, 40, generator=torch.Generator().manual_seed(7))
    assert torch.equal(out, ref)  # same cache protocol, same draws
    # a prompt longer than the block is read from its last block tokens
    assert gu.sample(model, torch.randint(0, 11, (1, 20)), 3, temperature=0).shape == (1, 23)


def test_sample_is_reproducible_and_restores_the_mode():
    # catches: draws from the global RNG instead of the generator; sampling in train mode (dropout
    # on) or leaving the model in eval mode afterwards
    model = tiny_gpt()
    modes = []
    model.register_forward_pre_hook(lambda m, args: modes.append(m.training))
    prompt = torch.tensor([[1, 2, 3]])
    opts = dict(temperature=0.8, top_k=5, top_p=0.9, repetition_penalty=1.3)
    from gen_utils.chapters.ch09_transformer_gpt import KVCache

    a = gu.sample(model, prompt, 20, generator=torch.Generator().manual_seed(8), cache=KVCache, **opts)
    b = gu.sample(model, prompt, 20, generator=torch.Generator().manual_seed(8), cache=KVCache, **opts)
    assert torch.equal(a, b)
    assert model.training and modes and not any(modes)
