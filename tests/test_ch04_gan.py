"""Chapter 04's GAN code (gen_utils.chapters.ch04_gan): tiny configs, CPU, seconds."""

from __future__ import annotations

import math

import torch
from torch import nn

import gen_utils as gu
from gen_utils.chapters.ch04_gan import (
    TOY_Z,
    Discriminator,
    Generator,
    dcgan_init,
    gan_loss_d,
    gan_loss_g,
    generate,
    mlp,
    train_toy_gan,
)


def small_generator(z_dim: int = 8, width: int = 4, seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    return Generator(z_dim, width).apply(dcgan_init)


def test_generator_and_discriminator_shapes():
    G = small_generator()
    assert G.z_dim == 8
    x = G(torch.randn(3, 8))
    assert x.shape == (3, 1, 28, 28)
    assert x.min() >= -1 and x.max() <= 1  # tanh output
    D = Discriminator(width=4).apply(dcgan_init)
    assert D(x).shape == (3,)
    assert mlp(TOY_Z, 2)(torch.randn(5, TOY_Z)).shape == (5, 2)


def test_generator_output_regression():
    G = small_generator()
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(1))
    x = G(z)
    # recorded from this implementation (seeded init and input)
    torch.testing.assert_close(x.mean().item(), 0.1296283, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(x.abs().sum().item(), 407.05579, atol=1e-3, rtol=1e-4)


def test_dcgan_init_statistics():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(400, 400), nn.Conv2d(16, 32, 4), nn.ConvTranspose2d(32, 16, 4),
                        nn.Embedding(100, 400), nn.BatchNorm1d(4_000), nn.BatchNorm2d(4_000))
    net.apply(dcgan_init)
    for layer in net[:4]:
        w = layer.weight.detach()
        assert abs(w.mean().item()) < 2e-3
        assert abs(w.std().item() - 0.02) < 1e-3
    for bn in net[4:]:
        assert abs(bn.weight.mean().item() - 1) < 2e-3
        assert abs(bn.weight.std().item() - 0.02) < 2e-3
        assert torch.equal(bn.bias, torch.zeros_like(bn.bias))


def test_generate_range_shape_device_and_draws():
    G = small_generator()
    torch.manual_seed(3)
    x = generate(G, 5, batch=2)
    assert x.shape == (5, 1, 28, 28) and x.device == next(G.parameters()).device
    assert x.min() >= 0 and x.max() <= 1
    assert G.training  # back in training mode
    # the same draws as one torch.randn(min(batch, n - i), z_dim) per chunk, G in eval mode
    torch.manual_seed(3)
    G.eval()
    with torch.no_grad():
        expected = torch.cat([(G(torch.randn(k, 8)) + 1) / 2 for k in (2, 2, 1)])
    torch.testing.assert_close(x, expected)


def test_generate_with_labels_calls_a_conditional_generator():
    seen = []

    class Conditional(nn.Module):
        z_dim = 3

        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))

        def forward(self, z, y):
            seen.append(y.clone())
            return torch.tanh(z[:, :1, None, None].expand(-1, 1, 28, 28) + self.w + y[:, None, None, None])

    labels = torch.arange(7) % 3
    x = generate(Conditional(), 7, labels, batch=3)
    assert x.shape == (7, 1, 28, 28)
    assert torch.equal(torch.cat(seen), labels)


def test_gan_losses_at_an_undecided_discriminator():
    def undecided(x):  # logit 0: D = 1/2 everywhere
        return torch.zeros(len(x), 1)

    real, fake = torch.randn(6, 2), torch.randn(6, 2)
    torch.testing.assert_close(gan_loss_d(undecided, real, fake).item(), math.log(4))  # -V = log 4
    torch.testing.assert_close(gan_loss_g(undecided, fake).item(), math.log(2))


def test_train_toy_gan_runs_and_logs():
    ring = gu.Ring()
    G, D, result, snapshots = train_toy_gan(ring, 6, gan_loss_d, gan_loss_g, batch=32, evals=3)
    h = result.history
    assert result.steps == 6
    assert {"loss_d", "loss_g", "modes", "quality"} <= set(h)
    assert len(h["loss_d"]) == 6 and len(h["modes"]) == len(snapshots) >= 3
    assert all(s.shape == (2_000, 2) for s in snapshots.values())
    assert G(torch.randn(4, TOY_Z)).shape == (4, 2) and D(torch.randn(4, 2)).shape == (4, 1)
    # recorded from this implementation (seed 0, CPU)
    torch.testing.assert_close(h["loss_d"][-1], 1.340224, atol=1e-4, rtol=0)
    torch.testing.assert_close(h["loss_g"][-1], 0.675385, atol=1e-4, rtol=0)


def test_train_toy_gan_with_n_critic_and_a_dict_loss():
    calls = []

    def loss_d(D, real, fake):
        calls.append(len(real))
        w1_est = D(real).mean() - D(fake).mean()
        return dict(loss_d=-w1_est, w1_est=w1_est)

    def loss_g(D, fake):
        return -D(fake).mean()

    _, _, result, _ = train_toy_gan(gu.Ring(), 3, loss_d, loss_g, n_critic=2, batch=16, evals=1)
    assert calls == [16] * 6
    assert len(result.history["w1_est"]) == 3
