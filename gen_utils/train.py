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
``train`` → ``_batch_stream`` → ``_update`` → ``_Reporter`` (log, evaluate) → checkpoint.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

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

    def log(self, **values: float) -> None:
        for k, v in values.items():
            self.history.setdefault(k, []).append(v)


def autocast(device: torch.device | str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA, nothing elsewhere (CPU bf16 autocast is slower on most laptops)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def forever(batches: Iterable) -> Iterator:
    """Endless batches: pass after pass over a re-iterable ``batches`` (e.g. ``gu.Batches``).

    For loops that need more than one batch per step, as nanoGPT's ``get_batch``: a WGAN critic
    takes ``next(real)`` ``n_critic`` times per generator step. Each pass of ``gu.Batches`` is a
    fresh shuffle. Raises ValueError if a pass yields nothing (an empty or one-shot iterable).
    """
    while True:
        empty = True
        for batch in batches:
            empty = False
            yield batch
        if empty:
            raise ValueError("forever() got an iterable that yields no batches (empty, or an "
                             "iterator already used up): pass a re-iterable such as gu.Batches")


# --- checkpoints ------------------------------------------------------------------------------

def save_checkpoint(path: str | Path, model: torch.nn.Module | None,
                    optimizer: torch.optim.Optimizer | None, result: TrainResult,
                    extra: dict[str, Any] | None = None) -> None:
    """Save model/optimizer state, step count and history (tensors and plain types only)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "model": model.state_dict() if model is not None else None,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "steps": result.steps,
        "seconds": result.seconds,
        "history": result.history,
        "rng": torch.get_rng_state(),
        "extra": extra or {},
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_checkpoint(path: str | Path, model: torch.nn.Module | None = None,
                    optimizer: torch.optim.Optimizer | None = None) -> TrainResult:
    """Restore what ``save_checkpoint`` wrote (``weights_only=True``); returns the saved progress."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if model is not None and state["model"] is not None:
        model.load_state_dict(state["model"])
    if optimizer is not None and state["optimizer"] is not None:
        optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"])
    return TrainResult(history=state["history"], steps=state["steps"], seconds=state["seconds"])


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
    on_nonfinite: str = "raise",
    device: torch.device | str | None = None,
    desc: str = "train",
) -> TrainResult:
    """Run ``step`` over ``batches`` until ``steps``/``epochs`` are done or ``max_seconds`` pass.

    step: ``step(batch)`` or ``step(batch, i)`` with ``i`` the index of this step (from 0).
    batches: re-iterable (one pass = one epoch, e.g. ``gu.Batches``), an endless iterator, or
      None when the step fetches its own data (it then receives ``None``).
    steps / epochs: stop after this many optimizer steps / passes (at least one must be given,
      or ``max_seconds``); with a sized ``batches``, ``epochs`` means epochs * len(batches)
      steps in all, also when resumed mid-epoch. ``max_seconds`` stops cleanly between steps
      (``stop_reason`` ``"time budget"``); it budgets this call only (a resumed run gets it
      afresh), and the steps done so far count.
    clip_grad_norm: clip the global gradient norm of ``model`` (logged as ``grad_norm``).
    eval_fn: called with the model in eval mode and no grad every ``eval_every`` steps and at
      the end; returns a dict of scalars stored in the history under ``eval_step``.
    log_every: print a one-line summary every so many steps (0: only evaluations and the end).
    checkpoint: a path; resumed from when it exists, saved every ``checkpoint_every`` steps and
      at the end.
    on_nonfinite: "raise" (NonFiniteLossError naming the step) or "stop" (end the run, keep
      the history, ``stop_reason`` names the step).
    """
    _check_arguments(batches, steps, epochs, max_seconds, on_nonfinite, clip_grad_norm, model)
    if device is None:
        device = next(model.parameters()).device if model is not None else torch.device("cpu")
    call = _step_caller(step)

    result = TrainResult()
    if checkpoint is not None and Path(checkpoint).exists():
        result = load_checkpoint(checkpoint, model, optimizer)
        print(f"{desc}: resumed from checkpoint at step {result.steps}")
    # With a sized ``batches``, ``epochs`` is also a step count: a run resumed mid-epoch then
    # stops at epochs * len(batches) steps instead of running whole fresh passes on top.
    sized = hasattr(batches, "__len__")
    epoch_steps = epochs * len(batches) if epochs is not None and sized else None
    total = steps if steps is not None else epoch_steps
    reporter = _Reporter(desc, total, result, model, device, eval_fn)

    # max_seconds budgets this call; result.seconds keeps counting across resumes
    start, resumed_seconds = time.perf_counter(), result.seconds
    first_epoch = result.steps // len(batches) if sized and len(batches) else 0
    stream = _batch_stream(batches, epochs, first_epoch)
    if model is not None:
        model.train()
    try:
        while steps is None or result.steps < steps:
            if epoch_steps is not None and result.steps >= epoch_steps:
                break
            if max_seconds is not None and time.perf_counter() - start >= max_seconds:
                result.stop_reason = "time budget"
                break
            batch = next(stream, _END)
            if batch is _END:
                break
            logged = _update(call, batch, result.steps, optimizer, model, device, clip_grad_norm,
                             scheduler, desc, on_nonfinite)
            if isinstance(logged, str):  # a non-finite value with on_nonfinite="stop"
                result.stop_reason = logged
                print(logged + " — stopped")
                break
            result.steps += 1
            result.seconds = resumed_seconds + time.perf_counter() - start
            result.log(step=result.steps, **logged)
            reporter.after_step(logged, eval_every, log_every)
            if checkpoint is not None and checkpoint_every and result.steps % checkpoint_every == 0:
                save_checkpoint(checkpoint, model, optimizer, result)
    finally:
        reporter.close()
    result.seconds = resumed_seconds + time.perf_counter() - start
    reporter.at_end()
    if result.stop_reason == "time budget":
        print(f"{desc}: time budget of {max_seconds:.0f}s reached after {result.steps} steps")
    if checkpoint is not None:
        save_checkpoint(checkpoint, model, optimizer, result)
    return result


def _check_arguments(batches, steps, epochs, max_seconds, on_nonfinite, clip_grad_norm, model) -> None:
    if steps is None and epochs is None and max_seconds is None:
        raise ValueError("train() needs steps, epochs or max_seconds")
    if batches is None and epochs is not None:
        raise ValueError("train(epochs=...) needs batches to count passes over; "
                         "with batches=None give steps or max_seconds")
    if on_nonfinite not in ("raise", "stop"):
        raise ValueError(f"on_nonfinite must be 'raise' or 'stop', got {on_nonfinite!r}")
    if clip_grad_norm is not None and model is None:
        raise ValueError("clip_grad_norm needs the model")


def _step_caller(step: Callable[..., StepOutput]) -> Callable[[Any, int], StepOutput]:
    """``step(batch, i)`` if ``step`` takes two positional arguments, else ``step(batch)``."""
    try:
        params = inspect.signature(step).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: give it the batch only
        return lambda batch, i: step(batch)
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    takes_index = len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)
    return (lambda batch, i: step(batch, i)) if takes_index else (lambda batch, i: step(batch))


_END = object()


def _batch_stream(batches: Iterable | None, epochs: int | None, epoch: int) -> Iterator:
    """Batches across passes: a new pass when one ends, until ``epochs`` passes are done."""
    if batches is None:
        yield from itertools.repeat(None)
        return
    while True:
        got_any = False
        for batch in batches:
            got_any = True
            yield batch
        epoch += 1
        if not got_any or (epochs is not None and epoch >= epochs):
            return  # an exhausted one-shot iterator, or all epochs done


def _update(call, batch, i, optimizer, model, device, clip_grad_norm, scheduler, desc,
            on_nonfinite) -> dict[str, float] | str:
    """One step: forward (and, with an optimizer, backward and update); returns what to log.

    A non-finite logged value raises NonFiniteLossError naming the step, or, with
    ``on_nonfinite="stop"``, is returned as the message (a str) before any update is made.
    """
    if optimizer is None:
        loss, logged = _scalars(call(batch, i))
    else:
        optimizer.zero_grad(set_to_none=True)
        with autocast(device):
            loss, logged = _scalars(call(batch, i))
        if loss is None:
            raise TypeError("with an optimizer, step() must return the loss tensor "
                            "(or a dict with a 'loss' tensor)")
    bad = [k for k, v in logged.items() if not math.isfinite(v)]
    if bad:
        msg = f"{desc}: non-finite {', '.join(bad)} ({logged[bad[0]]}) at step {i + 1}"
        if on_nonfinite == "raise":
            raise NonFiniteLossError(msg)
        return msg
    if optimizer is not None:
        loss.backward()
        if clip_grad_norm is not None:
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
            logged["grad_norm"] = float(norm)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    return logged


def _scalars(out: StepOutput) -> tuple[torch.Tensor | None, dict[str, float]]:
    if isinstance(out, torch.Tensor):
        return out, {"loss": out.detach().float().item()}
    loss = out.get("loss")
    logged = {k: (v.detach().float().item() if isinstance(v, torch.Tensor) else float(v))
              for k, v in out.items()}
    return (loss if isinstance(loss, torch.Tensor) else None), logged


class _Reporter:
    """Progress bar, one-line summaries and evaluations of one ``train`` call."""

    def __init__(self, desc, total, result, model, device, eval_fn) -> None:
        self.desc, self.total, self.result = desc, total, result
        self.model, self.device, self.eval_fn = model, device, eval_fn
        self.bar = None
        if not headless():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=result.steps, desc=desc, leave=False)

    def after_step(self, logged: dict[str, float], eval_every: int | None, log_every: int) -> None:
        steps = self.result.steps
        if self.bar is not None:
            self.bar.update(1)
            if steps % 10 == 0:
                self.bar.set_postfix(loss=f"{logged.get('loss', float('nan')):.4f}")
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
        with torch.no_grad(), autocast(self.device):
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
