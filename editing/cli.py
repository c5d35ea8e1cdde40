"""`i2edit` subcommands of the editing package: weights management, single edits, evaluation."""
from __future__ import annotations

import importlib

_PARTS = ("editing.weights_cli", "editing.edit_cli", "editing.calibrate_cli", "editing.demo_world_cli")


def register(subparsers) -> None:
    for name in _PARTS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(subparsers)
