"""e4e encoder (omertov/encoder4editing) and its checkpoint loader.

`Encoder4Editing()` reproduces the encoder of `e4e_ffhq_encode.pt` exactly: IR-SE50 trunk, a
feature pyramid over three taps, and one GradualStyleBlock per W+ row. The first block predicts a
base w (coarse features); every other row adds a delta predicted from coarse (rows < 3), middle
(rows 3..6) or fine (rows >= 7) features. The checkpoint's `latent_avg` is added outside the encoder.
Smaller encoders (fixtures, demo world) change the number of styles, the input size and the trunk.
"""
from __future__ import annotations

import argparse
import math
import re
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from editing.networks.checkpoints import (
    CheckpointError, freeze, load_strict, load_torch_file, require_entry, strip_prefix,
)
from editing.networks.generator import Generator, generator_from_state
from editing.networks.irse import (
    IR_SE50_BLOCKS, IR_SE50_WIDTHS, check_trunk, infer_trunk, make_body, make_input_layer, stage_ends,
)
from editing.networks.stylegan_layers import EqualLinear



class GradualStyleBlock(nn.Module):
    """log2(spatial) stride-2 3x3 convs (with bias), each followed by LeakyReLU(0.01), then EqualLinear.

    [B, in_c, spatial, spatial] -> [B, out_c]. Keys `convs.{0,2,4,...}.weight|bias`, `linear.weight|bias`.
    """

    def __init__(self, in_c: int, out_c: int, spatial: int):
        super().__init__()
        n_convs = int(math.log2(spatial))
        layers: list[nn.Module] = []
        for i in range(n_convs):
            layers += [nn.Conv2d(in_c if i == 0 else out_c, out_c, 3, stride=2, padding=1), nn.LeakyReLU()]
        self.convs = nn.Sequential(*layers)
        self.linear = EqualLinear(out_c, out_c, lr_mul=1)
        self.out_c = out_c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.convs(x).view(-1, self.out_c))


class Encoder4Editing(nn.Module):
    """Image [B, 3, input_size, input_size] in [-1, 1] -> W+ offsets [B, n_styles, style_dim].

    Args:
        n_styles: W+ rows (the generator's n_latent; 18 at 1024 px).
        input_size: input resolution (256 for the public model); a multiple of 32 and a power of two.
        blocks, widths: units and channels of the four IR-SE trunk stages (default IR-SE50).
        style_dim: width of each W+ row.
        coarse_index, middle_index: first rows predicted from the middle and from the fine features.

    The taps are the outputs of the last units of stages 2, 3 and 4 (IR-SE50: body 6, 20, 23), at
    1/4, 1/8 and 1/16 of the input size.
    """

    def __init__(
        self,
        n_styles: int = 18,
        input_size: int = 256,
        blocks: Sequence[int] = IR_SE50_BLOCKS,
        widths: Sequence[int] = IR_SE50_WIDTHS,
        style_dim: int = 512,
        coarse_index: int = 3,
        middle_index: int = 7,
    ):
        super().__init__()
        check_trunk(blocks, widths)
        if input_size < 32 or input_size & (input_size - 1):
            raise ValueError(f"e4e input size must be a power of two >= 32, not {input_size}")
        self.n_styles = n_styles
        self.input_size = input_size
        self.blocks = tuple(blocks)
        self.widths = tuple(widths)
        self.style_dim = style_dim
        self.coarse_index = coarse_index
        self.middle_index = middle_index
        self.taps = stage_ends(blocks)[1:]
        self.input_layer = make_input_layer(widths[0])
        self.body = make_body(blocks, widths)
        self.styles = nn.ModuleList()
        for i in range(n_styles):
            spatial = input_size // (16 if i < coarse_index else 8 if i < middle_index else 4)
            self.styles.append(GradualStyleBlock(widths[3], style_dim, spatial))
        self.latlayer1 = nn.Conv2d(widths[2], widths[3], 1)
        self.latlayer2 = nn.Conv2d(widths[1], widths[3], 1)

    @property
    def config(self) -> dict:
        """Constructor arguments that rebuild this architecture (JSON-serialisable)."""
        return {
            "n_styles": self.n_styles,
            "input_size": self.input_size,
            "blocks": list(self.blocks),
            "widths": list(self.widths),
            "style_dim": self.style_dim,
            "coarse_index": self.coarse_index,
            "middle_index": self.middle_index,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_layer(x)
        taps = []
        for i, unit in enumerate(self.body):
            x = unit(x)
            if i in self.taps:
                taps.append(x)
        c1, c2, c3 = taps
        w0 = self.styles[0](c3)
        rows = [w0]
        features = c3
        p2 = c3
        for i in range(1, self.n_styles):
            if i == self.coarse_index:
                p2 = upsample_add(c3, self.latlayer1(c2))
                features = p2
            elif i == self.middle_index:
                features = upsample_add(p2, self.latlayer2(c1))
            rows.append(w0 + self.styles[i](features))
        return torch.stack(rows, dim=1)


def upsample_add(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Bilinear (align_corners=True) upsampling of x to y's size, plus y."""
    return F.interpolate(x, size=y.shape[-2:], mode="bilinear", align_corners=True) + y


class E4E(nn.Module):
    """Encoder plus its StyleGAN2 decoder, as in the e4e checkpoint (pSp wrapper).

    Attributes: `encoder` (Encoder4Editing), `decoder` (Generator), buffer `latent_avg`
    [n_latent, style_dim] (not in the state dict), `opts` (the training options stored in the file).
    `state_dict()` keys are exactly the checkpoint's `state_dict` (`encoder.*`, `decoder.*`).
    """

    def __init__(self, encoder: Encoder4Editing, decoder: Generator, latent_avg: torch.Tensor, opts: dict):
        super().__init__()
        if decoder.n_latent != encoder.n_styles or decoder.style_dim != encoder.style_dim:
            raise ValueError(
                f"e4e encoder gives [{encoder.n_styles}, {encoder.style_dim}] codes but the decoder takes "
                f"[{decoder.n_latent}, {decoder.style_dim}]"
            )
        self.encoder = encoder
        self.decoder = decoder
        self.register_buffer("latent_avg", latent_avg.reshape(encoder.n_styles, encoder.style_dim), persistent=False)
        self.opts = dict(opts)

    @property
    def input_size(self) -> int:
        return self.encoder.input_size

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """image [B, 3, H, W] in [-1, 1] (an aligned face) -> W+ [B, n_latent, style_dim].

        Images of another size are resized to the encoder's input size first (area averaging when
        shrinking, bilinear when enlarging).
        """
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"e4e expects images [B, 3, H, W], got {list(image.shape)}")
        size = self.encoder.input_size
        if tuple(image.shape[-2:]) != (size, size):
            shrink = image.shape[-1] > size
            image = F.interpolate(image, size=(size, size), mode="area" if shrink else "bilinear",
                                  align_corners=None if shrink else False)
        return self.encoder(image) + self.latent_avg

    def forward(self, image: torch.Tensor, randomize_noise: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """image [B, 3, H, W] -> (reconstruction [B, 3, size, size] at the decoder's size, W+)."""
        w_plus = self.encode(image)
        return self.decoder.synthesis(w_plus, randomize_noise=randomize_noise), w_plus


def _count(state: dict, pattern: str) -> int:
    return sum(1 for k in state if re.fullmatch(pattern, k))


def infer_encoder_config(state: dict[str, torch.Tensor], opts: dict, path: Path) -> dict:
    """Encoder4Editing arguments read off its state dict (trunk layout from `opts` when stated there)."""
    n_styles = _count(state, r"styles\.\d+\.linear\.weight")
    if n_styles == 0:
        raise CheckpointError(f"{path} has no e4e style blocks (encoder.styles.N.linear.weight)")
    convs = [_count(state, rf"styles\.{i}\.convs\.\d+\.weight") for i in range(n_styles)]
    if "encoder_blocks" in opts and "encoder_widths" in opts:
        blocks, widths = tuple(opts["encoder_blocks"]), tuple(opts["encoder_widths"])
    else:
        blocks, widths = infer_trunk(state, path)

    def first_row_with(extra_convs: int) -> int:
        return next((i for i, n in enumerate(convs) if n == convs[0] + extra_convs), n_styles)

    return {
        "n_styles": n_styles,
        "input_size": 16 * 2 ** convs[0],
        "blocks": blocks,
        "widths": widths,
        "style_dim": int(state["styles.0.linear.weight"].shape[0]),
        "coarse_index": first_row_with(1),
        "middle_index": first_row_with(2),
    }


def load_e4e(path: str | Path, device: str | torch.device = "cpu") -> E4E:
    """Load an e4e checkpoint (`state_dict` with `encoder.`/`decoder.` keys, `latent_avg`, `opts`).

    Returns the E4E module in eval mode with frozen parameters. Both halves load strictly (the
    decoder's blur/upsample kernel buffers are recomputed if the file lacks them).
    """
    path = Path(path).expanduser()
    ckpt = load_torch_file(path, "e4e encoder")
    state = require_entry(ckpt, "state_dict", path, "e4e encoder")
    opts = ckpt.get("opts") or {}
    if isinstance(opts, argparse.Namespace):
        opts = vars(opts)
    stray = sorted({k.split(".")[0] for k in state if not k.startswith(("encoder.", "decoder."))})
    if stray:
        raise CheckpointError(f"{path}: state_dict has keys outside encoder./decoder.: {stray}")
    enc_state, dec_state = strip_prefix(state, "encoder."), strip_prefix(state, "decoder.")
    if not dec_state:
        raise CheckpointError(f"{path}: state_dict has no decoder.* weights")
    encoder = Encoder4Editing(**infer_encoder_config(enc_state, opts, path))
    load_strict(encoder, enc_state, path, "e4e encoder")
    latent_avg = ckpt.get("latent_avg")
    decoder = generator_from_state(dec_state, latent_avg, path, "e4e decoder")
    if not opts.get("start_from_latent_avg", True):
        avg = torch.zeros(encoder.n_styles, encoder.style_dim)
    elif latent_avg is None:
        avg = decoder.latent_avg.expand(encoder.n_styles, -1)
    elif latent_avg.numel() == encoder.style_dim:
        avg = latent_avg.reshape(1, -1).expand(encoder.n_styles, -1)
    else:
        avg = latent_avg
    if avg.numel() != encoder.n_styles * encoder.style_dim:
        raise CheckpointError(
            f"{path}: latent_avg has shape {list(latent_avg.shape)}, expected [{encoder.n_styles}, {encoder.style_dim}]"
        )
    return freeze(E4E(encoder, decoder, avg.clone(), opts), device)
