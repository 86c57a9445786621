"""Chapter 01's n-gram model and 2-D Gaussian mixture (gen_utils.chapters.ch01_generative_modeling)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import gen_utils as gu
from gen_utils.chapters.ch01_generative_modeling import (
    K_GRID,
    RING,
    NGram,
    fit_gmm,
    gmm_log_prob,
    heldout_k,
    heldout_nll,
    lookup,
    ring_log_prob,
    ring_sample,
    window_bytes,
    window_ids,
)

TEXT = "to be, or not to be, that is the question: whether 'tis nobler in the mind to suffer"


@pytest.fixture
def text():
    tok = gu.CharTokenizer(TEXT)
    return tok, tok.encode(TEXT).numpy(), len(tok)


def test_window_ids_pack_each_window_in_base_v():
    ids = np.array([1, 2, 0, 3])
    np.testing.assert_array_equal(window_ids(ids, 2, V=4), [1 * 4 + 2, 2 * 4 + 0, 0 * 4 + 3])
    np.testing.assert_array_equal(window_ids(ids, 1, V=4), ids)


def test_window_ids_refuse_windows_that_overflow_int64():
    ids = np.zeros(20, dtype=np.int64)
    assert window_ids(ids, 10, V=65).shape == (11,)          # 65**10 < 2**63
    with pytest.raises(ValueError, match="n <= 10"):
        window_ids(ids, 11, V=65)                           # 65**11 > 2**63 would wrap around


def test_window_bytes_compare_long_windows_exactly():
    ids = np.array([1, 2, 3, 1, 2, 3, 1, 2, 4])
    w = window_bytes(ids, 3)
    assert w.shape == (7,)
    assert w[0] == w[3] and w[0] != w[6] and w[1] == w[4]
    long = np.arange(40) % 7
    assert np.isin(window_bytes(long[5:25], 12), window_bytes(long, 12)).all()
    assert not np.isin(window_bytes(np.full(12, 6), 12), window_bytes(long, 12)).any()
    with pytest.raises(ValueError, match="0..255"):
        window_bytes(np.array([0, 256]), 1)


def test_history_table_matches_the_gram_table(text):
    _, ids, V = text
    model = NGram(ids, 3, V, k=0.1)
    hists, inverse = np.unique(model.grams // V, return_inverse=True)
    np.testing.assert_array_equal(hists, model.hists)
    np.testing.assert_array_equal(np.bincount(inverse, weights=model.gram_counts), model.hist_counts)


def test_next_probs_needs_a_full_history_and_is_uniform_on_unseen_ones_at_k0(text):
    tok, ids, V = text
    model = NGram(ids, 3, V, k=0.0)
    with pytest.raises(ValueError, match="at least n - 1 = 2"):
        model.next_probs(ids[:1])
    unseen = tok.encode("qq").numpy()                       # never a history in TEXT
    np.testing.assert_allclose(model.next_probs(unseen), np.full(V, 1 / V))


def test_lookup_returns_counts_and_zero_for_absent_keys():
    table, counts = np.array([2, 5, 9]), np.array([7, 1, 3])
    np.testing.assert_array_equal(lookup(np.array([5, 1, 9, 10]), table, counts), [1, 0, 3, 0])


@pytest.mark.parametrize("n", [1, 2, 3])
def test_next_probs_is_a_distribution(text, n):
    _, ids, V = text
    model = NGram(ids, n, V, k=0.1)
    for t in range(n, len(ids), 7):
        p = model.next_probs(ids[:t])
        assert p.shape == (V,) and (p > 0).all()
        assert math.isclose(p.sum(), 1.0, rel_tol=1e-12)


def test_nats_per_char_is_the_mean_nll_of_next_probs(text):
    _, ids, V = text
    model = NGram(ids, 3, V, k=0.05)
    start = 2
    by_hand = -np.mean([np.log(model.next_probs(ids[:t])[ids[t]]) for t in range(start, len(ids))])
    assert math.isclose(model.nats_per_char(ids, start), by_hand, rel_tol=1e-12)


def test_unsmoothed_model_gives_unseen_text_infinite_nll(text):
    tok, ids, V = text
    model = NGram(ids, 2, V, k=0.0)
    assert math.isfinite(model.nats_per_char(ids, 1))        # its own training text: every pair seen
    unseen = tok.encode("qq").numpy()                       # 'q' is only ever followed by 'u' in TEXT
    assert model.nats_per_char(unseen, 1) == math.inf


def test_regression_nll_and_sample(text):
    tok, ids, V = text
    model = NGram(ids, 3, V, k=0.01)
    assert model.nats_per_char(ids, 2) == pytest.approx(0.4331893528526, abs=1e-9)
    sample = model.sample(tok, "to ", 20, np.random.default_rng(0))
    assert sample.startswith("to ") and len(sample) == 23
    assert sample == "to be, to suns the ques"


def test_ring_sample_and_its_density():
    g = torch.Generator().manual_seed(0)
    x = ring_sample(500, g)
    assert x.shape == (500, 2) and x.dtype == torch.float64
    radius = x.norm(dim=1)
    assert abs(radius.mean().item() - 2.0) < 0.05
    # the density integrates to one over a grid covering the ring
    grid = torch.linspace(-3.5, 3.5, 351, dtype=torch.float64)
    xx, yy = torch.meshgrid(grid, grid, indexing="xy")
    dens = ring_log_prob(torch.stack([xx.flatten(), yy.flatten()], 1)).exp()
    assert abs(dens.sum().item() * (grid[1] - grid[0]).item() ** 2 - 1.0) < 1e-3


def test_gmm_with_one_component_is_a_gaussian():
    x = torch.randn(10, 2, dtype=torch.float64)
    mu, cov = torch.tensor([[0.5, -1.0]], dtype=torch.float64), torch.eye(2, dtype=torch.float64)[None] * 2
    log_px, joint = gmm_log_prob(x, torch.ones(1, dtype=torch.float64), mu, cov)
    ref = torch.distributions.MultivariateNormal(mu[0], cov[0]).log_prob(x)
    torch.testing.assert_close(log_px, ref)
    assert joint.shape == (10, 1)


def test_fit_gmm_finds_the_ring():
    g = torch.Generator().manual_seed(1)
    x_train, x_test = ring_sample(1_000, g), ring_sample(1_000, g)
    pi, mu, cov, train_ll = fit_gmm(x_train, 8, 100, g)
    assert pi.shape == (8,) and mu.shape == (8, 2) and cov.shape == (8, 2, 2)
    torch.testing.assert_close(pi.sum(), torch.tensor(1.0, dtype=torch.float64))
    test_nll = -gmm_log_prob(x_test, pi, mu, cov)[0].mean().item()
    true_nll = -ring_log_prob(x_test).mean().item()
    assert 0 <= test_nll - true_nll < 0.3                   # the KL to the truth is small
    assert train_ll == pytest.approx(-1.6788136637, abs=1e-6)


def test_heldout_nll_scores_the_last_tenth_and_heldout_k_minimises_it(text):
    _, ids, V = text
    ids = np.tile(ids, 5)
    fit, held = ids[: int(0.9 * len(ids))], ids[int(0.9 * len(ids)) :]
    assert heldout_nll(ids, 3, V, 0.1, 2) == NGram(fit, 3, V).nats_per_char(held, 2, 0.1)
    k = heldout_k(ids, 3, V, 2)
    assert heldout_nll(ids, 3, V, k, 2) == min(heldout_nll(ids, 3, V, kk, 2) for kk in K_GRID)


def test_the_ring_is_chapter_04s_ring_with_wider_modes():
    assert (RING.n_modes, RING.radius, RING.std) == (8, 2.0, 0.2)
    g = torch.Generator().manual_seed(0)
    x = ring_sample(4_000, g)
    assert RING.coverage(x)[0] == 8                          # every mode gets its share
    assert abs((x - RING.centres().double()[RING.centres().double().sub(x[:, None]).norm(dim=2).argmin(1)])
               .std().item() - 0.2) < 0.01                    # spread around the nearest centre: std 0.2
