"""`fused_bias_act`: add a per-channel bias, apply an activation, multiply by a gain.

y = act(x + bias, alpha) * gain, with `bias` broadcast along dim 1 of `x` (`[N, C]`, `[N, C, H, W]`,
any rank ≥ 2). Activations and their default `alpha`/`gain` are those of `activations.ACTIVATIONS`
(lrelu: α 0.2, gain √2, as rosinality's `fused_leaky_relu`).

The reference path is plain torch ops (autograd gives every order of derivative). The CUDA path
computes forward, first and second derivatives in one elementwise kernel and defines its own
autograd Functions, differentiable twice (what R1 and path-length regularisers need).
"""
from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from stylegan_ops import impl as impl_choice
from stylegan_ops.activations import Activation, get_activation

# Modes of the CUDA kernel: the activation, its first and its second derivative times a gradient.
_FORWARD, _GRAD, _GRAD2 = 0, 1, 2
_NO_SECOND_DERIVATIVE = {"linear", "relu", "lrelu"}  # piecewise linear: f'' = 0 almost everywhere


def fused_bias_act(
    x: torch.Tensor,
    bias: torch.Tensor | None,
    act: str = "lrelu",
    alpha: float | None = None,
    gain: float | None = None,
    impl: str = "auto",
) -> torch.Tensor:
    """act(x + bias) * gain; same shape and dtype as `x`.

    x: `[N, C, ...]`. bias: `[C]` or None. act: a name from the activation table. alpha: the
    negative slope of lrelu (default 0.2; other activations take none). gain: output scale
    (default: the activation's, √2 for relu/lrelu/swish, 1 otherwise). impl: "auto", "cuda" or
    "ref" (see `stylegan_ops.impl`).
    """
    spec = get_activation(act)
    if alpha is not None and spec.default_alpha is None:
        raise ValueError(f"fused_bias_act: activation {act!r} takes no alpha (only lrelu does)")
    alpha = float(spec.default_alpha if alpha is None else alpha) if spec.default_alpha is not None else 0.0
    gain = float(spec.default_gain if gain is None else gain)
    if x.ndim < 2:
        raise ValueError(f"fused_bias_act: x must have a channel dim 1, got shape {tuple(x.shape)}")
    if bias is not None and (bias.ndim != 1 or bias.shape[0] != x.shape[1]):
        raise ValueError(
            f"fused_bias_act: bias must be [C] = [{x.shape[1]}] for x of shape {tuple(x.shape)}, "
            f"got {tuple(bias.shape)}"
        )
    plugin = impl_choice.cuda_plugin(impl, x, "fused_bias_act")
    if plugin is None:
        return bias_act_ref(x, bias, spec, alpha, gain)
    if bias is None:
        bias = x.new_empty([0])
    return _BiasAct.apply(x, bias.to(x.dtype), (plugin, spec, alpha, gain))


def bias_act_ref(x: torch.Tensor, bias: torch.Tensor | None, spec: Activation, alpha: float, gain: float) -> torch.Tensor:
    """The reference: plain torch ops."""
    if bias is not None:
        x = x + bias.to(x.dtype).reshape([1, -1] + [1] * (x.ndim - 2))
    y = spec.func(x, alpha)
    return y * gain if gain != 1 else y


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
