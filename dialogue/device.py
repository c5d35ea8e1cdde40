"""The torch device a command or a model runs on: one rule for `auto`, shared by every package.

It lives in `dialogue` because every other package already depends on `dialogue` (the ontology), and
the dialogue model needs it too; `torch` is imported only when a device is resolved.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

AUTO = "auto"


def resolve_device(device: "str | torch.device | None" = AUTO) -> "torch.device":
    """`auto` (or None) -> `cuda` when a GPU is visible, else `cpu`; any other name (`cpu`, `cuda:1`, ...) as
    given. Raises ValueError naming the value when torch does not know it."""
    import torch

    if device is None or str(device) == AUTO:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"unknown torch device {device!r}: use auto, cpu, cuda or cuda:N") from exc
