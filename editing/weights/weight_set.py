"""Weight sets: which file plays each role (generator, e4e, identity, clip, ...), read from a manifest or
looked up in the weights directory, and how a set edits.

Named sets map roles (generator, e4e, identity, clip, lpips-backbone, fid-inception, facenet) to files:
- `ffhq`: the public files of `editing.weights.registry`, looked up by file name in the weights directory;
- `demo`: small networks shipped in this repository under `editing/demo_set/` (described by a manifest);
- a directory with a `manifest.json` (e.g. the output of `i2edit weights make-fixtures`), or a
  directory holding the public file names.

Manifest format (`manifest.json`, paths relative to it):

    {"format": "i2edit-weight-set", "version": 1, "name": "demo", "description": "...",
     "files": {"generator": {"file": "generator.pt", "sha256": "<64 hex>", "size": 123},
               "e4e": {...}, "identity": {...},
               "clip": {"file": "clip.safetensors", "sha256": ..., "size": ...,
                        "model_config": {<open_clip model config>}}},
     "editor": {"optimizer": {"steps": 60, "lr": 0.05, ...}, "align_faces": false, "real_photos": false}}

`sha256` and `size` are optional (checked when given). For the clip role, `model_config` (an open_clip
config dict) or `model_name` (an open_clip built-in) selects the architecture; without either, a
`<stem>.json` next to the weights or `ViT-B-32-quickgelu` is used. `editor` (optional) is how this set
edits when nothing else is asked for (`EditorDefaults`); without it, the paper's settings on aligned real photos.
"""
from __future__ import annotations

import importlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from editing.weights.registry import (
    FFHQ_SET, LOADERS, REGISTRY, WEIGHTS_DIR_ENV, FileCheck, WeightRecord, check_file, sha256_of, weights_dir,
    weights_dir_origin,
)

if TYPE_CHECKING:
    from editing.pipeline.optimizer import OptimizerSettings

log = logging.getLogger(__name__)

DEMO_SET_DIR = Path(__file__).parents[1] / "demo_set"
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "i2edit-weight-set"
ROLES = ("generator", "e4e", "identity", "clip", "lpips-backbone", "fid-inception", "facenet")
DEFAULT_CLIP_MODEL = "ViT-B-32-quickgelu"
EDIT_ROLES = ("generator", "e4e", "identity", "clip")  # what an edit needs (generator may come from e4e)


@dataclass
class WeightFile:
    """One role of a weight set: the file path, what it should hash to, and (clip) the architecture."""

    role: str
    path: Path
    sha256: str | None = None
    size: int | None = None
    record: WeightRecord | None = None
    model_name: str | None = None
    model_config: dict | None = None

    def check(self) -> FileCheck:
        return check_file(self.path, self.sha256, self.size)


@dataclass(frozen=True)
class EditorDefaults:
    """How a weight set edits unless a caller says otherwise (the manifest's optional `editor` entry).

    `optimizer`: `editing.pipeline.optimizer.OptimizerSettings` fields that differ from the paper's defaults;
    `align_faces`: whether a photo is aligned to the FFHQ crop before inversion (False for a set whose faces
    are rendered aligned); `real_photos`: False for a set that can edit only its own sample faces.
    """

    optimizer: dict[str, Any] = field(default_factory=dict)
    align_faces: bool = True
    real_photos: bool = True

    @classmethod
    def from_manifest(cls, entry: Any, path: Path) -> "EditorDefaults":
        """Read the `editor` entry of manifest `path` (None: the defaults); ValueError naming what is wrong."""
        if entry is None:
            return cls()
        if not isinstance(entry, dict) or set(entry) - {"optimizer", "align_faces", "real_photos"}:
            raise ValueError(f"{path}: \"editor\" must be an object with \"optimizer\" (an object), "
                             f"\"align_faces\" and \"real_photos\" (true/false); got {entry!r}")
        optimizer = entry.get("optimizer", {})
        flags = {k: entry[k] for k in ("align_faces", "real_photos") if k in entry}
        if not isinstance(optimizer, dict) or not all(isinstance(v, bool) for v in flags.values()):
            raise ValueError(f"{path}: \"editor\" needs an object for \"optimizer\" and true/false for "
                             f"\"align_faces\" and \"real_photos\"; got {entry!r}")
        return cls(optimizer=dict(optimizer), **flags)

    def to_manifest(self) -> dict[str, Any]:
        return {"optimizer": dict(self.optimizer), "align_faces": self.align_faces, "real_photos": self.real_photos}


@dataclass
class WeightSet:
    """Paths per role for one set of networks (`resolve_set` builds it), and how to edit with them."""

    name: str
    root: Path
    files: dict[str, WeightFile] = field(default_factory=dict)
    origin: str = ""
    editor: EditorDefaults = field(default_factory=EditorDefaults)

    def optimizer_settings(self, **overrides: Any) -> "OptimizerSettings":
        """The paper's optimiser settings, updated by this set's `editor.optimizer`, then by `overrides`.
        Raises ValueError naming the set when its settings do not fit `OptimizerSettings`."""
        from editing.pipeline.optimizer import OptimizerSettings

        try:
            return OptimizerSettings(**{**self.editor.optimizer, **overrides})
        except (TypeError, ValueError) as exc:
            raise ValueError(f"weight set {self.name!r} ({self.origin}): editor settings "
                             f"{self.editor.optimizer} do not fit the optimiser: {exc}") from exc

    def has(self, role: str) -> bool:
        entry = self.files.get(role)
        return entry is not None and entry.path.is_file()

    def path(self, role: str) -> Path:
        """The file for `role`; raises FileNotFoundError saying where it looked and how to get it.

        A missing generator falls back to the e4e checkpoint, whose decoder is a full generator.
        """
        if role == "generator" and not self.has("generator") and self.has("e4e"):
            log.info("no separate generator in weight set %s; using the decoder of %s", self.name, self.files["e4e"].path)
            return self.files["e4e"].path
        if self.has(role):
            return self.files[role].path
        raise FileNotFoundError(self._missing_message(role))

    def _missing_message(self, role: str) -> str:
        entry = self.files.get(role)
        if entry is None:
            return f"weight set {self.name!r} ({self.root}) has no {role} file"
        where = f"{entry.path} does not exist"
        if entry.record is not None:
            return (f"{role} weights missing: {where} (weights dir from {self.origin}). Get them with "
                    f"`i2edit weights download {entry.record.name}` (source: {entry.record.sources[0]}), "
                    f"or set --weights-dir / ${WEIGHTS_DIR_ENV} to the directory that holds {entry.record.file_name}")
        return f"{role} weights missing from weight set {self.name!r}: {where}"

    def missing(self, roles: Iterable[str] = EDIT_ROLES) -> list[str]:
        """Roles among `roles` whose file is absent (the generator counts as present when e4e is)."""
        return [r for r in roles if not (self.has(r) or (r == "generator" and self.has("e4e")))]

    def load(self, role: str, device: str = "cpu"):
        """Load the network of `role` with its loader (generator, e4e, identity, facenet, clip)."""
        path = self.path(role)
        if role not in LOADERS:
            raise ValueError(f"no loader for role {role!r} here; other libraries read {path} (use WeightSet.path)")
        module_name, func_name = LOADERS[role].rsplit(".", 1)
        loader = getattr(importlib.import_module(module_name), func_name)
        if role == "clip":
            entry = self.files["clip"]
            return loader(path, entry.model_name or DEFAULT_CLIP_MODEL, device, entry.model_config)
        return loader(path, device)


def ffhq_set(directory: str | Path | None = None) -> WeightSet:
    """The public files, looked up by file name in `directory` (default: `weights_dir()`)."""
    root = weights_dir(directory)
    files = {}
    for role, names in FFHQ_SET.items():
        candidates = [WeightFile(role, root / REGISTRY[n].file_name, REGISTRY[n].sha256,
                                 REGISTRY[n].size_bytes, REGISTRY[n]) for n in names]
        files[role] = next((c for c in candidates if c.path.is_file()), candidates[0])
    return WeightSet("ffhq", root, files, weights_dir_origin(directory))


def read_manifest(path: Path) -> WeightSet:
    """A WeightSet from a `manifest.json` (format in the module docstring)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read weight-set manifest {path}: {exc}") from exc
    if data.get("format") != MANIFEST_FORMAT or not isinstance(data.get("files"), dict):
        raise ValueError(f"{path} is not a weight-set manifest (needs \"format\": \"{MANIFEST_FORMAT}\" and \"files\")")
    files = {}
    for role, entry in data["files"].items():
        if role not in ROLES:
            raise ValueError(f"{path}: unknown role {role!r}; roles are {', '.join(ROLES)}")
        if "file" not in entry:
            raise ValueError(f"{path}: the {role} entry has no \"file\"")
        files[role] = WeightFile(role, path.parent / entry["file"], entry.get("sha256"), entry.get("size"),
                                 model_name=entry.get("model_name"), model_config=entry.get("model_config"))
    return WeightSet(data.get("name", path.parent.name), path.parent, files, str(path),
                     EditorDefaults.from_manifest(data.get("editor"), path))


def write_manifest(directory: Path, name: str, entries: dict[str, dict], description: str = "",
                   editor: EditorDefaults | None = None) -> Path:
    """Write `directory/manifest.json` for files already in `directory`, recording their sha256 and size.

    `entries` maps role -> {"file": name relative to directory, optional "model_config"/"model_name"};
    `editor`: how the set edits, when not the paper's way on aligned real photos.
    """
    files = {}
    for role, entry in entries.items():
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
        target = directory / entry["file"]
        files[role] = {**entry, "sha256": sha256_of(target), "size": target.stat().st_size}
    path = directory / MANIFEST_NAME
    manifest = {"format": MANIFEST_FORMAT, "version": 1, "name": name, "description": description, "files": files}
    if editor is not None:
        manifest["editor"] = editor.to_manifest()
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path


def resolve_set(name_or_dir: str | Path, weights_dir_value: str | Path | None = None) -> WeightSet:
    """Paths per role for `ffhq`, `demo`, a directory (with a manifest, or with the public file names)
    or a manifest file. `weights_dir_value` is the --weights-dir value for the ffhq set."""
    value = str(name_or_dir)
    if value == "ffhq":
        return ffhq_set(weights_dir_value)
    if value == "demo":
        manifest = DEMO_SET_DIR / MANIFEST_NAME
        if not manifest.is_file():
            raise FileNotFoundError(f"the demo weight set is not in this checkout: {manifest} does not exist")
        return read_manifest(manifest)
    path = Path(value).expanduser()
    if path.is_file():
        return read_manifest(path)
    if (path / MANIFEST_NAME).is_file():
        return read_manifest(path / MANIFEST_NAME)
    if path.is_dir():
        return ffhq_set(path)
    raise FileNotFoundError(
        f"weight set {value!r} is neither 'ffhq', 'demo', a directory nor a manifest file"
    )
