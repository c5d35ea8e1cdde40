"""StyleGAN2 residual discriminator in rosinality's layout (the keys of a checkpoint's `d` entry).

Nothing in i2edit trains or loads it today: editing never needs a discriminator, and the demo generator learns
without one (`editing.demo_world.generator_train` reproduces renders of known Gaussian codes; a 64 px G+D
iteration costs about 1 s on this CPU). Only its tests use it (the layout of the public checkpoint's `d`
entry); it is here for an adversarial term on a GPU, which issue 18 allows where the budget fits.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from editing.networks.generator import default_channels
from editing.networks.stylegan_layers import Blur, EqualConv2d, EqualLinear, FusedLeakyReLU


class ConvLayer(nn.Sequential):
    """[Blur when downsampling] -> EqualConv2d -> [FusedLeakyReLU]; keys `N.kernel`, `N.weight`, `N.bias`."""

    def __init__(self, in_channel: int, out_channel: int, kernel_size: int, downsample: bool = False,
                 blur_kernel: Sequence[float] = (1, 3, 3, 1), bias: bool = True, activate: bool = True):
        layers: list[nn.Module] = []
        if downsample:
            p = (len(blur_kernel) - 2) + (kernel_size - 1)
            layers.append(Blur(blur_kernel, pad=((p + 1) // 2, p // 2)))
            stride, padding = 2, 0
        else:
            stride, padding = 1, kernel_size // 2
        layers.append(EqualConv2d(in_channel, out_channel, kernel_size, stride=stride, padding=padding,
                                  bias=bias and not activate))
        if activate:
            layers.append(FusedLeakyReLU(out_channel))
        super().__init__(*layers)


class ResBlock(nn.Module):
    """Two 3x3 convs (the second halves the resolution) plus a 1x1 downsampling skip, summed / sqrt(2)."""

    def __init__(self, in_channel: int, out_channel: int, blur_kernel: Sequence[float] = (1, 3, 3, 1)):
        super().__init__()
        self.conv1 = ConvLayer(in_channel, in_channel, 3, blur_kernel=blur_kernel)
        self.conv2 = ConvLayer(in_channel, out_channel, 3, downsample=True, blur_kernel=blur_kernel)
        self.skip = ConvLayer(in_channel, out_channel, 1, downsample=True, activate=False, bias=False,
                              blur_kernel=blur_kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2)


class Discriminator(nn.Module):
    """forward(image [B, 3, size, size]) -> realness logits [B, 1].

    `channels` optionally overrides the per-resolution table, as for `Generator`. The minibatch
    standard-deviation layer groups min(B, 4) samples, so B must be a multiple of that group size.
    """

    def __init__(self, size: int = 1024, channel_multiplier: int = 2, blur_kernel: Sequence[float] = (1, 3, 3, 1),
                 channels: dict[int, int] | None = None):
        super().__init__()
        if size < 8 or size & (size - 1):
            raise ValueError(f"discriminator size must be a power of two >= 8, not {size}")
        ch = default_channels(size, channel_multiplier) if channels is None else {int(r): int(c) for r, c in channels.items()}
        log_size = int(math.log2(size))
        convs: list[nn.Module] = [ConvLayer(3, ch[size], 1)]
        in_channel = ch[size]
        for i in range(log_size, 2, -1):
            out_channel = ch[2 ** (i - 1)]
            convs.append(ResBlock(in_channel, out_channel, blur_kernel))
            in_channel = out_channel
        self.convs = nn.Sequential(*convs)
        self.stddev_group = 4
        self.final_conv = ConvLayer(in_channel + 1, ch[4], 3)
        self.final_linear = nn.Sequential(
            EqualLinear(ch[4] * 4 * 4, ch[4], activation="fused_lrelu"),
            EqualLinear(ch[4], 1),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        out = self.convs(image)
        batch, channel, height, width = out.shape
        group = min(batch, self.stddev_group)
        if batch % group:
            raise ValueError(f"discriminator batch {batch} is not a multiple of its stddev group size {group}")
        stddev = out.view(group, -1, 1, channel, height, width)
        stddev = torch.sqrt(stddev.var(0, unbiased=False) + 1e-8)
        stddev = stddev.mean([2, 3, 4], keepdim=True).squeeze(2)
        out = torch.cat([out, stddev.repeat(group, 1, height, width)], 1)
        out = self.final_conv(out)
        return self.final_linear(out.view(batch, -1))
