"""Editing metrics: AvgRel/MinRel (paper eq. 1-2), identity similarity, LPIPS and FID.

- Relevance: cosine between the CLIP image embedding of the edited image and the CLIP text embedding
  of each requested value's text (`editing.prompts.attribute_text`); AvgRel is the mean over the
  requested values, MinRel the minimum.
- Identity: cosine between ArcFace embeddings of the edited image and of the original aligned photo.
- LPIPS (AlexNet, v0.1 linear heads shipped in the `lpips` package): edited vs original, both
  area-resized to 256 px. The AlexNet trunk comes from a local torchvision file
  (`alexnet-owt-7be5be79.pth`); nothing is downloaded.
- FID: pytorch-fid's InceptionV3 (2048-d pool features, its own resize to 299) from a local
  `pt_inception-2015-12-05-6726825d.pth`, between the set of edited images and the set of originals.

LPIPS and FID are optional: `load_lpips` / `load_fid_inception` raise FileNotFoundError naming the
file when it is absent, and callers report the metric as skipped with that reason.
"""
from __future__ import annotations

import contextlib
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dialogue.ontology import BeliefState
from editing.clip_model import area_resize
from editing.prompts import attribute_texts

log = logging.getLogger(__name__)

LPIPS_SIZE = 256
LPIPS_BACKBONE_FILE = "alexnet-owt-7be5be79.pth"
FID_INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"


@dataclass(frozen=True)
class Relevance:
    """AvgRel, MinRel and the cosine per requested value (canonical order)."""

    avg_rel: float
    min_rel: float
    per_attribute: dict[str, float]


@torch.no_grad()
def relevance(clip, image: torch.Tensor, state: BeliefState) -> Relevance | None:
    """Relevance of `image` [1, 3, H, W] in [-1, 1] to each value of `state`; None for an empty state.

    `clip` is an `editing.clip_model.ClipScorer`.
    """
    texts = attribute_texts(state)
    if not texts:
        return None
    image_features = clip.encode_image(image)  # [1, D]
    text_features = clip.encode_text(list(texts.values()))  # [N, D]
    cosines = (image_features @ text_features.to(image_features.dtype).T)[0].tolist()
    per_attribute = dict(zip(texts, (float(c) for c in cosines)))
    return Relevance(avg_rel=float(np.mean(cosines)), min_rel=float(min(cosines)), per_attribute=per_attribute)


@torch.no_grad()
def identity_similarity(identity, image: torch.Tensor, reference: torch.Tensor) -> float:
    """Cosine between identity embeddings of `image` and `reference` ([1, 3, H, W] in [-1, 1])."""
    return float((identity(image) * identity(reference.to(image.device))).sum(dim=-1).mean())


class Lpips:
    """LPIPS distance (AlexNet trunk, v0.1 heads) between images in [-1, 1], compared at 256 px."""

    def __init__(self, network: torch.nn.Module):
        self.network = network

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] and [B, 3, H', W'] in [-1, 1] -> [B] distances."""
        device = next(self.network.parameters()).device
        a = area_resize(images.to(device).float(), LPIPS_SIZE)
        b = area_resize(references.to(device).float(), LPIPS_SIZE)
        return self.network(a, b).flatten()


def load_lpips(backbone_path: str | Path | None, device: str | torch.device = "cpu") -> Lpips:
    """LPIPS with the AlexNet trunk read from the local torchvision file `backbone_path`.

    The `lpips` package builds a random trunk (`pnet_rand=True`, no download) and loads its shipped
    linear heads; the trunk's conv layers are then filled from the file (keys `features.N.*`).
    """
    import lpips

    from editing.checkpoints import freeze, load_state_dict_file, require_file

    if backbone_path is None:
        raise FileNotFoundError(f"LPIPS needs the AlexNet weights file {LPIPS_BACKBONE_FILE}; no path given")
    path = require_file(backbone_path, "LPIPS AlexNet backbone")
    state = load_state_dict_file(path, "LPIPS AlexNet backbone")
    with warnings.catch_warnings():  # lpips passes torchvision's deprecated `pretrained=False`
        warnings.simplefilter("ignore", UserWarning)
        network = lpips.LPIPS(net="alex", version="0.1", pnet_rand=True, verbose=False)
    features = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    loaded = 0
    for block in (network.net.slice1, network.net.slice2, network.net.slice3, network.net.slice4,
                  network.net.slice5):
        for index, layer in block.named_children():
            own = layer.state_dict()
            if not own:
                continue
            layer.load_state_dict({name: features[f"{index}.{name}"] for name in own}, strict=True)
            loaded += 1
    if loaded != 5:
        raise ValueError(f"LPIPS backbone file {path} filled {loaded} of AlexNet's 5 conv layers")
    return Lpips(freeze(network, device))


class FidInception:
    """pytorch-fid's InceptionV3 pool features (2048-d) for images in [-1, 1]."""

    def __init__(self, network: torch.nn.Module):
        self.network = network

    @torch.no_grad()
    def features(self, images: torch.Tensor, batch_size: int = 16) -> np.ndarray:
        """[B, 3, H, W] in [-1, 1] -> [B, 2048] float64."""
        device = next(self.network.parameters()).device
        out = []
        for start in range(0, images.shape[0], batch_size):
            batch = (images[start:start + batch_size].to(device).float().clamp(-1, 1) + 1) / 2
            out.append(self.network(batch)[0].flatten(1).double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 2048))


def load_fid_inception(path: str | Path | None, device: str | torch.device = "cpu") -> FidInception:
    """pytorch-fid's InceptionV3 with its weights read from the local file `path` (never downloaded)."""
    from pytorch_fid import inception as fid_inception

    from editing.checkpoints import freeze, load_state_dict_file, require_file

    if path is None:
        raise FileNotFoundError(f"FID needs the Inception weights file {FID_INCEPTION_FILE}; no path given")
    path = require_file(path, "FID Inception")
    state = load_state_dict_file(path, "FID Inception")

    def from_local_file(url, *args, **kwargs):  # stands in for pytorch-fid's download
        return state

    with _patched(fid_inception, "load_state_dict_from_url", from_local_file):
        network = fid_inception.InceptionV3([fid_inception.InceptionV3.BLOCK_INDEX_BY_DIM[2048]])
    return FidInception(freeze(network, device))


@contextlib.contextmanager
def _patched(module, name: str, value):
    original = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, original)


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID between two feature sets [N, D] and [M, D] (each needs at least 2 rows)."""
    from pytorch_fid.fid_score import calculate_frechet_distance

    if len(features_a) < 2 or len(features_b) < 2:
        raise ValueError(f"FID needs at least 2 images per set, got {len(features_a)} and {len(features_b)}")
    mu_a, mu_b = features_a.mean(0), features_b.mean(0)
    sigma_a, sigma_b = np.cov(features_a, rowvar=False), np.cov(features_b, rowvar=False)
    with warnings.catch_warnings():  # fewer images than feature dimensions: a singular covariance
        warnings.simplefilter("ignore")
        return float(calculate_frechet_distance(mu_a, sigma_a, mu_b, sigma_b))
