"""Registry of the public weights files: what each is, where it is published, where it lives here, and
how to check a copy.

Weights directory: `--weights-dir` > `$I2EDIT_WEIGHTS_DIR` > `~/.cache/i2edit/weights`. `download` fetches a
record's file (from `$I2EDIT_WEIGHTS_MIRROR` when set); `check_file` compares a copy with the published size
and sha256. Named sets of these files are in `editing.weights.weight_set`.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

WEIGHTS_DIR_ENV = "I2EDIT_WEIGHTS_DIR"
MIRROR_ENV = "I2EDIT_WEIGHTS_MIRROR"
DEFAULT_WEIGHTS_DIR = Path("~/.cache/i2edit/weights")


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
    "generator": "editing.networks.generator.load_generator",
    "e4e": "editing.networks.e4e.load_e4e",
    "identity": "editing.networks.identity.load_identity",
    "facenet": "editing.networks.identity.load_identity",
    "clip": "editing.networks.clip_model.load_clip",
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
