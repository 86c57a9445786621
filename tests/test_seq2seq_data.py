"""The translation data pipeline of chapter 08: tokenise → vocabulary → ids → padded batches + masks.

Edge cases the chapter relies on: an empty sentence, an unknown word, and a sentence longer than any
seen in training.
"""

from __future__ import annotations

import pytest
import torch
from _helpers import real_file

import gen_utils as gu

TRAIN_DE = ["Ein Hund läuft im Park.", "Zwei Männer spielen Fußball.", "Ein Mann fährt Fahrrad."]
TRAIN_EN = ["A dog runs in the park.", "Two men play soccer.", "A man rides a bike."]


def vocabs():
    src = gu.WordVocab([gu.word_tokenize(s) for s in TRAIN_DE], min_freq=1)
    tgt = gu.WordVocab([gu.word_tokenize(s) for s in TRAIN_EN], min_freq=1)
    return src, tgt


def test_empty_sentence_becomes_eos_only_and_pads_cleanly():
    src, tgt = vocabs()
    assert gu.word_tokenize("") == [] and gu.word_tokenize("   ") == []
    assert src.encode(gu.word_tokenize(""), bos=False) == [src.eos_id]
    assert tgt.encode([]) == [tgt.bos_id, tgt.eos_id]
    batch = gu.pad_sequences([src.encode(["ein", "hund"], bos=False), src.encode([], bos=False)])
    assert batch.lengths.tolist() == [3, 1]
    assert batch.mask.tolist() == [[True, True, True], [True, False, False]]
    assert batch.tokens[1].tolist() == [src.eos_id, src.pad_id, src.pad_id]
    # a truly empty id sequence (no eos) is still a valid, fully masked row
    empty = gu.pad_sequences([[], [5, 6]])
    assert empty.lengths.tolist() == [0, 2] and not empty.mask[0].any()
    assert tgt.decode(tgt.encode([])) == []


def test_unknown_word_maps_to_unk_and_back():
    src, _ = vocabs()
    ids = src.encode(gu.word_tokenize("Ein Zebra läuft."), bos=False)
    assert ids[1] == src.unk_id
    assert src.decode(ids) == ["ein", "<unk>", "läuft", "."]
    # case is folded before lookup, so "EIN" is known
    assert src.encode(gu.word_tokenize("EIN"), bos=False, eos=False) == [src.stoi["ein"]]
    # min_freq: words seen once are unknown when min_freq=2
    strict = gu.WordVocab([gu.word_tokenize(s) for s in TRAIN_DE], min_freq=2)
    assert strict.encode(["hund"], bos=False, eos=False) == [strict.unk_id]
    assert strict.encode(["ein"], bos=False, eos=False) != [strict.unk_id]


def test_sentence_longer_than_any_in_training():
    src, tgt = vocabs()
    longest = max(len(gu.word_tokenize(s)) for s in TRAIN_DE)
    long_sentence = " ".join(TRAIN_DE * 10)                 # 10x the whole training set
    tokens = gu.word_tokenize(long_sentence)
    assert len(tokens) > 5 * longest
    ids = src.encode(tokens, bos=False)
    assert len(ids) == len(tokens) + 1 and ids[-1] == src.eos_id
    assert src.unk_id not in ids                            # every word is known, just more of them
    src_batches = gu.seq2seq_batches([ids, src.encode(["ein"], bos=False)],
                                     [tgt.encode(["a"]), tgt.encode(["a"])], batch_size=2, shuffle=False)
    (s, t), = src_batches
    assert s.tokens.shape == (2, len(ids)) and s.lengths.tolist() == [len(ids), 2]
    assert s.mask.sum().item() == len(ids) + 2


def test_batches_cover_every_pair_once_with_consistent_masks():
    src, tgt = vocabs()
    g = torch.Generator().manual_seed(0)
    S = [src.encode(gu.word_tokenize(s), bos=False) for s in TRAIN_DE * 7]
    T = [tgt.encode(gu.word_tokenize(s)) for s in TRAIN_EN * 7]
    batches = gu.seq2seq_batches(S, T, batch_size=4, generator=g, sort_within=2)
    assert sum(b[0].tokens.shape[0] for b in batches) == len(S)
    seen = []
    for s, t in batches:
        assert torch.equal(s.mask.sum(1), s.lengths) and torch.equal(t.mask.sum(1), t.lengths)
        assert (s.tokens[~s.mask] == 0).all() and (t.tokens[~t.mask] == 0).all()
        assert (t.tokens[:, 0] == tgt.bos_id).all()
        for row, n in zip(s.tokens.tolist(), s.lengths.tolist(), strict=True):
            seen.append(tuple(row[:n]))
    assert sorted(seen) == sorted(tuple(x) for x in S)


def test_real_multi30k_pipeline():
    real_file("multi30k/train.de.gz")
    train = gu.load_multi30k("train")
    test = gu.load_multi30k("test")
    assert len(train) == 29_000 and len(test) == 1_000
    src_tok = [gu.word_tokenize(de) for de, _ in train]
    vocab = gu.WordVocab(src_tok, min_freq=2)
    test_ids = [vocab.encode(gu.word_tokenize(de), bos=False) for de, _ in test]
    assert all(ids[-1] == vocab.eos_id and len(ids) >= 2 for ids in test_ids)
    unk = sum(i == vocab.unk_id for ids in test_ids for i in ids) / sum(map(len, test_ids))
    assert 0 < unk < 0.1, f"unexpected share of unknown test words: {unk:.3f}"
    longest = max(map(len, src_tok))
    too_long = gu.word_tokenize(" ".join(de for de, _ in test[:10]))
    assert len(too_long) > longest
    assert len(vocab.encode(too_long, bos=False)) == len(too_long) + 1


@pytest.mark.parametrize("bad", [[[1, 2]], []])
def test_mismatched_or_empty_inputs_are_reported(bad):
    if bad:
        with pytest.raises(ValueError, match="1 source but 0 target"):
            gu.seq2seq_batches(bad, [], batch_size=2)
    else:
        with pytest.raises(ValueError, match="at least one"):
            gu.pad_sequences(bad)
