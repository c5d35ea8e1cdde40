"""FIR filter helpers for `upfirdn2d`.

`make_kernel([1, 3, 3, 1])` gives rosinality's blur kernel: the outer product of the 1-D taps with
itself, normalised to sum 1. Multiply by `up ** 2` when the kernel follows a zero-insertion
upsample, so that a constant image keeps its value (rosinality's `Upsample` and upsampling `Blur`
use `make_kernel(k) * 4` for up=2).
"""
from __future__ import annotations

from typing import Sequence

import torch


def make_kernel(taps: Sequence[float] | torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    """Return a normalised 2-D FIR kernel, float32 `[kh, kw]`, summing to `gain`.

    taps: 1-D taps (separable kernel `outer(taps, taps)`) or a 2-D kernel `[kh, kw]`.
    """
    k = torch.as_tensor(taps, dtype=torch.float32)
    if k.ndim == 1:
        k = k[None, :] * k[:, None]
    if k.ndim != 2 or k.numel() == 0:
        raise ValueError(f"make_kernel expects 1-D taps or a 2-D kernel, got shape {tuple(k.shape)}")
    total = k.sum()
    if total == 0:
        raise ValueError("make_kernel: the taps sum to 0 and cannot be normalised")
    return k / total * gain
