"""Belief state → English text: the optimiser's description and the metrics' per-attribute texts.

Every value has a phrase and a verb: "with" (things the face has: "a smile", "black hair",
"a mustache") or "wearing" (things put on: "lipstick", "earrings", "no makeup"). A description is
`a face of a person with A, B and C, wearing D and E`, phrases in the ontology's canonical order;
a hair colour and a hair texture merge into one phrase ("wavy black hair"). The text for one value
(AvgRel/MinRel, paper eq. 1-2) is the description of a state holding only that value, so the metric
and the optimiser speak the same language. Negative values get positive phrasings: `no smiling` is
"a neutral expression", `no makeup` is "wearing no makeup".

Single-turn editing describes only what changed (`change_description`): the added values, plus
removed values phrased by `REMOVED` ("with no mustache", "wearing no lipstick"). A removed value
that an added value of its exclusive group replaces says nothing more (black → blond hair reads
"with blond hair"); a removed value without a sensible opposite (a hair colour, a hair texture,
`no smiling`, `no makeup`) is left out.

For the per-attribute objective (`OptimizerSettings.text_objective`) the same aims come one text each:
`attribute_texts` for a whole state, `change_texts` for a single-turn change.

Everything here is a pure function of the state: same state, same text.
"""
from __future__ import annotations

from dataclasses import dataclass

from dialogue.ontology import VALUES, BeliefState, conflicts_of

SUBJECT = "a face of a person"
# What the optimiser's CLIP term aims at (`OptimizerSettings.text_objective`): `description` or, one text per
# aim, `attribute_texts` / `change_texts`.
TEXT_OBJECTIVES = ("description", "per_attribute")


@dataclass(frozen=True)
class Phrase:
    """`verb` is "with" or "wearing"; `text` the noun phrase that follows it."""

    verb: str
    text: str


PHRASES: dict[str, Phrase] = {
    "smiling": Phrase("with", "a smile"),
    "angry": Phrase("with", "an angry expression"),
    "sad": Phrase("with", "a sad expression"),
    "no smiling": Phrase("with", "a neutral expression"),
    "brown hair": Phrase("with", "brown hair"),
    "blond hair": Phrase("with", "blond hair"),
    "black hair": Phrase("with", "black hair"),
    "gray hair": Phrase("with", "gray hair"),
    "straight hair": Phrase("with", "straight hair"),
    "wavy hair": Phrase("with", "wavy hair"),
    "receding hairline": Phrase("with", "a receding hairline"),
    "sideburns": Phrase("with", "sideburns"),
    "bangs": Phrase("with", "bangs"),
    "mustache": Phrase("with", "a mustache"),
    "goatee": Phrase("with", "a goatee"),
    "no makeup": Phrase("wearing", "no makeup"),
    "heavy makeup": Phrase("wearing", "heavy makeup"),
    "lipstick": Phrase("wearing", "lipstick"),
    "earrings": Phrase("wearing", "earrings"),
    "bushy eyebrows": Phrase("with", "bushy eyebrows"),
    "big lips": Phrase("with", "big lips"),
    "rosy cheeks": Phrase("with", "rosy cheeks"),
    "pale skin": Phrase("with", "pale skin"),
}

# What a single-turn edit aims for when a value is taken away (None: no sensible target).
REMOVED: dict[str, Phrase | None] = {
    "smiling": Phrase("with", "a neutral expression"),
    "angry": Phrase("with", "a neutral expression"),
    "sad": Phrase("with", "a neutral expression"),
    "no smiling": None,
    "brown hair": None,
    "blond hair": None,
    "black hair": None,
    "gray hair": None,
    "straight hair": None,
    "wavy hair": None,
    "receding hairline": Phrase("with", "a full hairline"),
    "sideburns": Phrase("with", "no sideburns"),
    "bangs": Phrase("with", "no bangs"),
    "mustache": Phrase("with", "no mustache"),
    "goatee": Phrase("with", "no goatee"),
    "no makeup": None,
    "heavy makeup": Phrase("wearing", "light makeup"),
    "lipstick": Phrase("wearing", "no lipstick"),
    "earrings": Phrase("wearing", "no earrings"),
    "bushy eyebrows": Phrase("with", "thin eyebrows"),
    "big lips": Phrase("with", "thin lips"),
    "rosy cheeks": Phrase("with", "no rosy cheeks"),
    "pale skin": Phrase("with", "tanned skin"),
}
assert set(PHRASES) == set(VALUES) == set(REMOVED)

_HAIR_COLORS = ("brown hair", "blond hair", "black hair", "gray hair")
_HAIR_TEXTURES = ("straight hair", "wavy hair")


def join_english(items: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def compose(phrases: list[Phrase]) -> str:
    """`a face of a person with …, wearing …` from phrases in the order given (duplicates dropped)."""
    seen: set[Phrase] = set()
    unique = [p for p in phrases if not (p in seen or seen.add(p))]
    text = SUBJECT
    with_part = [p.text for p in unique if p.verb == "with"]
    # "wearing earrings and no makeup", never "wearing no makeup and earrings" (reads as no earrings).
    wearing_part = sorted((p.text for p in unique if p.verb == "wearing"), key=lambda t: t.startswith("no "))
    if with_part:
        text += " with " + join_english(with_part)
    if wearing_part:
        text += (", wearing " if with_part else " wearing ") + join_english(wearing_part)
    return text


def _phrases(values: tuple[str, ...]) -> list[Phrase]:
    """Phrases for canonical-order `values`, a hair colour and texture merged ("wavy black hair")."""
    color = next((v for v in values if v in _HAIR_COLORS), None)
    texture = next((v for v in values if v in _HAIR_TEXTURES), None)
    out: list[Phrase] = []
    for value in values:
        if color and texture and value == color:
            out.append(Phrase("with", f"{texture.split()[0]} {color}"))
        elif color and texture and value == texture:
            continue
        else:
            out.append(PHRASES[value])
    return out


def description(state: BeliefState) -> str:
    """The optimiser's text for the whole state, e.g.
    "a face of a person with black hair, a mustache and a smile, wearing lipstick" (canonical order).
    The empty state gives "a face of a person"."""
    return compose(_phrases(state.values))


def attribute_text(value: str) -> str:
    """The metric text for one canonical value: the description of a state holding only it."""
    return description(BeliefState.of(value))


def attribute_texts(state: BeliefState) -> dict[str, str]:
    """{value: text} for every value of `state`, canonical order (the set T of paper eq. 1-2)."""
    return {value: attribute_text(value) for value in state.values}


def _removal_phrases(added: tuple[str, ...], removed: tuple[str, ...]) -> list[Phrase]:
    """What removed values become ("with no mustache"); nothing for a value that an added value of its
    exclusive group replaces, or that has no sensible opposite."""
    return [REMOVED[value] for value in removed
            if REMOVED[value] is not None and not any(other in added for other in conflicts_of(value))]


def change_description(state: BeliefState, previous: BeliefState) -> str | None:
    """The single-turn text for going from `previous` to `state`: added values, then what removed
    values become (see the module docstring). None when the change has nothing to aim for."""
    added, removed = state.diff(previous)
    phrases = _phrases(added) + _removal_phrases(added, removed)
    return compose(phrases) if phrases else None


def change_texts(state: BeliefState, previous: BeliefState) -> tuple[str, ...]:
    """The single-turn change as one text per aim: each added value's `attribute_text`, then each
    removal's phrase on its own ("a face of a person with no mustache"); empty when
    `change_description` is None."""
    added, removed = state.diff(previous)
    return tuple(attribute_text(value) for value in added) + tuple(
        compose([phrase]) for phrase in _removal_phrases(added, removed))
