"""A small training loop; the chapter supplies the step, so its loss stays on the page.

Two ways to use it:

* ``train(step, batches, optimizer=opt, model=net)``: ``step(batch)`` returns the loss tensor
  (or a dict with a ``"loss"`` tensor and other scalars to log); the loop does zero_grad,
  backward (under bf16 autocast on CUDA), gradient clipping and the optimizer step.
* ``train(step, batches)`` with no optimizer: ``step`` does its own updates (a GAN's two players)
  and returns a dict of scalars to log.

``step`` may take the step index as a second argument, ``step(batch, i)`` (``i`` counts the
steps done before this one, from 0, and goes on across a resume). ``batches`` may be None when
the step draws its own data, e.g. a critic loop that calls ``next(real)`` on ``gu.forever(...)``
as often as it needs; the step then receives ``None``.

Either way the loop gives a progress bar with the live loss, a history, an evaluation hook,
a time budget, a NaN/inf guard and checkpoint save/resume. It reads top to bottom as
``train`` → ``_Stream`` (batches) → ``_update`` (one step) → ``_Reporter`` (log, evaluate) →
``_save_or_stop`` (checkpoint, in ``gen_utils.checkpoint``).
"""

from __future__ import annotations

import contextlib
import inspect
import math
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import checkpoint as checkpoints
from .precision import Precision, choose_precision
from .runtime import headless

StepOutput = torch.Tensor | dict[str, Any]


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the message names the step."""


@dataclass
class TrainResult:
    """What ``train`` returns.

    history: per-step lists (``step``, ``loss``, other logged scalars) and, for evaluations,
    ``eval_step`` plus one list per key that ``eval_fn`` returned.
    """

    history: dict[str, list[float]] = field(default_factory=dict)
    steps: int = 0
    seconds: float = 0.0
    stop_reason: str = "done"
    extra: dict[str, Any] = field(default_factory=dict)  # what save_checkpoint(extra=...) stored

    def log(self, **values: float) -> None:
        for k, v in values.items():
            self.history.setdefault(k, []).append(v)


def autocast(device: torch.device | str, *, fp16: bool = False) -> contextlib.AbstractContextManager:
    """Autocast for a hand-written step: bf16 on GPUs with bf16 tensor cores (compute capability
    >= 8.0), nothing on the CPU (CPU bf16 autocast is slower on most laptops) and, unless
    ``fp16=True``, nothing on older GPUs (T4, V100) either: fp16 gradients need loss scaling, which
    ``gu.train`` does with its own optimizer and a step that calls ``backward`` itself does not."""
    precision = choose_precision(device)
    if precision.dtype == torch.float16 and not fp16:
        return contextlib.nullcontext()
    return precision.autocast()


def forever(batches: Iterable) -> Forever:
    """Endless batches: pass after pass over a re-iterable ``batches`` (e.g. ``gu.Batches``).

    For loops that need more than one batch per step, as nanoGPT's ``get_batch``: a WGAN critic
    takes ``next(real)`` ``n_critic`` times per generator step. Each pass of ``gu.Batches`` is a
    fresh shuffle. Raises ValueError if a pass yields nothing (an empty or one-shot iterable).
    The stream can be checkpointed: pass it to ``train(stateful={"real": real, ...})`` and a
    resumed run continues with the very batches the uninterrupted one would have drawn.
    """
    return Forever(batches)


class Forever(Iterator):
    """What ``forever`` returns: an endless iterator with ``state_dict``/``load_state_dict``."""

    def __init__(self, batches: Iterable) -> None:
        if isinstance(batches, Iterator):
            raise ValueError("forever() needs a re-iterable such as gu.Batches or a DataLoader, not an "
                             "iterator, which can be read only once")
        self._stream = _Stream(batches, epochs=None)

    def __next__(self) -> Any:
        batch = self._stream.next()
        if batch is _END:
            raise ValueError("forever() got an iterable that yields no batches (empty, or an "
                             "iterator already used up): pass a re-iterable such as gu.Batches")
        return batch

    def state_dict(self) -> dict[str, Any]:
        """Pass number, batches used in it, and the random states to replay it."""
        return self._stream.position_state()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Replay the saved pass up to the saved position (``train`` then restores the RNGs)."""
        self._stream.resume(state)


# --- checkpoints ------------------------------------------------------------------------------

def save_checkpoint(path: str | Path, model: torch.nn.Module | None,
                    optimizer: torch.optim.Optimizer | None, result: TrainResult,
                    extra: dict[str, Any] | None = None, *, stateful: dict[str, Any] | None = None,
                    scheduler: Any | None = None, position: dict[str, Any] | None = None) -> None:
    """Save what a run trains, its progress and its random states (see ``gen_utils.checkpoint``).

    stateful: more objects to save by name (a GAN's players and their optimizers).
    position: where in the data the run is (written by ``train``: epoch, batches used in it).
    Raises FloatingPointError and writes nothing if a module's parameters are not finite.
    """
    objects = _objects(model, optimizer, scheduler, stateful)
    progress = {"steps": result.steps, "seconds": result.seconds, "history": result.history,
                "position": position or {}, "extra": extra or {}}
    checkpoints.save(path, objects, progress)


def load_checkpoint(path: str | Path, model: torch.nn.Module | None = None,
                    optimizer: torch.optim.Optimizer | None = None, *,
                    stateful: dict[str, Any] | None = None, scheduler: Any | None = None) -> TrainResult:
    """Restore what ``save_checkpoint`` wrote into the same objects; returns the saved progress.

    Everything is checked first (keys, shapes, optimizer types): on a mismatch a
    ``CheckpointError`` names the file and nothing is loaded. Restores the RNG states too.
    """
    objects = _objects(model, optimizer, scheduler, stateful)
    state = checkpoints.read(path)
    checkpoints.check_compatible(path, state, objects)
    checkpoints.load_into(state, objects)
    p = state["progress"]
    return TrainResult(history=p["history"], steps=p["steps"], seconds=p["seconds"], extra=p["extra"])


def _objects(model, optimizer, scheduler, stateful) -> dict[str, Any]:
    objects = {"model": model, "optimizer": optimizer, "scheduler": scheduler}
    objects = {k: v for k, v in objects.items() if v is not None}
    for name, obj in (stateful or {}).items():
        if name in objects:
            raise ValueError(f"stateful name {name!r} is taken by train's own {name}; rename it")
        if not (hasattr(obj, "state_dict") and hasattr(obj, "load_state_dict")):
            raise TypeError(f"stateful[{name!r}] is a {type(obj).__name__}, which has no "
                            "state_dict()/load_state_dict() to checkpoint")
        objects[name] = obj
    return objects


# --- the loop ---------------------------------------------------------------------------------

def train(
    step: Callable[..., StepOutput],
    batches: Iterable | None = None,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    model: torch.nn.Module | None = None,
    steps: int | None = None,
    epochs: int | None = None,
    max_seconds: float | None = None,
    clip_grad_norm: float | None = None,
    scheduler: Any | None = None,
    eval_fn: Callable[[], dict[str, float]] | None = None,
    eval_every: int | None = None,
    log_every: int = 0,
    checkpoint: str | Path | None = None,
    checkpoint_every: int | None = None,
    stateful: dict[str, Any] | None = None,
    on_nonfinite: str = "raise",
    sync_every: int = 50,
    precision: Precision | None = None,
    device: torch.device | str | None = None,
    desc: str = "train",
) -> TrainResult:
    """Run ``step`` over ``batches`` until ``steps``/``epochs`` are done or ``max_seconds`` pass.

    step: ``step(batch)`` or ``step(batch, i)`` with ``i`` the index of this step (from 0).
    batches: re-iterable (one pass = one epoch, e.g. ``gu.Batches`` or a DataLoader), an endless
      iterator, or None when the step fetches its own data (it then receives ``None``).
    steps / epochs: stop after this many optimizer steps / passes (at least one must be given,
      or ``max_seconds``); with a sized ``batches``, ``epochs`` means epochs * len(batches)
      steps in all, also when resumed mid-epoch. ``max_seconds`` stops cleanly between steps
      (``stop_reason`` ``"time budget"``); it budgets this call only (a resumed run gets it
      afresh), and the steps done so far count.
    clip_grad_norm: clip the global gradient norm of ``model`` (logged as ``grad_norm``). The
      norm is checked for NaN/inf, clipped or not, with the logged values (see ``sync_every``).
    eval_fn: called with the model in eval mode and no grad every ``eval_every`` steps and at
      the end; returns a dict of scalars stored in the history under ``eval_step``.
    log_every: print a one-line summary every so many steps (0: only evaluations and the end).
    checkpoint: a path; resumed from when it exists, saved every ``checkpoint_every`` steps
      (default: ten times a run, or every 500 steps when the length is unknown), at the end, and
      when the run is interrupted (Ctrl-C / "interrupt kernel" finishes the current step, saves,
      then raises KeyboardInterrupt). Resuming reproduces the uninterrupted run exactly on the
      CPU: the epoch and the position in it, the batch generator's and every RNG state are saved,
      and the batches already used are skipped. A one-shot iterator (e.g. ``windows(seed)``) must
      be created afresh for the resumed call: it is fast-forwarded past what was used.
    stateful: what else to checkpoint, by name: a GAN step that updates its own players passes
      ``{"G": G, "D": D, "opt_g": opt_g, "opt_d": opt_d}``. With ``checkpoint`` and nothing to
      save (no model, optimizer or stateful) train raises instead of "resuming" fresh weights.
      No checkpoint is ever written with NaN weights, nor after a non-finite stop.
    on_nonfinite: "raise" (NonFiniteLossError naming the step) or "stop" (end the run, keep
      the history up to the bad step, ``stop_reason`` names it).
    sync_every: read the logged values from the device every so many steps (and at every log,
      evaluation, checkpoint and the end), in one go: reading a GPU value each step would make the
      CPU wait for the GPU at every step. A NaN/inf is then found at the next read, naming the step
      that produced it; the weights may have taken the steps in between, so that run is not saved.
      ``sync_every=1`` checks every step before its update (a NaN never reaches the weights).
    precision: autocast / loss scaling (default ``choose_precision(device)``: bf16 on GPUs with
      bf16 tensor cores, fp16 with a GradScaler on older GPUs, fp32 on the CPU). The scaler's
      state is not checkpointed: after a resume it finds its scale again within a few steps.
    """
    _check_arguments(batches, steps, epochs, max_seconds, on_nonfinite, clip_grad_norm, model,
                     checkpoint, optimizer, stateful, sync_every)
    if device is None:
        device = next(model.parameters()).device if model is not None else torch.device("cpu")
    precision = precision or choose_precision(device)
    call = _step_caller(step)
    objects = _objects(model, optimizer, scheduler, stateful)
    sized = hasattr(batches, "__len__")
    if sized and len(batches) == 0:
        raise ValueError("train() got batches that yield nothing (an empty dataset, or a batch size "
                         "larger than the data with drop_last)")
    # With a sized ``batches``, ``epochs`` is also a step count: a run resumed mid-epoch then
    # stops at epochs * len(batches) steps instead of running whole fresh passes on top.
    epoch_steps = epochs * len(batches) if epochs is not None and sized else None
    total = steps if steps is not None else epoch_steps
    every = checkpoint_every or (max(1, total // 10) if total else 500)

    result, stream = TrainResult(), _Stream(batches, epochs)
    if checkpoint is not None:  # a save cut short by a crash leaves path.tmp: never resumed from
        Path(str(checkpoint) + ".tmp").unlink(missing_ok=True)
    if checkpoint is not None and Path(checkpoint).exists():
        result = _resume(checkpoint, objects, stream, total, desc)
    reporter = _Reporter(desc, total, result, model, precision, eval_fn)
    pending = _Pending(result, desc)
    check = (lambda values: _nonfinite(values, result.steps + 1, desc)) if sync_every == 1 else None
    scaler = precision.scaler() if optimizer is not None else None

    def save() -> None:
        checkpoints.save(checkpoint, objects, {
            "steps": result.steps, "seconds": result.seconds, "history": result.history,
            "position": stream.position_state(), "extra": {}})

    def due(n: int | None) -> bool:
        return bool(n) and result.steps % n == 0

    # max_seconds budgets this call; result.seconds keeps counting across resumes
    start, resumed_seconds = time.perf_counter(), result.seconds
    if model is not None:
        model.train()
    with _DeferredInterrupt() as interrupt:
        try:
            while steps is None or result.steps < steps:
                if epoch_steps is not None and result.steps >= epoch_steps:
                    break
                if max_seconds is not None and time.perf_counter() - start >= max_seconds:
                    result.stop_reason = "time budget"
                    break
                batch = stream.next()
                if batch is _END:
                    break
                logged = _update(call, batch, result.steps, optimizer, model, precision, scaler,
                                 clip_grad_norm, scheduler, check)
                if isinstance(logged, str):  # a non-finite value, caught before the update
                    _nonfinite_stop(logged, result, on_nonfinite, before_update=True)
                    break
                result.steps += 1
                result.seconds = resumed_seconds + time.perf_counter() - start
                pending.add(result.steps, logged)
                reporter.step()
                saving = checkpoint is not None and (due(every) or interrupt.requested)
                if saving or due(sync_every) or due(eval_every) or due(log_every):
                    if msg := pending.flush():  # the values of the last steps, read in one go
                        _nonfinite_stop(msg, result, on_nonfinite, before_update=False)
                        break
                    reporter.after_flush(eval_every, log_every)
                saved = _save_or_stop(save, result, desc, on_nonfinite) if saving else None
                if interrupt.requested:
                    raise KeyboardInterrupt(f"{desc}: interrupted after step {result.steps}"
                                            + (f"; saved to {checkpoint}" if saved else "; not saved"))
                if saved is False:  # non-finite weights with on_nonfinite="stop": train no further
                    break
            if not result.stop_reason.startswith(desc + ": non-finite") and (msg := pending.flush()):
                _nonfinite_stop(msg, result, on_nonfinite, before_update=False)
        finally:
            reporter.close()
    result.seconds = resumed_seconds + time.perf_counter() - start
    reporter.at_end()
    if result.stop_reason == "time budget":
        print(f"{desc}: time budget of {max_seconds:.0f}s reached after {result.steps} steps")
    if checkpoint is not None and not result.stop_reason.startswith(desc + ": non-finite"):
        _save_or_stop(save, result, desc, on_nonfinite)
    return result


def _nonfinite_stop(msg: str, result: TrainResult, on_nonfinite: str, before_update: bool) -> None:
    """Raise NonFiniteLossError, or record the stop (on_nonfinite="stop") and say so."""
    if not before_update:
        msg += (f", read at the check after step {result.steps} (pass sync_every=1 to stop before "
                "a bad step updates the weights)")
    if on_nonfinite == "raise":
        raise NonFiniteLossError(msg)
    result.stop_reason = msg
    print(msg + " — stopped (the last checkpoint, if any, is kept)")


def _check_arguments(batches, steps, epochs, max_seconds, on_nonfinite, clip_grad_norm, model,
                     checkpoint, optimizer, stateful, sync_every) -> None:
    if steps is None and epochs is None and max_seconds is None:
        raise ValueError("train() needs steps, epochs or max_seconds")
    for name, value in (("steps", steps), ("epochs", epochs), ("max_seconds", max_seconds)):
        if value is not None and value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    if batches is None and epochs is not None:
        raise ValueError("train(epochs=...) needs batches to count passes over; "
                         "with batches=None give steps or max_seconds")
    if sync_every < 1:
        raise ValueError(f"sync_every must be >= 1, got {sync_every}")
    if on_nonfinite not in ("raise", "stop"):
        raise ValueError(f"on_nonfinite must be 'raise' or 'stop', got {on_nonfinite!r}")
    if clip_grad_norm is not None and model is None:
        raise ValueError("clip_grad_norm needs the model")
    if checkpoint is not None and model is None and optimizer is None and not stateful:
        raise ValueError("checkpoint= needs something to save: pass model= (and optimizer=), or, "
                         "for a step that updates its own networks, stateful={'G': G, 'D': D, ...}")
    if checkpoint is not None and optimizer is None and not stateful:
        warnings.warn("train(checkpoint=...) with a step that makes its own updates saves only `model`: "
                      "pass stateful={...} with every network, optimizer and gu.forever stream it uses, "
                      "or a resumed run starts those afresh", stacklevel=3)


def _resume(path, objects, stream, total, desc) -> TrainResult:
    """Check and load the checkpoint, fast-forward the batches, restore the RNG states."""
    state = checkpoints.read(path)
    checkpoints.check_compatible(path, state, objects)
    for name, obj in objects.items():
        obj.load_state_dict(state["objects"][name])
    progress = state["progress"]
    stream.resume(progress["position"])   # replays the epoch's shuffle from its saved RNG states
    checkpoints.set_rng_states(state["rng"])  # then the states at the moment of saving
    result = TrainResult(history=progress["history"], steps=progress["steps"],
                         seconds=progress["seconds"])
    print(f"{desc}: resumed from checkpoint at step {result.steps}")
    if total is not None and result.steps >= total:
        print(f"{desc}: the checkpoint {path} is already at step {result.steps} of {total}: nothing "
              "left to train (delete it to train afresh)")
    return result


def _save_or_stop(save, result, desc, on_nonfinite) -> bool:
    """Save and return True; a non-finite parameter keeps the old file and raises NonFiniteLossError,
    or, with on_nonfinite="stop", sets the stop reason and returns False."""
    try:
        save()
        return True
    except FloatingPointError as e:
        msg = f"{desc}: non-finite weights after step {result.steps}: {e}"
        if on_nonfinite == "raise":
            raise NonFiniteLossError(msg) from None
        result.stop_reason = msg
        print(msg)
        return False


class _DeferredInterrupt:
    """Ctrl-C (SIGINT, Jupyter's "interrupt") is noted and acted on between steps, so a step is
    never cut in half and a checkpoint can be written; a second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> _DeferredInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:  # the second time: do not wait for the step
            raise KeyboardInterrupt
        self.requested = True
        print("interrupt noted: finishing this step, then saving (if checkpointing) and stopping; "
              "interrupt again to stop at once", flush=True)

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _step_caller(step: Callable[..., StepOutput]) -> Callable[[Any, int], StepOutput]:
    """``step(batch, i)`` if ``step`` requires two positional arguments, else ``step(batch)``."""
    try:
        params = inspect.signature(step).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: give it the batch only
        return lambda batch, i: step(batch)
    # only parameters without a default count: `lambda b, m=model: ...` takes the batch alone
    required = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                and p.default is p.empty]
    takes_index = len(required) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)
    return (lambda batch, i: step(batch, i)) if takes_index else (lambda batch, i: step(batch))


_END = object()


class _Stream:
    """Batches across passes, counting the pass (epoch) and the batches used in it.

    For a re-iterable (``gu.Batches``, a DataLoader) it also keeps the random states at the start
    of the pass, the global torch one and the batch generator's own, so that a resumed run can
    replay the pass's shuffle and skip the batches it already used. A one-shot iterator has one
    pass; resuming skips the batches it already gave.
    """

    def __init__(self, batches: Iterable | None, epochs: int | None) -> None:
        self.batches, self.epochs = batches, epochs
        self.one_shot = isinstance(batches, Iterator)
        self.epoch, self.used, self.epoch_rng = 0, 0, None
        self.it: Iterator | None = None
        self.yielded = False

    def next(self) -> Any:
        if self.batches is None:
            return None
        while True:
            if self.it is None:
                if self.epochs is not None and self.epoch >= self.epochs:
                    return _END
                self._start_pass()
            batch = next(self.it, _END)
            if batch is not _END:
                self.used += 1
                self.yielded = True
                return batch
            if self.used == 0 and not self.yielded:
                raise ValueError("train() got batches that yield nothing (an empty dataset, a batch "
                                 "size larger than the data with drop_last, or a used-up iterator)")
            if self.one_shot or self.used == 0:
                return _END  # an exhausted iterator
            self.it, self.epoch = None, self.epoch + 1

    def _start_pass(self) -> None:
        self.used = 0
        if self.one_shot:
            self.it = self.batches
            return
        self.epoch_rng = {"torch": torch.get_rng_state(), "generator": self._generator_state()}
        self.it = iter(self.batches)

    def _generator_state(self) -> torch.Tensor | None:
        generator = getattr(self.batches, "generator", None)  # gu.Batches' or a DataLoader's own
        return generator.get_state() if isinstance(generator, torch.Generator) else None

    def position_state(self) -> dict[str, Any]:
        if self.one_shot and hasattr(self.batches, "load_state_dict"):  # e.g. gu.forever(...)
            return {"epoch": 0, "used": 0, "epoch_rng": None, "generator": None,
                    "stream": self.batches.state_dict()}
        return {"epoch": self.epoch, "used": self.used, "epoch_rng": self.epoch_rng,
                "generator": self._generator_state()}

    def resume(self, position: dict[str, Any]) -> None:
        """Continue after ``position["used"]`` batches of pass ``position["epoch"]``."""
        if self.batches is None or not position:
            return
        if "stream" in position:  # a checkpointable stream replays itself
            self.batches.load_state_dict(position["stream"])
            self.it, self.yielded = self.batches, True
            return
        self.epoch, used = position["epoch"], position["used"]
        if used:  # even a used-up pass is replayed: ending it may draw (a DataLoader's sampler does)
            self._replay(position["epoch_rng"], used)
        if position.get("generator") is not None:  # the batch generator as it was at the save
            self.batches.generator.set_state(position["generator"])

    def _replay(self, epoch_rng: dict[str, Any] | None, used: int) -> None:
        """Re-create the pass from its starting random states and skip ``used`` batches."""
        if self.one_shot:
            self.it = self.batches
        else:
            torch.set_rng_state(epoch_rng["torch"])
            if epoch_rng["generator"] is not None:
                self.batches.generator.set_state(epoch_rng["generator"])
            self.it = iter(self.batches)
        for _ in range(used):
            if next(self.it, _END) is _END:
                break
        self.used, self.yielded = used, True


def _update(call, batch, i, optimizer, model, precision, scaler, clip_grad_norm, scheduler,
            check) -> dict[str, Any] | str:
    """One step: forward under autocast (and, with an optimizer, backward and update).

    Returns what to log, values kept as 0-d tensors on the device (reading them would wait for
    the GPU); with an optimizer also the gradient norm, under ``_grad_norm`` (``grad_norm`` when
    clipping). ``check(values)``, given only when syncing every step, returns a message for a
    non-finite value; the step then returns it before any update is made.
    """
    if optimizer is None:
        with precision.autocast():
            loss, logged = _scalars(call(batch, i))
        return (check(logged) if check else None) or logged
    optimizer.zero_grad(set_to_none=True)
    with precision.autocast():
        loss, logged = _scalars(call(batch, i))
    if loss is None:
        raise TypeError("with an optimizer, step() must return the loss tensor "
                        "(or a dict with a 'loss' tensor)")
    if check and (msg := check(logged)):
        return msg
    if scaler is not None:  # fp16: scale the loss up so small gradients survive, then unscale
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    norm = _grad_norm(optimizer, model, clip_grad_norm)
    # with a GradScaler an overflowing step is expected: the scaler skips it and lowers the scale
    norm_key = "grad_norm" if clip_grad_norm is not None else "_grad_norm"
    if scaler is None:
        if check and (msg := check({"gradient norm": norm})):
            return msg
        logged[norm_key] = norm
        optimizer.step()
    else:
        if clip_grad_norm is not None:
            logged["grad_norm"] = norm
        scaler.step(optimizer)
        scaler.update()
    if scheduler is not None:
        scheduler.step()
    return logged


def _grad_norm(optimizer, model, clip_grad_norm) -> torch.Tensor:
    """The global gradient norm, a 0-d tensor (clipping it to ``clip_grad_norm`` when given)."""
    if clip_grad_norm is not None:
        return torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


def _scalars(out: StepOutput) -> tuple[torch.Tensor | None, dict[str, Any]]:
    if not isinstance(out, (torch.Tensor, dict)):
        raise TypeError(f"step() returned a {type(out).__name__}; it must return the loss tensor or a dict "
                        "of scalars to log (e.g. {'loss_d': loss_d, 'loss_g': loss_g})")
    if isinstance(out, torch.Tensor):
        return out, {"loss": out.detach().float()}
    loss = out.get("loss")
    logged = {k: (v.detach().float() if isinstance(v, torch.Tensor) else float(v)) for k, v in out.items()}
    return (loss if isinstance(loss, torch.Tensor) else None), logged


def _nonfinite(values: dict[str, Any], step: int, desc: str) -> str | None:
    """A message naming the first non-finite value of ``step`` (reads the values: a host sync)."""
    for k, v in values.items():
        v = float(v)
        if not math.isfinite(v):
            name = "gradient norm" if k in ("grad_norm", "_grad_norm") else k
            return f"{desc}: non-finite {name} ({v}) at step {step}"
    return None


class _Pending:
    """Per-step values not yet read from the device; ``flush`` reads them all in one sync.

    The history gets every step's values, as if read at once; ``flush`` returns the message for
    the first non-finite one (the history then ends just before that step), else None.
    """

    def __init__(self, result: TrainResult, desc: str) -> None:
        self.result, self.desc = result, desc
        self.steps: list[int] = []
        self.values: list[dict[str, Any]] = []

    def add(self, step: int, logged: dict[str, Any]) -> None:
        self.steps.append(step)
        self.values.append(logged)

    def flush(self) -> str | None:
        if not self.steps:
            return None
        tensors = [v for row in self.values for v in row.values() if isinstance(v, torch.Tensor)]
        read = iter(torch.stack(tensors).tolist()) if tensors else iter(())  # the one host sync
        rows = [{k: (next(read) if isinstance(v, torch.Tensor) else v) for k, v in row.items()}
                for row in self.values]
        steps, self.steps, self.values = self.steps, [], []
        for step, row in zip(steps, rows, strict=True):
            if msg := _nonfinite(row, step, self.desc):
                return msg
            self.result.log(step=step, **{k: v for k, v in row.items() if not k.startswith("_")})
        return None


class _Reporter:
    """Progress bar, one-line summaries and evaluations of one ``train`` call."""

    def __init__(self, desc, total, result, model, precision, eval_fn) -> None:
        self.desc, self.total, self.result = desc, total, result
        self.model, self.precision, self.eval_fn = model, precision, eval_fn
        self.bar = None
        if not headless():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=result.steps, desc=desc, leave=False)

    def step(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def after_flush(self, eval_every: int | None, log_every: int) -> None:
        """The history is up to date: refresh the bar's loss, evaluate or print a summary if due."""
        steps = self.result.steps
        if self.bar is not None and self.result.history.get("loss"):
            self.bar.set_postfix(loss=f"{self.result.history['loss'][-1]:.4f}")
        if eval_every and steps % eval_every == 0:
            self.evaluate()
        elif log_every and steps % log_every == 0:
            self.summary()

    def evaluate(self) -> None:
        """Call eval_fn in eval mode without gradients; log and print its scores."""
        if self.eval_fn is None:
            return
        model = self.model
        was_training = model.training if model is not None else None
        if model is not None:
            model.eval()
        with torch.no_grad(), self.precision.autocast():
            scores = self.eval_fn()
        if model is not None and was_training:
            model.train()
        self.result.log(eval_step=self.result.steps, **{k: float(v) for k, v in scores.items()})
        self.summary(scores)

    def summary(self, extra: dict[str, float] | None = None) -> None:
        """``desc step n/total | loss (mean of the last 50) | extra scores | seconds``."""
        recent = self.result.history.get("loss", [])[-50:]
        parts = [f"{self.desc} step {self.result.steps}" + (f"/{self.total}" if self.total else "")]
        if recent:
            parts.append(f"loss {sum(recent) / len(recent):.4f}")
        parts += [f"{k} {float(v):.4f}" for k, v in (extra or {}).items()]
        parts.append(f"{self.result.seconds:.0f}s")
        msg = " | ".join(parts)
        if self.bar is not None:
            self.bar.write(msg)
        else:
            print(msg)

    def at_end(self) -> None:
        """A last evaluation (unless one just ran) or a last summary line."""
        evaluated = self.result.history.get("eval_step", [None])[-1] == self.result.steps
        if self.eval_fn is not None and not evaluated:
            self.evaluate()
        else:
            self.summary()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
