"""Decoding an autoregressive model: greedy and beam search, and sampling rules, for any model.

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

Sampling (chapter 13) works on logits instead, so any model can use it: ``top_k_logits``,
``top_p_logits`` and ``repetition_penalty_logits`` filter or reshape logits (..., V),
``sample_next`` turns logits (B, V) into next ids (B,), and ``sample`` runs chapter 09's GPT
(with its key/value cache when the caller passes chapter 09's KVCache class).
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


# --- Sampling rules on logits (chapter 13) ---------------------------------------------------------


def top_k_logits(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Top-k filtering (Fan et al. 2018): logits (..., V) -> (..., V), all but the k largest set to -inf.

    Ties at the k-th largest value are all kept, so more than k entries can survive (as in Hugging
    Face's TopKLogitsWarper); which of several tied tokens to drop would be an arbitrary choice.
    k >= V returns ``logits`` unchanged.
    """
    if k < 1:
        raise ValueError(f"top-k needs k >= 1 (k = 1 is greedy), got k={k}")
    if k >= logits.shape[-1]:
        return logits
    kth = logits.topk(k, dim=-1).values[..., -1:]  # (..., 1) the k-th largest value
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_logits(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus (top-p) filtering (Holtzman et al. 2020): logits (..., V) -> (..., V).

    Keeps the smallest set of tokens, taken in order of decreasing probability, whose total
    probability is >= p, and sets the others to -inf. The token whose probability carries the sum
    across p is kept, so the most probable token always survives; p = 1 keeps everything.
    Probabilities are computed in float32; ties are ordered by token id (stable sort).
    """
    if not 0 < p <= 1:
        raise ValueError(f"top-p needs 0 < p <= 1 (p = 1 keeps every token), got p={p}")
    if p == 1:  # rounding can make the cumulative sum reach 1 early and drop tiny tokens
        return logits
    probs, order = logits.float().softmax(-1).sort(dim=-1, descending=True, stable=True)
    cum = probs.cumsum(-1)  # (..., V) mass of the i+1 most probable tokens
    # the tokens before the sum reaches p are not enough on their own: keep them and the next one
    n_keep = (cum < p).sum(-1, keepdim=True) + 1  # (..., 1)
    keep_sorted = torch.arange(logits.shape[-1], device=logits.device) < n_keep
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)  # back to vocabulary order
    return logits.masked_fill(~keep, float("-inf"))


def repetition_penalty_logits(
    logits: torch.Tensor, previous_ids: torch.Tensor, penalty: float
) -> torch.Tensor:
    """CTRL's repetition penalty (Keskar et al. 2019), as Hugging Face applies it.

    logits (B, V); previous_ids (B, T) int64, the tokens each row has seen so far.
    For every token id present in its row of ``previous_ids``, a positive logit is divided by
    ``penalty`` and a negative one multiplied by it, so both move towards less likely (a plain
    division would make a negative logit *more* likely). penalty >= 1; 1 changes nothing.
    Returns (B, V).
    """
    if penalty < 1:
        raise ValueError(f"repetition penalty must be >= 1 (1 = no penalty), got {penalty}")
    if logits.dim() != 2 or previous_ids.dim() != 2 or previous_ids.shape[0] != logits.shape[0]:
        raise ValueError(f"expected logits (B, V) and previous_ids (B, T) with the same B; got "
                         f"{tuple(logits.shape)} and {tuple(previous_ids.shape)}")
    seen = torch.zeros_like(logits, dtype=torch.bool).scatter(1, previous_ids.to(logits.device), True)
    penalised = torch.where(logits < 0, logits * penalty, logits / penalty)
    return torch.where(seen, penalised, logits)


def sample_next(
    logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float = 1.0,
    previous_ids: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Choose the next token of each row: logits (B, V) -> ids (B,) int64, on the logits' device.

    Applied in this order: the repetition penalty (needs ``previous_ids`` (B, T)), the temperature
    (logits / temperature), top-k, top-p; then one draw from the softmax. temperature = 0 is greedy:
    the argmax of the penalised logits, without a draw (the filters always keep it).
    generator: a CPU torch.Generator; the draw is made on the CPU so a seed gives the same tokens
    on every device (as chapter 09's generate_text does).
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    logits = logits.float()
    if repetition_penalty != 1.0:
        if previous_ids is None:
            raise ValueError("repetition_penalty needs previous_ids (B, T), the tokens seen so far")
        logits = repetition_penalty_logits(logits, previous_ids, repetition_penalty)
    if temperature > 0:
        logits = logits / temperature
    if top_k is not None:
        logits = top_k_logits(logits, top_k)
    if top_p is not None:
        logits = top_p_logits(logits, top_p)
    if temperature == 0:
        return logits.argmax(-1)
    probs = logits.softmax(-1)
    return torch.multinomial(probs.cpu(), 1, generator=generator)[:, 0].to(logits.device)


@torch.no_grad()
def sample(
    model: torch.nn.Module,
    prompt: torch.Tensor,
    n_new: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float = 1.0,
    generator: torch.Generator | None = None,
    cache: type | None = None,
) -> torch.Tensor:
    """Sample ``n_new`` tokens after ``prompt`` (B, T0) ids from chapter 09's GPT -> (B, T0 + n_new).

    Each step calls ``sample_next`` with the options above; the repetition penalty sees every token
    so far, prompt included. cache: chapter 09's ``KVCache`` class (a library module may not import
    chapter code, so the caller passes it). With it the model reads the prompt once, then one new
    token per step, through one cache per block; once the cache holds ``model.block`` positions
    (the learned positions end there) it restarts from the last ``model.block // 2`` tokens, as
    chapter 09's generate_text does. Without it every step re-reads the last ``model.block`` tokens.
    A prompt longer than ``model.block`` is read from its last ``model.block`` tokens only.
    The model is in eval mode while sampling and goes back to its previous mode after.
    """
    if prompt.dim() != 2 or prompt.shape[1] == 0:
        raise ValueError(f"prompt must be (B, T0) ids with T0 >= 1, got shape {tuple(prompt.shape)}")
    options = dict(temperature=temperature, top_k=top_k, top_p=top_p,
                   repetition_penalty=repetition_penalty, generator=generator)
    was_training = model.training
    model.eval()
    try:
        idx = prompt
        caches = [cache() for _ in model.blocks] if cache is not None else None
        logits = model(idx[:, -model.block :], caches)[:, -1]
        for _ in range(n_new):
            nxt = sample_next(logits, previous_ids=idx, **options)
            idx = torch.cat([idx, nxt[:, None]], 1)
            if caches is None:
                logits = model(idx[:, -model.block :])[:, -1]  # re-read the (cropped) prefix
            elif len(caches[0]) < model.block:
                logits = model(nxt[:, None], caches)[:, -1]  # one new position
            else:  # learned positions end here: restart from the last half-context
                caches = [cache() for _ in model.blocks]
                logits = model(idx[:, -(model.block // 2) :], caches)[:, -1]
    finally:
        model.train(was_training)
    return idx
