"""Weights registry: the public checkpoint files, where they live, named sets, download and verification.

Weights directory: `--weights-dir` > `$I2EDIT_WEIGHTS_DIR` > `~/.cache/i2edit/weights`.

Named sets map roles (generator, e4e, identity, clip, lpips-backbone, fid-inception, facenet) to files:
- `ffhq`: the public files of the registry below, looked up by file name in the weights directory;
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

import hashlib
import importlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    from editing.optimizer import OptimizerSettings

log = logging.getLogger(__name__)

WEIGHTS_DIR_ENV = "I2EDIT_WEIGHTS_DIR"
MIRROR_ENV = "I2EDIT_WEIGHTS_MIRROR"
DEFAULT_WEIGHTS_DIR = Path("~/.cache/i2edit/weights")
DEMO_SET_DIR = Path(__file__).parent / "demo_set"
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "i2edit-weight-set"
ROLES = ("generator", "e4e", "identity", "clip", "lpips-backbone", "fid-inception", "facenet")
DEFAULT_CLIP_MODEL = "ViT-B-32-quickgelu"
EDIT_ROLES = ("generator", "e4e", "identity", "clip")  # what an edit needs (generator may come from e4e)


def _gdrive(file_id: str) -> tuple[str, str]:
    """(page a person opens, direct download URL) of a public Google Drive file."""
    return (f"https://drive.google.com/file/d/{file_id}/view",
            f"https://drive.usercontent.google.com/download?id={file_id}&export=download&confirm=t")


@dataclass(frozen=True)
class WeightRecord:
    """One public weights file.

    sha256/size_bytes are None where the publisher gives none (never guessed); `sha256` may be a prefix of
    the digest where that is all the publisher gives (torch.hub names files `<name>-<first 8 hex digits of
    the sha256>.pth` and checks that prefix); `sources` are the public pages or URLs that publish the file;
    `download_url` is what `download` fetches.
    """

    name: str
    file_name: str
    role: str
    sources: tuple[str, ...]
    download_url: str
    size_bytes: int | None = None
    sha256: str | None = None
    note: str = ""

    @property
    def loader(self) -> str | None:
        """Dotted name of the function that loads this file, or None where another library reads it."""
        return LOADERS.get(self.role)


LOADERS = {
    "generator": "editing.generator.load_generator",
    "e4e": "editing.e4e.load_e4e",
    "identity": "editing.identity.load_identity",
    "facenet": "editing.identity.load_identity",
    "clip": "editing.clip_model.load_clip",
}

_SG2_PAGE, _SG2_URL = _gdrive("1EM87UquaoQmk17Q8d5kYIAHqu0dkYqdT")
_E4E_PAGE, _E4E_URL = _gdrive("1cUv_reLE6k3604or78EranS7XzuVMWeO")
_IRSE_PAGE, _IRSE_URL = _gdrive("1KW7bjndL3QG3sxBbZxreGHigcCCpsDgn")
_OPENAI_B32_SHA = "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af"
_HF_B32 = "https://huggingface.co/timm/vit_base_patch32_clip_224.openai/resolve/main/open_clip_model.safetensors"

REGISTRY: dict[str, WeightRecord] = {
    r.name: r
    for r in (
        WeightRecord(
            "stylegan2-ffhq-config-f", "stylegan2-ffhq-config-f.pt", "generator",
            (_SG2_PAGE, "https://github.com/rosinality/stylegan2-pytorch",
             "https://github.com/omertov/encoder4editing#pretrained-models"),
            _SG2_URL,
            note="rosinality's conversion of NVIDIA's FFHQ config-f (1024 px); shared on Google Drive by e4e/StyleCLIP",
        ),
        WeightRecord(
            "e4e-ffhq-encode", "e4e_ffhq_encode.pt", "e4e",
            (_E4E_PAGE, "https://github.com/omertov/encoder4editing#pretrained-models"),
            _E4E_URL,
            note="e4e FFHQ encoder with its StyleGAN2 decoder (Google Drive)",
        ),
        WeightRecord(
            "ir-se50", "model_ir_se50.pth", "identity",
            (_IRSE_PAGE, "https://github.com/TreB1eN/InsightFace_Pytorch",
             "https://github.com/omertov/encoder4editing#pretrained-models"),
            _IRSE_URL,
            note="ArcFace IR-SE50 from TreB1eN/InsightFace_Pytorch, as linked by e4e/pSp (Google Drive)",
        ),
        WeightRecord(
            "clip-vit-b-32", "clip-vit-b-32-openai.safetensors", "clip",
            ("https://huggingface.co/timm/vit_base_patch32_clip_224.openai", _HF_B32),
            _HF_B32,
            note="OpenAI CLIP ViT-B/32 as an open_clip state dict (Hugging Face open_clip_model.safetensors, renamed)",
        ),
        WeightRecord(
            "clip-vit-b-32-torchscript", "ViT-B-32.pt", "clip",
            ("https://github.com/openai/CLIP",
             f"https://openaipublic.azureedge.net/clip/models/{_OPENAI_B32_SHA}/ViT-B-32.pt"),
            f"https://openaipublic.azureedge.net/clip/models/{_OPENAI_B32_SHA}/ViT-B-32.pt",
            sha256=_OPENAI_B32_SHA,
            note="OpenAI's own TorchScript file (its URL carries the sha256 that OpenAI's clip package checks)",
        ),
        WeightRecord(
            "lpips-alexnet", "alexnet-owt-7be5be79.pth", "lpips-backbone",
            ("https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",),
            "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
            sha256="7be5be79",
            note="torchvision AlexNet, the LPIPS 'alex' trunk; torchvision lists it as about 233 MB; the sha256 "
                 "prefix is torch.hub's, from the file name",
        ),
        WeightRecord(
            "fid-inception", "pt_inception-2015-12-05-6726825d.pth", "fid-inception",
            ("https://github.com/mseitzer/pytorch-fid/releases/tag/fid_weights",),
            "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
            sha256="6726825d",
            note="pytorch-fid's port of the TF FID Inception network; the sha256 prefix is torch.hub's, from the "
                 "file name",
        ),
        WeightRecord(
            "facenet-vggface2", "20180402-114759-vggface2.pt", "facenet",
            ("https://github.com/timesler/facenet-pytorch/releases/tag/v2.2.9",),
            "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/20180402-114759-vggface2.pt",
            note="facenet-pytorch InceptionResnetV1 (VGGFace2), optional alternative identity network",
        ),
    )
}

# Role -> registry names of the ffhq set, in order of preference.
FFHQ_SET: dict[str, tuple[str, ...]] = {
    "generator": ("stylegan2-ffhq-config-f",),
    "e4e": ("e4e-ffhq-encode",),
    "identity": ("ir-se50",),
    "clip": ("clip-vit-b-32", "clip-vit-b-32-torchscript"),
    "lpips-backbone": ("lpips-alexnet",),
    "fid-inception": ("fid-inception",),
    "facenet": ("facenet-vggface2",),
}


def weights_dir(cli_value: str | Path | None = None) -> Path:
    """The weights directory: `cli_value` > $I2EDIT_WEIGHTS_DIR > ~/.cache/i2edit/weights."""
    return Path(cli_value or os.environ.get(WEIGHTS_DIR_ENV) or DEFAULT_WEIGHTS_DIR).expanduser()


def weights_dir_origin(cli_value: str | Path | None = None) -> str:
    """Where `weights_dir` took its value from, for messages."""
    if cli_value:
        return "--weights-dir"
    return f"${WEIGHTS_DIR_ENV}" if os.environ.get(WEIGHTS_DIR_ENV) else "default"


def get_record(name: str) -> WeightRecord:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"no weights named {name!r}; known: {', '.join(REGISTRY)}") from None


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class FileCheck:
    """Outcome of checking one file: status is 'ok', 'unverified' (no published checksum), 'mismatch' or 'missing'."""

    path: Path
    status: str
    detail: str
    sha256: str | None = None
    size: int | None = None


def check_file(path: Path, sha256: str | None = None, size: int | None = None) -> FileCheck:
    """Compare a file's size and sha256 with the expected values (those that are known). `sha256` may be a
    prefix of the digest (8 or more hex digits), as torch.hub file names publish it."""
    if not path.is_file():
        return FileCheck(path, "missing", "not found")
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        return FileCheck(path, "mismatch", f"size {actual_size} bytes, expected {size}", size=actual_size)
    digest = sha256_of(path)
    if sha256 is None:
        return FileCheck(path, "unverified", f"no published checksum; sha256 {digest}", digest, actual_size)
    expected = sha256.lower()
    if len(expected) < 8 or not digest.startswith(expected):
        return FileCheck(path, "mismatch", f"sha256 {digest}, expected {sha256}", digest, actual_size)
    if len(expected) < len(digest):
        return FileCheck(path, "ok", f"sha256 {digest} starts with the published prefix {expected}", digest,
                         actual_size)
    return FileCheck(path, "ok", "sha256 matches", digest, actual_size)


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

    `optimizer`: `editing.optimizer.OptimizerSettings` fields that differ from the paper's defaults;
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
        from editing.optimizer import OptimizerSettings

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
