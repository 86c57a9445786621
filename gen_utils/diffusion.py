"""Diffusion models without the network: noise schedules, the forward process, its posterior, samplers.

DDPM (Ho et al. 2020), DDIM (Song et al. 2021), the cosine schedule and respacing (Nichol & Dhariwal
2021) and classifier-free guidance (Ho & Salimans 2022). The network stays in the chapter; the
samplers take any ``eps_fn(x_t, t) -> ε̂`` with x_t (B, ...), t (B,) long, and ε̂ of x_t's shape.

Conventions:

- Timesteps are t = 1..T; t = 0 is the data. Every schedule array has length T + 1 so that index t
  is step t: β_0 = 0 and ᾱ_0 = 1. Arrays are float64 (on the CPU); each function returns tensors
  in the dtype and on the device of its input.
- α_t = 1 − β_t and ᾱ_t = α_1 ⋯ α_t, so that in closed form (Ho et al. eq. 4)
      q(x_t | x_0) = N(sqrt(ᾱ_t) x_0, (1 − ᾱ_t) I).
  1 − ᾱ_t is the *variance*: the noise is scaled by sqrt(1 − ᾱ_t).
- Training draws t uniformly from 1..T, both ends included (``sample_timesteps``).
- Classifier-free guidance: ε̃ = (1 + w) ε(x, y) − w ε(x, ∅) (Ho & Salimans eq. 6). w = 0 is the
  plain conditional model; diffusers' ``guidance_scale`` is 1 + w.
- Sampling with fewer steps uses a respaced schedule (``Schedule.respaced``). Its step i stands for
  the original step ``timesteps[i]``, and the samplers call ``eps_fn`` with those original
  timesteps, because the network was trained on them.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

EpsFn = Callable[[Tensor, Tensor], Tensor]  # (x_t (B, ...), t (B,) long) -> ε̂ (B, ...)
Steps = Tensor | int                          # (B,) long timesteps, or one int for the batch
_F64 = torch.float64


def linear_betas(T: int, beta_1: float = 1e-4, beta_T: float = 0.02) -> Tensor:
    """β_0 = 0, then β_1..β_T evenly spaced from beta_1 to beta_T (Ho et al.): (T+1,) float64.

    The defaults suit T = 1000 (ᾱ_T ≈ 4e-5). For a much smaller T, ᾱ_T stays far from 0 unless both
    ends are scaled up (Nichol & Dhariwal multiply them by 1000 / T).
    """
    _check_T(T)
    if not 0 < beta_1 <= beta_T < 1:
        raise ValueError(f"need 0 < beta_1 <= beta_T < 1, got beta_1={beta_1}, beta_T={beta_T}")
    return torch.cat([torch.zeros(1, dtype=_F64), torch.linspace(beta_1, beta_T, T, dtype=_F64)])


def cosine_betas(T: int, s: float = 0.008, max_beta: float = 0.999) -> Tensor:
    """Nichol & Dhariwal's cosine schedule (eq. 17): (T+1,) float64 with β_0 = 0.

    ᾱ(t) = f(t) / f(0), f(t) = cos²((t/T + s) / (1 + s) · π/2); β_t = 1 − ᾱ(t)/ᾱ(t−1) clipped at max_beta,
    because β_T → 1 as ᾱ(T) → 0, and predicting x_0 from x_T would then divide by zero.
    """
    _check_T(T)
    t = torch.arange(T + 1, dtype=_F64)
    f = torch.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bar = f / f[0]
    betas = (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=max_beta)
    return torch.cat([torch.zeros(1, dtype=_F64), betas])


@dataclass(eq=False)
class Schedule:
    """A noise schedule: ``betas`` (T+1,) with betas[0] = 0, every other β in (0, 1).

    ``timesteps`` (T+1 ints, timesteps[0] = 0) names the original step behind each step of a respaced
    schedule; for a schedule built directly it is 0, 1, ..., T.
    """

    betas: Tensor
    timesteps: tuple[int, ...] | None = None

    def __post_init__(self):
        b = torch.as_tensor(self.betas).to("cpu", _F64)
        if b.dim() != 1 or len(b) < 2 or b[0] != 0 or not bool(((b[1:] > 0) & (b[1:] < 1)).all()):
            raise ValueError("betas must be (T+1,) with betas[0] = 0 and 0 < beta_t < 1 for t = 1..T; "
                             "build them with linear_betas or cosine_betas")
        self.betas = b
        ts = tuple(range(len(b))) if self.timesteps is None else tuple(int(i) for i in self.timesteps)
        if len(ts) != len(b) or ts[0] != 0 or list(ts) != sorted(set(ts)):
            raise ValueError(f"timesteps must be {len(b)} increasing ints starting at 0, got {ts[:5]}...")
        self.timesteps = ts

    @classmethod
    def linear(cls, T: int, beta_1: float = 1e-4, beta_T: float = 0.02) -> Schedule:
        return cls(linear_betas(T, beta_1, beta_T))

    @classmethod
    def cosine(cls, T: int, s: float = 0.008, max_beta: float = 0.999) -> Schedule:
        return cls(cosine_betas(T, s, max_beta))

    @property
    def T(self) -> int:
        return len(self.betas) - 1

    @property
    def alphas(self) -> Tensor:
        return 1 - self.betas

    @property
    def alpha_bars(self) -> Tensor:
        return torch.cumprod(self.alphas, 0)

    @property
    def log_snr(self) -> Tensor:
        """log(ᾱ_t / (1 − ᾱ_t)), (T+1,); +inf at t = 0."""
        ab = self.alpha_bars
        return ab.log() - torch.log1p(-ab)

    def respaced(self, steps: int) -> Schedule:
        """The schedule over ``steps`` evenly spaced steps τ_1 = 1 < ... < τ_S = T (τ_1 = T when S = 1).

        β'_i = 1 − ᾱ_{τ_i} / ᾱ_{τ_{i−1}} (with τ_0 = 0), so that ᾱ'_i = ᾱ_{τ_i}: the new schedule has
        the marginals q(x_{τ_i} | x_0) of the old one (Nichol & Dhariwal sec. 4). The original steps
        are in ``.timesteps``.
        """
        T, S = self.T, steps
        if not isinstance(S, int) or not 1 <= S <= T:
            raise ValueError(f"steps must be an int from 1 to T = {T} (sampling visits a subsequence of "
                             f"the trained steps), got {S!r}")
        # τ = round(linspace(1, T, S)), rounding halves up in integer arithmetic so no two τ coincide
        idx = [T] if S == 1 else [1 + (2 * i * (T - 1) + S - 1) // (2 * (S - 1)) for i in range(S)]
        ab = self.alpha_bars[[0, *idx]]
        betas = torch.cat([torch.zeros(1, dtype=_F64), 1 - ab[1:] / ab[:-1]])
        return Schedule(betas, tuple(self.timesteps[i] for i in [0, *idx]))


def sample_timesteps(batch: int, T: int, generator: torch.Generator | None = None,
                     device: torch.device | str | None = None) -> Tensor:
    """Training timesteps, (batch,) long, uniform on 1..T with both ends included."""
    _check_T(T)
    gen_device = generator.device if generator is not None else device
    return torch.randint(1, T + 1, (batch,), generator=generator, device=gen_device).to(device)


def q_sample(x0: Tensor, t: Steps, noise: Tensor, schedule: Schedule) -> Tensor:
    """x_t = sqrt(ᾱ_t) x_0 + sqrt(1 − ᾱ_t) ε, a draw from q(x_t | x_0) in one step (Ho et al. eq. 4).

    x0, noise: (B, ...); t: (B,) long in 0..T, or one int for the whole batch → x_t (B, ...).
    """
    _check_same_shape(noise, x0, "noise", "x0")
    ab = schedule.alpha_bars
    # (1 − ᾱ_t) is the variance, so the noise gets its square root; tutorials that call
    # sqrt(1 − ᾱ_t) the variance describe this same code with the wrong name.
    return _at(ab.sqrt(), t, x0, lo=0) * x0 + _at((1 - ab).sqrt(), t, x0, lo=0) * noise


def q_step(x_prev: Tensor, t: Steps, noise: Tensor, schedule: Schedule) -> Tensor:
    """One forward step x_t = sqrt(1 − β_t) x_{t−1} + sqrt(β_t) ε ~ q(x_t | x_{t−1}) (Ho et al. eq. 2).

    x_prev, noise: (B, ...); t: (B,) long in 1..T, or one int → x_t (B, ...).
    """
    _check_same_shape(noise, x_prev, "noise", "x_prev")
    b = schedule.betas
    return _at((1 - b).sqrt(), t, x_prev) * x_prev + _at(b.sqrt(), t, x_prev) * noise


def posterior_mean_var(x0: Tensor, xt: Tensor, t: Steps,
                       schedule: Schedule) -> tuple[Tensor, Tensor]:
    """Mean and variance of q(x_{t−1} | x_t, x_0) (Ho et al. eqs. 6-7).

    μ̃_t = sqrt(ᾱ_{t−1}) β_t / (1 − ᾱ_t) x_0 + sqrt(α_t) (1 − ᾱ_{t−1}) / (1 − ᾱ_t) x_t,
    β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) β_t.
    x0, xt: (B, ...); t: (B,) long in 1..T, or one int. Returns μ̃ (B, ...) and β̃, shaped (B, 1, ..., 1)
    to broadcast against x_t (0-d for an int t).
    """
    _check_same_shape(xt, x0, "xt", "x0")
    b, ab = schedule.betas, schedule.alpha_bars
    ab_prev = torch.cat([torch.ones(1, dtype=_F64), ab[:-1]])   # index t holds ᾱ_{t−1}
    # index 0 of these is 0/0 = nan; t = 0 has no posterior and _at rejects it
    coef_x0 = ab_prev.sqrt() * b / (1 - ab)
    coef_xt = (1 - b).sqrt() * (1 - ab_prev) / (1 - ab)
    var = (1 - ab_prev) / (1 - ab) * b
    return _at(coef_x0, t, x0) * x0 + _at(coef_xt, t, x0) * xt, _at(var, t, x0)


def predict_x0(xt: Tensor, t: Steps, eps: Tensor, schedule: Schedule) -> Tensor:
    """x̂_0 = (x_t − sqrt(1 − ᾱ_t) ε̂) / sqrt(ᾱ_t), q_sample solved for x_0. Shapes as in q_sample."""
    _check_same_shape(eps, xt, "eps", "xt")
    ab = schedule.alpha_bars
    return (xt - _at((1 - ab).sqrt(), t, xt, lo=0) * eps) / _at(ab.sqrt(), t, xt, lo=0)


def guided_eps(eps_cond: Tensor, eps_uncond: Tensor, w: float) -> Tensor:
    """Classifier-free guidance ε̃ = (1 + w) ε(x, y) − w ε(x, ∅); w = 0 is the conditional model.

    diffusers' ``guidance_scale`` is 1 + w, so its default 7.5 is w = 6.5 here.
    """
    _check_same_shape(eps_uncond, eps_cond, "eps_uncond", "eps_cond")
    return (1 + w) * eps_cond - w * eps_uncond


def ddpm_sample(eps_fn: EpsFn, shape: tuple[int, ...], schedule: Schedule, *, steps: int | None = None,
                variance: str = "beta", clip_x0: tuple[float, float] | None = None,
                x_T: Tensor | None = None, generator: torch.Generator | None = None,
                device: torch.device | str | None = None) -> Tensor:
    """Ancestral sampling (Ho et al. Algorithm 2) from x_T ~ N(0, I) (or the given x_T) → x_0 of ``shape``.

    Each step predicts x̂_0 from ε̂ (clipped to ``clip_x0 = (lo, hi)`` if given), then draws x_{t−1}
    from N(μ̃_t(x̂_0, x_t), σ_t² I) with σ_t² = β_t (``variance="beta"``) or β̃_t ("beta_tilde");
    the last step adds no noise. With ``steps`` < T it runs on ``schedule.respaced(steps)``, whose
    β'_i and β̃'_i are then the variances.
    """
    if variance not in ("beta", "beta_tilde"):
        raise ValueError(f"variance must be 'beta' (σ² = β_t) or 'beta_tilde' (σ² = β̃_t), got {variance!r}")
    sched = schedule if steps is None else schedule.respaced(steps)
    x = _start(shape, x_T, generator, device)
    for i in range(sched.T, 1, -1):
        x0 = _clip(predict_x0(x, i, _eps(eps_fn, x, sched.timesteps[i]), sched), clip_x0)
        mean, beta_tilde = posterior_mean_var(x0, x, i, sched)
        var = sched.betas[i].to(x.dtype) if variance == "beta" else beta_tilde
        x = mean + var.sqrt() * _randn(x.shape, generator, x)
    # last step: μ̃_1 = x̂_0 exactly (ᾱ_0 = 1), and no noise is added
    return _clip(predict_x0(x, 1, _eps(eps_fn, x, sched.timesteps[1]), sched), clip_x0)


def ddim_sample(eps_fn: EpsFn, shape: tuple[int, ...], schedule: Schedule, *, steps: int, eta: float = 0.0,
                clip_x0: tuple[float, float] | None = None, x_T: Tensor | None = None,
                generator: torch.Generator | None = None,
                device: torch.device | str | None = None) -> Tensor:
    """DDIM (Song et al. eq. 12) over ``steps`` respaced steps, from x_T ~ N(0, I) (or the given x_T) → x_0.

    x_{t−1} = sqrt(ᾱ_{t−1}) x̂_0 + sqrt(1 − ᾱ_{t−1} − σ_t²) ε̂ + σ_t z, with (eq. 16)
    σ_t = η sqrt((1 − ᾱ_{t−1}) / (1 − ᾱ_t)) sqrt(1 − ᾱ_t / ᾱ_{t−1}). η = 0 is deterministic given x_T;
    η = 1 is ancestral sampling with σ_t² = β̃_t. With ``clip_x0`` the ε̂ is recomputed from the
    clipped x̂_0, so both terms describe the same x_0.
    """
    if not 0 <= eta <= 1:
        raise ValueError(f"eta must lie in [0, 1] (0: deterministic DDIM, 1: DDPM-like), got {eta}")
    sched = schedule.respaced(steps)
    ab = sched.alpha_bars.tolist()
    x = _start(shape, x_T, generator, device)
    for i in range(sched.T, 0, -1):
        eps = _eps(eps_fn, x, sched.timesteps[i])
        x0 = predict_x0(x, i, eps, sched)
        if clip_x0 is not None:
            x0 = _clip(x0, clip_x0)
            eps = (x - math.sqrt(ab[i]) * x0) / math.sqrt(1 - ab[i])
        sigma = eta * math.sqrt((1 - ab[i - 1]) / (1 - ab[i]) * (1 - ab[i] / ab[i - 1]))
        x = math.sqrt(ab[i - 1]) * x0 + math.sqrt(max(1 - ab[i - 1] - sigma ** 2, 0.0)) * eps
        if sigma > 0:
            x = x + sigma * _randn(x.shape, generator, x)
    return x


# ---- helpers -------------------------------------------------------------------------------------------

def _at(values: Tensor, t: Steps, x: Tensor, lo: int = 1) -> Tensor:
    """values[t] for a (T+1,) float64 table, in x's dtype: (B, 1, ..., 1) for t (B,), 0-d for an int."""
    T = len(values) - 1
    if not isinstance(t, Tensor):
        t = operator.index(t)  # an int (or numpy integer) for the whole batch
        if not lo <= t <= T:
            raise ValueError(f"timestep must lie in {lo}..{T}, got {t}")
        return values[t].to(x.dtype)
    if t.dtype.is_floating_point or t.dim() != 1 or len(t) != x.shape[0]:
        raise ValueError(f"t must be integer timesteps of shape (B,) = ({x.shape[0]},), "
                         f"got {t.dtype} of shape {tuple(t.shape)}")
    if len(t) and (int(t.min()) < lo or int(t.max()) > T):
        raise ValueError(f"timesteps must lie in {lo}..{T}, got values from {int(t.min())} to {int(t.max())}")
    v = values.to(x.dtype).to(x.device)[t.to(x.device).long()]  # cast before moving: MPS has no float64
    return v.reshape(-1, *([1] * (x.dim() - 1)))


def _check_T(T: int) -> None:
    if not isinstance(T, int) or T < 1:
        raise ValueError(f"T (the number of diffusion steps) must be a positive int, got {T!r}")


def _check_same_shape(a: Tensor, b: Tensor, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name_a} must have the shape of {name_b}, {tuple(b.shape)}; got {tuple(a.shape)}")


def _randn(shape: tuple[int, ...], generator: torch.Generator | None, like: Tensor) -> Tensor:
    """Standard normal noise in like's dtype and on its device, drawn on the generator's device."""
    gen_device = generator.device if generator is not None else like.device
    return torch.randn(shape, generator=generator, device=gen_device, dtype=like.dtype).to(like.device)


def _start(shape, x_T, generator, device) -> Tensor:
    """x_T for a sampler: the caller's, or N(0, I) noise in float32."""
    if x_T is None:
        return _randn(tuple(shape), generator, torch.empty(0, device=device))
    if tuple(x_T.shape) != tuple(shape):
        raise ValueError(f"x_T has shape {tuple(x_T.shape)} but shape={tuple(shape)}; pass matching shapes")
    return x_T


def _eps(eps_fn: EpsFn, x: Tensor, step: int) -> Tensor:
    """Call the network at ORIGINAL timestep ``step`` for the whole batch, and check what comes back."""
    eps = eps_fn(x, torch.full((x.shape[0],), step, dtype=torch.long, device=x.device))
    if not isinstance(eps, Tensor) or eps.shape != x.shape:
        got = tuple(eps.shape) if isinstance(eps, Tensor) else type(eps).__name__
        raise ValueError(f"eps_fn(x_t, t) must return the predicted noise with x_t's shape {tuple(x.shape)}, "
                         f"got {got}")
    return eps


def _clip(x0: Tensor, clip_x0: tuple[float, float] | None) -> Tensor:
    if clip_x0 is None:
        return x0
    lo, hi = clip_x0
    if not lo < hi:
        raise ValueError(f"clip_x0 must be a range (lo, hi) with lo < hi, e.g. (-1, 1), got {clip_x0}")
    return x0.clamp(lo, hi)
