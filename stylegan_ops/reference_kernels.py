"""The compiled extension's interface, implemented with the pure-PyTorch references.

`ReferenceKernels` has the two functions of `csrc/ops.cpp` with the same arguments and the same
arithmetic precision (float for half and bfloat16 inputs, double for double), computed on any
device from `bias_act_ref` (its derivatives by autograd) and `upfirdn2d_simple`. It lets the
self-check and the CUDA path's autograd Functions run without a GPU: `bench/ops_selfcheck.py`
times the check with it standing in for the kernels, and the tests derive wrong kernels from it to
show that the check catches them.
"""
from __future__ import annotations

import torch

from stylegan_ops.activations import ACTIVATIONS
from stylegan_ops.bias_act_ref import bias_act_ref
from stylegan_ops.upfirdn2d_params import UpFirDnParams
from stylegan_ops.upfirdn2d_ref import upfirdn2d_simple

_BY_CUDA_INDEX = {spec.cuda_index: spec for spec in ACTIVATIONS.values()}


def _accumulator(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


class ReferenceKernels:
    """Stand-in for the extension module: `bias_act` and `upfirdn2d` as in `csrc/ops.cpp`."""

    @staticmethod
    def bias_act(x: torch.Tensor, bias: torch.Tensor, grad: torch.Tensor, act: int, alpha: float, gain: float,
                 mode: int) -> torch.Tensor:
        """mode 0: act(x + bias) · gain; 1: grad · act'(x + bias) · gain; 2: grad · act''(x + bias) · gain.
        `bias` `[C]` or empty; `grad` shaped like `x` (modes 1, 2); returns `x`'s shape and dtype."""
        spec = _BY_CUDA_INDEX[act]
        acc = _accumulator(x.dtype)
        s = x.to(acc) + bias.to(acc).reshape([1, -1] + [1] * (x.ndim - 2)) if bias.numel() else x.to(acc)
        if mode == 0:
            return bias_act_ref(s, None, spec, alpha, gain).to(x.dtype)
        with torch.enable_grad():
            s = s.detach().requires_grad_()
            (first,) = torch.autograd.grad(bias_act_ref(s, None, spec, alpha, gain).sum(), s, create_graph=mode == 2)
            if mode == 1:
                value = first
            elif first.requires_grad:
                (value,) = torch.autograd.grad(first.sum(), s)
            else:
                value = torch.zeros_like(s)  # the first derivative is a constant
        return (value.detach() * grad.to(acc)).to(x.dtype)

    @staticmethod
    def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up_x: int, up_y: int, down_x: int, down_y: int,
                  pad_x0: int, pad_x1: int, pad_y0: int, pad_y1: int) -> torch.Tensor:
        """Zero-insert, pad, FIR-filter, downsample `x` `[N, C, H, W]` with the 2-D `kernel`; `x`'s dtype."""
        acc = _accumulator(x.dtype)
        params = UpFirDnParams(up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0, pad_y1)
        return upfirdn2d_simple(x.to(acc), kernel.to(x.device, acc), params).to(x.dtype)
