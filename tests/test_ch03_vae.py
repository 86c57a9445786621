"""Chapter 03's VAE, its KL term and importance-sampled evaluation (gen_utils.chapters.ch03_vae), tiny."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from gen_utils.chapters.ch03_vae import (
    VAE,
    conv_pair,
    evaluate,
    gaussian_kl,
    log_px_and_recon,
    log_weights,
    mlp_pair,
)


def binary_images(n: int = 6, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.full((n, 1, 28, 28), 0.2), generator=g)


def tiny(arch: str = "mlp", seed: int = 0) -> VAE:
    torch.manual_seed(seed)
    return VAE(d_z=3, hidden=16, arch=arch, ch=2).eval()


def test_gaussian_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(4, 5, generator=g, dtype=torch.float64)
    logvar = torch.randn(4, 5, generator=g, dtype=torch.float64)
    ref = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0))
    torch.testing.assert_close(gaussian_kl(mu, logvar), ref, rtol=0, atol=1e-12)
    assert (gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 3)) == 0).all()   # q = prior


@pytest.mark.parametrize("pair", [lambda: conv_pair(3, 16, 2), lambda: mlp_pair(3, 16)])
def test_encoder_decoder_pairs(pair):
    encoder, decoder = pair()
    assert encoder(binary_images(2)).shape == (2, 6)
    assert decoder(torch.zeros(2, 3)).shape == (2, 1, 28, 28)


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_vae_shapes(arch):
    model, x = tiny(arch), binary_images()
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (6, 3)
    assert model.decode(mu).shape == (6, 1, 28, 28)
    recon, kl = model(x)
    assert recon.shape == (6,) and kl.shape == (6, 3)
    assert (recon > 0).all() and (kl >= 0).all()


def test_log_weights_decompose():
    model, x = tiny(), binary_images()
    mu, logvar = model.encode(x)
    torch.manual_seed(1)
    lw, log_px_z = log_weights(model, x, mu, logvar, n=7)
    assert lw.shape == log_px_z.shape == (7, 6)
    # E_q[log w] = ELBO = E_q[log p(x|z)] - KL: the average over many samples approaches it
    torch.manual_seed(2)
    lw, log_px_z = log_weights(model, x, mu, logvar, n=20_000)
    kl = gaussian_kl(mu, logvar).sum(1)
    torch.testing.assert_close(lw.mean(0), log_px_z.mean(0) - kl, atol=0.05, rtol=0)


def test_importance_sampled_likelihood_is_above_the_elbo():
    model, x = tiny(), binary_images()
    mu, logvar = model.encode(x)
    torch.manual_seed(0)
    log_px, recon = log_px_and_recon(model, x, mu, logvar, k=64, chunk=16)
    elbo = -(recon + gaussian_kl(mu, logvar).sum(1))
    assert log_px.shape == recon.shape == (6,)
    assert (log_px > elbo).all()


def test_evaluate_regression():
    model, x = tiny(), binary_images(10)
    torch.manual_seed(0)
    ev = evaluate(model, x, k=8, chunk=4, batch=4)
    assert {k: tuple(v.shape) for k, v in ev.items()} == {
        "log_px": (10,), "recon": (10,), "kl": (10,), "kl_dims": (10, 3)}
    torch.testing.assert_close(ev["kl"], ev["kl_dims"].sum(1))
    torch.testing.assert_close(ev["log_px"].mean(), torch.tensor(-550.0101318), rtol=1e-5, atol=0)
