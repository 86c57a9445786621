"""Schedules, forward process, posterior and samplers (gen_utils.diffusion), checked against the math.

Every check is on small tensors: the forward chain on 200k 2-D points, Bayes' rule on a grid, and the
samplers with the exact ε of Gaussian data, for which the right answer is known in closed form.
"""

from __future__ import annotations

import math

import pytest
import torch

from gen_utils import diffusion as df

F64 = torch.float64


@pytest.fixture(autouse=True)
def _one_thread():
    """The tensors here are small: a second thread only adds contention on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_linear_and_cosine_betas_follow_the_papers():
    # catches: β_0 ≠ 0 or ᾱ_0 ≠ 1 (index t not meaning step t), wrong linear endpoints, a cosine
    # schedule that is not f(t)/f(0) or is not clipped at max_beta, log_snr not log(ᾱ/(1 − ᾱ))
    lin = df.Schedule.linear(1000)
    assert lin.T == 1000 and lin.betas.dtype == F64 and lin.betas.shape == (1001,)
    assert lin.betas[0] == 0 and lin.alpha_bars[0] == 1
    assert lin.betas[1].item() == pytest.approx(1e-4) and lin.betas[-1].item() == pytest.approx(0.02)
    assert lin.alpha_bars[-1].item() == pytest.approx(math.prod(1 - (1e-4 + (0.02 - 1e-4) * i / 999)
                                                               for i in range(1000)), rel=1e-9)
    cos = df.Schedule.cosine(100)
    f = [math.cos((t / 100 + 0.008) / 1.008 * math.pi / 2) ** 2 for t in range(101)]
    expected = torch.tensor([ft / f[0] for ft in f], dtype=F64)
    torch.testing.assert_close(cos.alpha_bars[:100], expected[:100], rtol=1e-12, atol=0)
    assert cos.betas[-1].item() == pytest.approx(0.999) and bool((cos.betas <= 0.999).all())
    ab = cos.alpha_bars[1:]
    torch.testing.assert_close(cos.log_snr[1:], torch.log(ab / (1 - ab)), rtol=1e-12, atol=1e-12)
    assert bool((cos.log_snr[1:].diff() < 0).all())


@pytest.mark.parametrize("schedule", [df.Schedule.linear(50, 2e-3, 0.4), df.Schedule.cosine(50)],
                         ids=["linear", "cosine"])
def test_forward_chain_and_closed_form_have_the_same_mean_and_covariance(schedule):
    # catches: sqrt(1 − ᾱ_t) used as the variance (noise scaled by 1 − ᾱ_t), ᾱ not the product of
    # the α's, a q_step that is not N(sqrt(1 − β_t) x_{t−1}, β_t I)
    n, g = 200_000, _gen(0)
    mu, chol = torch.tensor([2.0, -1.0], dtype=F64), torch.tensor([[1.0, 0.0], [0.6, 0.5]], dtype=F64)
    sigma = chol @ chol.T
    x0 = mu + torch.randn(n, 2, generator=g, dtype=F64) @ chol.T
    x = x0
    for t in range(1, schedule.T + 1):
        x = df.q_step(x, t, torch.randn(n, 2, generator=g, dtype=F64), schedule)
        if t not in (1, 10, 25, 50):
            continue
        ab = schedule.alpha_bars[t]
        mean, cov = ab.sqrt() * mu, ab * sigma + (1 - ab) * torch.eye(2, dtype=F64)
        # Monte-Carlo standard errors of a sample mean and a sample covariance of Gaussian data
        se_mean = (cov.diagonal() / n).sqrt()
        se_cov = ((cov.diagonal()[:, None] * cov.diagonal()[None, :] + cov ** 2) / n).sqrt()
        closed = df.q_sample(x0, torch.full((n,), t), torch.randn(n, 2, generator=g, dtype=F64), schedule)
        for xt in (x, closed):
            assert bool(((xt.mean(0) - mean).abs() < 5 * se_mean).all()), (t, xt.mean(0), mean)
            assert bool(((xt.T.cov() - cov).abs() < 5 * se_cov).all()), (t, xt.T.cov(), cov)


@pytest.mark.parametrize("schedule", [df.Schedule.linear(1000), df.Schedule.cosine(1000)],
                         ids=["linear", "cosine"])
def test_posterior_is_bayes_rule_on_a_grid(schedule):
    # catches: a wrong coefficient in μ̃_t or β̃_t, ᾱ_t where ᾱ_{t−1} belongs (off by one), the int
    # and the tensor timestep paths disagreeing
    x0, xt = 0.7, -0.4
    ts = [2, 10, 500, 1000]
    b, a, ab = schedule.betas, schedule.alphas, schedule.alpha_bars
    grid = torch.linspace(-8, 8, 400_001, dtype=F64)
    one_x0, one_xt = torch.tensor([x0], dtype=F64), torch.tensor([xt], dtype=F64)
    batch_mean, batch_var = df.posterior_mean_var(one_x0.expand(4, 1), one_xt.expand(4, 1), torch.tensor(ts),
                                                  schedule)
    for k, t in enumerate(ts):
        # p(x_{t−1} | x_t, x_0) ∝ q(x_t | x_{t−1}) q(x_{t−1} | x_0)
        log_p = (-(xt - a[t].sqrt() * grid) ** 2 / (2 * b[t])
                 - (grid - ab[t - 1].sqrt() * x0) ** 2 / (2 * (1 - ab[t - 1])))
        p = (log_p - log_p.max()).exp()
        p = p / p.sum()
        mean = (p * grid).sum()
        var = (p * (grid - mean) ** 2).sum()
        got_mean, got_var = df.posterior_mean_var(one_x0, one_xt, t, schedule)
        assert got_mean.item() == pytest.approx(mean.item(), rel=1e-6, abs=1e-9), t
        assert got_var.item() == pytest.approx(var.item(), rel=1e-6), t
        assert batch_mean[k].item() == got_mean.item() and batch_var[k].item() == got_var.item()
    # at t = 1 the posterior is a point mass at x_0 (ᾱ_0 = 1)
    m1, v1 = df.posterior_mean_var(one_x0, one_xt, 1, schedule)
    assert m1.item() == pytest.approx(x0, rel=1e-12) and v1.item() == 0


def test_predict_x0_inverts_q_sample_and_gives_ho_et_al_mean():
    # catches: predict_x0 not the inverse of q_sample; μ̃_t(x̂_0, x_t) differing from Ho et al.'s
    # ε-form 1/sqrt(α_t) (x_t − β_t / sqrt(1 − ᾱ_t) ε) (eq. 11); dtype not following the input
    s = df.Schedule.cosine(200)
    g = _gen(1)
    x0, eps = torch.randn(6, 3, 4, generator=g), torch.randn(6, 3, 4, generator=g)
    t = torch.tensor([1, 2, 50, 100, 199, 200])
    xt = df.q_sample(x0, t, eps, s)
    assert xt.dtype == torch.float32
    torch.testing.assert_close(df.predict_x0(xt, t, eps, s), x0, rtol=1e-4, atol=2e-3)
    x0, xt, eps = x0.double(), xt.double(), eps.double()
    mean, _ = df.posterior_mean_var(df.predict_x0(xt, t, eps, s), xt, t, s)
    b, a, ab = (v[t].view(-1, 1, 1) for v in (s.betas, s.alphas, s.alpha_bars))
    torch.testing.assert_close(mean, (xt - b / (1 - ab).sqrt() * eps) / a.sqrt(), rtol=1e-9, atol=1e-9)


def test_sample_timesteps_draws_both_ends_and_nothing_outside():
    # catches: randint(0, T) (draws 0, never T) or randint(1, T) (never T) off-by-ones
    t = df.sample_timesteps(20_000, 5, generator=_gen(2))
    assert t.dtype == torch.long and t.shape == (20_000,)
    assert set(t.tolist()) == {1, 2, 3, 4, 5}
    assert set(df.sample_timesteps(2_000, 1).tolist()) == {1}


def test_respacing_keeps_the_original_marginals():
    # catches: respaced β' not 1 − ᾱ_{τ_i}/ᾱ_{τ_{i−1}}, a subsequence that misses T (or 1), repeats a
    # step, or loses track of the original timesteps
    s = df.Schedule.linear(1000)
    same = s.respaced(1000)
    assert same.timesteps == tuple(range(1001))
    torch.testing.assert_close(same.betas, s.betas, rtol=1e-12, atol=0)
    for steps in (1, 7, 50, 999):
        r = s.respaced(steps)
        tau = list(r.timesteps)
        assert r.T == steps and tau[0] == 0 and tau[-1] == 1000 and tau == sorted(set(tau))
        assert steps == 1 or tau[1] == 1
        gaps = {b - a for a, b in zip(tau[1:], tau[2:], strict=False)}
        assert steps < 3 or max(gaps) - min(gaps) <= 1          # evenly spaced up to rounding
        torch.testing.assert_close(r.alpha_bars, s.alpha_bars[tau], rtol=1e-10, atol=0)
    nested = s.respaced(100).respaced(10)                      # original timesteps survive respacing twice
    torch.testing.assert_close(nested.alpha_bars, s.alpha_bars[list(nested.timesteps)], rtol=1e-10, atol=0)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_samplers_call_the_network_with_original_timesteps(sampler):
    # catches: eps_fn called with respaced indices 1..S instead of the trained timesteps, or a step skipped
    s = df.Schedule.cosine(1000)
    seen = []

    def eps_fn(x, t):
        assert t.dtype == torch.long and t.shape == (x.shape[0],) and bool((t == t[0]).all())
        seen.append(int(t[0]))
        return torch.zeros_like(x)

    sample = df.ddpm_sample if sampler == "ddpm" else df.ddim_sample
    sample(eps_fn, (3, 2), s, steps=10, generator=_gen(3))
    assert seen == list(reversed(s.respaced(10).timesteps[1:]))
    assert seen[0] == 1000 and seen[-1] == 1


def _exact_eps(schedule: df.Schedule, m: float, s: float):
    """The optimal ε for data N(m, s²): x_t ~ N(sqrt(ᾱ_t) m, ᾱ_t s² + 1 − ᾱ_t), so E[ε | x_t] is linear."""
    ab = schedule.alpha_bars

    def eps_fn(x, t):
        a = ab[t].to(x.dtype).view(-1, *([1] * (x.dim() - 1)))
        return (1 - a).sqrt() * (x - a.sqrt() * m) / (a * s ** 2 + 1 - a)

    return eps_fn


@pytest.mark.parametrize("how, rel_var", [
    (dict(sampler="ddpm", variance="beta"), 0.04),
    (dict(sampler="ddpm", variance="beta_tilde"), 0.04),
    (dict(sampler="ddim", steps=100, eta=0.0), 0.06),
    (dict(sampler="ddim", steps=100, eta=1.0), 0.10),
])
def test_samplers_with_the_exact_eps_reproduce_the_data_distribution(how, rel_var):
    # catches: sign errors, a wrong coefficient, ᾱ_{t−1} indexed off by one, noise added at the last
    # step, wrong σ_t in DDIM. Coarser DDIM grids are biased towards too little variance for
    # Gaussian data (x̂_0 ignores Var(x_0 | x_t)), hence 100 steps and the looser η = 1 tolerance.
    m, s, n = 0.8, 0.5, 20_000
    sched = df.Schedule.cosine(1000)
    how = dict(how)
    sample = df.ddpm_sample if how.pop("sampler") == "ddpm" else df.ddim_sample
    x = sample(_exact_eps(sched, m, s), (n, 1), sched, generator=_gen(4), **how)
    assert abs(x.mean().item() - m) < 4 * s / math.sqrt(n)
    assert x.var().item() == pytest.approx(s ** 2, rel=rel_var)


def test_ddim_with_eta_zero_is_deterministic_given_x_T():
    # catches: noise injected when η = 0 (σ_t not proportional to η), or η = 1 drawing no noise
    sched = df.Schedule.linear(1000)
    eps_fn = _exact_eps(sched, 0.3, 0.7)
    x_T = torch.randn(64, 2, generator=_gen(5))
    a = df.ddim_sample(eps_fn, x_T.shape, sched, steps=20, eta=0.0, x_T=x_T, generator=_gen(6))
    b = df.ddim_sample(eps_fn, x_T.shape, sched, steps=20, eta=0.0, x_T=x_T, generator=_gen(7))
    assert torch.equal(a, b)
    c = df.ddim_sample(eps_fn, x_T.shape, sched, steps=20, eta=1.0, x_T=x_T, generator=_gen(6))
    d = df.ddim_sample(eps_fn, x_T.shape, sched, steps=20, eta=1.0, x_T=x_T, generator=_gen(7))
    assert (c - d).abs().mean() > 0.05


def test_guided_eps_interpolates_and_extrapolates():
    # catches: the diffusers convention (scale s = 1 + w) mixed up with w, or the terms swapped
    g = _gen(8)
    eps_c, eps_u = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    assert torch.equal(df.guided_eps(eps_c, eps_u, 0.0), eps_c)
    torch.testing.assert_close(df.guided_eps(eps_c, eps_u, 1.0), 2 * eps_c - eps_u)
    torch.testing.assert_close(df.guided_eps(eps_c, eps_u, -1.0), eps_u)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_clip_x0_keeps_samples_in_range(sampler):
    # catches: clip_x0 ignored by a sampler (the steps before the last are checked in the two tests below)
    sched = df.Schedule.linear(1000)

    def eps_fn(x, t):  # pretends every x_t is far below the data: x̂_0 lands well above 1
        return torch.full_like(x, -3.0)

    sample = df.ddpm_sample if sampler == "ddpm" else df.ddim_sample
    free = sample(eps_fn, (500, 2), sched, steps=20, generator=_gen(9))
    clipped = sample(eps_fn, (500, 2), sched, steps=20, generator=_gen(9), clip_x0=(-1.0, 1.0))
    assert free.max() > 2
    assert clipped.min() >= -1 and clipped.max() <= 1


def _two_step(eps_at_T: float, eps_at_1: float):
    """A schedule with T = 10 sampled in two steps (τ = 1, 10) and an ε̂ that is constant per step."""
    def eps_fn(x, t):
        return torch.full_like(x, eps_at_T if int(t[0]) == 10 else eps_at_1)

    return df.Schedule.linear(10, 0.1, 0.5), eps_fn


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_ddpm_variance_option_picks_beta_or_beta_tilde(variance):
    # catches: the two variance choices swapped or ignored. With ε̂ = 0 and x_T = 0 the output is
    # x_1 / sqrt(ᾱ_1), x_1 ~ N(0, σ²), so its variance is σ² / ᾱ_1 (β'_2 ≈ 0.97, β̃'_2 ≈ 0.10 here)
    sched, eps_fn = _two_step(0.0, 0.0)
    r = sched.respaced(2)
    sigma2 = r.betas[2] if variance == "beta" else (1 - r.alpha_bars[1]) / (1 - r.alpha_bars[2]) * r.betas[2]
    n = 4_000
    x = df.ddpm_sample(eps_fn, (n, 1), sched, steps=2, variance=variance, x_T=torch.zeros(n, 1, dtype=F64),
                       generator=_gen(10))
    assert x.var().item() == pytest.approx((sigma2 / r.alpha_bars[1]).item(), rel=5 * math.sqrt(2 / n))


def test_ddpm_uses_the_clipped_x0_in_the_posterior_mean():
    # catches: DDPM clipping only the returned sample, not the x̂_0 behind each step's μ̃_t
    sched, eps_fn = _two_step(-3.0, 1.0)  # at t = T, x̂_0 ≈ 11 (clipped to 1); at t = 1 nothing binds
    r, n = sched.respaced(2), 4_000
    x_T = torch.full((n, 1), -1.0, dtype=F64)
    x = df.ddpm_sample(eps_fn, (n, 1), sched, steps=2, variance="beta_tilde", x_T=x_T, clip_x0=(-1.0, 1.0),
                       generator=_gen(11))
    ab = r.alpha_bars.tolist()
    mean, var = df.posterior_mean_var(torch.ones(1, 1, dtype=F64), x_T[:1], 2, r)   # x̂_0 clipped to 1
    expected = (mean.item() - math.sqrt(1 - ab[1])) / math.sqrt(ab[1])          # x̂_0 at t = 1, ε̂ = 1
    std = math.sqrt(var.item() / ab[1])
    # the final clip cuts the upper tail at 1 but leaves the median (≈ 0.65) alone
    assert x.median().item() == pytest.approx(expected, abs=5 * 1.25 * std / math.sqrt(n))


def test_ddim_recomputes_eps_from_the_clipped_x0():
    # catches: DDIM keeping the network's ε̂ after clipping x̂_0, so its two terms describe different x_0
    # (two steps, τ = (T, 1), checked against Song et al. eq. 12 written out by hand)
    sched = df.Schedule.linear(10, 0.1, 0.5)
    ab = sched.alpha_bars.tolist()
    x_T = torch.tensor([[-1.0], [-2.0]], dtype=F64)

    def eps_fn(x, t):  # at t = T, x̂_0 lands far above 1; at t = 1 the network predicts no noise
        return torch.full_like(x, -3.0 if int(t[0]) == 10 else 0.0)

    x0 = ((x_T + 3 * math.sqrt(1 - ab[10])) / math.sqrt(ab[10])).clamp(-1, 1)
    assert bool((x0 == 1).all())  # the first clip binds
    eps = (x_T - math.sqrt(ab[10]) * x0) / math.sqrt(1 - ab[10])
    x1 = math.sqrt(ab[1]) * x0 + math.sqrt(1 - ab[1]) * eps
    expected = (x1 / math.sqrt(ab[1])).clamp(-1, 1)
    got = df.ddim_sample(eps_fn, (2, 1), sched, steps=2, x_T=x_T, clip_x0=(-1.0, 1.0))
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    assert bool((expected.abs() < 0.99).all())  # the final clip does not bind, so the first step shows


def test_bad_arguments_say_what_was_wrong():
    # catches: silent nonsense (indexing past T, broadcasting a wrongly shaped ε) instead of clear errors
    s = df.Schedule.linear(10)
    zeros = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"steps must be an int from 1 to T = 10"):
        s.respaced(11)
    with pytest.raises(ValueError, match=r"steps must be an int from 1 to T = 10"):
        df.ddim_sample(lambda x, t: x, (2, 3), s, steps=0)
    with pytest.raises(ValueError, match="variance must be 'beta'"):
        df.ddpm_sample(lambda x, t: x, (2, 3), s, variance="fixedlarge")
    with pytest.raises(ValueError, match=r"eps_fn\(x_t, t\) must return .* \(2, 3\), got \(2, 1\)"):
        df.ddpm_sample(lambda x, t: x[:, :1], (2, 3), s)
    with pytest.raises(ValueError, match=r"x_T has shape \(2, 3\) but shape=\(4, 3\)"):
        df.ddim_sample(lambda x, t: x, (4, 3), s, steps=2, x_T=zeros)
    with pytest.raises(ValueError, match="eta must lie in"):
        df.ddim_sample(lambda x, t: x, (2, 3), s, steps=2, eta=1.5)
    with pytest.raises(ValueError, match="clip_x0 must be a range"):
        df.ddpm_sample(lambda x, t: x, (2, 3), s, clip_x0=(1.0, -1.0))
    with pytest.raises(ValueError, match=r"timesteps must lie in 0\.\.10, got values from 3 to 11"):
        df.q_sample(zeros, torch.tensor([3, 11]), zeros, s)
    with pytest.raises(ValueError, match=r"timestep must lie in 1\.\.10, got 0"):
        df.posterior_mean_var(zeros, zeros, 0, s)
    with pytest.raises(ValueError, match=r"t must be integer timesteps of shape \(B,\) = \(2,\)"):
        df.q_step(zeros, torch.tensor([1.0, 2.0]), zeros, s)
    with pytest.raises(ValueError, match=r"noise must have the shape of x0, \(2, 3\); got \(2, 2\)"):
        df.q_sample(zeros, 1, torch.zeros(2, 2), s)
    with pytest.raises(ValueError, match=r"betas must be \(T\+1,\) with betas\[0\] = 0"):
        df.Schedule(torch.linspace(0.1, 0.2, 5))
    with pytest.raises(ValueError, match="T .* must be a positive int"):
        df.linear_betas(0)
