"""The hand-written people set (tests/data/dialogue/people.jsonl): valid, large enough, every behaviour
tagged, and each tag consistent with the gold states it labels."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from dialogue.ontology import VALUES, BeliefState, conflicts_of
from dialogue.records import iter_problems, read_dialogues

PEOPLE = Path(__file__).parent / "data" / "dialogue" / "people.jsonl"
TAGS = {"bare_value", "negation", "everyday_word", "reference_back", "accept_and_more", "correction",
        "no_change_chat", "out_of_ontology", "remove_absent", "exclusive_replace", "plain"}
NO_CHANGE_TAGS = {"no_change_chat", "out_of_ontology", "remove_absent"}


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return [json.loads(line) for line in PEOPLE.read_text(encoding="utf-8").splitlines() if line.strip()]


def tagged_turns(records: list[dict]):
    """(dialogue id, turn number, raw turn, state before, state after) for every turn."""
    for record in records:
        before = BeliefState()
        for number, turn in enumerate(record["turns"], start=1):
            after = BeliefState.from_dict(turn["belief_state"])
            yield record["dialogue_id"], number, turn, before, after
            before = after


def test_file_validates_and_is_large_enough(records):
    assert list(iter_problems(PEOPLE)) == []
    dialogues = read_dialogues(PEOPLE)  # the reader ignores the extra turn keys (tags, suggested_value)
    assert len(dialogues) == len(records) >= 150
    assert sum(len(d.turns) for d in dialogues) >= 700
    assert all(2 <= len(d.turns) <= 7 for d in dialogues)
    assert all(d.image is None for d in dialogues)


def test_every_turn_is_tagged_and_every_behaviour_occurs_often(records):
    counts: Counter[str] = Counter()
    for dialogue_id, number, turn, _, _ in tagged_turns(records):
        tags = turn.get("tags")
        assert tags and set(tags) <= TAGS, f"{dialogue_id} turn {number}: tags {tags!r}"
        counts.update(tags)
    assert set(counts) == TAGS
    assert min(counts.values()) >= 20, counts


def test_tags_agree_with_the_gold_states(records):
    for dialogue_id, number, turn, before, after in tagged_turns(records):
        where = f"{dialogue_id} turn {number}"
        tags = set(turn["tags"])
        added, removed = after.diff(before)
        if tags <= NO_CHANGE_TAGS:
            assert not added and not removed, f"{where}: {tags} but the state changed"
        if "exclusive_replace" in tags:
            displaced = set(removed) & {c for value in added for c in conflicts_of(value)}
            assert displaced, f"{where}: exclusive_replace without a value displaced by its group partner"
        if tags & {"correction", "accept_and_more", "bare_value", "everyday_word", "negation", "reference_back"} \
                and not tags & NO_CHANGE_TAGS:
            assert added or removed, f"{where}: {tags} but nothing changed"


def test_suggestions_name_a_new_value_and_acceptances_add_it(records):
    suggested_before = None
    suggestions = 0
    for dialogue_id, number, turn, before, after in tagged_turns(records):
        where = f"{dialogue_id} turn {number}"
        if number == 1:
            suggested_before = None
        if "accept_and_more" in turn["tags"]:
            added, removed = after.diff(before)
            assert suggested_before in added and len(added) + len(removed) >= 2, where
        value = turn.get("suggested_value")
        assert (turn["system_act"] == "suggest") == (value is not None), where
        if value is not None:
            suggestions += 1
            assert value in VALUES and value not in after, where
        suggested_before = value
    assert suggestions >= 0.15 * sum(len(r["turns"]) for r in records)
