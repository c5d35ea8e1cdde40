"""The three terms of the StyleCLIP objective (paper eq. 4-7), each returning one value per image.

    L = (1 - cos(CLIP(G(w)), CLIP(t)))  +  λL2 · Σ (w - w_anchor)²  +  λID · (1 - <R(G(w)), R(G(w_anchor))>)

The fixed side of each term (the text embedding, the anchor's identity embedding) is computed once
when the term is built, not at every step.
"""
from __future__ import annotations

from typing import Sequence

import torch


class ClipLoss:
    """1 - cosine between the CLIP embedding of images and of a text, averaged over one or more texts.

    `clip` is an `editing.networks.clip_model.ClipScorer` (normalised `encode_image` / `encode_text` that do
    their own preprocessing); `texts` one text (StyleCLIP's objective) or several (the mean of their
    terms: the per-attribute objective, one minus the AvgRel of paper eq. 1); `weights` one positive
    weight per text for a weighted mean (the critic's refinement weights a value that fell short up;
    default: equal); `__call__(images [B, 3, H, W] in [-1, 1]) -> [B]`.
    """

    def __init__(self, clip, texts: str | Sequence[str], weights: Sequence[float] | None = None):
        self.clip = clip
        self.texts = (texts,) if isinstance(texts, str) else tuple(texts)
        if not self.texts:
            raise ValueError("ClipLoss needs at least one text")
        weights = [1.0] * len(self.texts) if weights is None else [float(w) for w in weights]
        if len(weights) != len(self.texts) or min(weights) <= 0:
            raise ValueError(f"need one positive weight per text ({len(self.texts)}), got {weights}")
        with torch.no_grad():
            self.target = clip.encode_text(list(self.texts)).detach()  # [T, D], unit norm
        self.weights = torch.tensor(weights, dtype=torch.float32) / sum(weights)  # [T], sums to 1

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        features = self.clip.encode_image(images)  # [B, D], unit norm
        cosines = features @ self.target.to(features.dtype).T  # [B, T]
        return 1.0 - cosines @ self.weights.to(cosines.device, cosines.dtype)


class IdentityLoss:
    """1 - cosine between identity embeddings of images and of a fixed reference image.

    `identity` is an `editing.networks.identity.IdentityNet` (images in [-1, 1] -> [B, 512] unit norm);
    `reference` [1, 3, H, W] in [-1, 1]; `__call__(images [B, 3, H, W]) -> [B]`.
    """

    def __init__(self, identity, reference: torch.Tensor):
        self.identity = identity
        with torch.no_grad():
            self.target = identity(reference).detach()  # [1, 512]

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return 1.0 - (self.identity(images) * self.target).sum(dim=-1)


def latent_l2(w: torch.Tensor, anchor: torch.Tensor) -> torch.Tensor:
    """Sum of squared differences per sample (StyleCLIP's convention, not a mean):
    w, anchor [B, n_latent, 512] -> [B]."""
    return ((w - anchor) ** 2).sum(dim=(1, 2))
