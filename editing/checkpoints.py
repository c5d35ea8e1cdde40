"""Reading checkpoint files: clear errors naming the file, `weights_only` handling, strict loading.

Every loader in `editing` goes through these helpers so that a missing, truncated or mismatched file
always produces a message that names the file and says what to do.
"""
from __future__ import annotations

import logging
import pickle
import zipfile
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import nn

log = logging.getLogger(__name__)

_HOW_TO_FIX = (
    "download it again (`i2edit weights download`), check it with `i2edit weights verify`, "
    "or write test weights with `i2edit weights make-fixtures --out DIR`"
)


class CheckpointError(RuntimeError):
    """A checkpoint file exists but cannot be read, or does not hold what its loader expects."""


def require_file(path: str | Path, what: str = "checkpoint") -> Path:
    """Return `path` as a Path, or raise FileNotFoundError naming it and what it should hold."""
    path = Path(path).expanduser()
    if not path.is_file():
        where = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise FileNotFoundError(f"{what} file {path} {where}; {_HOW_TO_FIX}")
    return path


def is_torchscript_archive(path: Path) -> bool:
    """True when `path` is a TorchScript zip archive (e.g. OpenAI's CLIP `.pt` files)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") for name in archive.namelist())


def load_torch_file(path: str | Path, what: str = "checkpoint", allow_pickle: bool = True) -> Any:
    """`torch.load` a local file onto the CPU.

    Tries `weights_only=True` first. The public StyleGAN2/e4e checkpoints were pickled by older code and
    may hold plain Python objects (the e4e `opts`); if the safe loader refuses the file and
    `allow_pickle` is true, it is read again with `weights_only=False` (only do this with files from
    a source you trust: a pickle can run code). Unreadable files raise CheckpointError naming the file.
    """
    path = require_file(path, what)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" not in str(exc) and "Weights only load failed" not in str(exc):
            raise CheckpointError(f"cannot read {what} file {path}: {exc}; {_HOW_TO_FIX}") from exc
        if not allow_pickle:
            raise CheckpointError(
                f"{what} file {path} holds Python objects that the safe loader refuses; "
                "load it with allow_pickle=True only if you trust its source"
            ) from exc
        log.warning("%s holds Python objects beyond tensors; loading it with weights_only=False", path)
    except Exception as exc:  # truncated zip, not a torch file, ...
        raise CheckpointError(f"cannot read {what} file {path}: {exc}; {_HOW_TO_FIX}") from exc
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise CheckpointError(f"cannot read {what} file {path}: {exc}; {_HOW_TO_FIX}") from exc


def load_state_dict_file(path: str | Path, what: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Read a plain state dict from a `.safetensors` file, a TorchScript archive or a torch pickle.

    A torch pickle may also be a dict with the weights under `state_dict`.
    """
    path = require_file(path, what)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:
            raise CheckpointError(f"cannot read {what} file {path}: {exc}; {_HOW_TO_FIX}") from exc
    if is_torchscript_archive(path):
        try:
            return dict(torch.jit.load(str(path), map_location="cpu").state_dict())
        except Exception as exc:
            raise CheckpointError(f"cannot read TorchScript {what} file {path}: {exc}; {_HOW_TO_FIX}") from exc
    obj = load_torch_file(path, what)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{what} file {path} does not hold a state dict of tensors")
    return obj


def require_entry(ckpt: Any, key: str, path: Path, what: str) -> Any:
    """`ckpt[key]`, or a CheckpointError that lists what the file does hold."""
    if not isinstance(ckpt, dict) or key not in ckpt:
        found = sorted(map(str, ckpt)) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{what} file {path} has no {key!r} entry (found: {found})")
    return ckpt[key]


def strip_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries of `state` whose key starts with `prefix`, with the prefix removed."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def fill_missing_buffers(
    module: nn.Module, state: dict[str, torch.Tensor], suffixes: Iterable[str]
) -> list[str]:
    """Copy into `state` the module's own buffers whose key ends with one of `suffixes` and is absent.

    Used for the constant blur/upsample FIR kernels that some StyleGAN2 checkpoint copies lack
    (they are recomputed from the blur taps, so nothing learned is lost). Returns the keys added.
    """
    suffixes = tuple(suffixes)
    added = []
    for key, buf in module.state_dict().items():
        if key.endswith(suffixes) and key not in state:
            state[key] = buf.detach().clone()
            added.append(key)
    return added


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], path: Path, what: str) -> None:
    """`module.load_state_dict(state, strict=True)` with a readable error naming the file.

    Lists (a few of) the missing keys, unexpected keys and shape mismatches. BatchNorm
    `num_batches_tracked` counters, which files saved by torch < 0.4.1 lack and which inference never
    reads, are filled with 0 when absent.
    """
    own = module.state_dict()
    state = dict(state)
    for key in own:
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros((), dtype=torch.long)
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or mismatched:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)):
            if items:
                shown = ", ".join(items[:5]) + (f" (+{len(items) - 5} more)" if len(items) > 5 else "")
                parts.append(f"{label} {len(items)}: {shown}")
        raise CheckpointError(f"{what} file {path} does not match the network: " + "; ".join(parts))
    module.load_state_dict(state, strict=True)


def freeze(module: nn.Module, device: str | torch.device) -> nn.Module:
    """Move to `device`, switch to eval mode and stop parameter gradients (inference modules)."""
    return module.to(device).eval().requires_grad_(False)
