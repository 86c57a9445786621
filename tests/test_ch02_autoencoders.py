"""Chapter 02's convolutional autoencoder and its helpers (gen_utils.chapters.ch02_autoencoders), tiny."""

from __future__ import annotations

import torch
import torch.nn as nn

from gen_utils.chapters import ch02_autoencoders as ch02  # the module: pytest would collect a test_* import


def images(n: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=g)


def test_shapes_and_range():
    torch.manual_seed(0)
    model = ch02.ConvAutoencoder(d_z=5, ch=3)
    x = images(4)
    z = model.encode(x)
    assert z.shape == (4, 5)
    out = model.decode(z)
    assert out.shape == (4, 1, 28, 28) and out.min() >= 0 and out.max() <= 1
    torch.testing.assert_close(model(x), out)


def test_reconstruction_mse_of_the_identity():
    x = images()
    assert ch02.reconstruction_mse(nn.Identity(), x) == 0.0
    # with noise, the identity's error is noise^2 per pixel on average
    assert abs(ch02.reconstruction_mse(nn.Identity(), x, noise=0.5) - 0.25) < 0.01


def test_train_autoencoder_is_seeded_and_returns_an_eval_model():
    x = images()
    a = ch02.train_autoencoder(x, d_z=3, ch=2, epochs=2, batch_size=16, lr=2e-3)
    b = ch02.train_autoencoder(x, d_z=3, ch=2, epochs=2, batch_size=16, lr=2e-3)
    assert not a.training
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q)
    torch.testing.assert_close(ch02.reconstruction_mse(a, x), 0.0830177093, rtol=1e-4, atol=0)
    denoising = ch02.train_autoencoder(x, d_z=3, ch=2, epochs=1, batch_size=16, lr=2e-3, noise=0.5)
    assert 0 < ch02.reconstruction_mse(denoising, x, noise=0.5) < 1


def test_gaussian_codes_fit_mean_and_covariance():
    g = torch.Generator().manual_seed(0)
    codes = torch.randn(4_000, 2, generator=g) @ torch.tensor([[2.0, 0.0], [1.0, 0.5]]) + 3.0
    samples = ch02.gaussian_codes(codes, 20_000)
    assert samples.shape == (20_000, 2)
    torch.testing.assert_close(samples.mean(0), codes.mean(0), atol=0.05, rtol=0)
    torch.testing.assert_close(torch.cov(samples.T), torch.cov(codes.T), atol=0.1, rtol=0)
    torch.testing.assert_close(ch02.gaussian_codes(codes, 5, seed=3), ch02.gaussian_codes(codes, 5, seed=3))


def test_gaussian_codes_leave_the_global_random_stream_alone():
    codes = torch.randn(100, 3, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(7)
    expected = torch.rand(4)
    torch.manual_seed(7)
    ch02.gaussian_codes(codes, 10, seed=0)
    torch.testing.assert_close(torch.rand(4), expected)   # a reseeding sampler would change this draw


def test_off_data_fraction_counts_samples_far_from_every_training_code():
    g = torch.Generator().manual_seed(0)
    train = torch.randn(2_000, 2, generator=g)
    test = torch.randn(500, 2, generator=g)
    on_data = torch.randn(200, 2, generator=g)
    far = on_data + 50.0
    assert ch02.off_data_fraction(on_data, train, test) < 0.05      # about 1 - q for samples like the data
    assert ch02.off_data_fraction(far, train, test) == 1.0
    assert ch02.off_data_fraction(torch.cat([on_data, far]), train, test) > 0.45
