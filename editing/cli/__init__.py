"""`i2edit` subcommands of the editing package, one module each: `weights` (list, download, verify, make-fixtures),
`edit` (edit, eval-editing), `calibrate`, `demo_world.cli` (demo-world train/eval/ship) and `run_script`."""
from __future__ import annotations

import importlib

_PARTS = (
    "editing.cli.weights", "editing.cli.edit", "editing.cli.calibrate", "editing.demo_world.cli",
    "editing.cli.run_script",
)


def register(subparsers) -> None:
    for name in _PARTS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(subparsers)
