"""What the server knows about editing: whether it can edit, with which weights, on which photos.

`EditingSetup` is built once per process (`probe_editing`) and hands each worker its own editor through
`factory()` (one model instance per worker). Without weights the server runs dialogue-only and `detail` says why.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from PIL import Image

from dialogue.device import resolve_device
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
             steps: int | None = None, progress: Callable | None = None, cancel: Any = None,
             effort: int = 0) -> EditResultLike: ...


@dataclass
class EditingSetup:
    """How to build editors and what to tell users.

    `factory` builds one editor (None: dialogue-only). `weights_id` identifies the weights by the content of the
    files an inversion depends on, not their path (cached inversions are valid only for it, on any machine).
    `real_photos` is False for weight sets that can edit only their own sample faces, and
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


def probe_editing(weights: str, device: str, align: str = "auto", preview_every: int = 10) -> EditingSetup:
    """Find the weight set `weights` (`auto`: `ffhq`, then `demo`; `none`: off) and say how to build editors.

    `align`: `on`/`off` face alignment, `auto` = the weight set's own setting (its manifest's `editor` entry;
    on unless the set says its faces come aligned).
    Never raises: anything missing turns the server dialogue-only, with the reason for the page.
    """
    if weights.strip().lower() in ("none", "off", ""):
        return dialogue_only("editing is switched off (I2EDIT_WEIGHTS=none).")
    try:
        from editing.weights.weight_set import EDIT_ROLES, resolve_set
    except ImportError as exc:
        return dialogue_only(f"the editing code is not available ({exc}).")
    names = ("ffhq", "demo") if weights == "auto" else (weights,)
    problems = []
    for name in names:
        try:
            weight_set = resolve_set(name)
        except (OSError, ValueError) as exc:  # not in this checkout, or a bad manifest
            problems.append(f"{name}: {exc}")
            continue
        missing = weight_set.missing(EDIT_ROLES)
        if missing:
            problems.append(f"{weight_set.name}: {', '.join(missing)} missing in {weight_set.root}")
            continue
        try:
            return _setup_for(weight_set, str(resolve_device(device)), align, preview_every)
        except ValueError as exc:  # the manifest's editor settings do not fit the optimiser
            problems.append(str(exc))
    return dialogue_only("no complete editing weight set was found (" + "; ".join(problems) + "). "
                         "`i2edit weights list` shows what is missing and how to get it.")


def inversion_weights_id(weight_set, align_faces: bool) -> str:
    """`sha256:<digest of the e4e and generator files' SHA-256s>:align=<bool>`: equal on machines that hold the
    same files at other paths, so they share cached inversions (hashing the FFHQ files takes a few seconds)."""
    from editing.weights.registry import sha256_of

    digest = hashlib.sha256()
    for role in ("e4e", "generator"):
        path = Path(weight_set.path(role)).resolve()
        stat = path.stat()
        digest.update(f"{role}={_file_sha256(path, stat.st_size, stat.st_mtime_ns, sha256_of)};".encode())
    return f"sha256:{digest.hexdigest()[:32]}:align={align_faces}"


@functools.lru_cache(maxsize=32)
def _file_sha256(path: Path, size: int, mtime_ns: int, sha256_of: Callable[[Path], str]) -> str:
    """A file's SHA-256, computed once per process for each (path, size, modification time)."""
    return sha256_of(path)


def _setup_for(weight_set, device: str, align: str, preview_every: int) -> EditingSetup:
    from editing.pipeline.editor import Editor, Inversion

    defaults = weight_set.editor  # what differs between weight sets comes with the set (its manifest)
    align_faces = {"on": True, "off": False}.get(align, defaults.align_faces)
    settings = weight_set.optimizer_settings(preview_every=preview_every)  # checked here, once

    def factory() -> Editor:
        return Editor.from_weights(weight_set, device, settings=dataclasses.replace(settings),
                                   align_faces=align_faces)

    note = None
    if not defaults.real_photos:
        note = (f"The {weight_set.name} weight set edits only its own sample faces; real photos need the FFHQ "
                "weights (`i2edit weights list` shows them, `i2edit weights download` fetches them).")
    return EditingSetup(
        factory=factory,
        weights_id=inversion_weights_id(weight_set, align_faces),
        detail=f"Editing with the {weight_set.name} weights on {device}.",
        samples=find_samples(weight_set.root / "samples"),
        real_photos=defaults.real_photos,
        real_photo_note=note,
        dump_inversion=Inversion.to_bytes,
        load_inversion=Inversion.from_bytes,
    )
