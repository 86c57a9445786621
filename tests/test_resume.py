"""Interrupted training resumes to exactly the same run, and checkpoints never go bad.

The cases come from the reliability sweep (shared/reviews/reliability-sweep.md): Ctrl-C mid-epoch
and at an epoch boundary, with every kind of batches; NaN weights and gradients; GAN-style steps;
wrong, stale, empty and foreign checkpoint files.
"""

from __future__ import annotations

import itertools
import math
import os
import signal

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import gen_utils as gu

# dummy steps that update nothing, checkpointing a model; the warning itself is tested at the end
pytestmark = pytest.mark.filterwarnings("ignore:train\\(checkpoint=...\\) with a step that makes its own")


@pytest.fixture(autouse=True)
def _headless(monkeypatch):
    monkeypatch.setenv("GEN_UTILS_HEADLESS", "1")


N, BATCH, STEPS = 36, 6, 18  # six batches an epoch, three epochs


def data():
    g = torch.Generator().manual_seed(123)
    x = torch.randn(N, 4, generator=g)
    return x, x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.1 * torch.randn(N, 1, generator=g)


BATCHES = {
    "Batches (global RNG)": lambda x, y: gu.Batches(x, y, batch_size=BATCH),
    "Batches (own generator)": lambda x, y: gu.Batches(x, y, batch_size=BATCH,
                                                       generator=torch.Generator().manual_seed(7)),
    "Batches (no shuffle)": lambda x, y: gu.Batches(x, y, batch_size=BATCH, shuffle=False),
    "DataLoader (shuffle)": lambda x, y: DataLoader(TensorDataset(x, y), batch_size=BATCH, shuffle=True),
    "DataLoader (own generator)": lambda x, y: DataLoader(
        TensorDataset(x, y), batch_size=BATCH, shuffle=True, generator=torch.Generator().manual_seed(7)),
}


def run(kind, ckpt=None, interrupt_at=None, init_seed=0, resumed=False):
    """One run from a fixed global seed: a dropout MLP, Adam, a scheduler, 18 steps.

    resumed: play a later session, whose random state and batch generators are wherever that
    session left them; only the checkpoint can bring them back.
    """
    torch.manual_seed(init_seed)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.5)
    torch.manual_seed(0)
    batches = BATCHES[kind](*data())
    if resumed:
        torch.rand(13)  # the global RNG has moved on
        generator = getattr(batches, "generator", None)
        if generator is not None:
            torch.rand(5, generator=generator)  # and so has the batches' own generator

    def step(batch, i):
        x, y = batch
        if i + 1 == interrupt_at:
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C / Jupyter's "interrupt kernel" would
        return nn.functional.mse_loss(model(x), y)

    res = gu.train(step, batches, optimizer=opt, model=model, scheduler=sched, steps=STEPS,
                   checkpoint=ckpt, checkpoint_every=100)
    return model, res


@pytest.mark.parametrize("stop_at", [4, 6, 10, 12],
                         ids=["mid-epoch 1", "end of epoch 1", "mid-epoch 2", "end of epoch 2"])
@pytest.mark.parametrize("kind", list(BATCHES))
def test_ctrl_c_then_resume_equals_the_uninterrupted_run(tmp_path, kind, stop_at):
    straight, straight_res = run(kind)
    ckpt = tmp_path / "run.pt"
    with pytest.raises(KeyboardInterrupt, match=f"after step {stop_at}"):
        run(kind, ckpt, interrupt_at=stop_at)
    assert ckpt.exists()  # checkpoint_every=100: only the interrupt wrote it
    resumed, res = run(kind, ckpt, init_seed=5, resumed=True)  # other weights: the checkpoint must win
    assert res.history["loss"] == straight_res.history["loss"]
    for a, b in zip(resumed.parameters(), straight.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_one_shot_iterator_made_afresh_is_fast_forwarded(tmp_path):
    x, y = data()

    def windows():  # a stream with its own generator, as chapter 09's windows(seed)
        g = torch.Generator().manual_seed(3)
        while True:
            i = torch.randint(0, N, (BATCH,), generator=g)
            yield x[i], y[i]

    def go(ckpt=None, interrupt_at=None):
        torch.manual_seed(0)
        model = nn.Linear(4, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

        def step(batch, i):
            if i + 1 == interrupt_at:
                os.kill(os.getpid(), signal.SIGINT)
            return nn.functional.mse_loss(model(batch[0]), batch[1])

        return gu.train(step, windows(), optimizer=opt, model=model, steps=10, checkpoint=ckpt).history

    ckpt = tmp_path / "w.pt"
    with pytest.raises(KeyboardInterrupt):
        go(ckpt, interrupt_at=4)
    assert go(ckpt)["loss"] == go()["loss"]


# --- NaN never reaches a checkpoint --------------------------------------------------------------

def test_nan_gradient_is_caught_at_its_step_before_the_update(tmp_path):
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = data()
    ckpt = tmp_path / "nan.pt"

    def step(batch, i):
        out = model(x)
        if i + 1 == 5:  # a finite loss whose gradient is NaN
            out.register_hook(lambda grad: torch.full_like(grad, float("nan")))
        return nn.functional.mse_loss(out, y)

    with pytest.raises(gu.NonFiniteLossError, match="gradient norm.*at step 5"):
        gu.train(step, itertools.count(), optimizer=opt, model=model, steps=10, clip_grad_norm=1.0,
                 checkpoint=ckpt, checkpoint_every=1, sync_every=1)
    assert all(torch.isfinite(p).all() for p in model.parameters())  # the NaN step never ran
    state = torch.load(ckpt, weights_only=True)
    assert state["progress"]["steps"] == 4
    assert all(torch.isfinite(t).all() for t in state["objects"]["model"].values())


def gan_like(G, D, poison_at):
    opt_g = torch.optim.SGD(G.parameters(), lr=0.01)
    opt_d = torch.optim.SGD(D.parameters(), lr=0.01)

    def step(_, i):
        for net, opt in ((D, opt_d), (G, opt_g)):
            loss = net(torch.ones(2, 4)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        if i + 1 == poison_at:
            with torch.no_grad():
                G.weight.fill_(float("nan"))  # the weights go bad while the logged loss is finite
        return {"loss_d": 1.0}

    return step, {"G": G, "D": D, "opt_g": opt_g, "opt_d": opt_d}


def test_a_self_updating_step_never_overwrites_a_good_checkpoint_with_nan(tmp_path, capsys):
    G, D = nn.Linear(4, 1), nn.Linear(4, 1)
    step, stateful = gan_like(G, D, poison_at=5)
    ckpt = tmp_path / "gan.pt"
    res = gu.train(step, steps=10, checkpoint=ckpt, checkpoint_every=4, stateful=stateful,
                   on_nonfinite="stop")
    assert "non-finite weights after step 8" in res.stop_reason  # the save at step 8 refused
    assert res.steps == 8  # ... and the run stopped there
    state = torch.load(ckpt, weights_only=True)
    assert state["progress"]["steps"] == 4
    assert torch.isfinite(state["objects"]["G"]["weight"]).all()
    assert not list(tmp_path.glob("*.tmp"))


def test_a_gan_step_checkpoints_both_players_and_resumes_them(tmp_path):
    torch.manual_seed(0)
    G, D = nn.Linear(4, 1), nn.Linear(4, 1)
    step, stateful = gan_like(G, D, poison_at=None)
    gu.train(step, steps=3, checkpoint=tmp_path / "g.pt", stateful=stateful)
    trained = {k: v.clone() for k, v in G.state_dict().items()}
    G2, D2 = nn.Linear(4, 1), nn.Linear(4, 1)
    step2, stateful2 = gan_like(G2, D2, poison_at=None)
    res = gu.train(step2, steps=3, checkpoint=tmp_path / "g.pt", stateful=stateful2)
    assert res.steps == 3 and all(torch.equal(G2.state_dict()[k], v) for k, v in trained.items())


def test_checkpoint_without_anything_to_save_is_refused(tmp_path):
    with pytest.raises(ValueError, match="needs something to save"):
        gu.train(lambda b: {"loss": 1.0}, steps=3, checkpoint=tmp_path / "x.pt")


def test_no_final_save_after_a_nonfinite_stop(tmp_path):
    model = nn.Linear(4, 1)
    ckpt = tmp_path / "stop.pt"
    losses = iter([1.0, 1.0, float("nan"), 1.0, 1.0])
    gu.train(lambda b: {"loss": next(losses)}, itertools.count(), steps=5, checkpoint=ckpt,
             checkpoint_every=100, model=model, on_nonfinite="stop")
    assert not ckpt.exists()


# --- bad checkpoint files are named, and nothing is loaded --------------------------------------

def saved(tmp_path, model, opt):
    ckpt = tmp_path / "c.pt"
    gu.train(lambda b: model(torch.ones(1, 4)).sum(), itertools.count(), optimizer=opt, model=model,
             steps=2, checkpoint=ckpt)
    return ckpt


def test_a_checkpoint_of_another_architecture_is_refused_before_loading(tmp_path):
    ckpt = saved(tmp_path, (m := nn.Linear(4, 1)), torch.optim.SGD(m.parameters(), lr=0.1))
    other = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 1))
    before = [p.clone() for p in other.parameters()]
    with pytest.raises(gu.CheckpointError,
                       match=r"c\.pt does not fit this run: 'model' is a Linear there and a Sequential"):
        gu.train(lambda b: other(torch.ones(1, 4)).sum(), itertools.count(), steps=3, model=other,
                 optimizer=torch.optim.SGD(other.parameters(), lr=0.1), checkpoint=ckpt)
    assert all(torch.equal(a, b) for a, b in zip(before, other.parameters(), strict=True))


def test_shape_and_optimizer_mismatches_are_named(tmp_path):
    ckpt = saved(tmp_path, (m := nn.Linear(4, 1)), torch.optim.SGD(m.parameters(), lr=0.1))
    wide = nn.Linear(4, 2)
    with pytest.raises(gu.CheckpointError, match=r"model.weight has shape \(1, 4\) there and \(2, 4\)"):
        gu.load_checkpoint(ckpt, wide, torch.optim.SGD(wide.parameters(), lr=0.1))
    same = nn.Linear(4, 1)
    with pytest.raises(gu.CheckpointError, match="'optimizer' is a SGD there and a Adam here"):
        gu.load_checkpoint(ckpt, same, torch.optim.Adam(same.parameters()))


@pytest.mark.parametrize("content", [b"", b"garbage that is not a checkpoint"], ids=["empty", "garbage"])
def test_empty_and_garbage_files_are_named(tmp_path, content):
    ckpt = tmp_path / "bad.pt"
    ckpt.write_bytes(content)
    model = nn.Linear(4, 1)
    with pytest.raises(gu.CheckpointError, match=r"bad\.pt is not a readable checkpoint.*Delete"):
        gu.train(lambda b: model(torch.ones(1, 4)).sum(), itertools.count(), steps=1, model=model,
                 optimizer=torch.optim.SGD(model.parameters(), lr=0.1), checkpoint=ckpt)


def test_a_plain_state_dict_is_not_taken_for_a_checkpoint(tmp_path):
    model = nn.Linear(4, 1)
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    with pytest.raises(gu.CheckpointError, match="not written by gen_utils.*keys"):
        gu.load_checkpoint(tmp_path / "sd.pt", model)


# --- batches -------------------------------------------------------------------------------------

@pytest.mark.parametrize("empty", [
    gu.Batches(torch.arange(3), batch_size=5, drop_last=True),
    DataLoader(TensorDataset(torch.arange(3)), batch_size=5, drop_last=True),
    [],
], ids=["Batches", "DataLoader", "list"])
def test_batches_that_yield_nothing_raise(empty):
    with pytest.raises(ValueError, match="yield nothing"):
        gu.train(lambda b: {"loss": 0.0}, empty, epochs=1)


def test_negative_budgets_are_refused():
    with pytest.raises(ValueError, match="steps must be >= 0"):
        gu.train(lambda b: {"loss": 0.0}, itertools.count(), steps=-5)
    assert math.isfinite(gu.train(lambda b: {"loss": 0.0}, itertools.count(), steps=0).seconds)


def test_a_stray_tmp_file_is_removed_and_a_bad_step_output_is_named(tmp_path):
    model = nn.Linear(4, 1)
    ckpt = tmp_path / "s.pt"
    (tmp_path / "s.pt.tmp").write_bytes(b"half a file")
    gu.train(lambda b: {"loss": 1.0}, itertools.count(), steps=1, checkpoint=ckpt, model=model)
    assert ckpt.exists() and not (tmp_path / "s.pt.tmp").exists()
    with pytest.raises(TypeError, match="returned a float"):
        gu.train(lambda b: 1.0, itertools.count(), steps=1)


# --- streams a step draws from itself (a WGAN critic) ---------------------------------------------

def critic_run(ckpt=None, interrupt_at=None, as_batches=False, resumed=False):
    """A step that takes three batches per step from gu.forever, as chapter 05's critic does."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.2), nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    real = gu.forever(gu.Batches(*data(), batch_size=BATCH, generator=torch.Generator().manual_seed(7)))
    if resumed:
        next(real)  # this session's stream is elsewhere
        torch.rand(3)

    def step(batch, i):
        if i + 1 == interrupt_at:
            os.kill(os.getpid(), signal.SIGINT)
        losses = [nn.functional.mse_loss(model(x), y) for x, y in
                  ([batch] if as_batches else [next(real) for _ in range(3)])]
        loss = sum(losses)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": loss}

    kwargs = dict(steps=STEPS, checkpoint=ckpt, checkpoint_every=100, stateful={"model": model, "opt": opt})
    if as_batches:
        return gu.train(step, real, **kwargs).history["loss"]
    return gu.train(step, stateful={**kwargs.pop("stateful"), "real": real}, **kwargs).history["loss"]


@pytest.mark.parametrize("as_batches", [False, True], ids=["next(real) in the step", "forever as batches"])
def test_a_forever_stream_resumes_exactly(tmp_path, as_batches):
    straight = critic_run(as_batches=as_batches)
    with pytest.raises(KeyboardInterrupt, match="saved to"):
        critic_run(tmp_path / "c.pt", interrupt_at=5, as_batches=as_batches)
    assert critic_run(tmp_path / "c.pt", as_batches=as_batches, resumed=True) == straight


def test_checkpointing_only_the_model_of_a_self_updating_step_warns(tmp_path):
    model = nn.Linear(4, 1)
    with pytest.warns(UserWarning, match="saves only `model`"):
        gu.train(lambda b: {"loss": 0.0}, itertools.count(), steps=1, model=model,
                 checkpoint=tmp_path / "m.pt")
