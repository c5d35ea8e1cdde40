"""`fused_bias_act`: add a per-channel bias, apply an activation, multiply by a gain.

y = act(x + bias, alpha) * gain, with `bias` broadcast along dim 1 of `x` (`[N, C]`, `[N, C, H, W]`,
any rank ≥ 2). Activations and their default `alpha`/`gain` are those of `activations.ACTIVATIONS`
(lrelu: α 0.2, gain √2, as rosinality's `fused_leaky_relu`).

The reference path (`bias_act_ref`) is plain torch ops (autograd gives every order of derivative).
The CUDA path (`bias_act_cuda`) computes forward, first and second derivatives in one elementwise
kernel and defines its own autograd Functions, differentiable twice.
"""
from __future__ import annotations

import torch

from stylegan_ops import impl as impl_choice
from stylegan_ops.activations import get_activation
from stylegan_ops.bias_act_cuda import bias_act_kernels
from stylegan_ops.bias_act_ref import bias_act_ref


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
    return bias_act_kernels(plugin, x, bias, spec, alpha, gain)

