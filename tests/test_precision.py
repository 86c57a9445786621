"""Precision by device capability, decided without the GPUs themselves (capabilities faked)."""

import copy

import pytest
import torch
from torch import nn

import gen_utils as gu
from gen_utils.precision import choose_precision


def test_cpu_gets_fp32_and_eager():
    p = choose_precision("cpu")
    assert p.dtype is None and not p.uses_scaler and not p.compile and p.name == "fp32"
    assert p.scaler() is None and p.banner() == "fp32, eager"


@pytest.mark.parametrize("gpu, capability, bf16, expect", [
    ("A100 / H100 / L4", (8, 0), True, "bf16"),
    ("H200", (9, 0), True, "bf16"),
    ("T4", (7, 5), False, "fp16"),
    ("V100", (7, 0), False, "fp16"),
    ("capability 8 with bf16 disabled", (8, 6), False, "fp16"),
])
def test_cuda_precision_follows_capability(gpu, capability, bf16, expect):
    # catches bf16 autocast on a T4 (no bf16 tensor cores: slow or failing) and fp16 without scaling
    p = choose_precision("cuda", capability=capability, bf16_supported=bf16, triton=True)
    assert p.name == expect, gpu
    assert p.uses_scaler == (expect == "fp16")  # fp16 needs loss scaling, bf16 does not
    assert p.compile


def test_compile_only_where_it_works(monkeypatch):
    old = choose_precision("cuda", capability=(6, 0), bf16_supported=False, triton=True)
    assert not old.compile and "capability >= 7.0" in old.note
    no_triton = choose_precision("cuda", capability=(8, 0), bf16_supported=True, triton=False)
    assert not no_triton.compile and "triton" in no_triton.note
    monkeypatch.setenv("GEN_UTILS_COMPILE", "0")
    off = choose_precision("cuda", capability=(9, 0), bf16_supported=True, triton=True)
    assert not off.compile and "GEN_UTILS_COMPILE=0" in off.note


def test_the_banner_names_the_choice(capsys):
    gu.setup(seed=0, profile="smoke")
    assert gu.run().precision.name == ("fp32" if not torch.cuda.is_available() else
                                       gu.run().precision.name)
    assert gu.run().precision.banner() in capsys.readouterr().out


def fit(precision, steps=60):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 1))
    x = torch.randn(256, 8)
    y = x[:, :1] * 2 - x[:, 1:2]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    res = gu.train(lambda b: nn.functional.mse_loss(model(x), y), steps=steps, optimizer=opt,
                   model=model, precision=precision)
    return model, res


def test_fp16_autocast_with_grad_scaler_matches_fp32_on_cpu():
    # the T4 path (fp16 + GradScaler) without a T4: catches a scaler that never unscales (wrong
    # clipping, exploding steps) or skips every step; tolerance: fp16 has ~3 decimal digits
    fp16 = gu.Precision("cpu", torch.float16, True, False, "T4-like path on the CPU")
    m16, r16 = fit(fp16)
    m32, r32 = fit(choose_precision("cpu"))
    assert r16.history["loss"][-1] < 0.1 * r16.history["loss"][0]  # it trains
    assert abs(r16.history["loss"][-1] - r32.history["loss"][-1]) < 0.02 + 0.1 * r32.history["loss"][-1]
    x = torch.randn(64, 8)
    with torch.no_grad():
        torch.testing.assert_close(m16(x), m32(x), atol=0.05, rtol=0.05)


def test_grad_scaler_skips_an_overflowing_step_instead_of_stopping():
    # an fp16 overflow is routine with loss scaling: the scaler skips that step, the run goes on
    fp16 = gu.Precision("cpu", torch.float16, True, False, "T4-like path on the CPU")
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    before = copy.deepcopy(model.state_dict())
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.ones(2, 4)

    def step(_, i):
        out = model(x)
        if i == 0:
            out.register_hook(lambda g: torch.full_like(g, float("inf")))
        return out.pow(2).mean()

    res = gu.train(step, steps=3, optimizer=opt, model=model, precision=fp16)
    assert res.steps == 3 and res.stop_reason == "done"
    assert not torch.equal(model.weight, before["weight"])  # the later steps did update


def test_autocast_for_hand_written_steps_avoids_unscaled_fp16(monkeypatch):
    # catches a GAN step (its own backward, no GradScaler) silently running fp16 on a T4
    import sys

    train_mod = sys.modules["gen_utils.train"]  # the module (gu.train is the function)

    t4 = gu.Precision("cuda", torch.float16, True, True, "faked T4")
    monkeypatch.setattr(train_mod, "choose_precision", lambda device: t4)
    assert not isinstance(gu.autocast("cuda"), torch.autocast)
    assert isinstance(gu.autocast("cuda", fp16=True), torch.autocast)
    a100 = gu.Precision("cuda", torch.bfloat16, False, True, "faked A100")
    monkeypatch.setattr(train_mod, "choose_precision", lambda device: a100)
    assert isinstance(gu.autocast("cuda"), torch.autocast)
