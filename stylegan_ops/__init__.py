"""StyleGAN2 custom ops `fused_bias_act` and `upfirdn2d`: lazy CUDA build, pure-PyTorch reference.

    from stylegan_ops import upfirdn2d, fused_bias_act, make_kernel

    k = make_kernel([1, 3, 3, 1])                         # [4, 4], sums to 1
    up = upfirdn2d(x, k * 4, up=2, pad=(2, 1))            # [N, C, 2H, 2W] (rosinality Upsample)
    blur = upfirdn2d(x, k, pad=(2, 1))                    # same size blur (rosinality Blur, k=4 taps)
    y = fused_bias_act(x, bias)                           # leaky_relu(x + bias, 0.2) * sqrt(2)

Each op takes `impl="auto" | "cuda" | "ref"` (and `$I2EDIT_OPS_IMPL` sets the default); see
`stylegan_ops.impl`. Importing this package imports nothing heavy and compiles nothing: the CUDA
extension is built on first use with a CUDA tensor (or by `i2edit ops build`).
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "upfirdn2d": "stylegan_ops.upfirdn2d_op",
    "fused_bias_act": "stylegan_ops.bias_act",
    "make_kernel": "stylegan_ops.filters",
    "ACTIVATIONS": "stylegan_ops.activations",
    "OpsBuildError": "stylegan_ops.build",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'stylegan_ops' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
