"""The corpus simulator: determinism, splits, profiles, dialogue-flow semantics and held-out wording."""
from __future__ import annotations

import math
import random
import re
import string

import pytest

from data_tools.celeba import CELEBA_ATTRIBUTES, profile_from_attributes, read_celeba_attributes
from data_tools.phrasebank import (
    FREE_FRAMES, HOLDOUT_SHARE, NOUN_REFERENTS, PRONOUNS, SYSTEM_VIEW, TRAIN, PhraseBank, assemble, content_words,
    noun_person,
)
from dialogue.records import iter_problems, read_dialogues
from data_tools.simulator import build_corpus, simulate_dialogue, split_sizes
from dialogue.acts import PLACEHOLDERS, VALUE_NAMES, mentioned_values, placeholders
from dialogue.ontology import EXCLUSIVE_GROUPS, SLOT_VALUES, VALUES, BeliefState, conflicts_of, normalize_value


@pytest.fixture(scope="module")
def bank() -> PhraseBank:
    return PhraseBank.load()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A 1,200-dialogue corpus (1,000 / 100 / 100) built once for this module."""
    out = tmp_path_factory.mktemp("corpus")
    paths = build_corpus(out, dialogues=1200, seed=3)
    return {split: read_dialogues(path) for split, path in paths.items()}, paths


def turns_of(dialogues):
    for d in dialogues:
        previous = BeliefState()
        for t in d.turns:
            yield d, previous, t
            previous = t.belief_state


# --- determinism and splits ---------------------------------------------------------------------

def test_same_seed_same_corpus_other_seed_other_corpus(tmp_path):
    a = build_corpus(tmp_path / "a", dialogues=36, seed=5)
    b = build_corpus(tmp_path / "b", dialogues=36, seed=5)
    c = build_corpus(tmp_path / "c", dialogues=36, seed=6)
    for split in ("train", "val", "test"):
        assert a[split].read_bytes() == b[split].read_bytes()
        assert a[split].read_bytes() != c[split].read_bytes()


def test_a_dialogue_does_not_depend_on_how_many_are_built(bank):
    assert simulate_dialogue(bank, "val", 1, 7) == simulate_dialogue(bank, "val", 1, 7)
    assert simulate_dialogue(bank, "val", 1, 7) != simulate_dialogue(bank, "val", 1, 8)


def test_split_sizes():
    assert split_sizes(12_000) == {"train": 10_000, "val": 1_000, "test": 1_000}
    assert split_sizes(1_200) == {"train": 1_000, "val": 100, "test": 100}
    assert split_sizes(3) == {"train": 1, "val": 1, "test": 1}
    with pytest.raises(ValueError, match="at least 3"):
        split_sizes(2)


def test_built_files_have_the_split_sizes_and_pass_the_validator(corpus):
    dialogues, paths = corpus
    assert {s: len(d) for s, d in dialogues.items()} == {"train": 1000, "val": 100, "test": 100}
    for path in paths.values():
        assert list(iter_problems(path)) == []
    ids = [d.dialogue_id for ds in dialogues.values() for d in ds]
    images = [d.image for ds in dialogues.values() for d in ds]
    assert len(set(ids)) == len(ids) == 1200 and len(set(images)) == 1200
    assert dialogues["test"][0].dialogue_id == "test-000001"
    assert re.fullmatch(r"sim/\d{6}\.png", dialogues["val"][0].image)


# --- profiles -----------------------------------------------------------------------------------

def assert_complete_profile(values: list[str]) -> None:
    held = set(values)
    assert len(held & set(SLOT_VALUES["expression"])) == 1
    assert len(held & set(SLOT_VALUES["hair color"])) == 1
    assert len(held & {"straight hair", "wavy hair"}) == 1
    assert ("no makeup" in held) != bool(held & {"heavy makeup", "lipstick"})
    BeliefState.of(*values)  # no exclusive group broken


def test_profiles_are_complete_and_requests_avoid_what_the_face_has(corpus):
    dialogues, _ = corpus
    for d in (d for ds in dialogues.values() for d in ds):
        assert d.extra["gender"] in ("female", "male")
        assert_complete_profile(d.extra["profile"])
    for d, previous, turn in turns_of(dialogues["train"]):
        added, _ = turn.belief_state.diff(previous)
        assert not set(added) & set(d.extra["profile"]), (d.dialogue_id, added)


def celeba_file(path, rows: list[dict[str, int]]) -> None:
    lines = [str(len(rows)), " ".join(CELEBA_ATTRIBUTES)]
    for i, row in enumerate(rows):
        lines.append(f"{i}.jpg " + " ".join(str(row.get(a, -1)) for a in CELEBA_ATTRIBUTES))
    path.write_text("\n".join(lines) + "\n")


def test_celeba_mapping():
    attrs = {a: False for a in CELEBA_ATTRIBUTES}
    bare = profile_from_attributes("0.jpg", attrs)
    assert bare.values == ("no smiling", "brown hair", "straight hair", "no makeup") and bare.gender == "female"
    attrs.update(Smiling=True, Blond_Hair=True, Gray_Hair=True, Wavy_Hair=True, Straight_Hair=True, Bald=True,
                 Mustache=True, Male=True, Wearing_Lipstick=True, Pale_Skin=True, Eyeglasses=True)
    full = profile_from_attributes("1.jpg", attrs)
    assert full.values == ("smiling", "gray hair", "wavy hair", "receding hairline", "mustache", "lipstick", "pale skin")
    assert full.gender == "male" and full.image == "1.jpg"


def test_build_from_a_celeba_attribute_file(tmp_path):
    rng = random.Random(0)
    rows = [{a: rng.choice((1, -1)) for a in CELEBA_ATTRIBUTES} for _ in range(15)]
    attrs = tmp_path / "CelebAMask-HQ-attribute-anno.txt"
    celeba_file(attrs, rows)
    profiles = {p.image: p for p in read_celeba_attributes(attrs)}
    paths = build_corpus(tmp_path / "out", dialogues=12, seed=1, celeba_attrs=attrs)
    built = [d for p in paths.values() for d in read_dialogues(p)]
    assert len({d.image for d in built}) == 12
    for d in built:
        assert d.extra["profile"] == list(profiles[d.image].values)
        assert d.extra["gender"] == profiles[d.image].gender
    with pytest.raises(ValueError, match="lists 15 images but 30 dialogues"):
        build_corpus(tmp_path / "more", dialogues=30, celeba_attrs=attrs)


def test_malformed_celeba_files_are_rejected_with_the_line(tmp_path):
    path = tmp_path / "attrs.txt"
    celeba_file(path, [{}])
    path.write_text(path.read_text() + "extra.jpg 1 2 3\n")
    with pytest.raises(ValueError, match=r"attrs.txt:4: expected an image name and 40 values"):
        read_celeba_attributes(path)
    path.write_text("1\nSmiling Male\n0.jpg 1 -1\n")
    with pytest.raises(ValueError, match="attribute names line lacks"):
        read_celeba_attributes(path)


# --- the dialogue flow --------------------------------------------------------------------------

def test_removals_two_value_turns_changes_and_acts_are_frequent_enough(corpus):
    dialogues, _ = corpus
    counts = {"turns": 0, "removal": 0, "two": 0, "exclusive": 0}
    acts: dict[str, set[str]] = {"next": set(), "request": set(), "suggest": set()}
    for _, previous, turn in turns_of(dialogues["train"]):
        counts["turns"] += 1
        added, removed = turn.belief_state.diff(previous)
        displaced = set().union(*(conflicts_of(v) for v in added)) if added else set()
        counts["removal"] += bool(set(removed) - displaced)
        counts["two"] += len(added) >= 2
        counts["exclusive"] += bool(set(removed) & displaced)
        if turn.system_act is not None:  # None: the goodbye after a closing
            acts[turn.system_act].add(turn.system)
    assert counts["removal"] / counts["turns"] >= 0.05
    assert counts["two"] / counts["turns"] >= 0.10
    assert counts["exclusive"] / counts["turns"] >= 0.05
    assert all(len(responses) >= 15 for responses in acts.values())


def test_answers_to_system_questions_set_the_state_they_mean(corpus, bank):
    """A bare accept adds the suggested value; a bare decline, thanks or a closing changes nothing."""
    def texts(name):
        return {assemble([t.format(**PRONOUNS["she"].forms())]) for t in bank.data["user"][name]} | \
               {assemble([t.format(**PRONOUNS["I"].forms())]) for t in bank.data["user"][name]}
    accepts = texts("accept")
    unchanging = texts("decline") | texts("closings") | texts("thanks_only") | texts("chat_questions")
    seen = {"accept": 0, "unchanged": 0}
    for d in (d for ds in corpus[0].values() for d in ds):
        for before, turn in zip(d.turns, d.turns[1:]):
            added, removed = turn.belief_state.diff(before.belief_state)
            if turn.user in accepts and before.act.policy == "suggest":
                assert added == (before.act.value,), (d.dialogue_id, turn.user)
                assert set(removed) <= conflicts_of(before.act.value)  # an exclusive partner may go
                assert mentioned_values(before.system) >= {before.act.value}  # the reply names its suggestion
                seen["accept"] += 1
            elif turn.user in unchanging:
                assert not added and not removed, (d.dialogue_id, turn.user)
                assert turn.act.intent in ("decline", "close", "thanks", "chat"), turn.act
                seen["unchanged"] += 1
    assert seen["accept"] > 20 and seen["unchanged"] > 50


def test_undo_start_over_and_unsupported_requests_set_the_state_they_mean(corpus, bank):
    """"Undo that" restores the state before the last turn, "start over" empties it, "add glasses" keeps it."""
    def endings(name):
        return tuple(t.lower().rstrip(".!?") for t in bank.data["user"][name])
    undo, reset = endings("undo_last"), endings("start_over")
    unsupported = {r for t in bank.data["user"]["unsupported"] for r in renderings(t)}
    seen = {"undo": 0, "reset": 0, "unsupported": 0}
    for d in (d for ds in corpus[0].values() for d in ds):
        states = [BeliefState()] + [t.belief_state for t in d.turns]
        for k, turn in enumerate(d.turns[1:], start=1):
            text = turn.user.lower().rstrip(".!?")
            if text.endswith(undo):
                assert turn.belief_state == states[k - 1] != states[k], (d.dialogue_id, turn.user)
                seen["undo"] += 1
            elif text.endswith(reset):
                assert not turn.belief_state and states[k], (d.dialogue_id, turn.user)
                seen["reset"] += 1
            elif turn.act.intent == "unsupported":
                added, removed = turn.belief_state.diff(states[k])
                assert len(added) <= 1, (d.dialogue_id, turn.user)  # only what it can do
                assert set(removed) <= set().union(*map(conflicts_of, added)), (d.dialogue_id, turn.user)
                seen["unsupported"] += not added
    assert all(n >= 5 for n in seen.values()), seen


def test_references_corrections_negations_and_removals_of_what_was_never_added(corpus, bank):
    """"Get rid of it" removes what the last turn added; "I meant X, not Y" swaps it; "less cheerful" removes
    a held value; removing what the state lacks keeps the state, and the reply says so."""
    def texts(name):
        return {t.format(**PRONOUNS[p].forms()).lower().rstrip(".!?") for t in bank.data["user"][name]
                for p in PRONOUNS}
    remove_it = texts("remove_it")
    seen = {"remove_it": 0, "correction": 0, "missing": 0, "bare": 0}
    for d in (d for ds in corpus[0].values() for d in ds):
        states = [BeliefState()] + [t.belief_state for t in d.turns]
        for k, turn in enumerate(d.turns):
            added, removed = turn.belief_state.diff(states[k])
            text = turn.user.lower().rstrip(".!?")
            if k and text in remove_it:
                last_added, _ = states[k].diff(states[k - 1])
                assert removed == last_added and len(removed) == 1 and not added, (d.dialogue_id, turn.user)
                seen["remove_it"] += 1
            if turn.update is not None and turn.update.remove and not removed:
                assert set(turn.update.remove).isdisjoint(states[k].values)
                assert set(turn.update.remove) <= mentioned_values(turn.system), turn.system
                seen["missing"] += 1
            if k and any(cue in text for cue in ("i meant", "i said", "correction:", "wrong one", "my mistake",
                                                 "typed that wrong", "what i asked")):
                last_added, _ = states[k].diff(states[k - 1])
                assert removed == last_added and len(added) == 1, (d.dialogue_id, turn.user)
                seen["correction"] += 1
            seen["bare"] += len(text.split()) <= 2 and bool(added)
    assert all(n >= 5 for n in seen.values()), seen


def test_simulated_replies_name_only_what_changed_and_vary_within_a_dialogue(corpus):
    from dialogue.acts import Update, fill, false_claims, person_of
    from dialogue.metrics import distinct_n_per_dialogue

    for d in corpus[0]["train"]:
        previous, users = BeliefState(), []
        for turn in d.turns:
            change = (turn.update or Update.between(previous, turn.belief_state)).apply(previous)
            assert not false_claims(turn.system, change, turn.act), (d.dialogue_id, turn.system)
            users.append(turn.user)
            assert fill(turn.system_delex, change, turn.act, person_of(users)) is not None
            previous = turn.belief_state
    replies = [[t.system for t in d.turns] for d in corpus[0]["train"]]
    assert distinct_n_per_dialogue(replies, 1) > 0.6 and distinct_n_per_dialogue(replies, 2) > 0.85
    policies = [t.act.policy for d in corpus[0]["train"] for t in d.turns]
    assert policies.count("suggest") / len(policies) > 0.2


def test_every_template_renders_for_every_referent(bank):
    people = [*PRONOUNS.values(), *SYSTEM_VIEW.values(), *(noun_person(n) for ns in NOUN_REFERENTS.values() for n in ns)]
    slots = {k: "X" for k in ("do", "np", "old", "new", "new_hair", "bare", "the", "slot", "val", "sentence", "decline",
                              "a", "b", "neg")}
    formatter = string.Formatter()
    for part in ("values", "user", "system"):
        for path, items in _lists(bank.data[part]):
            for text in items:
                names = {f for _, f, _, _ in formatter.parse(text) if f}
                if part == "system":  # delexicalised: [placeholders] only
                    assert not names and set(placeholders(text)) <= set(PLACEHOLDERS), (path, text)
                    continue
                assert names <= set(slots) | {"obj", "poss", "subj", "self", "is", "has", "s"}, (part, path, text)
                for person in people:
                    text.format(**person.forms(), **slots)


def _lists(tree, path=()):
    if isinstance(tree, list):
        yield path, tree
    else:
        for key, sub in tree.items():
            yield from _lists(sub, (*path, key))


def test_bank_sizes(bank):
    for value in VALUES:
        entry = bank.data["values"][value]
        assert len(entry["do"]) >= 10 and len(entry["np"]) >= 5 and len(entry["the"]) >= 4, value
        assert len(entry["remove"]) >= 4, value
    for act in ("next", "request", "suggest"):
        assert len(bank.data["system"][act]) >= 15
    for name in ("ack_done", "ack_added", "ack_removed", "ack_changed", "ack_decline"):
        assert len(bank.data["system"][name]) >= 14, name
    for value, names in VALUE_NAMES.items():
        for name in names:  # replies must name their values so that false claims can be found
            assert mentioned_values(f"How about {name}?") == {value}, name
    for path, items in _lists(bank.data["system"]):  # the system's own words name no value
        for text in items:
            assert not mentioned_values(text), (path, text)
    for value in VALUES:
        assert len(bank.data["values"][value]["bare"]) >= 5, value
    for group in EXCLUSIVE_GROUPS:
        if group <= set(SLOT_VALUES["expression"]) | set(SLOT_VALUES["hair color"]):
            assert all("adj" in bank.data["values"][v] for v in group)


# --- held-out wording ---------------------------------------------------------------------------

def test_at_least_a_fifth_of_every_value_and_frame_list_is_held_out(bank):
    held = bank.heldout
    for value in VALUES:
        for kind in ("do", "np", "the", "remove"):
            items = bank.data["values"][value][kind]
            assert len(held[("values", value, kind)]) >= 0.2 * len(items), (value, kind)
    frames = {path: items for path, items in _lists(bank.data["user"]) if path[0] != "slot_names"}
    assert len(frames) >= 20
    for path, items in frames.items():
        assert len(held[("user", *path)]) >= 0.2 * len(items), path
    train = bank.lists(TRAIN)
    for path, items in held.items():
        assert not set(items) & set(train[path])
        if path[1] in FREE_FRAMES:
            assert len(items) == math.ceil(HOLDOUT_SHARE * len(bank.lists("test")[path]))


def test_held_out_phrasings_bring_no_word_that_train_lacks(bank):
    """Held-out value phrasings and accepts/declines/removals reuse words of the same value or list."""
    train = bank.lists(TRAIN)
    user = bank.data["user"]
    free = frozenset(w for name in FREE_FRAMES for t in user[name] for w in re.findall(r"[a-z]+", t.lower()))
    common = frozenset(w for _, items in _lists(user) for t in items for w in re.findall(r"[a-z]+", t.lower()))
    for path, held in bank.heldout.items():
        if path[0] == "values":
            known = {w for kind in bank.data["values"][path[1]] for t in train[("values", path[1], kind)]
                     for w in content_words(t, common)}
            skip = common
        elif path[1] not in FREE_FRAMES:
            known = {w for t in train[path] for w in content_words(t, free)}
            skip = free
        else:
            continue
        for phrasing in held:
            assert content_words(phrasing, skip) <= known, (path, phrasing)


def literal_segments(template: str) -> list[str]:
    """The fixed wording of a frame, split at its placeholders, lower case, without end punctuation."""
    parts = re.split(r"\{[^}]*\}", template.lower())
    return [p.strip(" .,?!:") for p in parts if len(p.strip(" .,?!:").split()) >= 2]


def renderings(template: str) -> set[str]:
    """A value phrasing as users write it, for every referent (lower case, no end punctuation)."""
    people = [*PRONOUNS.values(), *(noun_person(n) for ns in NOUN_REFERENTS.values() for n in ns)]
    return {template.format(**p.forms()).lower().strip(" .,?!") for p in people}


def contains(text: str, phrase: str) -> bool:
    """`phrase` occurs in `text` as whole words."""
    return phrase in text and re.search(rf"(?<![\w'-]){re.escape(phrase)}(?![\w'-])", text) is not None


def test_held_out_wording_is_absent_from_train_and_present_in_test(corpus, bank):
    dialogues, _ = corpus
    train_text = "\n".join(t.user.lower() for d in dialogues["train"] for t in d.turns)
    extra_test = [simulate_dialogue(bank, "test", 3, i) for i in range(100, 1600)]
    test_text = "\n".join(t.user.lower() for d in dialogues["test"] + extra_test for t in d.turns)
    train = bank.lists(TRAIN)
    train_values = " | ".join(r for path, items in train.items() if path[0] == "values" for s in items
                              for r in renderings(s))
    train_frames = " | ".join(s.lower() for path, items in train.items() if path[0] != "system" for s in items)
    checked = present = 0
    for path, held in bank.heldout.items():
        for template in held:
            if path[0] == "values":
                # Skip a held-out phrasing that is part of a train phrasing ("down" in "look down").
                phrases = [r for r in renderings(template) if not contains(train_values, r)]
            else:
                phrases = [s for s in literal_segments(template) if s not in train_frames]
            if not phrases:
                continue
            checked += 1
            for phrase in phrases:
                assert not contains(train_text, phrase), (path, template, phrase)
            present += any(contains(test_text, phrase) for phrase in phrases)
    assert checked >= 0.6 * sum(len(held) for held in bank.heldout.values())
    assert present >= 0.8 * checked


def test_every_value_is_named_plainly_in_train_wording(bank):
    train = bank.lists(TRAIN)
    for value in VALUES:
        phrases = [p for kind in ("do", "np") for p in train[("values", value, kind)]]
        assert any(normalize_value(w) == value for p in phrases for w in _ngrams(p)), value


def _ngrams(text: str):
    words = re.findall(r"[\w']+", text.lower().replace("-", " "))
    for n in (1, 2, 3):
        for i in range(len(words) - n + 1):
            yield " ".join(words[i:i + n])
