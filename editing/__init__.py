"""Image half of i2edit: StyleGAN2, e4e, identity network, CLIP, alignment, prompts, the StyleCLIP
optimiser, metrics and the weights registry.

Names are imported lazily so that `import editing` costs nothing until a model is needed.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "Generator": "editing.generator",
    "load_generator": "editing.generator",
    "load_e4e": "editing.e4e",
    "load_identity": "editing.identity",
    "load_clip": "editing.clip_model",
    "Editor": "editing.editor",
    "Inversion": "editing.editor",
    "EditResult": "editing.editor",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'editing' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
