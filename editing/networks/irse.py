"""IR-SE residual units (InsightFace ArcFace trunk), shared by the e4e encoder and the identity network.

Layout of TreB1eN's InsightFace_Pytorch `model_irse.py`, which `model_ir_se50.pth` and e4e's encoder
both use: `input_layer` (3x3 conv, BN, PReLU) then `body`, a flat list of bottleneck units in four
stages. The first unit of each stage has stride 2; its shortcut is a 1x1 conv + BN when the width
changes and an identity MaxPool2d(1, stride) otherwise. IR-SE50 has 3/4/14/3 units of width
64/128/256/512. Smaller trunks (fixtures, demo world) change `blocks` and `widths`.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from editing.networks.checkpoints import CheckpointError

IR_SE50_BLOCKS = (3, 4, 14, 3)
IR_SE50_WIDTHS = (64, 128, 256, 512)
SE_REDUCTION = 16


class SEModule(nn.Module):
    """Squeeze-and-excitation: x * sigmoid(fc2(relu(fc1(avgpool(x))))); fc1/fc2 are bias-free 1x1 convs."""

    def __init__(self, channels: int, reduction: int = SE_REDUCTION):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))


class BottleneckIRSE(nn.Module):
    """IR-SE unit: res_layer = BN, conv3x3, PReLU, conv3x3(stride), BN, SE; plus the shortcut.

    [B, in_channel, H, W] -> [B, depth, H / stride, W / stride].
    """

    def __init__(self, in_channel: int, depth: int, stride: int):
        super().__init__()
        if in_channel == depth:
            self.shortcut_layer = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channel, depth, 1, stride, bias=False), nn.BatchNorm2d(depth)
            )
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_channel),
            nn.Conv2d(in_channel, depth, 3, 1, 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            nn.BatchNorm2d(depth),
            SEModule(depth),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


def check_trunk(blocks: Sequence[int], widths: Sequence[int]) -> None:
    """Raise ValueError unless `blocks`/`widths` describe a four-stage IR-SE trunk."""
    if len(blocks) != 4 or len(widths) != 4 or min(blocks) < 1:
        raise ValueError(f"an IR-SE trunk has four stages of >= 1 unit; got blocks={blocks}, widths={widths}")
    bad = [w for w in widths if w % SE_REDUCTION or w < SE_REDUCTION]
    if bad:
        raise ValueError(f"IR-SE widths must be multiples of {SE_REDUCTION} (SE reduction); got {list(widths)}")


def make_input_layer(width: int) -> nn.Sequential:
    """3x3 conv (3 -> width, no bias), BN, PReLU; resolution kept."""
    return nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.PReLU(width))


def make_body(blocks: Sequence[int], widths: Sequence[int]) -> nn.Sequential:
    """The units of all stages in one flat Sequential (keys `body.N.*`); input width = widths[0]."""
    units = []
    in_channel = widths[0]
    for n_units, depth in zip(blocks, widths):
        units.append(BottleneckIRSE(in_channel, depth, 2))
        units += [BottleneckIRSE(depth, depth, 1) for _ in range(n_units - 1)]
        in_channel = depth
    return nn.Sequential(*units)


def stage_ends(blocks: Sequence[int]) -> list[int]:
    """Index in `body` of the last unit of each stage (IR-SE50: [2, 6, 20, 23])."""
    ends, total = [], 0
    for n in blocks:
        total += n
        ends.append(total - 1)
    return ends


def infer_trunk(state: dict[str, torch.Tensor], path: Path) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(blocks, widths) of the trunk whose `input_layer.*`/`body.*` weights are in `state`.

    A stage starts at unit 0 and at every unit with a 1x1 conv shortcut (its width changes). Two
    consecutive stages of equal width cannot be told apart from the weights; such trunks must
    state their layout (e4e: `encoder_blocks`/`encoder_widths` in `opts`).
    """
    units = sorted(int(m.group(1)) for k in state if (m := re.fullmatch(r"body\.(\d+)\.res_layer\.1\.weight", k)))
    if not units or units != list(range(len(units))) or "input_layer.0.weight" not in state:
        raise CheckpointError(f"{path} does not hold an IR-SE trunk (input_layer.*, body.N.res_layer.*)")
    blocks: list[int] = []
    widths: list[int] = []
    for i in units:
        if i == 0 or f"body.{i}.shortcut_layer.0.weight" in state:
            blocks.append(0)
            widths.append(int(state[f"body.{i}.res_layer.1.weight"].shape[0]))
        blocks[-1] += 1
    if len(blocks) != 4:
        raise CheckpointError(
            f"{path}: found {len(blocks)} IR-SE stages (blocks {blocks}, widths {widths}) where 4 are needed; "
            "stages of equal width must be stated in the checkpoint's config"
        )
    return tuple(blocks), tuple(widths)
