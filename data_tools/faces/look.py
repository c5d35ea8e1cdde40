"""Looks: how strongly a demo-world face shows each of the 23 ontology values.

A look is a vector `[23]` (or `[B, 23]`) of strengths in [0, 1], in `dialogue.ontology.VALUES` order. The
renderer reads the free components: expression weights (4, summing to 1), hair-colour weights (4, summing to
1), `wavy hair` (`straight hair` = 1 − wavy) and the 13 additive values. `no makeup` is derived,
(1 − heavy makeup)·(1 − lipstick), which keeps the ontology's exclusive groups {no makeup, heavy makeup} and
{no makeup, lipstick}. Binary looks (all strengths 0 or 1) are what profiles and belief states describe;
fractional ones are in-between faces (used to teach the generator smooth transitions).
"""
from __future__ import annotations

from typing import Iterable, Sequence

import torch

from dialogue.ontology import EXCLUSIVE_GROUPS, SLOT_VALUES, VALUE_INDEX, VALUES, canonical_value
from data_tools.faces.identity import PARAM_INDEX

N_VALUES = len(VALUES)
EXPRESSIONS = [VALUE_INDEX[v] for v in SLOT_VALUES["expression"]]
HAIR_COLORS = [VALUE_INDEX[v] for v in SLOT_VALUES["hair color"]]
STRAIGHT, WAVY = VALUE_INDEX["straight hair"], VALUE_INDEX["wavy hair"]
NO_MAKEUP, HEAVY_MAKEUP, LIPSTICK = VALUE_INDEX["no makeup"], VALUE_INDEX["heavy makeup"], VALUE_INDEX["lipstick"]
NEUTRAL = VALUE_INDEX["no smiling"]
ADDITIVE = [VALUE_INDEX[v] for v in (
    "receding hairline", "sideburns", "bangs", "mustache", "goatee", "heavy makeup", "lipstick", "earrings",
    "bushy eyebrows", "big lips", "rosy cheeks", "pale skin",
)]


def normalize_look(look: torch.Tensor) -> torch.Tensor:
    """Make a look consistent: clamp to [0, 1], expression and hair-colour weights sum to 1 (all-zero
    expression → `no smiling`, all-zero hair colour → brown), straight = 1 − wavy, no makeup derived.
    `look` is `[..., 23]`; returns a new tensor of the same shape."""
    out = look.clamp(0, 1).clone()
    for group, fallback in ((EXPRESSIONS, NEUTRAL), (HAIR_COLORS, HAIR_COLORS[0])):
        part = out[..., group]
        total = part.sum(-1, keepdim=True)
        empty = total <= 1e-6
        default = torch.zeros_like(part)
        default[..., group.index(fallback)] = 1
        out[..., group] = torch.where(empty, default, part / total.clamp_min(1e-6))
    out[..., STRAIGHT] = 1 - out[..., WAVY]
    out[..., NO_MAKEUP] = (1 - out[..., HEAVY_MAKEUP]) * (1 - out[..., LIPSTICK])
    return out


def _set_value(look: torch.Tensor, value: str) -> None:
    """Make `value` present in the single look `[23]` in place, removing its exclusive partners."""
    index = VALUE_INDEX[value]
    if index == NO_MAKEUP:
        look[HEAVY_MAKEUP] = 0
        look[LIPSTICK] = 0
    for group in EXCLUSIVE_GROUPS:
        if value in group:
            for other in group:
                look[VALUE_INDEX[other]] = 0
    look[index] = 1
    if index == STRAIGHT:
        look[WAVY] = 0


def _remove_value(look: torch.Tensor, value: str) -> None:
    """Make `value` absent in the single look `[23]` in place (a requirement taken off)."""
    index = VALUE_INDEX[value]
    if index in EXPRESSIONS or index in HAIR_COLORS or index == NO_MAKEUP:
        return  # a face always has an expression and a hair colour; "no makeup" has no opposite to add
    look[index] = 0
    if index == STRAIGHT:
        look[WAVY] = 1


def default_look(identity: torch.Tensor) -> torch.Tensor:
    """The look of an identity `[N_IDENTITY]` before any profile value: neutral expression, its natural hair
    colour and texture, nothing else. Returns `[23]`."""
    look = torch.zeros(N_VALUES)
    look[NEUTRAL] = 1
    colour = min(int(float(identity[PARAM_INDEX["natural_hair_color"]]) * 4), 3)
    look[HAIR_COLORS[colour]] = 1
    look[WAVY] = float(identity[PARAM_INDEX["natural_wavy"]] > 0.5)
    return normalize_look(look)


def look_from_values(values: Sequence[Iterable[str]], identities: torch.Tensor) -> torch.Tensor:
    """Binary looks `[B, 23]` for `B` faces: each face's `values` (a dialogue's `"profile"`, synonyms allowed)
    on top of its identity's default look. Later values displace earlier exclusive partners."""
    if len(values) != len(identities):
        raise ValueError(f"got {len(values)} value lists for {len(identities)} identities")
    looks = []
    for face_values, identity in zip(values, identities):
        look = default_look(identity)
        for value in face_values:
            _set_value(look, canonical_value(value))
        looks.append(normalize_look(look))
    return torch.stack(looks) if looks else torch.zeros(0, N_VALUES)


def apply_state(looks: torch.Tensor, requested: Sequence[Iterable[str]],
                removed: Sequence[Iterable[str]] | None = None) -> torch.Tensor:
    """The target looks `[B, 23]`: `looks` with each face's `requested` values made present (a belief state's
    values) and its `removed` values made absent. The input is not changed."""
    out = looks.clone()
    removed = removed if removed is not None else [()] * len(out)
    for look, add, take in zip(out, requested, removed):
        for value in take:
            _remove_value(look, canonical_value(value))
        for value in add:
            _set_value(look, canonical_value(value))
    return normalize_look(out)


def look_values(look: torch.Tensor, threshold: float = 0.5) -> tuple[str, ...]:
    """The values a single look `[23]` shows (strength above `threshold`), canonical order."""
    return tuple(v for v, s in zip(VALUES, look.tolist()) if s > threshold)


def sample_looks(n: int, generator: torch.Generator, p_additive: float = 0.4) -> torch.Tensor:
    """`n` random binary looks `[n, 23]`: a uniform expression, hair colour and texture, and each additive value
    present with probability `p_additive`."""
    look = torch.zeros(n, N_VALUES)
    rows = torch.arange(n)
    look[rows, torch.tensor(EXPRESSIONS)[torch.randint(4, (n,), generator=generator)]] = 1
    look[rows, torch.tensor(HAIR_COLORS)[torch.randint(4, (n,), generator=generator)]] = 1
    look[:, WAVY] = (torch.rand(n, generator=generator) < 0.5).float()
    look[:, ADDITIVE] = (torch.rand(n, len(ADDITIVE), generator=generator) < p_additive).float()
    return normalize_look(look)
