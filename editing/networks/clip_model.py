"""CLIP from a local file (open_clip), with StyleCLIP-correct image preprocessing and cached text embeddings.

Images from the generator are [B, 3, H, W] in about [-1, 1]. `ClipScorer.preprocess` clamps them,
maps them to [0, 1], resizes them by exact area averaging to the model's input size (for a 1024 px
image this equals StyleCLIP's 7x nearest upsampling + AvgPool2d(32), without the 7168 px temporary),
and normalises with the CLIP mean and std. (StyleCLIP itself skipped the clamp, the [0, 1] mapping
and the normalisation, its issue #38.)

Weights: open_clip `ViT-B-32-quickgelu` from a `.safetensors` state dict (Hugging Face
`timm/vit_base_patch32_clip_224.openai`), OpenAI's TorchScript `ViT-B-32.pt`, or any open_clip
architecture described by a JSON config next to the weights (`<file stem>.json`).
"""
from __future__ import annotations

import json
import logging
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from editing.networks.checkpoints import (
    CheckpointError,
    freeze,
    is_torchscript_archive,
    load_state_dict_file,
    load_strict,
    require_file,
)

log = logging.getLogger(__name__)

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
TEXT_CACHE_SIZE = 4096
# Entries of OpenAI's TorchScript state dict that are not parameters of open_clip's CLIP.
_OPENAI_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")


@lru_cache(maxsize=32)
def _area_matrix(n_in: int, n_out: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    scale = n_in / n_out
    edges = torch.arange(n_out + 1, dtype=torch.float64) * scale
    left = torch.arange(n_in, dtype=torch.float64)
    overlap = torch.minimum(edges[1:, None], left[None] + 1) - torch.maximum(edges[:-1, None], left[None])
    return (overlap.clamp(min=0) / scale).to(device=device, dtype=dtype)


def area_resize(x: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Resize [..., H, W] -> [..., h, w] (`size` = h = w, or (h, w)) by exact area averaging.

    Each output pixel is the mean of the input over its footprint, partial pixels weighted by their
    covered fraction (a box filter). Separable (two small matrix products) and differentiable.
    """
    h, w = (size, size) if isinstance(size, int) else size
    if tuple(x.shape[-2:]) == (h, w):
        return x
    rows = _area_matrix(x.shape[-2], h, x.device, x.dtype)
    cols = _area_matrix(x.shape[-1], w, x.device, x.dtype)
    return rows @ x @ cols.T


class ClipScorer(nn.Module):
    """A CLIP model with image preprocessing, text tokenisation and an LRU cache of text embeddings.

    encode_image(img [B, 3, H, W] in [-1, 1]) -> [B, D]; encode_text(list of N str) -> [N, D];
    similarity(img, texts) -> [B, N] cosines. Embeddings are L2-normalised. Gradients flow through
    encode_image (for the CLIP loss); text embeddings are constants.
    """

    def __init__(self, model: nn.Module, tokenizer, image_size: int, embed_dim: int,
                 mean: tuple[float, ...] = OPENAI_MEAN, std: tuple[float, ...] = OPENAI_STD):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.image_size = image_size
        self.embed_dim = embed_dim
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self._text_cache: OrderedDict[str, torch.Tensor] = OrderedDict()

    def preprocess(self, img: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] in [-1, 1] -> normalised [B, 3, image_size, image_size] CLIP input."""
        if img.ndim != 4 or img.shape[1] != 3:
            raise ValueError(f"CLIP expects images [B, 3, H, W] in [-1, 1], got {list(img.shape)}")
        x = (img.clamp(-1, 1) + 1) / 2
        x = area_resize(x, self.image_size)
        return (x - self.mean) / self.std

    def encode_image(self, img: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(self.preprocess(img), normalize=True)

    @torch.no_grad()
    def encode_text(self, texts: list[str]) -> torch.Tensor:
        if isinstance(texts, str):
            raise TypeError("encode_text takes a list of strings, e.g. ['a smiling face']")
        device = self.mean.device
        missing = list(dict.fromkeys(t for t in texts if t not in self._text_cache))
        if missing:
            tokens = self.tokenizer(missing).to(device)
            for text, emb in zip(missing, self.model.encode_text(tokens, normalize=True)):
                self._text_cache[text] = emb
        for text in texts:
            self._text_cache.move_to_end(text)
        rows = [self._text_cache[t].to(device) for t in texts]
        while len(self._text_cache) > TEXT_CACHE_SIZE:
            self._text_cache.popitem(last=False)
        return torch.stack(rows) if rows else torch.empty(0, self.embed_dim, device=device)

    def similarity(self, img: torch.Tensor, texts: list[str]) -> torch.Tensor:
        """Cosine similarity [B, N] between each image and each text."""
        return self.encode_image(img) @ self.encode_text(texts).T

    def _apply(self, fn, recurse=True):
        self._text_cache.clear()  # moved or cast: recompute text embeddings on the new device/dtype
        return super()._apply(fn, recurse)


def read_clip_config(path: Path, model_name: str, config: dict | None) -> tuple[dict, dict]:
    """(open_clip model config, preprocessing config) for the weights at `path`.

    Priority: the `config` argument, then a JSON file next to the weights (`<stem>.json`, either a
    plain open_clip model config or `{"model_cfg": ..., "preprocess_cfg": ...}`), then open_clip's
    built-in config named `model_name`.
    """
    import open_clip

    source = "argument"
    if config is None:
        sidecar = path.with_suffix(".json")
        if sidecar.is_file():
            try:
                config = json.loads(sidecar.read_text())
            except json.JSONDecodeError as exc:
                raise CheckpointError(f"CLIP config {sidecar} is not valid JSON: {exc}") from exc
            source = str(sidecar)
    if config is None:
        config = open_clip.get_model_config(model_name)
        if config is None:
            raise ValueError(f"unknown open_clip model {model_name!r}; put its config in {path.with_suffix('.json')}")
        source = f"open_clip built-in {model_name}"
    preprocess = dict(config.get("preprocess_cfg", {}))
    config = dict(config.get("model_cfg", config))
    missing = [k for k in ("embed_dim", "vision_cfg", "text_cfg") if k not in config]
    if missing:
        raise CheckpointError(f"CLIP config from {source} lacks {missing}")
    log.debug("CLIP config for %s from %s", path, source)
    return config, preprocess


def load_clip(
    path: str | Path,
    model_name: str = "ViT-B-32-quickgelu",
    device: str | torch.device = "cpu",
    config: dict | None = None,
) -> ClipScorer:
    """Load open_clip weights from a local file into a ClipScorer (eval mode, frozen, fp32).

    Args:
        path: `.safetensors` state dict, OpenAI TorchScript `.pt`, or a torch pickle of a state dict.
        model_name: open_clip built-in architecture, used when no config is given or found next to the
            file. Keep the `-quickgelu` variant for OpenAI weights: plain `ViT-B-32` uses GELU and
            silently degrades them.
        config: optional open_clip model config dict (overrides the sidecar JSON and `model_name`).
    """
    import open_clip
    from open_clip.model import CLIP, CustomTextCLIP

    path = require_file(Path(path).expanduser(), "CLIP")
    model_cfg, preprocess = read_clip_config(path, model_name, config)
    if is_torchscript_archive(path) and not model_cfg.get("quick_gelu", False):
        log.warning("%s is an OpenAI TorchScript file: using QuickGELU as those weights were trained with it", path)
        model_cfg["quick_gelu"] = True
    custom_text = model_cfg.pop("custom_text", False) or "hf_model_name" in model_cfg["text_cfg"]
    model = (CustomTextCLIP if custom_text else CLIP)(**model_cfg)
    state = load_state_dict_file(path, "CLIP")
    # TorchScript archives also store non-persistent buffers (e.g. attn_mask) and OpenAI's metadata.
    transient = {name for name, _ in model.named_buffers()} - set(model.state_dict())
    for key in (*_OPENAI_EXTRA_KEYS, *transient):
        state.pop(key, None)
    if "logit_scale" in state:
        state["logit_scale"] = state["logit_scale"].reshape(model.logit_scale.shape)
    load_strict(model, {k: v.float() if v.is_floating_point() else v for k, v in state.items()}, path, "CLIP")
    text_cfg = model_cfg["text_cfg"]
    tokenizer = open_clip.SimpleTokenizer(context_length=text_cfg.get("context_length", 77))
    if text_cfg.get("vocab_size", tokenizer.vocab_size) != tokenizer.vocab_size:
        raise CheckpointError(
            f"{path}: text vocabulary of {text_cfg['vocab_size']} tokens, but open_clip's bundled BPE tokenizer "
            f"has {tokenizer.vocab_size}"
        )
    image_size = model_cfg["vision_cfg"].get("image_size", 224)
    if not isinstance(image_size, int):
        raise CheckpointError(f"{path}: only square CLIP inputs are supported, got image_size {image_size}")
    scorer = ClipScorer(model, tokenizer, image_size, int(model_cfg["embed_dim"]),
                        tuple(preprocess.get("mean", OPENAI_MEAN)), tuple(preprocess.get("std", OPENAI_STD)))
    return freeze(scorer, device)
