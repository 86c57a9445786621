"""gen_utils.translation: Multi30k pipeline, detokeniser, lowercase tokenised BLEU."""

import pytest
import torch
from _helpers import real_file

import gen_utils as gu


def test_detokenize_reattaches_punctuation_and_capitalises():
    tokens = ["a", "dog", "(", "brown", ")", "runs", ",", "fast", "."]
    assert gu.detokenize(tokens) == "A dog (brown) runs, fast."
    assert gu.detokenize([]) == ""


def test_detokenize_unk_costs_one_token_in_sacrebleu_as_in_tokenised_bleu():
    # catches: "<unk>" reaching sacreBLEU, whose 13a tokeniser splits it into three unmatched tokens
    hyp, ref = ["a", "<unk>", "runs", "."], ["a", "dog", "runs", "."]
    assert gu.detokenize(hyp) == "A UNK runs."
    sacre = gu.corpus_bleu([gu.detokenize(hyp)], [gu.detokenize(ref)])[0]
    assert abs(sacre - gu.lowercase_bleu([hyp], [ref])) < 1e-9
    assert sacre > gu.corpus_bleu(["A <unk> runs."], [gu.detokenize(ref)])[0]


def test_lowercase_bleu_is_100_on_the_references_and_ignores_case():
    refs = [["a", "man", "is", "riding", "a", "horse", "."],
            ["two", "dogs", "play", "in", "the", "snow", "."]]
    assert gu.lowercase_bleu(refs, refs) == pytest.approx(100.0)
    upper = [[w.upper() for w in r] for r in refs]
    assert gu.lowercase_bleu(upper, refs) == pytest.approx(100.0)
    assert gu.lowercase_bleu([["a", "cat", "."], ["one", "bird", "."]], refs) < 10.0


def test_lowercase_bleu_does_not_retokenise():
    # with tokenize="none" a glued "horse." is one token and does not match "horse" "."
    refs = [["a", "man", "is", "riding", "a", "horse", "."]]
    assert gu.lowercase_bleu([["a", "man", "is", "riding", "a", "horse."]], refs) < 100.0


def test_translation_data_is_consistent():
    real_file("multi30k/train.de.gz")
    d = gu.load_translation_data(min_freq=2, n_train=500, n_test=20)
    assert len(d.train_pairs) == len(d.train_src) == len(d.train_src_ids) == 500
    assert len(d.test_pairs) == len(d.test_src) == len(d.test_tgt) == 20
    assert d.train_src[0] == gu.word_tokenize(d.train_pairs[0][0])
    assert d.train_tgt_ids[0][0] == d.tgt_vocab.bos_id and d.train_tgt_ids[0][-1] == d.tgt_vocab.eos_id
    assert d.train_src_ids[0][0] != d.src_vocab.bos_id and d.train_src_ids[0][-1] == d.src_vocab.eos_id
    assert "500 training and 20 test pairs" in d.summary()
    # vocabularies come from the training split only
    assert set(d.tgt_vocab.itos[4:]) <= {w for s in d.train_tgt for w in s}


class _Echo(torch.nn.Module):
    """A 'model' whose search returns each source sentence's ids reversed, and logs batch sizes."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.batches, self.modes = [], []

    def search(self, model, src):
        self.batches.append(src.tokens.shape)
        self.modes.append(model.training)
        return [row[: n - 1].flip(0).tolist() for row, n in zip(src.tokens, src.lengths, strict=True)]


def test_translate_sorts_batches_and_returns_the_input_order():
    vocab = gu.WordVocab([["a", "b", "c", "d"]], min_freq=1)
    sentences = [["a", "b", "c"], ["d"], ["b", "a"], ["c", "c", "d", "a"], ["a"]]
    model = _Echo()
    out = gu.translate(model, sentences, model.search, vocab, vocab, batch=2)
    assert out == [s[::-1] for s in sentences]
    assert [shape[1] for shape in model.batches] == [2, 4, 5]  # lengths sorted: little padding (+<eos>)
    assert model.modes == [False] * 3 and model.training  # eval inside, restored after
    model.batches.clear()
    assert gu.translate(model, sentences, model.search, vocab, vocab, batch=2, sort=False) == out
    assert [shape[1] for shape in model.batches] == [4, 5, 2]


def test_translate_checks_what_search_returns():
    vocab = gu.WordVocab([["a"]], min_freq=1)
    with pytest.raises(ValueError, match="1 outputs for a batch of 2"):
        gu.translate(_Echo(), [["a"], ["a"]], lambda m, s: [[4]], vocab, vocab)
