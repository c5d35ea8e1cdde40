"""Belief state → optimiser description and metric texts."""
from __future__ import annotations

import itertools
import random

import pytest

from dialogue.ontology import VALUES, BeliefState
from editing.pipeline.prompts import (
    PHRASES,
    REMOVED,
    SUBJECT,
    attribute_text,
    attribute_texts,
    change_description,
    change_texts,
    description,
    join_english,
)


def test_every_value_has_its_own_readable_text():
    texts = {v: attribute_text(v) for v in VALUES}
    assert len(set(texts.values())) == len(VALUES)
    for value, text in texts.items():
        assert text.startswith(SUBJECT + " ")
        assert "_" not in text and "  " not in text
        # canonical names appear as such except where a natural phrasing replaces them
        assert value in text or value in ("smiling", "no smiling", "angry", "sad")


def test_negative_values_read_as_positive_phrases():
    assert attribute_text("no smiling") == "a face of a person with a neutral expression"
    assert attribute_text("no makeup") == "a face of a person wearing no makeup"
    assert attribute_text("smiling") == "a face of a person with a smile"


def test_description_lists_values_in_canonical_order_with_wearing_last():
    state = BeliefState.of("lipstick", "mustache", "black hair", "smiling")
    assert description(state) == "a face of a person with a smile, black hair and a mustache, wearing lipstick"
    assert description(BeliefState.of("lipstick")) == "a face of a person wearing lipstick"
    assert description(BeliefState()) == SUBJECT


def test_hair_colour_and_texture_merge():
    assert description(BeliefState.of("black hair", "wavy hair")) == "a face of a person with wavy black hair"
    assert description(BeliefState.of("straight hair")) == "a face of a person with straight hair"


def test_no_makeup_comes_after_other_wearables():
    text = description(BeliefState.of("no makeup", "earrings"))
    assert text.endswith("wearing earrings and no makeup")


def test_description_is_deterministic_and_order_free():
    rng = random.Random(3)
    for _ in range(50):
        values = rng.sample(VALUES, 6)
        state = BeliefState()
        for v in values:
            state = state.add(v)
        shuffled = BeliefState()
        for v in reversed(state.values):
            shuffled = shuffled.add(v)
        assert description(state) == description(shuffled)
        assert list(attribute_texts(state)) == list(state.values)


def test_every_value_appears_in_descriptions_of_states_holding_it():
    for a, b in itertools.combinations(VALUES, 2):
        try:
            state = BeliefState.of(a, b)
        except ValueError:
            continue
        text = description(state)
        for value in state.values:
            phrase = PHRASES[value].text
            words = phrase.split()[-1]  # "hair" of "wavy hair" survives the merge
            assert words in text, (state, text)


def test_join_english():
    assert join_english([]) == ""
    assert join_english(["a"]) == "a"
    assert join_english(["a", "b"]) == "a and b"
    assert join_english(["a", "b", "c"]) == "a, b and c"


@pytest.mark.parametrize("before, after, expected", [
    ((), ("smiling",), "a face of a person with a smile"),
    (("smiling",), ("smiling", "black hair"), "a face of a person with black hair"),
    # a replaced exclusive value says nothing more than its replacement
    (("black hair", "mustache"), ("blond hair", "mustache"), "a face of a person with blond hair"),
    # a removal without replacement aims for its opposite
    (("mustache", "smiling"), ("smiling",), "a face of a person with no mustache"),
    (("smiling",), (), "a face of a person with a neutral expression"),
    (("lipstick", "bangs"), ("bangs",), "a face of a person wearing no lipstick"),
    (("goatee",), ("goatee", "gray hair"), "a face of a person with gray hair"),
    (("gray hair",), ("gray hair",), None),  # nothing changed
    (("black hair",), (), None),  # a removed hair colour has no target
])
def test_change_description(before, after, expected):
    assert change_description(BeliefState.of(*after), BeliefState.of(*before)) == expected


@pytest.mark.parametrize("before, after, expected", [
    ((), ("smiling", "black hair"), ("a face of a person with a smile", "a face of a person with black hair")),
    # a hair colour and texture stay two aims (the description merges them into "wavy black hair")
    ((), ("black hair", "wavy hair"), ("a face of a person with black hair", "a face of a person with wavy hair")),
    (("black hair", "mustache"), ("blond hair",),
     ("a face of a person with blond hair", "a face of a person with no mustache")),
    (("lipstick", "smiling"), (), ("a face of a person with a neutral expression",
                                   "a face of a person wearing no lipstick")),
    (("gray hair",), ("gray hair",), ()),
    (("black hair",), (), ()),
])
def test_change_texts_give_one_text_per_aim(before, after, expected):
    state, previous = BeliefState.of(*after), BeliefState.of(*before)
    assert change_texts(state, previous) == expected
    assert (change_description(state, previous) is None) == (expected == ())


def test_removal_table_covers_the_ontology():
    assert set(REMOVED) == set(VALUES)
    for value, phrase in REMOVED.items():
        if phrase is not None:
            assert phrase.verb in ("with", "wearing") and phrase.text != PHRASES[value].text
