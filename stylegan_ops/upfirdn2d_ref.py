"""Pure-PyTorch `upfirdn2d`: the simple oracle and the faster path used by `impl="ref"`.

Both take `x` `[N, C, H, W]`, a 2-D kernel `[kh, kw]` and parsed `UpFirDnParams`, return
`[N, C, out_h, out_w]` in `x`'s dtype, and are differentiable any number of times by autograd
(also with respect to the kernel).

- `upfirdn2d_simple` spells out the definition: zero-insert, pad/crop, one dense convolution over
  the upsampled grid, subsample. Three quarters of its multiplications are by inserted zeros when
  up=2; it is the test oracle and the benchmark baseline.
- `upfirdn2d_fast` does the same arithmetic without the wasted work: upsampling is a transposed
  convolution with stride `up` (it skips the inserted zeros), downsampling is a strided convolution
  (it skips the discarded outputs), and a rank-1 kernel (every `make_kernel` kernel) is applied as
  two 1-D passes. It agrees with the oracle to float rounding.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from stylegan_ops.upfirdn2d_params import UpFirDnParams


def upfirdn2d_simple(x: torch.Tensor, kernel: torch.Tensor, p: UpFirDnParams) -> torch.Tensor:
    """The oracle: zero-insertion, pad/crop, dense 2-D convolution, subsampling."""
    n, c, in_h, in_w = x.shape
    kernel_h, kernel_w = kernel.shape
    out = x.reshape(n * c, in_h, 1, in_w, 1)
    out = F.pad(out, [0, p.up_x - 1, 0, 0, 0, p.up_y - 1])
    out = out.reshape(n * c, 1, in_h * p.up_y, in_w * p.up_x)
    out = F.pad(out, [p.pad_x0, p.pad_x1, p.pad_y0, p.pad_y1])
    weight = kernel.to(device=x.device, dtype=x.dtype).flip([0, 1]).reshape(1, 1, kernel_h, kernel_w)
    out = F.conv2d(out, weight)
    out = out[:, :, :: p.down_y, :: p.down_x]
    return out.reshape(n, c, out.shape[2], out.shape[3])


def upfirdn2d_fast(x: torch.Tensor, kernel: torch.Tensor, p: UpFirDnParams) -> torch.Tensor:
    """Transposed/strided convolution, two 1-D passes when the kernel is rank 1."""
    n, c, in_h, in_w = x.shape
    kernel = kernel.to(device=x.device, dtype=x.dtype)
    out = x.reshape(n * c, 1, in_h, in_w)
    factors = None if kernel.requires_grad else _rank1_factors(kernel)
    if factors is None:
        out = _resample(out, kernel, p.up_y, p.up_x, p.down_y, p.down_x, p.pad_y0, p.pad_y1, p.pad_x0, p.pad_x1)
    else:
        column, row = factors
        out = _resample(out, column[:, None], p.up_y, 1, p.down_y, 1, p.pad_y0, p.pad_y1, 0, 0)
        out = _resample(out, row[None, :], 1, p.up_x, 1, p.down_x, 0, 0, p.pad_x0, p.pad_x1)
    return out.reshape(n, c, out.shape[2], out.shape[3])


def _resample(
    x: torch.Tensor,
    kernel: torch.Tensor,
    up_y: int,
    up_x: int,
    down_y: int,
    down_x: int,
    pad_y0: int,
    pad_y1: int,
    pad_x0: int,
    pad_x1: int,
) -> torch.Tensor:
    """upfirdn2d on `[B, 1, H, W]` with a 2-D (possibly 1 × k or k × 1) kernel."""
    kernel_h, kernel_w = kernel.shape
    if up_y == 1 and up_x == 1:
        x = F.pad(x, [pad_x0, pad_x1, pad_y0, pad_y1])
        return F.conv2d(x, kernel.flip([0, 1])[None, None], stride=(down_y, down_x))
    # The transposed convolution is the full convolution of the zero-inserted signal with the
    # kernel: full[i] = sum_j x[j] k[i - up * j], length (in - 1) * up + k. Output sample o of the
    # definition (before subsampling) is full[o + k - 1 - pad0]; shift and crop/pad to that window.
    full = F.conv_transpose2d(x, kernel[None, None], stride=(up_y, up_x))
    out = F.pad(
        full,
        [pad_x0 - kernel_w + 1, up_x + pad_x1 - kernel_w, pad_y0 - kernel_h + 1, up_y + pad_y1 - kernel_h],
    )
    return out[:, :, ::down_y, ::down_x]


def _rank1_factors(kernel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(column [kh], row [kw]) with `outer(column, row) == kernel` when the kernel is rank 1, else None."""
    if kernel.shape[0] == 1 or kernel.shape[1] == 1:
        return None  # already 1-D: one pass
    flat_index = int(kernel.abs().argmax())
    i, j = divmod(flat_index, kernel.shape[1])
    pivot = kernel[i, j]
    if pivot == 0:
        return None
    column, row = kernel[:, j], kernel[i, :] / pivot
    if not torch.allclose(torch.outer(column, row), kernel, rtol=1e-5, atol=1e-7 * float(pivot.abs())):
        return None
    return column, row
