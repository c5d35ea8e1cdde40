"""Geometry of `upfirdn2d`: parsing `up`/`down`/`pad`, output size, and the adjoint's parameters.

Convention (rosinality `upfirdn2d`, NVlabs `upfirdn2d` with `flip_filter=False`), per axis:
insert `up - 1` zeros after every input sample, pad `pad0` before and `pad1` after (negative values
crop), convolve with the FIR kernel (a true convolution), keep every `down`-th sample starting at
the first. Output length: `(in * up + pad0 + pad1 - k + down) // down`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    """`value` as an (x, y) pair of positive ints."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and v >= 1 for v in pair):
        raise ValueError(f"upfirdn2d: {name} must be a positive int or an (x, y) pair of them, got {value!r}")
    return pair  # type: ignore[return-value]


@dataclass(frozen=True)
class UpFirDnParams:
    """Integer factors and paddings of one `upfirdn2d` call, per axis."""

    up_x: int
    up_y: int
    down_x: int
    down_y: int
    pad_x0: int
    pad_x1: int
    pad_y0: int
    pad_y1: int

    @classmethod
    def parse(cls, up: int | Sequence[int], down: int | Sequence[int], pad: Sequence[int]) -> "UpFirDnParams":
        """From the public arguments: `up`/`down` int or (x, y); `pad` (p0, p1) for both axes or
        (x0, x1, y0, y1)."""
        up_x, up_y = _pair(up, "up")
        down_x, down_y = _pair(down, "down")
        pad = tuple(pad)
        if len(pad) == 2:
            pad = (pad[0], pad[1], pad[0], pad[1])
        if len(pad) != 4 or not all(isinstance(v, int) for v in pad):
            raise ValueError(f"upfirdn2d: pad must be (p0, p1) or (x0, x1, y0, y1) ints, got {pad!r}")
        return cls(up_x, up_y, down_x, down_y, *pad)

    def output_size(self, in_h: int, in_w: int, kernel_h: int, kernel_w: int) -> tuple[int, int]:
        """(out_h, out_w) for an input of `in_h` × `in_w` and a `kernel_h` × `kernel_w` kernel."""
        out_h = (in_h * self.up_y + self.pad_y0 + self.pad_y1 - kernel_h + self.down_y) // self.down_y
        out_w = (in_w * self.up_x + self.pad_x0 + self.pad_x1 - kernel_w + self.down_x) // self.down_x
        if out_h < 1 or out_w < 1:
            raise ValueError(
                f"upfirdn2d: input {in_h}x{in_w} with a {kernel_h}x{kernel_w} kernel and {self} gives an "
                f"empty output ({out_h}x{out_w}); use less cropping (negative pad) or a smaller kernel"
            )
        return out_h, out_w

    def adjoint(self, in_h: int, in_w: int, kernel_h: int, kernel_w: int) -> "UpFirDnParams":
        """Parameters of the transposed operator: `upfirdn2d(dy, flip(kernel), adjoint)` is the
        gradient with respect to the input (up and down swap, pads chosen to land on `in_h` × `in_w`)."""
        out_h, out_w = self.output_size(in_h, in_w, kernel_h, kernel_w)
        return UpFirDnParams(
            up_x=self.down_x,
            up_y=self.down_y,
            down_x=self.up_x,
            down_y=self.up_y,
            pad_x0=kernel_w - 1 - self.pad_x0,
            pad_x1=in_w * self.up_x - out_w * self.down_x + self.pad_x0 - self.up_x + 1,
            pad_y0=kernel_h - 1 - self.pad_y0,
            pad_y1=in_h * self.up_y - out_h * self.down_y + self.pad_y0 - self.up_y + 1,
        )
