"""Checkpoints of a training run that resume it exactly, and never hold NaN weights.

A checkpoint holds the state of everything the run trains (the model and optimizer, a learning-
rate scheduler, and any other objects with ``state_dict``/``load_state_dict``, e.g. a GAN's two
players and their optimizers), the progress (steps, seconds, history, epoch and position within
it), and every random number generator the run draws from (torch CPU and CUDA, python, numpy, and
the state at the start of the epoch, with the batch generator's, so the epoch's shuffle can be
replayed). It is written to ``path.tmp`` and renamed, so a crash never leaves half a file; before
anything is loaded its keys, parameter shapes and optimizer types are checked against the objects
it is loaded into, and one ``CheckpointError`` names the path and what to do.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT = 2


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from; the message names the file and the fix."""


def _fix(path: Path) -> str:
    return f"Delete {path} (or pass checkpoint=None) to start afresh."


def rng_states() -> dict[str, Any]:
    """Every global random state a run draws from: torch (CPU, CUDA), python and numpy."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
    }


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what ``rng_states`` returned."""
    torch.set_rng_state(states["torch"])
    if states.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    if "python" in states:
        version, internal, gauss = states["python"]
        random.setstate((version, tuple(internal), gauss))
    if "numpy" in states:
        kind, keys, pos, has_gauss, gauss = states["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))


def nonfinite_parameters(objects: dict[str, Any]) -> list[str]:
    """Names (``object.parameter``) of the non-finite parameters of the modules in ``objects``."""
    bad = []
    for name, obj in objects.items():
        if isinstance(obj, torch.nn.Module):
            bad += [f"{name}.{p}" for p, t in obj.state_dict().items()
                    if t.is_floating_point() and not torch.isfinite(t).all()]
    return bad


def save(path: str | Path, objects: dict[str, Any], progress: dict[str, Any]) -> None:
    """Write ``objects``' states, ``progress`` and the RNG states to ``path`` atomically.

    objects: name → anything with ``state_dict()`` (modules, optimizers, schedulers).
    progress: plain values and tensors (steps, seconds, history, epoch, …).
    Raises FloatingPointError, writing nothing, if a module holds a NaN or infinite parameter.
    """
    path = Path(path)
    bad = nonfinite_parameters(objects)
    if bad:
        raise FloatingPointError(f"not saving {path}: non-finite values in {', '.join(bad[:5])}; "
                                 "the previous checkpoint is kept")
    state = {
        "format": FORMAT,
        "objects": {name: obj.state_dict() for name, obj in objects.items()},
        "types": {name: type(obj).__name__ for name, obj in objects.items()},
        "progress": progress,
        "rng": rng_states(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(state, tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def read(path: str | Path) -> dict[str, Any]:
    """The checkpoint's contents (``weights_only=True``: tensors and plain types only)."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # empty, truncated, not a torch file, or an arbitrary object
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else 'empty or truncated'}). "
                              f"{_fix(path)}") from e
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} was not written by gen_utils (format {FORMAT}): it holds "
                              f"{_describe(state)}. {_fix(path)}")
    return state


def _describe(state: Any) -> str:
    if isinstance(state, dict):
        return f"a dict with keys {sorted(map(str, state))[:6]}"
    return f"a {type(state).__name__}"


def check_compatible(path: str | Path, state: dict[str, Any], objects: dict[str, Any]) -> None:
    """Raise one CheckpointError listing every way ``state`` does not fit ``objects``.

    Checked before anything is loaded: the same names, the same object types (an SGD
    checkpoint does not resume Adam), and for modules the same parameter names and shapes.
    """
    path = Path(path)
    problems = []
    saved, types = state["objects"], state["types"]
    if set(saved) != set(objects):
        problems.append(f"it saved {sorted(saved)} but this run trains {sorted(objects)}")
    for name in sorted(set(saved) & set(objects)):
        if types[name] != type(objects[name]).__name__:
            problems.append(f"{name!r} is a {types[name]} there and a {type(objects[name]).__name__} here")
        elif isinstance(objects[name], torch.nn.Module):
            problems += _module_mismatch(name, saved[name], objects[name].state_dict())
        elif isinstance(objects[name], torch.optim.Optimizer):
            problems += _optimizer_mismatch(name, saved[name], objects[name].state_dict())
    if problems:
        raise CheckpointError(f"{path} does not fit this run: " + "; ".join(problems[:6])
                              + f". Nothing was loaded. {_fix(path)}")


def _module_mismatch(name: str, saved: dict, current: dict) -> list[str]:
    out = []
    missing, extra = sorted(set(current) - set(saved)), sorted(set(saved) - set(current))
    if missing or extra:
        out.append(f"{name!r} parameters differ (missing {missing[:3]}, unexpected {extra[:3]})")
    out += [f"{name}.{k} has shape {tuple(saved[k].shape)} there and {tuple(v.shape)} here"
            for k, v in current.items() if k in saved and saved[k].shape != v.shape]
    return out


def _optimizer_mismatch(name: str, saved: dict, current: dict) -> list[str]:
    sizes = [len(g["params"]) for g in saved["param_groups"]]
    now = [len(g["params"]) for g in current["param_groups"]]
    return [] if sizes == now else [f"{name!r} has parameter groups of sizes {sizes} there and {now} here"]


def load_into(state: dict[str, Any], objects: dict[str, Any]) -> None:
    """Load the (already checked) states into ``objects`` and restore the RNG states."""
    for name, obj in objects.items():
        obj.load_state_dict(state["objects"][name])
    set_rng_states(state["rng"])
