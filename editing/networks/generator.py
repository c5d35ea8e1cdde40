"""StyleGAN2 generator (rosinality's layout, config-f by default) and its checkpoint loader.

`Generator(1024, 512, 8, channel_multiplier=2).state_dict()` has exactly the 171 keys of the `g_ema`
entry of `stylegan2-ffhq-config-f.pt`; smaller generators (the test fixtures, the demo world) use
the same code with another `size` and a `channels` table.

Latent shapes: z and w are [B, style_dim]; W+ is [B, n_latent, style_dim] (n_latent = 18 at 1024 px).
Images are [B, 3, size, size], roughly in [-1, 1] and not clamped.
"""
from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from editing.networks.checkpoints import (
    CheckpointError,
    fill_missing_buffers,
    freeze,
    load_strict,
    load_torch_file,
    strip_prefix,
)
from editing.networks.stylegan_layers import ConstantInput, EqualLinear, PixelNorm, StyledConv, ToRGB

log = logging.getLogger(__name__)

KERNEL_BUFFER_SUFFIXES = (".blur.kernel", ".upsample.kernel")
LATENT_AVG_SAMPLES = 10_000


def default_channels(size: int, channel_multiplier: int = 2) -> dict[int, int]:
    """Channels per resolution of StyleGAN2 config-e/f: 512 up to 32 px, then 2^(14 - log2 r) x multiplier."""
    table = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}
    return {r: (c if r <= 32 else c * channel_multiplier) for r, c in table.items() if r <= size}


class Generator(nn.Module):
    """StyleGAN2 generator: mapping network `style`, synthesis network, stored noise buffers.

    Args:
        size: output resolution, a power of two >= 8.
        style_dim: width of z, w and each W+ row.
        n_mlp: mapping network depth.
        channel_multiplier: 2 for config-f; used when `channels` is None.
        blur_kernel: FIR taps for up-sampling.
        lr_mlp: learning-rate multiplier of the mapping network (also scales its weights at run time).
        channels: optional {resolution: channels} for every resolution 4..size, overriding the
            config-f table (small generators for fixtures and the demo world).

    Attributes: `size`, `style_dim`, `n_latent` (W+ rows), `num_layers` (noise inputs), `channels`,
    and the buffer `latent_avg` [style_dim] (mean w; not in the state dict; `load_generator` fills it).
    """

    def __init__(
        self,
        size: int = 1024,
        style_dim: int = 512,
        n_mlp: int = 8,
        channel_multiplier: int = 2,
        blur_kernel: Sequence[float] = (1, 3, 3, 1),
        lr_mlp: float = 0.01,
        channels: dict[int, int] | None = None,
    ):
        super().__init__()
        if size < 8 or size & (size - 1):
            raise ValueError(f"generator size must be a power of two >= 8, not {size}")
        self.size = size
        self.style_dim = style_dim
        self.n_mlp = n_mlp
        self.lr_mlp = lr_mlp
        self.blur_kernel = tuple(blur_kernel)
        self.log_size = int(math.log2(size))
        if channels is None:
            self.channels = default_channels(size, channel_multiplier)
        else:
            self.channels = {int(r): int(c) for r, c in channels.items()}
            needed = [2**i for i in range(2, self.log_size + 1)]
            absent = [r for r in needed if r not in self.channels]
            if absent:
                raise ValueError(f"channels must give every resolution {needed}; missing {absent}")
        self.num_layers = (self.log_size - 2) * 2 + 1
        self.n_latent = self.log_size * 2 - 2

        self.style = nn.Sequential(
            PixelNorm(),
            *[EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activation="fused_lrelu") for _ in range(n_mlp)],
        )
        ch = self.channels
        self.input = ConstantInput(ch[4])
        self.conv1 = StyledConv(ch[4], ch[4], 3, style_dim, blur_kernel=blur_kernel)
        self.to_rgb1 = ToRGB(ch[4], style_dim, upsample=False)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        for i in range(self.num_layers):
            res = 2 ** ((i + 5) // 2)
            self.noises.register_buffer(f"noise_{i}", torch.randn(1, 1, res, res))
        in_channel = ch[4]
        for i in range(3, self.log_size + 1):
            out_channel = ch[2**i]
            self.convs.append(StyledConv(in_channel, out_channel, 3, style_dim, upsample=True, blur_kernel=blur_kernel))
            self.convs.append(StyledConv(out_channel, out_channel, 3, style_dim, blur_kernel=blur_kernel))
            self.to_rgbs.append(ToRGB(out_channel, style_dim, blur_kernel=blur_kernel))
            in_channel = out_channel
        self.register_buffer("latent_avg", torch.zeros(style_dim), persistent=False)

    @property
    def config(self) -> dict:
        """Constructor arguments that rebuild this architecture (JSON-serialisable)."""
        return {
            "size": self.size,
            "style_dim": self.style_dim,
            "n_mlp": self.n_mlp,
            "blur_kernel": list(self.blur_kernel),
            "lr_mlp": self.lr_mlp,
            "channels": {str(r): c for r, c in self.channels.items()},
        }

    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        """Mapping network: z [B, style_dim] -> w [B, style_dim]."""
        return self.style(z)

    @torch.no_grad()
    def mean_latent(self, n: int) -> torch.Tensor:
        """Estimate of the mean w from `n` random z: [1, style_dim] (stochastic)."""
        z = torch.randn(n, self.style_dim, device=self.input.input.device)
        return self.style(z).mean(0, keepdim=True)

    def make_noise(self) -> list[torch.Tensor]:
        """Fresh N(0, 1) noise maps, one per layer: [1, 1, r, r] for r = 4, 8, 8, ..., size, size."""
        device = self.input.input.device
        return [torch.randn_like(getattr(self.noises, f"noise_{i}"), device=device) for i in range(self.num_layers)]

    def stored_noise(self) -> list[torch.Tensor]:
        """The stored noise buffers `noises.noise_i`, which make synthesis deterministic."""
        return [getattr(self.noises, f"noise_{i}") for i in range(self.num_layers)]

    def check_w_plus(self, w_plus: torch.Tensor) -> None:
        """Raise ValueError unless `w_plus` is [B, n_latent, style_dim]."""
        expected = f"[B, {self.n_latent}, {self.style_dim}]"
        if w_plus.ndim == 2:
            raise ValueError(
                f"W+ must have shape {expected}; got {list(w_plus.shape)}. A 2-D tensor would be read as a "
                f"batch of {w_plus.shape[0]} separate w vectors, each rendered as its own image (the StyleCLIP "
                "out-of-memory trap): add the batch dimension with w_plus.unsqueeze(0)"
            )
        if w_plus.ndim != 3 or tuple(w_plus.shape[1:]) != (self.n_latent, self.style_dim):
            raise ValueError(f"W+ must have shape {expected}; got {list(w_plus.shape)}")

    def synthesis(
        self,
        w_plus: torch.Tensor,
        noise: Sequence[torch.Tensor | None] | None = None,
        randomize_noise: bool = False,
        return_rgbs: bool = False,
        max_resolution: int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Render W+ codes.

        Args:
            w_plus: [B, n_latent, style_dim]. Row use: conv1 <- 0, to_rgb1 <- 1; block j (8 px, 16 px, ...)
                uses rows 2j+1, 2j+2 for its two convs and 2j+3 for its ToRGB.
            noise: optional list of `num_layers` noise maps ([B or 1, 1, r, r]; None entries draw fresh noise).
            randomize_noise: when `noise` is None, draw fresh noise instead of the stored buffers.
            return_rgbs: also return the skip-branch RGB image at every resolution.
            max_resolution: stop after the block of this resolution (a power of two, 4 .. size) and
                return its skip-branch RGB; the larger layers are never run (the fast optimisation mode
                saves their time and the memory their backward pass would keep). W+ rows past it are unused.

        Returns:
            image [B, 3, R, R] with R = max_resolution or size (about [-1, 1], unclamped), or (image, rgbs)
            where rgbs[k] is [B, 3, 4 * 2^k, 4 * 2^k] for 4 px .. R (rgbs[-1] is image).
        """
        self.check_w_plus(w_plus)
        last = self.size if max_resolution is None else max_resolution
        if last not in [4 * 2**k for k in range(len(self.to_rgbs) + 1)]:
            raise ValueError(f"max_resolution must be a power of two from 4 to {self.size}, got {max_resolution}")
        if noise is None:
            noise = [None] * self.num_layers if randomize_noise else self.stored_noise()
        elif len(noise) != self.num_layers:
            raise ValueError(f"noise must list {self.num_layers} maps (one per layer), got {len(noise)}")
        out = self.input(w_plus.shape[0])
        out = self.conv1(out, w_plus[:, 0], noise[0])
        skip = self.to_rgb1(out, w_plus[:, 1])
        rgbs = [skip]
        i = 1
        for j, to_rgb in enumerate(self.to_rgbs[: int(math.log2(last)) - 2]):
            out = self.convs[2 * j](out, w_plus[:, i], noise[i])
            out = self.convs[2 * j + 1](out, w_plus[:, i + 1], noise[i + 1])
            skip = to_rgb(out, w_plus[:, i + 2], skip)
            rgbs.append(skip)
            i += 2
        return (skip, rgbs) if return_rgbs else skip

    def forward(
        self,
        styles: list[torch.Tensor],
        return_latents: bool = False,
        inject_index: int | None = None,
        truncation: float = 1.0,
        truncation_latent: torch.Tensor | None = None,
        input_is_latent: bool = False,
        noise: Sequence[torch.Tensor | None] | None = None,
        randomize_noise: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """rosinality-compatible call: `g([z])`, `g([w_plus], input_is_latent=True)`, style mixing with two styles.

        `styles` is a list of one or two tensors: z or w [B, style_dim] (repeated over the W+ rows), or
        W+ [B, n_latent, style_dim]. Truncation pulls w towards `truncation_latent` (default
        `latent_avg`). Returns (image [B, 3, size, size], W+ if return_latents else None).
        """
        if isinstance(styles, torch.Tensor):
            raise TypeError("styles must be a list of tensors, e.g. g([w_plus], input_is_latent=True)")
        if not input_is_latent:
            styles = [self.style(s) for s in styles]
        if truncation < 1:
            center = self.latent_avg if truncation_latent is None else truncation_latent
            styles = [center + truncation * (s - center) for s in styles]
        if len(styles) < 2:
            latent = styles[0] if styles[0].ndim == 3 else styles[0].unsqueeze(1).repeat(1, self.n_latent, 1)
        else:
            if inject_index is None:
                inject_index = int(torch.randint(1, self.n_latent, ()).item())
            first = styles[0].unsqueeze(1).repeat(1, inject_index, 1)
            second = styles[1].unsqueeze(1).repeat(1, self.n_latent - inject_index, 1)
            latent = torch.cat([first, second], 1)
        image = self.synthesis(latent, noise=noise, randomize_noise=randomize_noise)
        return image, (latent if return_latents else None)


def infer_generator_config(state: dict[str, torch.Tensor], path: Path) -> dict:
    """Generator constructor arguments (size, style_dim, n_mlp, channels) read off a g_ema state dict."""
    for key in ("style.1.weight", "input.input", "to_rgb1.conv.weight"):
        if key not in state:
            raise CheckpointError(f"{path} does not hold a StyleGAN2 generator: no {key!r} in its weights")
    n_mlp = sum(1 for k in state if re.fullmatch(r"style\.\d+\.weight", k))
    n_blocks = sum(1 for k in state if re.fullmatch(r"to_rgbs\.\d+\.conv\.weight", k))
    channels = {4: int(state["input.input"].shape[1])}
    for j in range(n_blocks):
        key = f"convs.{2 * j}.conv.weight"
        if key not in state:
            raise CheckpointError(f"{path} does not hold a StyleGAN2 generator: no {key!r} in its weights")
        channels[2 ** (j + 3)] = int(state[key].shape[1])
    return {
        "size": 2 ** (n_blocks + 2),
        "style_dim": int(state["style.1.weight"].shape[0]),
        "n_mlp": n_mlp,
        "channels": channels,
    }


def generator_from_state(
    state: dict[str, torch.Tensor], latent_avg: torch.Tensor | None, path: Path, what: str = "generator"
) -> Generator:
    """Build a Generator matching `state`, restore missing FIR kernel buffers, load strictly, set latent_avg."""
    generator = Generator(**infer_generator_config(state, path))
    state = dict(state)
    added = fill_missing_buffers(generator, state, KERNEL_BUFFER_SUFFIXES)
    if added:
        log.info("%s lacks %d blur/upsample kernel buffers; recomputed them from the blur taps", path, len(added))
    load_strict(generator, state, path, what)
    if latent_avg is None:
        log.info("%s has no latent_avg; estimating it from %d mapped samples", path, LATENT_AVG_SAMPLES)
        generator.latent_avg.copy_(generator.mean_latent(LATENT_AVG_SAMPLES)[0])
    else:
        rows = latent_avg.reshape(-1, generator.style_dim)
        generator.latent_avg.copy_(rows[0])
    return generator


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> Generator:
    """Load a StyleGAN2 generator in eval mode with frozen parameters.

    Accepts a rosinality checkpoint (`g_ema` + `latent_avg` [style_dim], e.g. stylegan2-ffhq-config-f.pt)
    or an e4e checkpoint (its `decoder.*` weights and `latent_avg` [n_latent, style_dim]). Size and
    channels come from the weights; blur/upsample kernel buffers that the file lacks are recomputed.
    """
    path = Path(path).expanduser()
    ckpt = load_torch_file(path, "StyleGAN2 generator")
    if isinstance(ckpt, dict) and "g_ema" in ckpt:
        state, latent_avg = ckpt["g_ema"], ckpt.get("latent_avg")
    elif isinstance(ckpt, dict) and isinstance(ckpt.get("state_dict"), dict):
        state = strip_prefix(ckpt["state_dict"], "decoder.")
        if not state:
            raise CheckpointError(f"{path} has a 'state_dict' but no 'decoder.*' weights (not an e4e checkpoint)")
        latent_avg = ckpt.get("latent_avg")
    else:
        found = sorted(map(str, ckpt)) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(
            f"{path} is neither a StyleGAN2 checkpoint (no 'g_ema' entry) nor an e4e checkpoint "
            f"(no 'state_dict' entry); it holds: {found}"
        )
    return freeze(generator_from_state(state, latent_avg, path), device)
