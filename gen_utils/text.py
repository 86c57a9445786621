"""Tokenisation and batching for text: characters, words, padding and LM windows."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)

_WORD_RE = re.compile(r"\w+(?:[-']\w+)*|[^\w\s]", re.UNICODE)


def check_ids(ids: Sequence[int], size: int) -> None:
    """Raise ValueError naming the first id outside 0 … size - 1 (Python would wrap a negative one)."""
    bad = next((i for i in ids if not 0 <= i < size), None)
    if bad is not None:
        raise ValueError(f"id {bad} is not in the vocabulary of {size} (valid ids: 0 … {size - 1})")


class CharTokenizer:
    """Characters ↔ integer ids, the vocabulary taken from the training text (sorted)."""

    def __init__(self, text: str) -> None:
        self.chars: list[str] = sorted(set(text))
        self.stoi = {c: i for i, c in enumerate(self.chars)}

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> torch.Tensor:
        """str of length T → (T,) int64. Raises ValueError naming an unknown character."""
        try:
            return torch.tensor([self.stoi[c] for c in text], dtype=torch.long)
        except KeyError as e:
            pos = next(i for i, c in enumerate(text) if c not in self.stoi)
            raise ValueError(
                f"character {e.args[0]!r} at position {pos} is not in the vocabulary "
                f"({len(self)} characters built from the training text)"
            ) from None

    def decode(self, ids: torch.Tensor | Sequence[int]) -> str:
        """(T,) ids → str. Raises ValueError for an id outside 0 … len(self) - 1."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        check_ids(ids, len(self.chars))
        return "".join(self.chars[i] for i in ids)


def word_tokenize(sentence: str, lower: bool = True) -> list[str]:
    """Split a sentence into words and punctuation marks (a light stand-in for spaCy).

    ``"Zwei junge Männer, im Freien."`` → ``['zwei', 'junge', 'männer', ',', 'im', 'freien', '.']``.
    Hyphenated words and apostrophes inside a word stay whole.
    """
    if lower:
        sentence = sentence.lower()
    return _WORD_RE.findall(sentence)


class WordVocab:
    """Word ↔ id with the specials ``<pad>=0, <bos>=1, <eos>=2, <unk>=3``.

    Built from tokenised sentences; words seen fewer than ``min_freq`` times map to ``<unk>``.
    Ties in frequency are broken alphabetically so the ids do not depend on data order.
    """

    def __init__(self, sentences: Iterable[Sequence[str]], min_freq: int = 2) -> None:
        counts = Counter(tok for sent in sentences for tok in sent)
        words = sorted((w for w, c in counts.items() if c >= min_freq and w not in SPECIALS),
                       key=lambda w: (-counts[w], w))
        self.itos: list[str] = list(SPECIALS) + words
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = range(4)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: Sequence[str], bos: bool = True, eos: bool = True) -> list[int]:
        """Tokens → ids (unknown words → ``<unk>``), wrapped in ``<bos> … <eos>`` by default."""
        ids = [self.stoi.get(t, self.unk_id) for t in tokens]
        return ([self.bos_id] if bos else []) + ids + ([self.eos_id] if eos else [])

    def decode(self, ids: Sequence[int] | torch.Tensor, strip: bool = True) -> list[str]:
        """Ids → tokens; with ``strip`` stop at ``<eos>`` and drop ``<pad>``/``<bos>``."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        check_ids(ids, len(self.itos))
        out = []
        for i in ids:
            if strip and i == self.eos_id:
                break
            if strip and i in (self.pad_id, self.bos_id):
                continue
            out.append(self.itos[i])
        return out


@dataclass
class Padded:
    """A padded batch: tokens (B, T) int64, lengths (B,) int64, mask (B, T) bool (True = real)."""

    tokens: torch.Tensor
    lengths: torch.Tensor
    mask: torch.Tensor

    def to(self, device: torch.device | str) -> Padded:
        return Padded(self.tokens.to(device), self.lengths.to(device), self.mask.to(device))


def pad_sequences(seqs: Sequence[Sequence[int]], pad_id: int = 0) -> Padded:
    """Right-pad id sequences to the longest one. Empty sequences are allowed (length 0)."""
    if len(seqs) == 0:
        raise ValueError("pad_sequences needs at least one sequence")
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    T = max(int(lengths.max()), 1)
    tokens = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    for i, s in enumerate(seqs):
        if len(s):
            tokens[i, : len(s)] = torch.as_tensor(s, dtype=torch.long)
    mask = torch.arange(T)[None, :] < lengths[:, None]
    return Padded(tokens, lengths, mask)


def seq2seq_batches(
    src: Sequence[Sequence[int]],
    tgt: Sequence[Sequence[int]],
    batch_size: int,
    *,
    pad_id: int = 0,
    shuffle: bool = True,
    generator: torch.Generator | None = None,
    sort_within: int = 0,
) -> list[tuple[Padded, Padded]]:
    """Pair up source/target id sequences into padded (src, tgt) batches for one epoch.

    sort_within: if > 0, sort each chunk of ``sort_within`` batches by source length before
    batching, which cuts padding (and time) while keeping batches random.
    """
    if len(src) != len(tgt):
        raise ValueError(f"{len(src)} source but {len(tgt)} target sequences")
    n = len(src)
    order = torch.randperm(n, generator=generator).tolist() if shuffle else list(range(n))
    if sort_within > 0:
        chunk = batch_size * sort_within
        order = [i for c in range(0, n, chunk)
                 for i in sorted(order[c : c + chunk], key=lambda j: len(src[j]))]
    batches = []
    for b in range(0, n, batch_size):
        idx = order[b : b + batch_size]
        batches.append((pad_sequences([src[i] for i in idx], pad_id),
                        pad_sequences([tgt[i] for i in idx], pad_id)))
    if shuffle and sort_within > 0:
        perm = torch.randperm(len(batches), generator=generator).tolist()
        batches = [batches[i] for i in perm]
    return batches


def lm_windows(
    data: torch.Tensor,
    block_size: int,
    batch_size: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random batch of language-model windows from a 1-D token stream (nanoGPT's get_batch).

    data: (N,) int64. Returns x, y of shape (batch_size, block_size) with y = x shifted by one.
    """
    if data.dim() != 1:
        raise ValueError(f"data must be 1-D token ids, got shape {tuple(data.shape)}")
    if len(data) <= block_size:
        raise ValueError(f"data has {len(data)} tokens, needs more than block_size={block_size}")
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
    offsets = torch.arange(block_size)
    idx = starts[:, None] + offsets[None, :]
    idx = idx.to(data.device)
    return data[idx], data[idx + 1]
