"""The pure-PyTorch `fused_bias_act`: plain torch ops, differentiable any number of times by autograd."""
from __future__ import annotations

import torch

from stylegan_ops.activations import Activation


def bias_act_ref(x: torch.Tensor, bias: torch.Tensor | None, spec: Activation, alpha: float, gain: float) -> torch.Tensor:
    """act(x + bias) * gain for `x` `[N, C, ...]` and `bias` `[C]` (or None); `x`'s shape and dtype."""
    if bias is not None:
        x = x + bias.to(x.dtype).reshape([1, -1] + [1] * (x.ndim - 2))
    y = spec.func(x, alpha)
    return y * gain if gain != 1 else y
