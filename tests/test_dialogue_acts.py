"""Updates, acts and grounded replies: applying what a turn asked, filling replies only from what changed."""
from __future__ import annotations

import random

import pytest

from dialogue.acts import (
    Act, ActError, Update, allowed_values, false_claims, fill, mentioned_values, person_of, placeholders, reply_frame,
)
from dialogue.ontology import BeliefState

S = BeliefState.of


def test_update_between_states_is_the_shortest_and_applies_back():
    cases = [(S(), S("smiling", "bangs")), (S("black hair"), S("blond hair")), (S("smiling", "bangs"), S("bangs")),
             (S("lipstick", "goatee"), S()), (S("no makeup"), S("lipstick", "earrings"))]
    for before, after in cases:
        update = Update.between(before, after)
        assert update.apply(before).state == after
    assert Update.between(S("black hair"), S("blond hair")) == Update(add=("blond hair",))  # black goes by itself
    assert Update.between(S("smiling", "bangs"), S("bangs")) == Update(remove=("smiling",))


def test_apply_says_honestly_what_happened():
    change = Update(add=("sad", "bangs"), remove=("lipstick", "goatee")).apply(S("smiling", "bangs", "goatee"))
    assert change.state == S("sad", "bangs")
    assert change.added == ("sad",) and change.removed == ("smiling", "goatee")
    assert change.missing == ("lipstick",) and change.already == ("bangs",)
    assert change.kinds() == ("added", "removed", "missing", "already")
    assert change.slots() == {"expression", "beard"}
    nothing = Update().apply(S("bangs"))
    assert nothing.state == S("bangs") and nothing.kinds() == () and not Update()


def test_updates_and_acts_refuse_what_the_ontology_does_not_allow():
    with pytest.raises(ActError, match="exclude each other"):
        Update(add=("smiling", "sad"))
    with pytest.raises(ActError, match="both add and remove"):
        Update(add=("bangs",), remove=("bangs",))
    with pytest.raises(ActError, match="unknown value 'wings'"):
        Update.from_dict({"add": ["wings"]})
    with pytest.raises(ActError, match="keys 'add'"):
        Update.from_dict({"plus": ["bangs"]})
    assert Update.from_dict({"remove": ["bangs"]}).to_dict() == {"remove": ["bangs"]}
    with pytest.raises(ActError, match="unknown intent"):
        Act("shout")
    with pytest.raises(ActError, match="'suggest' takes one value"):
        Act("edit", "suggest")
    with pytest.raises(ActError, match="unknown slot 'hat'"):
        Act.parse("edit request [hat]")


def test_act_text_round_trips():
    for act in (Act(), Act("decline", "request", slot="hair color"), Act("edit", "suggest", value="big lips"),
                Act("unsupported", "next", topic="beard"), Act("close", "end")):
        assert Act.parse(act.to_text()) == act
    assert Act("unsupported", "suggest", value="bangs", topic="hair color").to_text() == \
        "unsupported [hair color] suggest [bangs]"


def test_reply_frame_names_kinds_intent_and_policy():
    change = Update(add=("bangs",), remove=("goatee",)).apply(S("smiling"))
    assert reply_frame(change, Act("edit", "suggest", value="lipstick")) == "added missing ; edit ; suggest"
    assert reply_frame(Update().apply(S()), Act("unsupported", "next", topic="hair color")) == \
        "none ; unsupported options ; next"


def test_fill_uses_only_what_changed_and_refuses_what_it_cannot_fill():
    change = Update(add=("smiling",), remove=("lipstick",)).apply(S("lipstick"))
    act = Act("edit", "suggest", value="bangs")
    text = fill("Here [subj] [is] with [added], without [removed]. how about [value]?", change, act, "she",
                random.Random(0))
    assert text.startswith("Here she is with a ") and "without the " in text and text.endswith("?")
    assert "How about" in text  # a new sentence starts upper case
    assert mentioned_values(text) == {"smiling", "lipstick", "bangs"}
    assert fill("I've added [added].", Update(remove=("bangs",)).apply(S("bangs")), act) is None
    assert fill("Do you want to change the [slot]?", change, act) is None
    assert fill("Hello [name].", change, act) is None
    assert fill("Okay, I dropped [ hair;'ve updated it.", change, act) is None
    options = fill("I can do [options].", Update().apply(S()), Act("unsupported", topic="hair color"))
    assert mentioned_values(options) == {"brown hair", "blond hair", "black hair", "gray hair"}
    assert placeholders("[subj] [has] [already].") == ["subj", "has", "already"]


def test_person_of_prefers_the_third_person():
    assert person_of(["I want her to smile"]) == "she"
    assert person_of(["make me smile"]) == "you"
    assert person_of(["give this guy a goatee", "and bangs"]) == "he"
    assert person_of(["make my friend smile"]) == "they"
    assert person_of(["add bangs"]) == "they"


def test_false_claims_are_values_named_outside_the_change_and_the_act():
    change = Update(remove=("lipstick",)).apply(S("smiling"))  # lipstick was never there: missing
    assert false_claims("Okay, I got rid of the lipstick.", change, Act()) == set()  # named, though wrongly phrased
    assert false_claims("I've added a smile and a moustache.", change, Act()) == {"smiling", "mustache"}
    suggest = Act("edit", "suggest", value="goatee")
    assert false_claims("How about a goatee?", change, suggest) == set()
    assert allowed_values(change, None) == {"lipstick"}
    assert mentioned_values("What else would you like to change about the hair colour?") == set()
