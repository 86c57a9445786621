"""gen_utils.train: the loop, its stopping rules, NaN guard, evaluation and checkpoints."""

from __future__ import annotations

import contextlib
import itertools
import math
import pickle
import time

import pytest
import torch
from torch import nn

import gen_utils as gu

# these tests checkpoint a model their dummy steps never update; tests/test_resume.py tests the warning
pytestmark = pytest.mark.filterwarnings("ignore:train\\(checkpoint=...\\) with a step that makes its own")


@pytest.fixture(autouse=True)
def _headless(monkeypatch):
    monkeypatch.setenv("GEN_UTILS_HEADLESS", "1")


def regression(n=256, seed=0):
    """y = X w + b + noise, with X (n, 3)."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 3, generator=g)
    y = X @ torch.tensor([1.5, -2.0, 0.5]) + 0.3 + 0.01 * torch.randn(n, generator=g)
    return X, y[:, None]


def linear(seed=0):
    torch.manual_seed(seed)
    return nn.Linear(3, 1)


def mse_step(model):
    def step(batch):
        x, y = batch
        return nn.functional.mse_loss(model(x), y)

    return step


def params(model):
    return [p.detach().clone() for p in model.parameters()]


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


# --- the loop -------------------------------------------------------------------------------

def test_linear_regression_loss_goes_down(capsys):
    X, y = regression()
    model = linear()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    batches = gu.Batches(X, y, batch_size=32, generator=torch.Generator().manual_seed(0))
    res = gu.train(mse_step(model), batches, optimizer=opt, model=model, epochs=5)
    assert isinstance(res, gu.TrainResult)
    assert res.steps == 5 * 8 and res.stop_reason == "done"
    assert res.history["step"] == list(range(1, 41))
    assert len(res.history["loss"]) == 40
    assert all(isinstance(v, float) for v in res.history["loss"])
    assert res.history["loss"][-1] < res.history["loss"][0] / 100
    assert torch.allclose(model.weight.detach(), torch.tensor([[1.5, -2.0, 0.5]]), atol=0.05)
    assert res.seconds > 0
    assert "train step 40/40" in capsys.readouterr().out


def test_steps_stop_an_endless_iterator():
    calls = []
    res = gu.train(lambda b: calls.append(b) or {"loss": 1.0}, itertools.count(), steps=7)
    assert res.steps == 7 and calls == list(range(7))


def test_steps_continue_across_epochs():
    seen = []
    res = gu.train(lambda b: seen.append(int(b[0][0])) or {"loss": 0.0},
                   gu.Batches(torch.arange(6), batch_size=2, shuffle=False), steps=7)
    assert res.steps == 7
    assert seen == [0, 2, 4, 0, 2, 4, 0]


def test_epochs_stop_after_whole_passes():
    b = gu.Batches(torch.arange(10), batch_size=4)  # 3 batches per pass
    res = gu.train(lambda b: {"loss": 0.0}, b, epochs=2)
    assert res.steps == 6 and res.stop_reason == "done"


def test_epochs_with_a_one_shot_iterator_stops_when_exhausted():
    res = gu.train(lambda b: {"loss": float(b)}, iter(range(5)), epochs=3)
    assert res.steps == 5


def test_steps_and_epochs_whichever_comes_first():
    b = gu.Batches(torch.arange(10), batch_size=5)
    assert gu.train(lambda b: {"loss": 0.0}, b, epochs=3, steps=4).steps == 4
    assert gu.train(lambda b: {"loss": 0.0}, b, epochs=1, steps=4).steps == 2


def test_time_budget_stops_between_steps(capsys):
    def slow(batch):
        time.sleep(0.02)
        return {"loss": 1.0}

    res = gu.train(slow, itertools.count(), max_seconds=0.15)
    assert res.stop_reason == "time budget"
    assert 2 <= res.steps <= 9
    assert len(res.history["loss"]) == res.steps
    assert res.seconds >= 0.15
    assert "time budget" in capsys.readouterr().out


def test_time_budget_of_zero_runs_nothing():
    res = gu.train(lambda b: pytest.fail("no step expected"), itertools.count(), max_seconds=0)
    assert res.steps == 0 and res.stop_reason == "time budget"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({}, "steps, epochs or max_seconds"),
     ({"steps": 1, "on_nonfinite": "ignore"}, "on_nonfinite"),
     ({"steps": 1, "clip_grad_norm": 1.0}, "needs the model")],
)
def test_argument_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        gu.train(lambda b: {"loss": 0.0}, itertools.count(), **kwargs)


def test_with_an_optimizer_step_must_return_a_loss_tensor():
    model = linear()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match="loss tensor"):
        gu.train(lambda b: {"loss": 1.0}, itertools.count(), optimizer=opt, model=model, steps=1)


def test_dict_output_logs_every_scalar():
    X, y = regression(64)
    model = linear()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def step(batch):
        x, t = batch
        pred = model(x)
        return {"loss": nn.functional.mse_loss(pred, t), "mae": (pred - t).abs().mean(), "k": 2}

    res = gu.train(step, gu.Batches(X, y, batch_size=16), optimizer=opt, model=model, steps=6)
    assert set(res.history) == {"step", "loss", "mae", "k"}
    assert res.history["k"] == [2.0] * 6
    assert res.history["loss"][-1] < res.history["loss"][0]


def test_scheduler_steps_once_per_step():
    model = linear()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 ** s)
    X, y = regression(32)
    gu.train(mse_step(model), itertools.repeat((X, y)), optimizer=opt, model=model, steps=3,
             scheduler=sched)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.125)


def test_log_every_prints_summaries(capsys):
    gu.train(lambda b: {"loss": 2.0}, itertools.count(), steps=6, log_every=2, desc="toy")
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("toy step")]
    assert [ln.split(" | ")[0] for ln in lines] == ["toy step 2/6", "toy step 4/6", "toy step 6/6",
                                                   "toy step 6/6"]
    assert all("loss 2.0000" in ln for ln in lines)


def test_progress_bar_when_not_headless(monkeypatch, capsys):
    monkeypatch.delenv("GEN_UTILS_HEADLESS")
    res = gu.train(lambda b: {"loss": 1.0}, itertools.count(), steps=12, desc="bar")
    assert res.steps == 12
    out = capsys.readouterr()
    assert "bar step 12/12" in out.out + out.err


# --- NaN / inf guard ------------------------------------------------------------------------

def nan_at(step_no, model, value=float("nan")):
    calls = []

    def step(batch):
        calls.append(1)
        x, y = batch
        loss = nn.functional.mse_loss(model(x), y)
        return loss * value if len(calls) == step_no else loss

    return step


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_nonfinite_loss_raises_naming_the_step(value):
    X, y = regression(32)
    model = linear()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = []

    def step(batch):
        before.append(params(model))
        loss = mse_step(model)(batch)
        return loss * value if len(before) == 3 else loss

    with pytest.raises(gu.NonFiniteLossError) as info:
        gu.train(step, itertools.repeat((X, y)), optimizer=opt, model=model, steps=10, sync_every=1)
    assert isinstance(info.value, FloatingPointError)
    assert "at step 3" in str(info.value) and "loss" in str(info.value)
    assert same(params(model), before[2])  # the bad step did not update the model
    assert all(torch.isfinite(p).all() for p in params(model))


def test_nonfinite_stop_keeps_the_history(capsys):
    X, y = regression(32)
    model = linear()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    res = gu.train(nan_at(4, model), itertools.repeat((X, y)), optimizer=opt, model=model,
                   steps=10, on_nonfinite="stop", sync_every=1)
    assert res.steps == 3 and len(res.history["loss"]) == 3
    assert all(math.isfinite(v) for v in res.history["loss"])
    assert "step 4" in res.stop_reason and "non-finite" in res.stop_reason
    assert "stopped" in capsys.readouterr().out


def test_deferred_check_names_the_bad_step_and_keeps_the_history_before_it(capsys):
    # the default reads values every sync_every steps: the NaN at step 4 is found at step 6
    X, y = regression(32)
    model = linear()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    res = gu.train(nan_at(4, model), itertools.repeat((X, y)), optimizer=opt, model=model,
                   steps=10, on_nonfinite="stop", sync_every=6)
    assert res.history["step"] == [1, 2, 3] and all(math.isfinite(v) for v in res.history["loss"])
    assert "at step 4" in res.stop_reason and "after step 6" in res.stop_reason
    assert res.steps == 6  # the weights took steps 4-6: the run says so and is not saved
    with pytest.raises(gu.NonFiniteLossError, match="loss .* at step 4, read at the check after step 6"):
        gu.train(nan_at(4, linear()), itertools.repeat((X, y)), optimizer=opt, model=model, steps=10,
                 sync_every=6)


def test_values_are_read_from_the_device_only_every_sync_every_steps(monkeypatch):
    # catches a per-step host sync creeping back into the loop (it stalls a GPU every step)
    X, y = regression(32)
    model = linear()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    reads = []
    real_tolist = torch.Tensor.tolist
    monkeypatch.setattr(torch.Tensor, "tolist", lambda t: reads.append(t.numel()) or real_tolist(t))
    monkeypatch.setattr(torch.Tensor, "item", lambda t: pytest.fail("per-step .item() in the loop"))
    res = gu.train(mse_step(model), itertools.repeat((X, y)), optimizer=opt, model=model, steps=20,
                   sync_every=8)
    assert len(reads) == 3  # after steps 8, 16 and at the end (20)
    assert res.history["step"] == list(range(1, 21)) and len(res.history["loss"]) == 20


def test_nonfinite_guard_without_optimizer_names_the_key():
    outs = iter([{"g_loss": 1.0, "d_loss": 0.5}, {"g_loss": 1.0, "d_loss": float("nan")}])
    with pytest.raises(gu.NonFiniteLossError, match="d_loss.*at step 2"):
        gu.train(lambda b: next(outs), itertools.count(), steps=5, sync_every=1)


# --- optimizer=None, clipping, evaluation ---------------------------------------------------

def test_without_optimizer_step_does_its_own_update():
    w = torch.zeros(1, requires_grad=True)

    def step(batch):  # minimise (w - 3)^2 by hand
        loss = (w - 3.0).pow(2).sum()
        loss.backward()
        with torch.no_grad():
            w.sub_(0.25 * w.grad)
            w.grad = None
        return {"loss": loss.item(), "w": w.item()}

    res = gu.train(step, itertools.count(), steps=20)
    assert res.steps == 20
    assert res.history["w"][0] == pytest.approx(1.5)
    assert res.history["loss"][-1] < 1e-6 < res.history["loss"][0]
    assert w.item() == pytest.approx(3.0, abs=1e-3)


def test_clip_grad_norm_logs_the_norm_and_clips():
    X, y = regression(32)
    model = linear()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    start = params(model)
    loss = nn.functional.mse_loss(model(X), y)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    norm = torch.sqrt(sum(g.pow(2).sum() for g in grads)).item()
    res = gu.train(mse_step(model), [(X, y)], optimizer=opt, model=model, steps=1,
                   clip_grad_norm=1e-3)
    assert res.history["grad_norm"] == [pytest.approx(norm, rel=1e-5)]
    assert norm > 1
    moved = torch.sqrt(sum((a - b).pow(2).sum() for a, b in zip(params(model), start,
                                                                  strict=True))).item()
    assert moved == pytest.approx(1e-3, rel=1e-3)  # lr 1: the update is the clipped gradient


def test_eval_fn_history_and_modes(capsys):
    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.Linear(4, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    X, y = regression(32)
    seen = []

    def eval_fn():
        seen.append((model.training, torch.is_grad_enabled()))
        return {"val_loss": nn.functional.mse_loss(model(X), y), "n": len(seen)}

    res = gu.train(mse_step(model), itertools.repeat((X, y)), optimizer=opt, model=model,
                   steps=7, eval_fn=eval_fn, eval_every=3)
    assert res.history["eval_step"] == [3, 6, 7]  # every 3 steps and once at the end
    assert res.history["n"] == [1.0, 2.0, 3.0]
    assert len(res.history["val_loss"]) == 3
    assert all(isinstance(v, float) for v in res.history["val_loss"])
    assert seen == [(False, False)] * 3
    assert model.training  # back in training mode afterwards
    assert "val_loss" in capsys.readouterr().out


def test_eval_at_the_end_is_not_repeated():
    calls = []
    res = gu.train(lambda b: {"loss": 0.0}, itertools.count(), steps=4,
                   eval_fn=lambda: calls.append(1) or {"m": 1.0}, eval_every=2)
    assert res.history["eval_step"] == [2, 4] and len(calls) == 2


# --- checkpoints ----------------------------------------------------------------------------

def test_checkpoint_file_is_weights_only_loadable(tmp_path):
    X, y = regression(32)
    model = linear()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    ckpt = tmp_path / "run" / "ckpt.pt"
    gu.train(mse_step(model), itertools.repeat((X, y)), optimizer=opt, model=model, steps=5,
             checkpoint=ckpt, eval_fn=lambda: {"v": 1.0}, eval_every=2)
    state = torch.load(ckpt, weights_only=True)
    progress = state["progress"]
    assert progress["steps"] == 5
    assert progress["history"]["step"] == [1, 2, 3, 4, 5]
    assert progress["history"]["eval_step"] == [2, 4, 5]
    assert all(torch.equal(state["objects"]["model"][k], v) for k, v in model.state_dict().items())
    assert state["objects"]["optimizer"]["state"]  # Adam moments were saved
    assert state["types"] == {"model": "Linear", "optimizer": "Adam"}
    assert not list(ckpt.parent.glob("*.tmp"))


def test_resume_continues_the_step_count_and_restores_weights(tmp_path, capsys):
    X, y = regression(32)
    ckpt = tmp_path / "ckpt.pt"
    model = linear(seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    gu.train(mse_step(model), itertools.repeat((X, y)), optimizer=opt, model=model, steps=5,
             checkpoint=ckpt)
    saved = params(model)

    model2 = linear(seed=1)  # different initial weights, fresh optimizer
    assert not same(params(model2), saved)
    opt2 = torch.optim.SGD(model2.parameters(), lr=0.05, momentum=0.9)
    first = []

    def step(batch):
        if not first:
            first.append(params(model2))
        return mse_step(model2)(batch)

    res = gu.train(step, itertools.repeat((X, y)), optimizer=opt2, model=model2, steps=8,
                   checkpoint=ckpt)
    assert same(first[0], saved)  # training went on from the saved weights
    assert res.steps == 8 and res.history["step"] == list(range(1, 9))
    assert "resumed from checkpoint at step 5" in capsys.readouterr().out
    assert torch.load(ckpt, weights_only=True)["progress"]["steps"] == 8

    # Same result as 8 uninterrupted steps (the momentum buffers were restored too).
    model3 = linear(seed=0)
    opt3 = torch.optim.SGD(model3.parameters(), lr=0.05, momentum=0.9)
    straight = gu.train(mse_step(model3), itertools.repeat((X, y)), optimizer=opt3,
                        model=model3, steps=8)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(params(model2), params(model3),
                                                               strict=True))
    assert res.history["loss"] == pytest.approx(straight.history["loss"], rel=1e-5)


def test_resume_of_a_finished_run_trains_no_more_and_says_so(tmp_path, capsys):
    ckpt, model = tmp_path / "ckpt.pt", linear()
    gu.train(lambda b: {"loss": 1.0}, itertools.count(), steps=3, checkpoint=ckpt, model=model)
    res = gu.train(lambda b: pytest.fail("no step expected"), itertools.count(), steps=3,
                   checkpoint=ckpt, model=model)
    assert res.steps == 3
    assert "already at step 3 of 3: nothing left to train" in capsys.readouterr().out


def test_resume_mid_epoch_stops_after_the_requested_epochs(tmp_path, capsys):
    ckpt = tmp_path / "ckpt.pt"
    batches = gu.Batches(torch.arange(8.0), batch_size=2)  # 4 steps per epoch
    model = linear()
    gu.train(lambda b: {"loss": 1.0}, batches, steps=6, checkpoint=ckpt, model=model)  # 1.5 epochs
    res = gu.train(lambda b: {"loss": 1.0}, batches, epochs=2, checkpoint=ckpt, model=model)
    assert res.steps == 8
    assert res.history["step"] == list(range(1, 9))


def test_checkpoint_every(tmp_path):
    ckpt = tmp_path / "ckpt.pt"
    saved_steps = []

    def step(batch):
        if ckpt.exists():
            saved_steps.append(torch.load(ckpt, weights_only=True)["progress"]["steps"])
        return {"loss": 1.0}

    gu.train(step, itertools.count(), steps=6, checkpoint=ckpt, checkpoint_every=2, model=linear())
    assert saved_steps == [2, 2, 4, 4]
    assert torch.load(ckpt, weights_only=True)["progress"]["steps"] == 6


def test_save_and_load_checkpoint_directly(tmp_path):
    model = linear()
    opt = torch.optim.Adam(model.parameters())
    result = gu.TrainResult(steps=11, seconds=2.5)
    result.log(step=11, loss=0.25)
    gu.save_checkpoint(tmp_path / "a.pt", model, opt, result, extra={"note": "hi"})
    after_save = torch.rand(3)  # the RNG state is restored on load
    other = linear(seed=5)
    loaded = gu.load_checkpoint(tmp_path / "a.pt", other, torch.optim.Adam(other.parameters()))
    assert loaded.extra == {"note": "hi"}
    assert torch.equal(torch.rand(3), after_save)
    assert same(params(other), params(model))
    assert (loaded.steps, loaded.seconds) == (11, 2.5)
    assert loaded.history == {"step": [11], "loss": [0.25]}
    assert torch.load(tmp_path / "a.pt", weights_only=True)["progress"]["extra"] == {"note": "hi"}


class Opaque:
    pass


def test_load_checkpoint_refuses_arbitrary_objects(tmp_path):
    gu.save_checkpoint(tmp_path / "b.pt", None, None, gu.TrainResult(), extra={"o": Opaque()})
    with pytest.raises(gu.CheckpointError, match="b.pt is not a readable checkpoint.*Delete") as e:
        gu.load_checkpoint(tmp_path / "b.pt")
    assert isinstance(e.value.__cause__, pickle.UnpicklingError)


# --- autocast -------------------------------------------------------------------------------

def test_autocast_is_a_no_op_on_cpu():
    assert isinstance(gu.autocast("cpu"), contextlib.nullcontext)
    assert isinstance(gu.autocast(torch.device("cpu")), contextlib.nullcontext)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_autocast_bf16_on_cuda():
    with gu.autocast("cuda"):
        out = torch.ones(4, 4, device="cuda") @ torch.ones(4, 4, device="cuda")
    assert out.dtype == torch.bfloat16


# --- the step index, batches=None and forever -----------------------------------------------

def test_a_two_argument_step_gets_the_step_index():
    seen = []
    gu.train(lambda b, i: seen.append((b, i)) or {"loss": 0.0}, itertools.count(10), steps=4)
    assert seen == [(10, 0), (11, 1), (12, 2), (13, 3)]


def test_the_step_index_continues_after_a_resume(tmp_path):
    seen = []

    def step(batch, i):
        seen.append(i)
        return {"loss": 0.0}

    ckpt, model = tmp_path / "run.pt", linear()
    gu.train(step, itertools.count(), steps=3, checkpoint=ckpt, model=model)
    gu.train(step, itertools.count(), steps=5, checkpoint=ckpt, model=model)
    assert seen == [0, 1, 2, 3, 4]


def test_without_batches_the_step_receives_none():
    seen = []
    res = gu.train(lambda b: seen.append(b) or {"loss": 1.0}, steps=3)
    assert res.steps == 3 and seen == [None, None, None]


def test_epochs_without_batches_is_refused():
    with pytest.raises(ValueError, match="epochs=.*needs batches"):
        gu.train(lambda b: {"loss": 0.0}, epochs=2)


def test_forever_starts_a_new_shuffled_pass_when_one_ends():
    data = gu.Batches(torch.arange(6), batch_size=2, generator=torch.Generator().manual_seed(0))
    stream = gu.forever(data)
    seen = [next(stream)[0] for _ in range(9)]  # three batches a pass: three whole passes
    passes = [torch.cat(seen[k : k + 3]).sort().values for k in (0, 3, 6)]
    assert all(torch.equal(p, torch.arange(6)) for p in passes)
    assert not all(torch.equal(a, b) for a, b in zip(seen[:3], seen[3:6], strict=True))  # reshuffled


def test_forever_refuses_iterators_and_empty_iterables():
    with pytest.raises(ValueError, match="re-iterable"):
        gu.forever(iter([1, 2]))
    with pytest.raises(ValueError, match="yield nothing"):
        next(gu.forever([]))


def test_a_step_whose_second_parameter_has_a_default_gets_the_batch_only():
    seen = []
    gu.train(lambda b, scale=0.5: seen.append((b, scale)) or {"loss": 0.0}, itertools.count(), steps=2)
    assert seen == [(0, 0.5), (1, 0.5)]


def test_a_critic_loop_takes_as_many_batches_as_it_needs():
    real = gu.forever(gu.Batches(torch.arange(10), batch_size=1, shuffle=False))
    taken = []

    def critic_step(_, i):
        taken.append([int(next(real)[0]) for _ in range(3)])  # n_critic = 3 real batches per step
        return {"loss_d": 0.0}

    gu.train(critic_step, steps=4)
    assert taken == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 0, 1]]
