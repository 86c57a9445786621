"""Decoding an autoregressive model: greedy search and beam search, for any model.

The model is seen only through a *step function*

    step(prefix, state) -> (log_probs, new_state)

prefix:    (K, t) int64, the tokens of K hypotheses so far (the first one is ``bos_id``);
state:     whatever the model carries between steps (an RNN's hidden state, a key/value cache,
           or ``None``); every tensor in it has the hypotheses on dimension 0 (K, ...), so it can
           be re-ordered when beams are pruned (pass ``reorder_state`` for any other layout);
log_probs: (K, V) float, log p(next token | prefix) — normalised over the vocabulary;
new_state: the state after reading ``prefix[:, -1]``.

An RNN decoder uses ``prefix[:, -1]`` and its state; a Transformer may ignore the state and
re-read the whole prefix. Chapter 08 (GRU + attention) and chapter 10 (Transformer) share this.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

StepFn = Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]]


@dataclass
class Hypothesis:
    """One decoded sequence.

    tokens: generated ids, without ``bos`` and without the final ``eos``.
    log_prob: sum of the log-probabilities of every generated token (``eos`` included).
    score: ``log_prob / length ** length_norm`` (length counts ``eos``), what beams are ranked by.
    finished: True if the sequence ended with ``eos``, False if it hit ``max_len``.
    """

    tokens: list[int]
    log_prob: float
    score: float
    finished: bool


def _select(state: Any, index: torch.Tensor) -> Any:
    """Index dimension 0 of every tensor in a nested tuple/list/dict ``state``."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.index_select(0, index.to(state.device))
    if isinstance(state, (tuple, list)):
        return type(state)(_select(s, index) for s in state)
    if isinstance(state, dict):
        return {k: _select(v, index) for k, v in state.items()}
    raise TypeError(
        f"cannot re-order a decoder state of type {type(state).__name__}; use tensors (K, ...) "
        "in tuples/lists/dicts, or pass reorder_state=(state, index) -> state"
    )


def _check_log_probs(log_probs: torch.Tensor, k: int) -> None:
    if log_probs.dim() != 2 or log_probs.shape[0] != k:
        raise ValueError(
            f"the step function must return log-probs of shape (K, V) = ({k}, V); "
            f"got {tuple(log_probs.shape)}"
        )
    if torch.isnan(log_probs).any():  # argmax and top-k would pick NaN silently
        rows = torch.isnan(log_probs).any(1).nonzero().flatten().tolist()
        raise ValueError(f"the step function returned NaN log-probs (rows {rows[:5]}): the model's "
                         "output is not finite")


@torch.no_grad()
def greedy_search(
    step: StepFn,
    state: Any,
    *,
    batch_size: int,
    bos_id: int,
    eos_id: int,
    max_len: int,
    device: torch.device | str = "cpu",
) -> list[list[int]]:
    """Decode ``batch_size`` sequences at once, always taking the most likely next token.

    state: the initial state for the whole batch (tensors (B, ...)).
    max_len: at most this many tokens are generated per sequence (``eos`` included).
    Returns one list of ids per sequence, without ``bos`` and cut before ``eos``.
    """
    if max_len < 1:
        raise ValueError(f"max_len must be at least 1, got {max_len}")
    prefix = torch.full((batch_size, 1), bos_id, dtype=torch.long, device=device)
    done = torch.zeros(batch_size, dtype=torch.bool, device=device)
    for _ in range(max_len):
        log_probs, state = step(prefix, state)
        _check_log_probs(log_probs, batch_size)
        nxt = log_probs.argmax(-1)
        nxt = torch.where(done, torch.full_like(nxt, eos_id), nxt)
        prefix = torch.cat([prefix, nxt[:, None]], 1)
        done |= nxt == eos_id
        if bool(done.all()):
            break
    out = []
    for row in prefix[:, 1:].tolist():
        out.append(row[: row.index(eos_id)] if eos_id in row else row)
    return out


@torch.no_grad()
def beam_search(
    step: StepFn,
    state: Any,
    *,
    beam_size: int,
    bos_id: int,
    eos_id: int,
    max_len: int,
    length_norm: float = 1.0,
    n_best: int = 1,
    reorder_state: Callable[[Any, torch.Tensor], Any] | None = None,
    device: torch.device | str = "cpu",
) -> list[Hypothesis]:
    """Beam search for ONE sequence: keep the ``beam_size`` best prefixes at every step.

    state: the initial state for a single hypothesis (tensors (1, ...)); it is repeated along
      dimension 0 as the beam grows.
    max_len: at most this many tokens are generated (``eos`` included); beams still open then
      are returned with ``finished=False``.
    length_norm: alpha in ``score = log_prob / length ** alpha``; 0 ranks by the raw
      log-probability (which favours short outputs), 1 by the mean log-probability per token.
    Search stops at ``max_len`` or once ``beam_size`` hypotheses have ended with ``eos`` and no
    open beam scores better (at its current length) than the best of them; with
    ``length_norm=0`` that rule is exact for the best hypothesis, since log-probabilities only
    fall as a beam grows.
    Returns the ``n_best`` hypotheses, best first. With ``beam_size=1`` this is greedy search.
    """
    if beam_size < 1 or max_len < 1:
        raise ValueError(f"beam_size and max_len must be at least 1, got {beam_size}, {max_len}")
    reorder = reorder_state or _select

    def score(lp: float, length: int) -> float:
        return lp / (length ** length_norm)

    prefix = torch.full((1, 1), bos_id, dtype=torch.long, device=device)
    beam_lp = torch.zeros(1, device=device)  # (K,) log-probability of each open beam
    finished: list[Hypothesis] = []
    for t in range(1, max_len + 1):
        log_probs, state = step(prefix, state)
        _check_log_probs(log_probs, prefix.shape[0])
        vocab = log_probs.shape[1]
        cand = (beam_lp[:, None] + log_probs.float()).flatten()  # (K * V,)
        top_lp, top_idx = cand.topk(min(2 * beam_size, cand.numel()))
        keep_beam, keep_tok, keep_lp = [], [], []
        for lp, idx in zip(top_lp.tolist(), top_idx.tolist(), strict=True):
            beam, tok = divmod(idx, vocab)
            if tok == eos_id:
                finished.append(Hypothesis(prefix[beam, 1:].tolist(), lp, score(lp, t), True))
            else:
                keep_beam.append(beam)
                keep_tok.append(tok)
                keep_lp.append(lp)
            if len(keep_beam) == beam_size:
                break
        if not keep_beam:
            break
        if len(finished) >= beam_size and max(score(lp, t) for lp in keep_lp) <= max(
                h.score for h in finished):
            break  # enough finished, and no open beam currently scores better than the best
        index = torch.tensor(keep_beam, dtype=torch.long, device=prefix.device)
        prefix = torch.cat([prefix[index], torch.tensor(keep_tok, device=prefix.device)[:, None]], 1)
        beam_lp = torch.tensor(keep_lp, device=prefix.device)
        state = reorder(state, index)
    else:  # max_len reached with beams still open
        for row, lp in zip(prefix[:, 1:].tolist(), beam_lp.tolist(), strict=True):
            finished.append(Hypothesis(row, lp, score(lp, max_len), False))
    finished.sort(key=lambda h: h.score, reverse=True)
    return finished[:n_best]
