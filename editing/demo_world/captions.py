"""Captions of demo-world faces, written with the pipeline's own prompt templates (`editing.prompts`).

A caption makes claims about a face: some values it shows (phrased like the optimiser's description of a
belief state) and, sometimes, values it does not show (phrased like a single-turn edit's removed values:
"with no mustache", "wearing no lipstick"). `matches` tells which captions hold for which faces, the target
of CLIP's contrastive training.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from data_tools.faces.look import ADDITIVE
from dialogue.ontology import VALUES, BeliefState
from editing.prompts import REMOVED, change_description, description

# Values a caption may deny: the additive ones, whose removal phrase means "not this".
DENIABLE = tuple(VALUES[i] for i in ADDITIVE if REMOVED[VALUES[i]] is not None)
_CLAIM_COUNTS = (1, 1, 1, 1, 2, 2, 2, 3, 3, 4, 5, 6, 8)


@dataclass(frozen=True)
class Caption:
    text: str
    shows: frozenset[str]
    lacks: frozenset[str]

    def holds_for(self, values: frozenset[str]) -> bool:
        return self.shows <= values and not (self.lacks & values)


def caption_for(values: tuple[str, ...], rng: random.Random, deny_probability: float = 0.3) -> Caption:
    """A random true caption of a face that shows `values` (canonical order)."""
    shows = frozenset(rng.sample(values, min(len(values), rng.choice(_CLAIM_COUNTS))))
    lacks: frozenset[str] = frozenset()
    absent = [v for v in DENIABLE if v not in values]
    if absent and rng.random() < deny_probability:
        lacks = frozenset(rng.sample(absent, rng.choice((1, 1, 2))))
    if lacks:
        text = change_description(BeliefState(shows), BeliefState(lacks))
    else:
        text = description(BeliefState(shows))
    return Caption(text, shows, lacks)


def matches(captions: list[Caption], faces: list[frozenset[str]]) -> torch.Tensor:
    """[n_faces, n_captions] float: 1 where the caption holds for the face."""
    return torch.tensor([[float(c.holds_for(f)) for c in captions] for f in faces])
