"""`upfirdn2d`: upsample by zero insertion, pad/crop, FIR-filter, downsample (rosinality convention).

See `upfirdn2d_params` for the exact definition and output size. The reference path (`impl="ref"`,
and "auto" on CPU) is `upfirdn2d_ref.upfirdn2d_fast` (depthwise transposed/strided convolutions);
`upfirdn2d_ref.upfirdn2d_simple` is the definition written out and serves as the test oracle. The
CUDA path (`upfirdn2d_cuda`) is a direct polyphase kernel whose backward is the same op with the
adjoint parameters, so it is differentiable twice as well.
"""
from __future__ import annotations

from typing import Sequence

import torch

from stylegan_ops import impl as impl_choice
from stylegan_ops.upfirdn2d_cuda import upfirdn2d_kernels
from stylegan_ops.upfirdn2d_params import UpFirDnParams
from stylegan_ops.upfirdn2d_ref import upfirdn2d_fast


def upfirdn2d(
    x: torch.Tensor,
    kernel: torch.Tensor,
    up: int | Sequence[int] = 1,
    down: int | Sequence[int] = 1,
    pad: Sequence[int] = (0, 0),
    impl: str = "auto",
) -> torch.Tensor:
    """Resample `x` `[N, C, H, W]` with the FIR `kernel` `[kh, kw]` → `[N, C, out_h, out_w]`.

    up, down: int or (x, y) factors. pad: (p0, p1) for both axes or (x0, x1, y0, y1); negative
    values crop. The convolution is a true convolution (the kernel is flipped relative to
    `F.conv2d`); for symmetric kernels the two agree. Per axis,
    `out = (in * up + p0 + p1 - k + down) // down`. impl: "auto", "cuda" or "ref"
    (see `stylegan_ops.impl`). The CUDA path treats the kernel as a constant: with "auto", a
    kernel that requires grad sends the call to the reference path, which differentiates it too.
    """
    if x.ndim != 4:
        raise ValueError(f"upfirdn2d: x must be [N, C, H, W], got shape {tuple(x.shape)}")
    if kernel.ndim != 2:
        raise ValueError(f"upfirdn2d: kernel must be 2-D [kh, kw], got shape {tuple(kernel.shape)}")
    params = UpFirDnParams.parse(up, down, pad)
    params.output_size(x.shape[2], x.shape[3], kernel.shape[0], kernel.shape[1])  # validates
    plugin = impl_choice.cuda_plugin(impl, x, "upfirdn2d")
    if plugin is not None and kernel.requires_grad and torch.is_grad_enabled():
        if impl_choice.resolve(impl) == "cuda":
            raise ValueError(
                "upfirdn2d(impl='cuda') does not differentiate with respect to the kernel; detach the kernel "
                "(e.g. register it as a buffer) or use impl='ref'"
            )
        plugin = None  # "auto": the reference path gives the kernel its gradient
    if plugin is None:
        return upfirdn2d_fast(x, kernel, params)
    return upfirdn2d_kernels(plugin, x, kernel, params)

