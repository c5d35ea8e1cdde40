"""`upfirdn2d` on the compiled extension: a direct polyphase kernel inside an autograd Function.

The input gradient is the same op with the flipped kernel and the adjoint parameters
(`UpFirDnParams.adjoint`), so the Function is differentiable twice and more. The kernel tensor is
a constant here (no gradient); `upfirdn2d_op` sends a kernel that requires grad elsewhere.
"""
from __future__ import annotations

from types import ModuleType

import torch

from stylegan_ops.upfirdn2d_params import UpFirDnParams


def upfirdn2d_kernels(plugin: ModuleType, x: torch.Tensor, kernel: torch.Tensor, params: UpFirDnParams) -> torch.Tensor:
    """`upfirdn2d` of `x` `[N, C, H, W]` with the extension `plugin` (arguments checked by the caller)."""
    return _UpFirDn2d.apply(x, kernel, (plugin, params))


class _UpFirDn2d(torch.autograd.Function):
    """The CUDA kernel; the input gradient is `_UpFirDn2d` with the flipped kernel and adjoint parameters."""

    @staticmethod
    def forward(ctx, x, kernel, config):
        plugin, p = config
        ctx.config = config
        ctx.in_size = (x.shape[2], x.shape[3])
        ctx.save_for_backward(kernel)
        return plugin.upfirdn2d(
            x.contiguous(), kernel.contiguous(), p.up_x, p.up_y, p.down_x, p.down_y, p.pad_x0, p.pad_x1, p.pad_y0, p.pad_y1
        )

    @staticmethod
    def backward(ctx, dy):
        (kernel,) = ctx.saved_tensors
        plugin, p = ctx.config
        dx = None
        if ctx.needs_input_grad[0]:
            adjoint = p.adjoint(*ctx.in_size, kernel.shape[0], kernel.shape[1])
            dx = _UpFirDn2d.apply(dy, kernel.flip([0, 1]), (plugin, adjoint))
        return dx, None, None
