"""Which arithmetic a device gets: bf16, fp16 with loss scaling, or fp32; and whether to compile.

One decision for the whole book, made from what the device can do (not from its name):

=====================================  ===========  ================  =======================
device                                 autocast     GradScaler        torch.compile
=====================================  ===========  ================  =======================
CPU                                    none (fp32)  no                no (eager)
CUDA, capability >= 8.0 with bf16      bfloat16     no (bf16 has      yes, when triton works
(A100, L4, RTX 30xx/40xx, H100/H200)                fp32's exponent)
CUDA, capability < 8.0 (T4, V100)      float16      yes: fp16         yes at >= 7.0 with
                                                    underflows        triton, else eager
=====================================  ===========  ================  =======================

fp16 has 5 exponent bits: gradients below ~6e-8 flush to zero, so the loss is scaled up before
``backward`` and the gradients scaled down before the optimizer step (Micikevicius et al. 2018);
a step whose scaled gradients overflow is skipped and the scale lowered. bf16 keeps fp32's range
and needs none of this. ``GEN_UTILS_COMPILE=0`` turns compilation off everywhere.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from dataclasses import dataclass

import torch

COMPILE_ENV = "GEN_UTILS_COMPILE"


@dataclass(frozen=True)
class Precision:
    """What ``choose_precision`` decided for one device.

    dtype: the autocast dtype (``torch.bfloat16`` / ``torch.float16``), or None for plain fp32.
    uses_scaler: True when losses must be scaled (fp16).
    compile: True when ``torch.compile`` is expected to work on this device.
    note: why, in a few words (for the banner).
    """

    device_type: str
    dtype: torch.dtype | None
    uses_scaler: bool
    compile: bool
    note: str

    @property
    def name(self) -> str:
        """``"bf16"``, ``"fp16"`` or ``"fp32"``."""
        return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(self.dtype, "fp32")

    def autocast(self) -> contextlib.AbstractContextManager:
        """The autocast context for a forward pass (a no-op for fp32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def scaler(self) -> torch.amp.GradScaler | None:
        """A fresh ``torch.amp.GradScaler`` for fp16, else None."""
        return torch.amp.GradScaler(self.device_type) if self.uses_scaler else None

    def banner(self) -> str:
        """E.g. ``"bf16 autocast, compiled"`` or ``"fp32, eager"``."""
        arithmetic = "fp32" if self.dtype is None else f"{self.name} autocast"
        if self.uses_scaler:
            arithmetic += " + GradScaler"
        return f"{arithmetic}, {'compiled' if self.compile else 'eager'}"


def triton_works() -> bool:
    """True when triton (torch.compile's GPU code generator) can be imported."""
    if importlib.util.find_spec("triton") is None:
        return False
    try:
        import triton  # noqa: F401
    except Exception:  # a broken install is as good as none
        return False
    return True


def choose_precision(device: torch.device | str, *, capability: tuple[int, int] | None = None,
                     bf16_supported: bool | None = None, triton: bool | None = None) -> Precision:
    """Decide autocast dtype, loss scaling and compilation for ``device`` (see the module table).

    capability, bf16_supported, triton: what the GPU reports; given explicitly only by tests,
    which fake a T4 (7, 5), an A100 (8, 0) or an old P100 (6, 0) without one.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return Precision(device.type, None, False, False, "no GPU: fp32 and eager mode")
    if capability is None:
        capability = torch.cuda.get_device_capability(device)
    if bf16_supported is None:
        bf16_supported = torch.cuda.is_bf16_supported()
    if triton is None:
        triton = triton_works()
    compile_ok = capability >= (7, 0) and triton and os.environ.get(COMPILE_ENV, "1") != "0"
    why_not = "" if compile_ok else (
        "; torch.compile off: " + ("GEN_UTILS_COMPILE=0" if os.environ.get(COMPILE_ENV) == "0"
                                   else "needs compute capability >= 7.0" if capability < (7, 0)
                                   else "triton is not importable"))
    if capability >= (8, 0) and bf16_supported:
        return Precision("cuda", torch.bfloat16, False, compile_ok,
                         f"capability {capability[0]}.{capability[1]} has bf16 tensor cores{why_not}")
    return Precision("cuda", torch.float16, True, compile_ok,
                     f"capability {capability[0]}.{capability[1]}: no bf16, fp16 with loss "
                     f"scaling{why_not}")
