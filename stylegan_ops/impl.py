"""Choosing between the CUDA extension and the pure-PyTorch reference for one call.

`impl` per call: "auto" (default), "cuda" or "ref". A per-call "cuda" or "ref" wins; a per-call
"auto" follows `$I2EDIT_OPS_IMPL` (same three values, default "auto").

- "ref": pure PyTorch, any device, differentiable any number of times.
- "cuda": the compiled extension; the tensor must be on a CUDA device; a failed build raises
  `OpsBuildError` with the reason and the fix. The kernels run even when they failed the self-check.
- "auto": the extension for CUDA tensors when it builds and the op passed its self-check, else the
  reference. A failed build is logged once (one warning with the reason and the fix) and not
  retried in this process; a failed self-check is logged once too (see `selfcheck`).

The first time the extension is handed out for a device, `selfcheck.verdict_for` checks it
against the reference (or reads the verdict stored beside the build).
"""
from __future__ import annotations

import logging
import os
from types import ModuleType

import torch

from stylegan_ops import build, selfcheck

log = logging.getLogger(__name__)

ENV_VAR = "I2EDIT_OPS_IMPL"
IMPLS = ("auto", "cuda", "ref")
# The device type the compiled kernels run on. Tests point it at "cpu" to run Python stand-ins
# (`reference_kernels`) through the same path without a GPU.
_KERNEL_DEVICE = "cuda"

_warned = False


def resolve(impl: str) -> str:
    """The effective choice for a call: `impl`, or `$I2EDIT_OPS_IMPL` when `impl` is "auto"."""
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {', '.join(IMPLS)}; got {impl!r}")
    if impl != "auto":
        return impl
    env = os.environ.get(ENV_VAR, "auto").strip() or "auto"
    if env not in IMPLS:
        raise ValueError(f"{ENV_VAR}={env!r} is not valid; set it to one of {', '.join(IMPLS)} or unset it")
    return env


def cuda_plugin(impl: str, x: torch.Tensor, op_name: str) -> ModuleType | None:
    """The extension module if this call should run the CUDA kernels, else None (use the reference)."""
    global _warned
    choice = resolve(impl)
    if choice == "ref":
        return None
    if choice == "cuda":
        if x.device.type != _KERNEL_DEVICE:
            raise ValueError(
                f"{op_name}(impl='cuda') needs a CUDA tensor, got one on {x.device}; "
                "use impl='auto' or 'ref' for CPU tensors"
            )
        result = build.load_build(x.device)
        selfcheck.verdict_for(result, x.device)
        return result.module
    if x.device.type != _KERNEL_DEVICE:
        return None
    try:
        result = build.load_build(x.device)
    except build.OpsBuildError as exc:
        if not _warned:
            _warned = True
            log.warning("using the slower pure-PyTorch stylegan ops: %s", exc)
        return None
    return result.module if selfcheck.verdict_for(result, x.device).ok(op_name) else None


def kernel_device() -> torch.device:
    """The current CUDA device, where the compiled kernels run; raises when none is visible."""
    if _KERNEL_DEVICE != "cuda":
        return torch.device(_KERNEL_DEVICE)
    if not torch.cuda.is_available():
        raise build.OpsBuildError(
            "no CUDA GPU is visible to torch (torch.cuda.is_available() is False): the compiled kernels need one; "
            "on this machine the ops run the pure-PyTorch reference"
        )
    return torch.device("cuda", torch.cuda.current_device())
