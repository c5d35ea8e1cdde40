"""`fused_bias_act` on the compiled extension: autograd Functions around its one elementwise kernel.

The kernel (`csrc/bias_act_kernel.cu`) computes, per mode, act(s) · gain, grad · act'(s) · gain or
grad · act''(s) · gain with s = x + bias. `_BiasAct` is the op, `_BiasActGrad` its input gradient,
whose own backward gives the second derivatives: differentiable twice (what R1 and path-length
regularisers need); a third derivative raises.
"""
from __future__ import annotations

from types import ModuleType

import torch
from torch.autograd.function import once_differentiable

from stylegan_ops.activations import Activation

# Modes of the CUDA kernel: the activation, its first and its second derivative times a gradient.
_FORWARD, _GRAD, _GRAD2 = 0, 1, 2
_NO_SECOND_DERIVATIVE = {"linear", "relu", "lrelu"}  # piecewise linear: f'' = 0 almost everywhere


def bias_act_kernels(
    plugin: ModuleType, x: torch.Tensor, bias: torch.Tensor | None, spec: Activation, alpha: float, gain: float
) -> torch.Tensor:
    """act(x + bias) * gain with the extension `plugin` (arguments checked by the caller)."""
    if bias is None:
        bias = x.new_empty([0])
    return _BiasAct.apply(x, bias.to(x.dtype), (plugin, spec, alpha, gain))


def _kernel(config, x: torch.Tensor, bias: torch.Tensor, grad: torch.Tensor, mode: int) -> torch.Tensor:
    plugin, spec, alpha, gain = config
    return plugin.bias_act(x, bias, grad, spec.cuda_index, alpha, gain, mode)


def _bias_grad(dx: torch.Tensor) -> torch.Tensor:
    return dx.sum(dim=[d for d in range(dx.ndim) if d != 1])


class _BiasAct(torch.autograd.Function):
    """y = f(x + b) · gain with the CUDA kernel; backward through `_BiasActGrad`."""

    @staticmethod
    def forward(ctx, x, bias, config):
        x = x.contiguous()
        ctx.config = config
        ctx.save_for_backward(x, bias)
        return _kernel(config, x, bias, x.new_empty([0]), _FORWARD)

    @staticmethod
    def backward(ctx, dy):
        x, bias = ctx.saved_tensors
        dx = _BiasActGrad.apply(dy.contiguous(), x, bias, ctx.config)
        dbias = _bias_grad(dx) if bias.numel() and ctx.needs_input_grad[1] else None
        return dx, dbias, None


class _BiasActGrad(torch.autograd.Function):
    """dx = dy · f'(x + b) · gain; its backward gives the second derivatives."""

    @staticmethod
    def forward(ctx, dy, x, bias, config):
        ctx.config = config
        ctx.save_for_backward(dy, x, bias)
        return _kernel(config, x, bias, dy, _GRAD)

    @staticmethod
    @once_differentiable
    def backward(ctx, ddx):
        dy, x, bias = ctx.saved_tensors
        ddx = ddx.contiguous()
        d_dy = _kernel(ctx.config, x, bias, ddx, _GRAD)
        if ctx.config[1].name in _NO_SECOND_DERIVATIVE:
            d_x = torch.zeros_like(x)
        else:
            d_x = _kernel(ctx.config, x, bias, ddx * dy, _GRAD2)
        d_bias = _bias_grad(d_x) if bias.numel() and ctx.needs_input_grad[2] else None
        return d_dy, d_x, d_bias, None
