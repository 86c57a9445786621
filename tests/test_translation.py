"""gen_utils.translation: Multi30k pipeline, detokeniser, lowercase tokenised BLEU."""

import pytest
from _helpers import real_file

import gen_utils as gu


def test_detokenize_reattaches_punctuation_and_capitalises():
    tokens = ["a", "dog", "(", "brown", ")", "runs", ",", "fast", "."]
    assert gu.detokenize(tokens) == "A dog (brown) runs, fast."
    assert gu.detokenize([]) == ""


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
