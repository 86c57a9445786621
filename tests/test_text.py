"""gen_utils.text: characters, words, vocabularies, padding, seq2seq batches and LM windows."""

from __future__ import annotations

import pytest
import torch
from _helpers import real_file

import gen_utils as gu
from gen_utils import text

# --- CharTokenizer --------------------------------------------------------------------------

def test_char_tokenizer_vocab_is_sorted_unique_chars():
    tok = gu.CharTokenizer("hello world")
    assert tok.chars == [" ", "d", "e", "h", "l", "o", "r", "w"]
    assert len(tok) == 8
    assert tok.stoi == {c: i for i, c in enumerate(tok.chars)}


def test_char_tokenizer_round_trip():
    tok = gu.CharTokenizer("To be, or not to be")
    ids = tok.encode("be not to")
    assert ids.dtype == torch.int64 and ids.shape == (9,)
    assert ids.tolist() == [tok.stoi[c] for c in "be not to"]
    assert tok.decode(ids) == "be not to"
    assert tok.decode(ids.tolist()) == "be not to"
    assert tok.encode("").shape == (0,) and tok.decode([]) == ""


def test_char_tokenizer_unknown_character_names_char_and_position():
    tok = gu.CharTokenizer("abc")
    with pytest.raises(ValueError) as info:
        tok.encode("abcaZb")
    msg = str(info.value)
    assert "'Z'" in msg and "position 4" in msg and "3 characters" in msg


def test_char_tokenizer_on_real_shakespeare():
    real_file("tinyshakespeare/input.txt")
    train, val = gu.shakespeare_split()
    tok = gu.CharTokenizer(train)
    assert len(tok) == 65
    sample = val[:2000]
    assert tok.decode(tok.encode(sample)) == sample


# --- word_tokenize --------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("sentence", "tokens"),
    [
        ("Zwei junge Männer, im Freien.", ["zwei", "junge", "männer", ",", "im", "freien", "."]),
        ("Two young, White males are outside near many bushes.",
         ["two", "young", ",", "white", "males", "are", "outside", "near", "many", "bushes", "."]),
        ("A man's well-known dog doesn't bark!",
         ["a", "man's", "well-known", "dog", "doesn't", "bark", "!"]),
        ("Wait...  what?!", ["wait", ".", ".", ".", "what", "?", "!"]),
        ("   ", []),
        ("", []),
    ],
)
def test_word_tokenize(sentence, tokens):
    assert gu.word_tokenize(sentence) == tokens


def test_word_tokenize_keeps_case_when_asked():
    assert gu.word_tokenize("Ein Hund.", lower=False) == ["Ein", "Hund", "."]


# --- WordVocab ------------------------------------------------------------------------------

SENTS = [["a", "dog", "runs"], ["a", "cat", "runs"], ["a", "dog", "sleeps"], ["the", "cat"]]


def test_word_vocab_specials_come_first():
    v = gu.WordVocab(SENTS)
    assert v.itos[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert (v.pad_id, v.bos_id, v.eos_id, v.unk_id) == (0, 1, 2, 3)
    assert [v.stoi[s] for s in text.SPECIALS] == [0, 1, 2, 3]


def test_word_vocab_min_freq_and_order():
    v = gu.WordVocab(SENTS, min_freq=2)
    # counts: a 3, cat 2, dog 2, runs 2 (ties alphabetical); sleeps, the once -> dropped
    assert v.itos[4:] == ["a", "cat", "dog", "runs"]
    assert len(v) == 8
    v1 = gu.WordVocab(SENTS, min_freq=1)
    assert v1.itos[4:] == ["a", "cat", "dog", "runs", "sleeps", "the"]


def test_word_vocab_ids_do_not_depend_on_data_order():
    assert gu.WordVocab(SENTS).itos == gu.WordVocab(list(reversed(SENTS))).itos


def test_word_vocab_specials_in_the_data_are_not_duplicated():
    v = gu.WordVocab([["<unk>", "x"], ["<unk>", "x"]])
    assert v.itos == ["<pad>", "<bos>", "<eos>", "<unk>", "x"]


def test_word_vocab_encode():
    v = gu.WordVocab(SENTS)
    a, dog, runs = v.stoi["a"], v.stoi["dog"], v.stoi["runs"]
    assert v.encode(["a", "dog", "runs"]) == [1, a, dog, runs, 2]
    assert v.encode(["a", "zebra"], bos=False, eos=False) == [a, v.unk_id]
    assert v.encode(["sleeps"]) == [1, 3, 2]  # below min_freq -> <unk>
    assert v.encode([]) == [1, 2]
    assert v.encode([], bos=False, eos=False) == []


def test_word_vocab_decode():
    v = gu.WordVocab(SENTS)
    ids = v.encode(["a", "dog", "zebra"]) + [v.stoi["cat"], 0, 0]
    assert v.decode(ids) == ["a", "dog", "<unk>"]  # stops at <eos>, drops <bos>
    assert v.decode(torch.tensor(ids)) == ["a", "dog", "<unk>"]
    assert v.decode([0, v.stoi["a"], 0, v.stoi["cat"]]) == ["a", "cat"]  # padding dropped
    assert v.decode(ids, strip=False) == ["<bos>", "a", "dog", "<unk>", "<eos>", "cat",
                                          "<pad>", "<pad>"]
    assert v.decode([2, v.stoi["a"]]) == []


def test_word_vocab_on_real_multi30k_sentences():
    for lang in ("de", "en"):
        real_file(f"multi30k/val.{lang}.gz")
    pairs = gu.load_multi30k("val")
    en = [gu.word_tokenize(e) for _, e in pairs]
    v = gu.WordVocab(en, min_freq=2)
    assert 500 < len(v) < len({w for s in en for w in s}) + 4
    ids = v.encode(en[0])
    assert ids[0] == v.bos_id and ids[-1] == v.eos_id
    assert [w if w in v.stoi else "<unk>" for w in en[0]] == v.decode(ids)


# --- pad_sequences --------------------------------------------------------------------------

def test_pad_sequences_lengths_tokens_and_mask():
    p = gu.pad_sequences([[5, 6, 7], [8], []])
    assert p.tokens.tolist() == [[5, 6, 7], [8, 0, 0], [0, 0, 0]]
    assert p.lengths.tolist() == [3, 1, 0]
    assert p.mask.tolist() == [[True, True, True], [True, False, False], [False, False, False]]
    assert p.tokens.dtype == torch.int64 and p.lengths.dtype == torch.int64
    assert p.mask.dtype == torch.bool
    assert torch.equal(p.mask.sum(1), p.lengths)


def test_pad_sequences_custom_pad_and_tensor_input():
    p = gu.pad_sequences([torch.tensor([1, 2]), torch.tensor([3])], pad_id=-1)
    assert p.tokens.tolist() == [[1, 2], [3, -1]]


def test_pad_sequences_all_empty_and_none():
    p = gu.pad_sequences([[], []])
    assert p.tokens.shape == (2, 1) and p.lengths.tolist() == [0, 0] and not p.mask.any()
    with pytest.raises(ValueError, match="at least one"):
        gu.pad_sequences([])


def test_padded_to_device():
    p = gu.pad_sequences([[1, 2], [3]]).to("meta")
    assert p.tokens.is_meta and p.lengths.is_meta and p.mask.is_meta


# --- seq2seq_batches ------------------------------------------------------------------------

def _pairs(n=23, seed=0):
    g = torch.Generator().manual_seed(seed)
    lens = torch.randint(0, 9, (n,), generator=g).tolist()
    src = [[i] + [100 + i] * k for i, k in enumerate(lens)]  # first token = pair id
    tgt = [[i, 200 + i] for i in range(n)]
    return src, tgt


def _unpack(batches):
    ids = []
    for s, t in batches:
        assert torch.equal(s.tokens[:, 0], t.tokens[:, 0])  # pairs stay together
        for row, length in zip(s.tokens.tolist(), s.lengths.tolist(), strict=True):
            i = row[0]
            assert row[:length] == [i] + [100 + i] * (length - 1)
        ids += s.tokens[:, 0].tolist()
    return ids


@pytest.mark.parametrize("sort_within", [0, 2, 100])
@pytest.mark.parametrize("shuffle", [True, False])
def test_seq2seq_batches_cover_every_pair_once(sort_within, shuffle):
    src, tgt = _pairs()
    batches = gu.seq2seq_batches(src, tgt, 5, shuffle=shuffle, sort_within=sort_within,
                                 generator=torch.Generator().manual_seed(0))
    sizes = [len(s.lengths) for s, _ in batches]
    if shuffle and sort_within:  # the batches themselves are shuffled too
        assert sorted(sizes) == [3, 5, 5, 5, 5]
    else:
        assert sizes == [5, 5, 5, 5, 3]
    ids = _unpack(batches)
    assert sorted(ids) == list(range(23))
    if not shuffle and not sort_within:
        assert ids == list(range(23))


def test_seq2seq_batches_sorting_cuts_padding():
    src, tgt = _pairs(n=200, seed=1)

    def padding(batches):
        return sum(int((~s.mask).sum()) for s, _ in batches)

    g = torch.Generator().manual_seed(0)
    plain = gu.seq2seq_batches(src, tgt, 10, generator=g)
    g = torch.Generator().manual_seed(0)
    sorted_all = gu.seq2seq_batches(src, tgt, 10, generator=g, sort_within=20)  # one chunk
    assert padding(sorted_all) < padding(plain)
    # One sorted chunk: each batch is sorted and the batches' length ranges do not overlap.
    ranges = []
    for s, _ in sorted_all:
        assert s.lengths.tolist() == sorted(s.lengths.tolist())
        ranges.append((int(s.lengths.min()), int(s.lengths.max())))
    ranges.sort()
    assert all(hi <= lo_next for (_, hi), (lo_next, _) in zip(ranges, ranges[1:], strict=False))
    assert ranges[0][0] < ranges[-1][1]  # the data has several lengths


def test_seq2seq_batches_reproducible_and_shuffled():
    src, tgt = _pairs()

    def order(seed):
        return _unpack(gu.seq2seq_batches(src, tgt, 4,
                                          generator=torch.Generator().manual_seed(seed)))

    assert order(0) == order(0)
    assert order(0) != order(1)


def test_seq2seq_batches_length_mismatch():
    with pytest.raises(ValueError, match="3 source but 2 target"):
        gu.seq2seq_batches([[1], [2], [3]], [[1], [2]], 2)


# --- lm_windows -----------------------------------------------------------------------------

def test_lm_windows_targets_are_inputs_shifted_by_one():
    data = torch.arange(1000) * 7  # token i has value 7 i: positions are recoverable
    x, y = gu.lm_windows(data, block_size=16, batch_size=32,
                         generator=torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (32, 16) and x.dtype == y.dtype == torch.int64
    start = x[:, 0] // 7
    expected = (start[:, None] + torch.arange(16)) * 7
    assert torch.equal(x, expected)  # contiguous windows of the stream
    assert torch.equal(y, expected + 7)  # ... and the next token of each
    assert torch.equal(x[:, 1:], y[:, :-1])
    assert int(y.max()) <= 999 * 7
    assert len(set(start.tolist())) > 1


def test_lm_windows_shortest_stream_and_reproducibility():
    data = torch.arange(9)
    x, y = gu.lm_windows(data, block_size=8, batch_size=3)
    assert x.tolist() == [list(range(8))] * 3 and y.tolist() == [list(range(1, 9))] * 3
    big = torch.arange(500)
    a = gu.lm_windows(big, 8, 4, generator=torch.Generator().manual_seed(5))
    b = gu.lm_windows(big, 8, 4, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_lm_windows_errors():
    with pytest.raises(ValueError, match=r"1-D.*\(2, 50\)"):
        gu.lm_windows(torch.zeros(2, 50, dtype=torch.long), 8, 4)
    with pytest.raises(ValueError, match="8 tokens.*block_size=8"):
        gu.lm_windows(torch.arange(8), 8, 4)


def test_lm_windows_follow_the_data_device():
    x, y = gu.lm_windows(torch.empty(100, dtype=torch.long, device="meta"), 8, 4)
    assert x.is_meta and y.is_meta


@pytest.mark.parametrize("bad", [-1, 99])
def test_decode_refuses_ids_outside_the_vocabulary(bad):
    tok = gu.CharTokenizer("abc")
    with pytest.raises(ValueError, match=f"id {bad} is not in the vocabulary of 3"):
        tok.decode([0, bad])
    vocab = gu.WordVocab([["a", "b"]], min_freq=1)
    with pytest.raises(ValueError, match=f"id {bad} is not in the vocabulary"):
        vocab.decode([4, bad])
