"""Pure-PyTorch `upfirdn2d`: the simple oracle and the faster path used by `impl="ref"`.

Both take `x` `[N, C, H, W]`, a 2-D kernel `[kh, kw]` and parsed `UpFirDnParams`, return
`[N, C, out_h, out_w]` in `x`'s dtype, and are differentiable any number of times by autograd
(also with respect to the kernel).

- `upfirdn2d_simple` spells out the definition: zero-insert, pad/crop, one dense convolution over
  the upsampled grid, subsample. Three quarters of its multiplications are by inserted zeros when
  up=2; it is the test oracle and the benchmark baseline.
- `upfirdn2d_fast` does the same arithmetic without the wasted work: upsampling is a transposed
  convolution with stride `up` (it skips the inserted zeros), downsampling is a strided convolution
  (it skips the discarded outputs), both depthwise over `[N, C, H, W]` (`groups=C`), which CPU
  backends run much faster than one single-channel convolution over `[N·C, 1, H, W]`. (Splitting a
  rank-1 kernel into two 1-D passes was slower on CPU in our measurements: the passes are memory
  bound.) It agrees with the oracle to float rounding.
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
    """Depthwise transposed convolution for upsampling, strided convolution for downsampling."""
    channels = x.shape[1]
    kernel = kernel.to(device=x.device, dtype=x.dtype)
    kernel_h, kernel_w = kernel.shape
    weight = kernel[None, None].expand(channels, 1, kernel_h, kernel_w).contiguous()
    if p.up_x == 1 and p.up_y == 1:
        out = F.pad(x, [p.pad_x0, p.pad_x1, p.pad_y0, p.pad_y1])
        return F.conv2d(out, weight.flip([2, 3]), stride=(p.down_y, p.down_x), groups=channels)
    # The transposed convolution is the full convolution of the zero-inserted input with the
    # kernel: full[i] = sum_j x[j] k[i - up * j], length (in - 1) * up + k per axis. Sample o of the
    # definition (before subsampling) is full[o + k - 1 - pad0]: shift and crop/pad to that window.
    full = F.conv_transpose2d(x, weight, stride=(p.up_y, p.up_x), groups=channels)
    out = F.pad(
        full,
        [
            p.pad_x0 - kernel_w + 1,
            p.up_x + p.pad_x1 - kernel_w,
            p.pad_y0 - kernel_h + 1,
            p.up_y + p.pad_y1 - kernel_h,
        ],
    )
    return out[:, :, :: p.down_y, :: p.down_x]
