"""Editing metrics: AvgRel/MinRel (paper eq. 1-2), identity similarity, LPIPS and FID.

- Relevance: cosine between the CLIP image embedding of the edited image and the CLIP text embedding
  of each requested value's text (`editing.pipeline.prompts.attribute_text`); AvgRel is the mean over the
  requested values, MinRel the minimum.
- Identity: cosine between ArcFace embeddings of the edited image and of the original aligned photo.
- LPIPS: the `lpips` package's network (AlexNet trunk, its shipped v0.1 linear heads), edited vs original,
  both area-resized to 256 px. The trunk comes from a local torchvision file (`alexnet-owt-7be5be79.pth`).
- FID: pytorch-fid's own InceptionV3 (2048-d pool features, its own resize to 299), between the set of edited
  images and the set of originals. pytorch-fid reads its weights through torch hub's cache, so the local
  `pt_inception-2015-12-05-6726825d.pth` is placed there (a private cache directory, for the load only).

Nothing is downloaded, and each file is read by `editing.networks.checkpoints`' safe loader first (a clear error for
a bad file; no pickled code runs).

LPIPS and FID are optional: `load_lpips` / `load_fid_inception` raise FileNotFoundError naming the
file when it is absent, and callers report the metric as skipped with that reason.
"""
from __future__ import annotations

import contextlib
import logging
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dialogue.ontology import BeliefState
from editing.networks.clip_model import area_resize
from editing.pipeline.prompts import attribute_texts

log = logging.getLogger(__name__)

LPIPS_SIZE = 256
_HUB_DIR_LOCK = threading.Lock()  # torch hub's cache directory is one setting per process
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

    `clip` is an `editing.networks.clip_model.ClipScorer`.
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
    """LPIPS, the `lpips` package's network, with its AlexNet trunk read from the local torchvision file.

    The package fetches a trained trunk through torchvision, which wants the whole AlexNet file (classifier
    included) in torch hub's cache; LPIPS uses only the conv trunk. So the network is built with a random trunk
    (`pnet_rand=True`, nothing downloaded) and the file's `features.N.*` entries load into it strictly (the
    package keeps torchvision's layer indices `N` inside its five slices).
    """
    import lpips

    from editing.networks.checkpoints import freeze, load_state_dict_file, load_strict, require_file

    if backbone_path is None:
        raise FileNotFoundError(f"LPIPS needs the AlexNet weights file {LPIPS_BACKBONE_FILE}; no path given")
    what = "LPIPS AlexNet backbone"
    path = require_file(backbone_path, what)
    state = load_state_dict_file(path, what)
    with warnings.catch_warnings():  # lpips passes torchvision's deprecated `pretrained=False`
        warnings.simplefilter("ignore", UserWarning)
        network = lpips.LPIPS(net="alex", version="0.1", pnet_rand=True, verbose=False)
    slice_of = {index: name for name, block in network.net.named_children() for index, _ in block.named_children()}
    trunk = {}  # features.3.weight -> slice2.3.weight
    for key, value in state.items():
        index = key.split(".")[1] if key.startswith("features.") else None
        if index in slice_of:
            trunk[f"{slice_of[index]}.{key[len('features.'):]}"] = value
    load_strict(network.net, trunk, path, what)
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
    """pytorch-fid's own InceptionV3, its weights read from the local file `path` (never downloaded).

    pytorch-fid loads `FID_WEIGHTS_URL` through torch hub, which reads the file from its cache when it is
    there: the file is placed in a private cache for the load (`torch_hub_file`).
    """
    from pytorch_fid import inception as fid_inception

    from editing.networks.checkpoints import CheckpointError, freeze, load_state_dict_file, require_file

    if path is None:
        raise FileNotFoundError(f"FID needs the Inception weights file {FID_INCEPTION_FILE}; no path given")
    path = require_file(path, "FID Inception")
    load_state_dict_file(path, "FID Inception")  # tensors only, or a clear error; torch hub unpickles in full
    try:
        with torch_hub_file(fid_inception.FID_WEIGHTS_URL, path):
            network = fid_inception.InceptionV3([fid_inception.InceptionV3.BLOCK_INDEX_BY_DIM[2048]])
    except RuntimeError as exc:  # load_state_dict: missing, unexpected or mismatched weights
        detail = str(exc) if len(str(exc)) < 400 else str(exc)[:400] + " ..."
        raise CheckpointError(f"FID Inception file {path} does not fit pytorch-fid's network: {detail}") from exc
    return FidInception(freeze(network, device))


@contextlib.contextmanager
def torch_hub_file(url: str, path: Path):
    """For the duration, torch hub's cache is a temporary directory in which the file that `url` names is a link
    to the local `path`: `torch.hub.load_state_dict_from_url(url)` (what libraries call) reads `path` and
    downloads nothing. The previous cache directory is restored afterwards."""
    name = url.rsplit("/", 1)[-1]
    with _HUB_DIR_LOCK, tempfile.TemporaryDirectory(prefix="i2edit-hub-") as hub:
        (Path(hub) / "checkpoints").mkdir()
        (Path(hub) / "checkpoints" / name).symlink_to(Path(path).resolve())
        previous = torch.hub.get_dir()
        torch.hub.set_dir(hub)
        try:
            yield
        finally:
            torch.hub.set_dir(previous)


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
