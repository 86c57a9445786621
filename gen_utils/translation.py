"""Translation plumbing shared by chapters 08 and 10: Multi30k tokenised with vocabularies,
the batched sort → search → unsort loop, a detokeniser for sacreBLEU, and the lowercase
tokenised BLEU the anchors use."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .corpora import load_multi30k
from .metrics import corpus_bleu
from .text import Padded, WordVocab, pad_sequences, word_tokenize


@dataclass
class TranslationData:
    """One language pair of Multi30k, tokenised, with vocabularies built from the training split.

    *_pairs: raw ``(source, target)`` sentences; *_src / *_tgt: ``gu.word_tokenize`` tokens;
    train_src_ids: source ids without ``<bos>`` but with ``<eos>``; train_tgt_ids: target ids
    wrapped in ``<bos> … <eos>`` (teacher forcing feeds ``[:-1]`` and predicts ``[1:]``).
    """

    train_pairs: list[tuple[str, str]]
    test_pairs: list[tuple[str, str]]
    train_src: list[list[str]]
    train_tgt: list[list[str]]
    test_src: list[list[str]]
    test_tgt: list[list[str]]
    src_vocab: WordVocab
    tgt_vocab: WordVocab
    train_src_ids: list[list[int]]
    train_tgt_ids: list[list[int]]

    def summary(self, src_name: str = "German", tgt_name: str = "English") -> str:
        """One line: pairs per split and vocabulary sizes."""
        return (f"{len(self.train_pairs):,} training and {len(self.test_pairs):,} test pairs; vocabularies: "
                f"{len(self.src_vocab):,} {src_name} and {len(self.tgt_vocab):,} {tgt_name} words "
                "(incl. 4 specials)")


def load_translation_data(min_freq: int, n_train: int | None = None, n_test: int | None = None,
                          src: str = "de", tgt: str = "en", test_split: str = "test") -> TranslationData:
    """Multi30k ``src → tgt``: the first ``n_train`` training and ``n_test`` test pairs (None = all),
    word-tokenised, with vocabularies of the training words seen at least ``min_freq`` times."""
    train_pairs = load_multi30k("train", src, tgt)[:n_train]
    test_pairs = load_multi30k(test_split, src, tgt)[:n_test]
    train_src = [word_tokenize(s) for s, _ in train_pairs]
    train_tgt = [word_tokenize(t) for _, t in train_pairs]
    src_vocab = WordVocab(train_src, min_freq=min_freq)
    tgt_vocab = WordVocab(train_tgt, min_freq=min_freq)
    return TranslationData(
        train_pairs=train_pairs, test_pairs=test_pairs, train_src=train_src, train_tgt=train_tgt,
        test_src=[word_tokenize(s) for s, _ in test_pairs],
        test_tgt=[word_tokenize(t) for _, t in test_pairs],
        src_vocab=src_vocab, tgt_vocab=tgt_vocab,
        train_src_ids=[src_vocab.encode(s, bos=False) for s in train_src],
        train_tgt_ids=[tgt_vocab.encode(t) for t in train_tgt],
    )


def detokenize(tokens: list[str]) -> str:
    """Lower-cased word tokens → plain text for sacreBLEU: join with spaces, re-attach
    punctuation, capitalise the first letter. ``["a", "dog", "(", "brown", ")", "."]`` →
    ``"A dog (brown)."``

    ``<unk>`` becomes ``UNK``: sacreBLEU's 13a tokeniser would split ``<unk>`` into ``< unk >``, three
    unmatched tokens where the tokenised BLEU counts one; ``UNK`` stays one token that matches no reference
    word, so both scores charge an unknown word the same."""
    text = re.sub(r" ([.,!?;:)])", r"\1", " ".join("UNK" if t == "<unk>" else t for t in tokens))
    text = re.sub(r"\( ", "(", text)
    return text[:1].upper() + text[1:]


def lowercase_bleu(hypotheses: list[list[str]], references: list[list[str]]) -> float:
    """Corpus BLEU (0..100) over word tokens, lower-cased, no further tokenisation (sacrebleu with
    ``tokenize="none"``): the convention of the tutorials the book's anchors come from."""
    for name, corpus in (("hypotheses", hypotheses), ("references", references)):
        if isinstance(corpus, str) or any(isinstance(s, str) for s in corpus):
            raise TypeError(f"lowercase_bleu takes {name} as token lists, one per sentence "
                            "(e.g. gu.word_tokenize(s)); got strings, which would be scored per character")
    return corpus_bleu([" ".join(h) for h in hypotheses], [" ".join(r) for r in references],
                       tokenize="none", lowercase=True)[0]


SearchFn = Callable[[torch.nn.Module, Padded], list[list[int]]]


@torch.no_grad()
def translate(model: torch.nn.Module, sentences: Sequence[Sequence[str]], search: SearchFn,
              src_vocab: WordVocab, tgt_vocab: WordVocab, *, batch: int = 250,
              sort: bool = True) -> list[list[str]]:
    """Translate tokenised sentences in batches and return the outputs in the input order.

    The loop both translation chapters need: sort the sentences by length (so a batch holds
    little padding) → encode and pad each batch → ``search`` it → decode → unsort.
    search(model, src) -> one list of target ids per sentence (no ``<bos>``, cut before
      ``<eos>``, as ``gu.greedy_search`` returns them); src is a ``Padded`` batch (B, S) of
      source ids (``<eos>`` but no ``<bos>``) on the model's device.
    sort: False keeps the input order inside batches (more padding; chapter 10 uses it to show
      what a forgotten padding mask does).
    The model is in eval mode during the search and back in its previous mode afterwards.
    """
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    device = next(model.parameters()).device
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i])) if sort \
        else list(range(len(sentences)))
    was_training = model.training
    model.eval()
    out: list[list[str] | None] = [None] * len(sentences)
    try:
        for b in range(0, len(order), batch):
            idx = order[b : b + batch]
            src = pad_sequences([src_vocab.encode(sentences[i], bos=False) for i in idx]).to(device)
            hyps = search(model, src)
            if len(hyps) != len(idx):
                raise ValueError(f"search returned {len(hyps)} outputs for a batch of {len(idx)} sentences")
            for i, h in zip(idx, hyps, strict=True):
                out[i] = tgt_vocab.decode(h)
    finally:
        model.train(was_training)
    return out
