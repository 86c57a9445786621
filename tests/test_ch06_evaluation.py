"""Chapter 06's committed results: the targets of issue 17 that are relations between glued numbers."""

from __future__ import annotations

from notebook_checks import ROOT, glued, load

NB = ROOT / "notebooks" / "06_evaluation.ipynb"


def test_fid_falls_with_the_sample_size():
    # catches: an FID-bias study whose numbers do not show the bias it teaches (e.g. N mixed up)
    g = glued(load(NB))
    assert g["fid_real_n1000"] > g["fid_real_n10000"] > 0


def test_kid_of_real_data_is_zero_within_its_noise():
    # catches: a biased KID estimator (the V-statistic keeps the i = i' terms and is > 0 on average)
    g = glued(load(NB))
    assert g["kid_real_n1000_se"] > 0
    assert abs(g["kid_real_n1000"]) < 3 * g["kid_real_n1000_se"]


def test_shuffling_hurts_bleu_more_than_bag_of_words_scores():
    # catches: text scores computed on the wrong side (hypothesis vs reference) or on unedited text
    g = glued(load(NB))
    assert g["bleu_shuffled"] < g["chrf_shuffled"] < 100
    assert g["bleu_shuffled"] < g["rouge_l_shuffled"] < 100
