"""Reading checkpoint files: clear errors naming the file, `weights_only` handling, strict loading.

Every loader in `editing` goes through these helpers so that a missing, truncated or mismatched file
always produces a message that names the file and says what to do.
"""
from __future__ import annotations

import argparse
import pickle
import re
import threading
import zipfile
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import nn

_HOW_TO_FIX = (
    "download it again (`i2edit weights download`), check it with `i2edit weights verify`, "
    "or write test weights with `i2edit weights make-fixtures --out DIR`"
)


# The Python classes that public checkpoints hold besides tensors and plain containers: the training options
# that rosinality's StyleGAN2 (`args`) and some e4e forks (`opts`) pickle as an `argparse.Namespace`.
CHECKPOINT_CLASSES: tuple[type, ...] = (argparse.Namespace,)
# `torch.serialization.safe_globals` edits one process-wide allowlist on enter and exit: one load at a time.
_SAFE_GLOBALS_LOCK = threading.Lock()


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


def load_torch_file(path: str | Path, what: str = "checkpoint") -> Any:
    """`torch.load` a local file onto the CPU with the safe loader (`weights_only=True`).

    Besides tensors and plain containers, only `CHECKPOINT_CLASSES` are unpickled. A file that holds any
    other Python object (a pickle can run code) raises CheckpointError naming the file and the refused
    global, as does an unreadable file.
    """
    path = require_file(path, what)
    try:
        with _SAFE_GLOBALS_LOCK, torch.serialization.safe_globals(list(CHECKPOINT_CLASSES)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        refused = re.findall(r"GLOBAL ([\w.]+)", str(exc))
        if not refused:
            raise CheckpointError(f"cannot read {what} file {path}: {exc}; {_HOW_TO_FIX}") from exc
        known = ", ".join(f"{c.__module__}.{c.__qualname__}" for c in CHECKPOINT_CLASSES)
        raise CheckpointError(
            f"{what} file {path} holds a Python object that i2edit does not unpickle ({', '.join(refused)}); "
            f"it reads tensors, plain containers and {known} only, because unpickling anything else can run code. "
            "If you trust the file's source, load it yourself and save its tensors again as a plain dict "
            f"(torch.save); otherwise {_HOW_TO_FIX}"
        ) from exc
    except Exception as exc:  # truncated zip, not a torch file, ...
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
