"""A small training loop; the chapter supplies the step, so its loss stays on the page.

Two ways to use it:

* ``train(step, batches, optimizer=opt, model=net)``: ``step(batch)`` returns the loss tensor
  (or a dict with a ``"loss"`` tensor and other scalars to log); the loop does zero_grad,
  backward (under bf16 autocast on CUDA), gradient clipping and the optimizer step.
* ``train(step, batches)`` with no optimizer: ``step`` does its own updates (a GAN's two players)
  and returns a dict of floats to log.

Either way the loop gives a progress bar with the live loss, a history, an evaluation hook,
a time budget, a NaN/inf guard and checkpoint save/resume.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable
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


def _scalars(out: StepOutput) -> tuple[torch.Tensor | None, dict[str, float]]:
    if isinstance(out, torch.Tensor):
        return out, {"loss": out.detach().float().item()}
    loss = out.get("loss")
    logged = {k: (v.detach().float().item() if isinstance(v, torch.Tensor) else float(v))
              for k, v in out.items()}
    return (loss if isinstance(loss, torch.Tensor) else None), logged


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


def train(
    step: Callable[[Any], StepOutput],
    batches: Iterable,
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

    batches: re-iterable (one pass = one epoch, e.g. ``gu.Batches``) or an endless iterator.
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
    if steps is None and epochs is None and max_seconds is None:
        raise ValueError("train() needs steps, epochs or max_seconds")
    if on_nonfinite not in ("raise", "stop"):
        raise ValueError(f"on_nonfinite must be 'raise' or 'stop', got {on_nonfinite!r}")
    if clip_grad_norm is not None and model is None:
        raise ValueError("clip_grad_norm needs the model")
    if device is None:
        device = next(model.parameters()).device if model is not None else torch.device("cpu")

    result = TrainResult()
    if checkpoint is not None and Path(checkpoint).exists():
        result = load_checkpoint(checkpoint, model, optimizer)
        print(f"{desc}: resumed from checkpoint at step {result.steps}")
    # With a sized ``batches``, ``epochs`` is also a step count: a run resumed mid-epoch then
    # stops at epochs * len(batches) steps instead of running whole fresh passes on top.
    epoch_steps = None
    if epochs is not None and hasattr(batches, "__len__"):
        epoch_steps = epochs * len(batches)
    total = steps if steps is not None else epoch_steps

    bar = None
    if not headless():
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=result.steps, desc=desc, leave=False)

    def evaluate() -> None:
        if eval_fn is None:
            return
        was_training = model.training if model is not None else None
        if model is not None:
            model.eval()
        with torch.no_grad(), autocast(device):
            scores = eval_fn()
        if model is not None and was_training:
            model.train()
        result.log(eval_step=result.steps, **{k: float(v) for k, v in scores.items()})
        summary(scores)

    def summary(extra: dict[str, float] | None = None) -> None:
        recent = result.history.get("loss", [])[-50:]
        parts = [f"{desc} step {result.steps}" + (f"/{total}" if total else "")]
        if recent:
            parts.append(f"loss {sum(recent) / len(recent):.4f}")
        parts += [f"{k} {float(v):.4f}" for k, v in (extra or {}).items()]
        parts.append(f"{result.seconds:.0f}s")
        msg = " | ".join(parts)
        if bar is not None:
            bar.write(msg)
        else:
            print(msg)

    # max_seconds budgets this call; result.seconds keeps counting across resumes
    start, resumed_seconds = time.perf_counter(), result.seconds
    epoch = result.steps // len(batches) if hasattr(batches, "__len__") and len(batches) else 0
    it = iter(batches)
    if model is not None:
        model.train()
    try:
        while steps is None or result.steps < steps:
            if epoch_steps is not None and result.steps >= epoch_steps:
                break
            if max_seconds is not None and time.perf_counter() - start >= max_seconds:
                result.stop_reason = "time budget"
                break
            try:
                batch = next(it)
            except StopIteration:
                epoch += 1
                if epochs is not None and epoch >= epochs:
                    break
                it = iter(batches)
                try:
                    batch = next(it)
                except StopIteration:  # an exhausted one-shot iterator
                    break
            if optimizer is not None:
                optimizer.zero_grad(set_to_none=True)
                with autocast(device):
                    out = step(batch)
                loss, logged = _scalars(out)
                if loss is None:
                    raise TypeError("with an optimizer, step() must return the loss tensor "
                                    "(or a dict with a 'loss' tensor)")
            else:
                out = step(batch)
                loss, logged = _scalars(out)
            bad = [k for k, v in logged.items() if not math.isfinite(v)]
            if bad:
                msg = (f"{desc}: non-finite {', '.join(bad)} ({logged[bad[0]]}) at step "
                       f"{result.steps + 1}")
                if on_nonfinite == "raise":
                    raise NonFiniteLossError(msg)
                result.stop_reason = msg
                print(msg + " — stopped")
                break
            if optimizer is not None:
                loss.backward()
                if clip_grad_norm is not None:
                    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
                    logged["grad_norm"] = float(norm)
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
            result.steps += 1
            result.seconds = resumed_seconds + time.perf_counter() - start
            result.log(step=result.steps, **logged)
            if bar is not None:
                bar.update(1)
                if result.steps % 10 == 0:
                    bar.set_postfix(loss=f"{logged.get('loss', float('nan')):.4f}")
            if eval_every and result.steps % eval_every == 0:
                evaluate()
            elif log_every and result.steps % log_every == 0:
                summary()
            if checkpoint is not None and checkpoint_every and result.steps % checkpoint_every == 0:
                save_checkpoint(checkpoint, model, optimizer, result)
    finally:
        if bar is not None:
            bar.close()
    result.seconds = resumed_seconds + time.perf_counter() - start
    if eval_fn is not None and result.history.get("eval_step", [None])[-1] != result.steps:
        evaluate()
    else:
        summary()
    if result.stop_reason == "time budget":
        print(f"{desc}: time budget of {max_seconds:.0f}s reached after {result.steps} steps")
    if checkpoint is not None:
        save_checkpoint(checkpoint, model, optimizer, result)
    return result
