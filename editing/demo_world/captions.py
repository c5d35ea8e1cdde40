"""Captions of demo-world faces, written with the pipeline's own prompt templates (`editing.pipeline.prompts`).

A caption makes claims about a face: some values it shows (phrased like the optimiser's description of a
belief state) and, sometimes, values it does not show (phrased like a single-turn edit's removed values:
"with no mustache", "wearing no lipstick"). `agreement` scores each caption against each face by the share
of its claims that hold, the graded target of CLIP's contrastive training: a face that has three of four
described values matches better than one that has two, which is what an optimiser climbing CLIP's cosine
needs.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from data_tools.faces.look import ADDITIVE
from dialogue.ontology import VALUES, BeliefState
from editing.pipeline.prompts import REMOVED, change_description, description

# Values a caption may deny: the additive ones, whose removal phrase means "not this".
DENIABLE = tuple(VALUES[i] for i in ADDITIVE if REMOVED[VALUES[i]] is not None)
_CLAIM_COUNTS = (1, 1, 1, 1, 2, 2, 2, 3, 3, 4, 5, 6, 8)


@dataclass(frozen=True)
class Caption:
    text: str
    shows: frozenset[str]
    lacks: frozenset[str]

    def share_true(self, values: frozenset[str]) -> float:
        """The share of this caption's claims that hold for a face showing `values`."""
        true = len(self.shows & values) + len(self.lacks - values)
        return true / (len(self.shows) + len(self.lacks))


def caption_for(values: tuple[str, ...], rng: random.Random, deny_probability: float = 0.3) -> Caption:
    """A random true caption of a face that shows `values` (canonical order)."""
    shows = frozenset(rng.sample(values, min(len(values), rng.choice(_CLAIM_COUNTS))))
    lacks: frozenset[str] = frozenset()
    absent = [v for v in DENIABLE if v not in values]
    if absent and rng.random() < deny_probability:
        lacks = frozenset(rng.sample(absent, min(len(absent), rng.choice((1, 1, 2)))))
    if lacks:
        text = change_description(BeliefState(shows), BeliefState(lacks))
    else:
        text = description(BeliefState(shows))
    return Caption(text, shows, lacks)


def agreement(captions: list[Caption], faces: list[frozenset[str]]) -> torch.Tensor:
    """[n_faces, n_captions] in [0, 1]: the share of each caption's claims that hold for each face."""
    return torch.tensor([[c.share_true(f) for c in captions] for f in faces])
