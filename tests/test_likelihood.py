"""gen_utils.likelihood: the importance-sampled log-likelihood on a model whose log p(x) is exact.

Linear-Gaussian model (probabilistic PCA / factor analysis with isotropic noise):
z ~ N(0, I_d), x | z ~ N(W z + b, s² I_D), so p(x) = N(b, W Wᵀ + s² I) and the posterior is
N(m, S) with S = (I + Wᵀ W / s²)⁻¹, m = S Wᵀ (x − b) / s².
"""

from __future__ import annotations

import pytest
import torch
from torch.distributions import MultivariateNormal, Normal

import gen_utils as gu

D, d, s = 6, 2, 0.5


def model(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(D, d, generator=g, dtype=torch.float64)
    b = torch.randn(D, generator=g, dtype=torch.float64)
    z = torch.randn(20, d, generator=g, dtype=torch.float64)
    x = z @ W.T + b + s * torch.randn(20, D, generator=g, dtype=torch.float64)
    exact = MultivariateNormal(b, W @ W.T + s**2 * torch.eye(D, dtype=torch.float64)).log_prob(x)
    S = torch.linalg.inv(torch.eye(d, dtype=torch.float64) + W.T @ W / s**2)
    m = (x - b) @ W @ S.T / s**2  # (20, d)
    return W, b, x, exact, m, S


def log_joint(W, b, x, z):
    # z (k, N, d) -> log p(x, z) (k, N)
    prior = Normal(0.0, 1.0).log_prob(z).sum(-1)
    lik = Normal(z @ W.T + b, s).log_prob(x).sum(-1)
    return prior + lik


def weights_from(q: MultivariateNormal, W, b, x, g: torch.Generator):
    def log_weights(n: int) -> torch.Tensor:
        eps = torch.randn(n, *q.loc.shape, generator=g, dtype=torch.float64)  # (n, N, d)
        z = q.loc + (q.scale_tril @ eps.unsqueeze(-1)).squeeze(-1)
        return log_joint(W, b, x, z) - q.log_prob(z)
    return log_weights


def test_exact_for_any_k_when_q_is_the_true_posterior():
    W, b, x, exact, m, S = model()
    q = MultivariateNormal(m, S)
    g = torch.Generator().manual_seed(1)
    for k in (1, 7, 100):
        z = q.sample((k,))
        est = gu.importance_sampled_log_likelihood(log_joint(W, b, x, z), q.log_prob(z))
        assert est.shape == (20,)
        assert torch.allclose(est, exact, atol=1e-9), (k, (est - exact).abs().max())
        chunked = gu.importance_sampled_log_likelihood_chunked(weights_from(q, W, b, x, g), k, chunk=3)
        assert torch.allclose(chunked, exact, atol=1e-9)


def test_converges_from_below_with_a_worse_proposal():
    W, b, x, exact, m, S = model()
    # A poor proposal: the right mean shifted, and 3x too wide (still covers the posterior).
    q = MultivariateNormal(m + 0.3, 9.0 * S)
    g = torch.Generator().manual_seed(2)
    means = {}
    for k in (1, 10, 100, 1000):
        reps = torch.stack([
            gu.importance_sampled_log_likelihood_chunked(weights_from(q, W, b, x, g), k, chunk=256)
            for _ in range(50)
        ])  # (50, 20)
        means[k] = reps.mean(0)
    gaps = {k: (exact - v).mean().item() for k, v in means.items()}
    # Jensen: below log p(x) on average, and the gap shrinks monotonically with k.
    assert all(gap > 0 for k, gap in gaps.items() if k <= 100), gaps
    assert gaps[1] > gaps[10] > gaps[100] > gaps[1000] - 1e-3, gaps
    assert abs(gaps[1000]) < 0.02, gaps
    # k = 1 is the ELBO: E_q[log p(x,z) - log q(z|x)] = log p(x) - KL(q || posterior).
    post = MultivariateNormal(m, S)
    kl = torch.distributions.kl_divergence(q, post)
    assert gaps[1] == pytest.approx(kl.mean().item(), rel=0.05)


def test_chunking_matches_one_pass():
    g = torch.Generator().manual_seed(3)
    w = 50.0 * torch.randn(1000, 4, generator=g, dtype=torch.float64)  # wildly spread weights
    chunks = iter(w.split(128))
    streamed = gu.importance_sampled_log_likelihood_chunked(lambda n: next(chunks), 1000, chunk=128)
    one_pass = gu.importance_sampled_log_likelihood(w, torch.zeros_like(w))
    assert torch.allclose(streamed, one_pass, atol=1e-10)
    assert torch.allclose(one_pass, torch.logsumexp(w, 0) - torch.log(torch.tensor(1000.0)))


def test_shape_errors_are_explained():
    with pytest.raises(ValueError, match="same shape"):
        gu.importance_sampled_log_likelihood(torch.zeros(5, 3), torch.zeros(5, 4))
    with pytest.raises(ValueError, match="at least one sample"):
        gu.importance_sampled_log_likelihood(torch.zeros(0, 3), torch.zeros(0, 3))
    with pytest.raises(ValueError, match="k and chunk"):
        gu.importance_sampled_log_likelihood_chunked(lambda n: torch.zeros(n, 2), 0, 4)
    with pytest.raises(ValueError, match="returned 3 samples"):
        gu.importance_sampled_log_likelihood_chunked(lambda n: torch.zeros(3, 2), 10, 4)
