"""Chapter 05's conditional GAN, CVAE and WGAN-GP code (gen_utils.chapters.ch05_conditional_wgan)."""

from __future__ import annotations

import torch
from torch import nn

import gen_utils as gu
from gen_utils.chapters.ch04_gan import Generator, dcgan_init, generate, train_toy_gan
from gen_utils.chapters.ch05_conditional_wgan import (
    CVAE,
    ConditionalGenerator,
    Critic,
    ProjectionDiscriminator,
    cvae_generate,
    gradient_penalty,
    ring_wgan_gp_loss_d,
    wgan_gp_loss_d,
    wgan_loss_g,
)


def test_conditional_generator_shapes_and_labels():
    torch.manual_seed(0)
    G = ConditionalGenerator(z_dim=8, width=4, n_classes=10).apply(dcgan_init).eval()
    assert (G.z_dim, G.n_classes) == (8, 10)
    z = torch.randn(3, 8)
    x = G(z, torch.tensor([0, 1, 2]))
    assert x.shape == (3, 1, 28, 28) and x.min() >= -1 and x.max() <= 1
    assert not torch.allclose(x, G(z, torch.tensor([3, 4, 5])))  # the label changes the image


def test_conditional_generator_draws_the_same_init_as_a_wider_generator():
    # the subclass builds the same modules in the same order as Generator(z_dim + n_classes, width)
    torch.manual_seed(0)
    cond = ConditionalGenerator(8, 4, 10).apply(dcgan_init)
    torch.manual_seed(0)
    plain = Generator(18, 4).apply(dcgan_init)
    a, b = cond.state_dict(), plain.state_dict()
    assert list(a) == list(b)
    for k in a:
        torch.testing.assert_close(a[k], b[k])
    z, y = torch.randn(2, 8), torch.tensor([3, 7])
    cond.eval(), plain.eval()
    torch.testing.assert_close(cond(z, y), plain(torch.cat([z, nn.functional.one_hot(y, 10).float()], 1)))


def test_generate_with_labels():
    torch.manual_seed(0)
    G = ConditionalGenerator(8, 4, 10).apply(dcgan_init)
    x = generate(G, 5, torch.arange(5), batch=2)
    assert x.shape == (5, 1, 28, 28) and x.min() >= 0 and x.max() <= 1


def test_projection_discriminator_and_critic_shapes():
    x, y = torch.rand(3, 1, 28, 28) * 2 - 1, torch.tensor([1, 2, 3])
    assert ProjectionDiscriminator(width=4).apply(dcgan_init)(x, y).shape == (3,)
    assert Critic(width=4)(x).shape == (3,)


def test_cvae_terms_and_samples():
    torch.manual_seed(0)
    cvae = CVAE(z_dim=2, hidden=16)
    x = torch.bernoulli(torch.full((4, 784), 0.3))
    rec, kl = cvae(x, torch.tensor([0, 1, 2, 3]))
    assert rec.shape == kl.shape == (4,)
    assert (rec > 0).all() and (kl >= 0).all()
    images = cvae_generate(cvae, torch.arange(10), batch=4)
    assert images.shape == (10, 1, 28, 28) and images.min() >= 0 and images.max() <= 1


def test_gradient_penalty_closed_forms():
    g = torch.Generator().manual_seed(1)
    real = torch.randn(64, 2, generator=g, dtype=torch.float64)
    fake = torch.randn(64, 2, generator=g, dtype=torch.float64) + 3
    lin = nn.Linear(2, 1).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.6, -0.8]], dtype=torch.float64))  # ||w|| = 1
    assert gradient_penalty(lin, real, fake).item() < 1e-20
    with torch.no_grad():
        lin.weight.mul_(3)  # ||w|| = 3: penalty (3 - 1)^2
    torch.testing.assert_close(gradient_penalty(lin, real, fake).item(), 4.0)
    assert gradient_penalty(lambda x: x.norm(dim=1), real, fake).item() < 1e-20  # 1-Lipschitz


def test_wgan_gp_loss_d_is_minus_w1_plus_the_penalty():
    torch.manual_seed(0)
    f = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))
    real, fake = torch.randn(16, 2), torch.randn(16, 2) + 1
    out = wgan_gp_loss_d(f, real, fake, gp_weight=10.0)
    torch.testing.assert_close(out["w1_est"], f(real).mean() - f(fake).mean())
    torch.testing.assert_close(out["loss_d"], -out["w1_est"] + 10.0 * out["gp"])
    torch.testing.assert_close(wgan_loss_g(f, fake), -f(fake).mean())


def test_ring_wgan_gp_runs_with_chapter_04_trainer():
    _, critic, result, _ = train_toy_gan(gu.Ring(), 4, ring_wgan_gp_loss_d, wgan_loss_g, n_critic=2, batch=32,
                                 lr_d=1e-3, betas=(0.5, 0.9), evals=2)
    h = result.history
    assert result.steps == 4 and len(h["w1_est"]) == 4 and len(h["gp"]) == 4
    assert critic(torch.randn(3, 2)).shape == (3, 1)
    # recorded from this implementation (seed 0, CPU)
    torch.testing.assert_close(h["w1_est"][-1], 0.735186, atol=1e-4, rtol=0)
    torch.testing.assert_close(h["loss_g"][-1], -0.105403, atol=1e-4, rtol=0)
