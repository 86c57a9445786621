"""Importance-sampled log-likelihood of a latent-variable model (Burda et al. 2016, eq. 8).

For a model p(x, z) = p(z) p(x | z) and any proposal q(z | x) that covers the posterior,

    p(x) = E_{z ~ q(z|x)} [ p(x, z) / q(z | x) ],

so with k samples z_1..z_k ~ q(z | x) the estimate

    log p̂_k(x) = log (1/k) Σ_i exp( log p(x, z_i) − log q(z_i | x) )

is consistent (→ log p(x) as k → ∞) and, by Jensen, biased low for finite k:
E[log p̂_k(x)] ≤ E[log p̂_{k+1}(x)] ≤ log p(x). With k = 1 its expectation is the ELBO; with q
equal to the true posterior every weight equals p(x) and the estimate is exact for any k.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .metrics import log_mean_exp


def importance_sampled_log_likelihood(log_p_xz: torch.Tensor, log_q_z: torch.Tensor) -> torch.Tensor:
    """log p(x) ≈ log-mean-exp over k samples of log p(x, z_i) − log q(z_i | x).

    log_p_xz: (k, ...) log joint log p(x, z_i) = log p(z_i) + log p(x | z_i) of each sample.
    log_q_z:  (k, ...) log q(z_i | x) of the same samples, same shape.
    Returns (...): one estimate per data point (in nats), reduced over the sample dimension 0.
    """
    if log_p_xz.shape != log_q_z.shape:
        raise ValueError(
            f"log_p_xz {tuple(log_p_xz.shape)} and log_q_z {tuple(log_q_z.shape)} must have the "
            "same shape (k samples first, then the data points)"
        )
    if log_p_xz.dim() == 0 or log_p_xz.shape[0] == 0:
        raise ValueError(
            f"expected at least one sample along dim 0 (shape (k, ...)), got {tuple(log_p_xz.shape)}"
        )
    return log_mean_exp(log_p_xz - log_q_z, dim=0)


def importance_sampled_log_likelihood_chunked(
    log_weights: Callable[[int], torch.Tensor], k: int, chunk: int
) -> torch.Tensor:
    """The same estimate with k samples drawn ``chunk`` at a time (k = 5000 does not fit at once).

    log_weights(n): draws n fresh samples z_i ~ q(z | x) and returns their log importance
      weights log p(x, z_i) − log q(z_i | x) as an (n, ...) tensor (the data points after dim 0).
    Returns (...): log-mean-exp over all k weights, combined exactly across chunks with logsumexp.
    """
    if k < 1 or chunk < 1:
        raise ValueError(f"k and chunk must be >= 1, got k={k}, chunk={chunk}")
    total: torch.Tensor | None = None
    done = 0
    while done < k:
        n = min(chunk, k - done)
        w = log_weights(n)
        if w.shape[0] != n:
            raise ValueError(f"log_weights({n}) returned {w.shape[0]} samples along dim 0, not {n}")
        part = torch.logsumexp(w.double(), dim=0)
        total = part if total is None else torch.logaddexp(total, part)
        done += n
    return (total - torch.log(torch.tensor(float(k), dtype=torch.float64))).to(w.dtype)
