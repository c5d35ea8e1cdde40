"""What the server knows about editing: whether it can edit, with which weights, on which photos.

`EditingSetup` is built once per process (`probe_editing`) and hands each worker its own editor through
`factory()` (one model instance per worker). Without weights the server runs dialogue-only and `detail` says why.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from PIL import Image

from dialogue.ontology import BeliefState

log = logging.getLogger(__name__)

SAMPLE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


class EditResultLike(Protocol):
    image: Image.Image
    metrics: dict[str, Any]


class EditorLike(Protocol):
    """The part of `editing.Editor` the worker uses."""

    def invert(self, photo: Image.Image) -> Any: ...

    def edit(self, inversion: Any, state: BeliefState, mode: str = "multi", previous: Any = None,
             steps: int | None = None, progress: Callable | None = None, cancel: Any = None) -> EditResultLike: ...


@dataclass
class EditingSetup:
    """How to build editors and what to tell users.

    `factory` builds one editor (None: dialogue-only). `weights_id` names the weight set (cached inversions are
    valid only for it). `real_photos` is False for weight sets that can edit only their own sample faces, and
    `real_photo_note` then says what uploads need. `dump_inversion`/`load_inversion` (de)serialise an inversion
    for the cache.
    """

    factory: Callable[[], EditorLike] | None
    weights_id: str
    detail: str
    samples: dict[str, Path] = field(default_factory=dict)
    real_photos: bool = True
    real_photo_note: str | None = None
    dump_inversion: Callable[[Any], bytes] | None = None
    load_inversion: Callable[[bytes], Any] | None = None

    @property
    def available(self) -> bool:
        return self.factory is not None


def dialogue_only(reason: str) -> EditingSetup:
    return EditingSetup(factory=None, weights_id="", detail=f"Dialogue-only mode: {reason}")


def find_samples(folder: Path | None) -> dict[str, Path]:
    """Sample photos in `folder`, by file stem."""
    if folder is None or not Path(folder).is_dir():
        return {}
    return {p.stem: p for p in sorted(Path(folder).iterdir()) if p.suffix.lower() in SAMPLE_SUFFIXES}


def resolve_device(device: str) -> str:
    """`auto` -> `cuda` when a GPU is visible, else `cpu`; anything else unchanged."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def probe_editing(weights: str, device: str) -> EditingSetup:
    """Find the weight set `weights` (`auto`: `ffhq`, then `demo`; `none`: off) and say how to build editors.

    Never raises: anything missing turns the server dialogue-only, with the reason for the page.
    """
    if weights.strip().lower() in ("none", "off", ""):
        return dialogue_only("editing is switched off (I2EDIT_WEIGHTS=none).")
    try:
        from editing.editor import Editor, Inversion
        from editing.weights import resolve_set
    except ImportError as exc:
        return dialogue_only(f"the editing code is not available yet ({exc}).")
    names = ("ffhq", "demo") if weights == "auto" else (weights,)
    problems = []
    for name in names:
        try:
            weight_set = resolve_set(name)
        except Exception as exc:  # missing or damaged files: try the next set, then explain
            problems.append(f"{name}: {exc}")
            continue
        device = resolve_device(device)
        set_name = str(getattr(weight_set, "name", name))
        real_photos = bool(getattr(weight_set, "real_photos", set_name != "demo"))
        return EditingSetup(
            factory=lambda: Editor.from_weights(weight_set, device),
            weights_id=f"{set_name}:{getattr(weight_set, 'root', name)}",
            detail=f"Editing with the {set_name} weights on {device}.",
            samples=find_samples(getattr(weight_set, "samples_dir", None)),
            real_photos=real_photos,
            real_photo_note=None if real_photos else (
                f"The {set_name} weight set edits only its sample faces: pick a sample. Real photos need the "
                "FFHQ set (see `i2edit weights list` and `i2edit weights download`)."),
            dump_inversion=lambda inversion: inversion.to_bytes(),
            load_inversion=Inversion.from_bytes,
        )
    return dialogue_only("no editing weights were found (" + "; ".join(problems) + "). "
                         "See `i2edit weights list` for what is missing.")
