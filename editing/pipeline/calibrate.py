"""Fit the critic's thresholds (`editing.pipeline.critic`) on labelled face images and store them with a weight set.

    scores = value_scores(clip, images)               # [N, 23] CLIP cosine of each image with each value's text
    fitted = thresholds_from_labels(scores, present)  # present [N, 23] bool -> {value: Threshold}
    write_critic(weight_set, manifest_entry(fitted, "…"))

Labels for a folder of aligned faces (`calibrate_folder`, `i2edit calibrate`) come from CelebA-HQ's
`CelebAMask-HQ-attribute-anno.txt` (mapped to the ontology by `data_tools.celeba`; `angry` and `sad` have no
CelebA label, so they get no threshold) or from a JSON file `{"image.png": ["smiling", "black hair"], …}`
that lists every value each face shows. A value needs `min_images` faces with it and without it.

Where thresholds are stored: a weight set with a `manifest.json` carries them under its `"critic"` key; a
directory of the public files (no manifest) gets a `critic.json` holding the same entry.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from PIL import Image

from dialogue.ontology import VALUE_INDEX, VALUES, canonical_value
from editing.pipeline.critic import Threshold, calibrate_thresholds
from editing.pipeline.image_tensors import pil_to_tensor
from editing.pipeline.prompts import attribute_text

log = logging.getLogger(__name__)

CRITIC_FILE = "critic.json"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


@torch.no_grad()
def value_scores(clip, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """CLIP cosine of each image `[N, 3, H, W]` in [-1, 1] with each of the 23 values' texts: `[N, 23]`."""
    texts = clip.encode_text([attribute_text(v) for v in VALUES])  # [23, D]
    rows = []
    for start in range(0, len(images), batch_size):
        features = clip.encode_image(images[start:start + batch_size].to(texts.device))
        rows.append((features @ texts.to(features.dtype).T).float().cpu())
    return torch.cat(rows) if rows else torch.zeros(0, len(VALUES))


def thresholds_from_labels(scores: torch.Tensor, present: torch.Tensor, min_images: int = 5,
                           values: tuple[str, ...] = VALUES) -> dict[str, Threshold]:
    """Per-value thresholds from `scores` [N, 23] and `present` [N, 23] (bool: the face shows the value),
    for the `values` that are labelled."""
    columns = {v: VALUE_INDEX[v] for v in values}
    return calibrate_thresholds({
        v: (scores[present[:, i], i].tolist(), scores[~present[:, i], i].tolist()) for v, i in columns.items()
    }, min_images=min_images)


def read_labels(path: Path) -> tuple[dict[str, tuple[str, ...]], tuple[str, ...]]:
    """({image file name: values it shows}, the values the file labels at all) from a CelebA-HQ attribute file
    or a JSON mapping (module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no label file at {path}: give CelebAMask-HQ-attribute-anno.txt or a JSON "
                                f"file mapping image names to the values each face shows")
    if path.suffix.lower() == ".json":
        try:
            raw = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: expected an object mapping image names to lists of values")
        labels = {}
        for name, values in raw.items():
            if not isinstance(values, list):
                raise ValueError(f"{path}: the entry for {name!r} is not a list of values")
            try:
                labels[name] = tuple(canonical_value(v) for v in values)
            except ValueError as exc:
                raise ValueError(f"{path}: the entry for {name!r}: {exc}") from None
        return labels, VALUES
    from data_tools.celeba import read_celeba_attributes

    profiles = read_celeba_attributes(path)
    unlabelled = {"angry", "sad"}  # CelebA has only Smiling for expressions
    return {p.image: p.values for p in profiles}, tuple(v for v in VALUES if v not in unlabelled)


def load_folder(images_dir: Path, labels: dict[str, tuple[str, ...]], size: int,
                limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(images [N, 3, size, size] in [-1, 1], present [N, 23] bool, names) for the labelled images in
    `images_dir` (the label file's names, matched with or without their extension)."""
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise FileNotFoundError(f"no image folder at {images_dir}")
    by_stem = {Path(name).stem: values for name, values in labels.items()}
    files = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.stem in by_stem)
    if limit is not None:
        files = files[:limit]
    if not files:
        raise ValueError(f"none of the images in {images_dir} is named in the label file")
    tensors, present = [], torch.zeros(len(files), len(VALUES), dtype=torch.bool)
    for row, file in enumerate(files):
        with Image.open(file) as image:
            tensors.append(pil_to_tensor(image.convert("RGB"), size))
        for value in by_stem[file.stem]:
            present[row, VALUE_INDEX[value]] = True
    return torch.cat(tensors), present, [f.name for f in files]


def write_critic(weight_set, entry: dict) -> Path:
    """Store the critic `entry` with `weight_set` (`editing.weights.weight_set.WeightSet`): in its manifest when it came
    from one, else as `critic.json` in its directory. Returns the file written."""
    manifest = Path(weight_set.origin) if str(weight_set.origin).endswith(".json") else None
    if manifest is not None and manifest.is_file():
        data = json.loads(manifest.read_text())
        data["critic"] = entry
        manifest.write_text(json.dumps(data, indent=2) + "\n")
        return manifest
    target = Path(weight_set.root) / CRITIC_FILE
    target.write_text(json.dumps(entry, indent=2) + "\n")
    return target


def read_critic(weight_set) -> dict | None:
    """The critic entry stored with `weight_set` (manifest `"critic"`, else `critic.json`), or None."""
    manifest = Path(str(weight_set.origin))
    if manifest.suffix == ".json" and manifest.is_file():
        entry = json.loads(manifest.read_text()).get("critic")
        if entry is not None:
            return entry
    sidecar = Path(weight_set.root) / CRITIC_FILE
    return json.loads(sidecar.read_text()) if sidecar.is_file() else None
