"""Run-time plumbing shared by every chapter: profile, device, seeding, threads, results.

A chapter starts with ``gu.setup(seed=0)``, chooses its hyper-parameters with ``gu.config``
(one setting per line, three profile values each) and ends with ``gu.finish(metric=value, ...)``,
which records every metric with ``myst_nb.glue`` together with the run's profile,
device and wall-clock seconds.
"""

from __future__ import annotations

import os
import platform
import random
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .precision import Precision, choose_precision
from .version import __version__

PROFILES = ("smoke", "cpu", "gpu")
PROFILE_ENV = "GEN_UTILS_PROFILE"
HEADLESS_ENV = "GEN_UTILS_HEADLESS"
DRY_RUN_ENV = "GEN_UTILS_DRY_RUN"


@dataclass
class Run:
    """What ``setup`` decided: profile, device, seed, threads and the start time."""

    profile: str
    device: torch.device
    seed: int
    threads: int
    precision: Precision | None = None
    started: float = field(default_factory=time.perf_counter)

    @property
    def seconds(self) -> float:
        """Wall-clock seconds since ``setup``."""
        return time.perf_counter() - self.started


_RUN: Run | None = None


def resolve_profile(value: str | None = None) -> str:
    """Return the run profile: ``value``, else ``$GEN_UTILS_PROFILE``, else gpu/cpu by CUDA.

    Raises ValueError naming the valid profiles for anything else.
    """
    source = "the profile argument"
    if value is None:
        value, source = os.environ.get(PROFILE_ENV, "").strip(), PROFILE_ENV
    if not value:
        return "gpu" if torch.cuda.is_available() else "cpu"
    value = value.strip().lower()
    if value not in PROFILES:
        raise ValueError(
            f"Unknown run profile {value!r} (from {source}); "
            f"valid profiles are: {', '.join(PROFILES)}."
        )
    return value


def default_device() -> torch.device:
    """CUDA when available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def cpu_threads() -> int:
    """Cores this process may use (respects CPU affinity / container limits)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def device_name(device: torch.device) -> str:
    """A short, machine-independent device description, e.g. ``cpu`` or ``cuda (NVIDIA H100)``."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def setup(seed: int = 0, *, profile: str | None = None, threads: int | None = None) -> Run:
    """Start a chapter: seed everything, pick profile and device, set threads, print a banner.

    profile: overrides ``$GEN_UTILS_PROFILE`` (smoke | cpu | gpu).
    threads: CPU threads for torch (default: every core this process may use).
    Returns the ``Run``; ``gu.run()`` returns it later, ``gu.finish`` uses its timer.
    """
    global _RUN
    prof = resolve_profile(profile)
    device = default_device()
    n_threads = threads or cpu_threads()
    torch.set_num_threads(n_threads)
    seed_everything(seed)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    _RUN = Run(profile=prof, device=device, seed=seed, threads=n_threads,
               precision=choose_precision(device))
    if prof == "gpu" and device.type != "cuda" and not dry_run():
        _warn_once("the gpu profile was asked for, but there is no CUDA GPU: its full-size settings "
                   "will run on the CPU and take far longer (GEN_UTILS_PROFILE=cpu is sized for a CPU)")
    print(
        f"gen_utils {__version__} | profile {prof}{' (dry run)' if dry_run() else ''} | "
        f"device {device_name(device)} | "
        f"torch {torch.__version__} | python {platform.python_version()} | "
        f"threads {n_threads} | seed {seed} | {_RUN.precision.banner()}"
    )
    return _RUN


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        warnings.warn(message, stacklevel=3)


def run() -> Run:
    """The current run (``setup`` must have been called)."""
    if _RUN is None:
        raise RuntimeError("gen_utils.setup(seed=...) has not been called yet in this session.")
    return _RUN


def pick(**configs: Any) -> Any:
    """Return the configuration for the current profile: ``pick(smoke=..., cpu=..., gpu=...)``.

    All three profiles must be given so that the cell shows every choice side by side. For a
    chapter's settings, ``gu.config`` puts each setting's three values on one line.
    """
    missing = [p for p in PROFILES if p not in configs]
    extra = [k for k in configs if k not in PROFILES]
    if missing or extra:
        raise ValueError(
            f"pick() needs exactly the profiles {', '.join(PROFILES)}; "
            f"missing: {missing or 'none'}, unknown: {extra or 'none'}."
        )
    keys = {p: sorted(c) for p, c in configs.items() if isinstance(c, dict)}
    if len(keys) == len(PROFILES) and len({tuple(k) for k in keys.values()}) > 1:
        raise ValueError(f"pick() profiles set different keys: {keys}; every profile needs the same "
                         "settings (gu.config writes each setting once, with three values)")
    return configs[current_profile()]


def current_profile() -> str:
    """The profile ``setup`` chose, else the one ``$GEN_UTILS_PROFILE`` (or the device) gives."""
    return _RUN.profile if _RUN is not None else resolve_profile()


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


def dry_run() -> bool:
    """True when ``GEN_UTILS_DRY_RUN`` is set: ``gu.loop`` settings take their smoke values.

    CI runs every notebook in the gpu profile this way on a CPU (see ``gen_utils.config``).
    """
    return _env_flag(DRY_RUN_ENV)


def headless() -> bool:
    """True when the notebook runs in batch (``make execute``, nbval): no widgets, no live bars.

    ``GEN_UTILS_HEADLESS`` set to anything but empty, 0, false, no or off means headless.
    """
    return _env_flag(HEADLESS_ENV)


def _rounded(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.item()
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if isinstance(value, float):
        return round(value, 4)
    return value


def _glue_all(values: dict[str, Any]) -> None:
    """Glue each value silently for the book; without myst-nb (e.g. on Colab) there is nothing to do."""
    try:
        from myst_nb import glue
    except ImportError:  # myst-nb is only in the `book` extra: the results are still displayed
        return
    for name, value in values.items():
        glue(name, value, display=False)


def glue(**values: Any) -> None:
    """Record intermediate results that the prose quotes with ``{glue:text}`name:.2f```.

    Floats are rounded to 4 decimals, as ``finish`` does; nothing is displayed or returned.
    Use it for numbers stated mid-chapter (a table row, a check's value); the headline results go
    through ``finish``.
    """
    _glue_all({k: _rounded(v) for k, v in values.items()})


def finish(**metrics: Any) -> None:
    """Record the chapter's headline results and show them as a table.

    Each metric is glued (``myst_nb.glue(name, value, display=False)``) under its own name, plus
    ``run_profile``, ``run_device`` and ``run_seconds``. Floats are rounded to 4 decimals so the
    page, the results page and the tests read the same number. The table is displayed here, so
    nothing is returned (a returned dict would be shown a second time as the cell's value).
    Without myst-nb installed the table is still displayed; only the glue is skipped.
    """
    from IPython.display import Markdown, display

    r = run()
    values = {k: _rounded(v) for k, v in metrics.items()}
    values.update(
        run_profile=r.profile + ("-dry-run" if dry_run() else ""),
        run_device=device_name(r.device),
        run_seconds=round(r.seconds, 1),
    )
    if r.device.type == "cuda":  # for `make gpu-check`'s table
        values["run_gpu_peak_mib"] = round(torch.cuda.max_memory_allocated(r.device) / 2**20)
    _glue_all(values)
    rows = "\n".join(f"| `{k}` | {v} |" for k, v in values.items())
    display(Markdown(f"| result | value |\n|---|---|\n{rows}"))
