"""The demo world's procedural faces: identity parameters, looks (the 23 ontology values as strengths)
and a vectorised renderer. Deterministic per seed; depends on torch and `dialogue.ontology` only.

    from data_tools.faces import sample_identities, look_from_values, render_faces
    ids = sample_identities(4, seed=0)                      # [4, N_IDENTITY]
    looks = look_from_values([["smiling", "black hair"]] * 4, ids)   # [4, 23]
    images = render_faces(ids, looks, size=64)               # [4, 3, 64, 64] in [-1, 1]
"""
from __future__ import annotations

from data_tools.faces.identity import IDENTITY_PARAMS, N_IDENTITY, sample_identities
from data_tools.faces.look import (
    apply_state,
    look_from_values,
    look_values,
    normalize_look,
    sample_looks,
)
from data_tools.faces.render import render_faces, render_pil, to_pil

__all__ = [
    "IDENTITY_PARAMS", "N_IDENTITY", "sample_identities", "apply_state", "look_from_values", "look_values",
    "normalize_look", "sample_looks", "render_faces", "render_pil", "to_pil",
]
