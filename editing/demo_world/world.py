"""Shared pieces of the demo world: image size, batches of renders, held-out sets, and the face a dialogue is
about.

All randomness comes from seeded CPU generators, so every batch is reproducible: training batches from a
stream seeded per network, held-out sets from fixed seeds that training never uses.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterable

import torch
import torch.nn.functional as F

from data_tools.faces import N_IDENTITY, look_from_values, render_faces, sample_identities
from data_tools.faces.identity import IDENTITY_PARAMS
from data_tools.faces.look import normalize_look, sample_looks

SIZE = 64
HELDOUT_SEED = 9_000_001  # held-out renders; training streams use seeds below 1_000_000


@dataclass
class RenderBatch:
    """`identities` [B, N_IDENTITY], `looks` [B, 23] strengths, `images` [B, 3, SIZE, SIZE] in [-1, 1]."""

    identities: torch.Tensor
    looks: torch.Tensor
    images: torch.Tensor


def sample_batch(n: int, generator: torch.Generator, soft_fraction: float = 0.0, size: int = SIZE) -> RenderBatch:
    """`n` random faces. A `soft_fraction` of them get in-between looks: a random blend of two binary
    looks (strengths in (0, 1)), which teaches networks the continuum between values."""
    identities = sample_identities(n, generator=generator)
    looks = sample_looks(n, generator)
    n_soft = int(round(n * soft_fraction))
    if n_soft:
        other = sample_looks(n_soft, generator)
        t = torch.rand(n_soft, 1, generator=generator)
        looks[:n_soft] = normalize_look(looks[:n_soft] * (1 - t) + other * t)
    return RenderBatch(identities, looks, render_faces(identities, looks, size))


def heldout_batch(n: int, offset: int = 0, size: int = SIZE) -> RenderBatch:
    """Held-out binary faces, the same on every call (`offset` selects another disjoint set)."""
    return sample_batch(n, torch.Generator().manual_seed(HELDOUT_SEED + offset), 0.0, size)


def identity_of(key: str) -> torch.Tensor:
    """The identity `[N_IDENTITY]` of the face named `key` (a dialogue id or image name): a seed from its
    sha256, so the same name always gives the same face."""
    seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:6], "big")
    return sample_identities(1, seed=seed)[0]


def render_profile(key: str, values: Iterable[str], size: int = SIZE) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(identity [N_IDENTITY], look [23], image [3, size, size]) of the face `key` with profile `values`."""
    identity = identity_of(key)
    look = look_from_values([list(values)], identity.view(1, -1))[0]
    return identity, look, render_faces(identity.view(1, -1), look.view(1, -1), size)[0]


def degrade(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random blur (σ up to 1.2 px, half the batch), a shift of up to 2 px and pixel noise (σ ≤ 0.04): what
    separates a generator output from a render. images [B, 3, H, W] → same shape."""
    b = images.shape[0]
    sigma = torch.rand(b, generator=generator) * 1.2 * (torch.rand(b, generator=generator) < 0.5)
    taps = torch.arange(-2, 3, dtype=torch.float32)
    kernel = torch.exp(-taps.view(1, -1) ** 2 / (2 * sigma.clamp(min=1e-3).view(-1, 1) ** 2))
    kernel = kernel / kernel.sum(1, keepdim=True)  # [B, 5]
    x = images.reshape(1, b * 3, *images.shape[-2:])
    kx = kernel.repeat_interleave(3, 0)
    x = F.conv2d(F.pad(x, (2, 2, 0, 0), mode="replicate"), kx.view(-1, 1, 1, 5), groups=b * 3)
    x = F.conv2d(F.pad(x, (0, 0, 2, 2), mode="replicate"), kx.view(-1, 1, 5, 1), groups=b * 3)
    x = x.view_as(images)
    dx, dy = (int(v) for v in torch.randint(-2, 3, (2,), generator=generator))
    x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
    noise = torch.randn(x.shape, generator=generator) * torch.rand(b, 1, 1, 1, generator=generator) * 0.04
    return (x + noise).clamp(-1, 1)


assert N_IDENTITY == len(IDENTITY_PARAMS)
