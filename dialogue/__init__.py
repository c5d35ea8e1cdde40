"""Dialogue half of i2edit: the ontology and belief state, text formats, the T5 model wrapper,
training and metrics. `DialogueModel` is imported lazily (it pulls in torch and transformers)."""
from __future__ import annotations

import importlib

from dialogue.ontology import BeliefState, OntologyError

_LAZY = {"DialogueModel": "dialogue.model"}

__all__ = ["BeliefState", "OntologyError", "DialogueModel"]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'dialogue' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
