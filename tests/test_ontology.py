import ast
import pathlib

import pytest

from dialogue import ontology
from dialogue.ontology import (
    EXCLUSIVE_GROUPS, SLOTS, SLOT_VALUES, VALUES, BeliefState, OntologyError,
    normalize_slot, normalize_value, parse_requirements,
)


def test_table_1_sizes_and_order():
    assert SLOTS == ("expression", "hair color", "hairstyle", "beard", "makeup")
    assert len(VALUES) == 23 and len(set(VALUES)) == 23
    assert [len(SLOT_VALUES[s]) for s in SLOTS] == [4, 4, 5, 2, 8]


def test_ontology_module_does_not_import_torch():
    tree = ast.parse(pathlib.Path(ontology.__file__).read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert "torch" not in imported


@pytest.mark.parametrize("group", EXCLUSIVE_GROUPS, ids=lambda g: "+".join(sorted(g)))
def test_every_exclusive_group_keeps_only_the_newest(group):
    members = sorted(group)
    state = BeliefState.of("earrings")
    for value in members:
        state = state.add(value)
        assert value in state
        assert len(set(state.values) & group) == 1
        assert "earrings" in state  # additive values survive


@pytest.mark.parametrize("group", EXCLUSIVE_GROUPS, ids=lambda g: "+".join(sorted(g)))
def test_state_holding_an_exclusive_pair_is_rejected(group):
    a, b = sorted(group)[:2]
    with pytest.raises(OntologyError, match="exclude each other"):
        BeliefState.of(a, b)


def test_no_makeup_excludes_heavy_makeup_and_lipstick_but_not_earrings():
    state = BeliefState.of("heavy makeup", "lipstick", "earrings", "pale skin").add("no makeup")
    assert state.values == ("no makeup", "earrings", "pale skin")
    assert state.add("lipstick").values == ("lipstick", "earrings", "pale skin")


def test_additive_values_accumulate():
    state = BeliefState()
    for v in ("receding hairline", "sideburns", "bangs", "mustache", "goatee", "rosy cheeks"):
        state = state.add(v)
    assert len(state) == 6


def test_remove_and_change():
    state = BeliefState.of("mustache", "black hair")
    assert "mustache" not in state.remove("moustache")
    with pytest.raises(OntologyError, match="does not hold"):
        state.remove("goatee")
    assert state.remove("goatee", missing_ok=True) == state
    assert state.change("black hair", "blonde").values == ("blond hair", "mustache")
    with pytest.raises(OntologyError):
        state.change("gray hair", "black hair")


def test_states_are_immutable_and_compare_as_sets():
    state = BeliefState.of("smiling")
    state.add("sad")
    assert state.values == ("smiling",)
    assert BeliefState.of("lipstick", "smiling") == BeliefState.of("smiling", "lipstick")
    with pytest.raises(AttributeError):
        state._values = frozenset()  # type: ignore[misc]


@pytest.mark.parametrize("text,value", [
    ("wearing lipsticks", "lipstick"), ("Moustache", "mustache"), ("side-burns", "sideburns"),
    ("grey hair", "gray hair"), ("Blonde", "blond hair"), ("heavy make-up", "heavy makeup"),
    ("no smile", "no smiling"), ("Receding hair-line", "receding hairline"), ("earring", "earrings"),
])
def test_value_synonyms(text, value):
    assert normalize_value(text) == value


def test_unknown_words_are_not_values():
    assert normalize_value("purple hair") is None
    assert normalize_value("") is None
    assert normalize_slot("Hair colour") == "hair color"
    assert normalize_slot("make-up") == "makeup"
    assert normalize_slot("shoes") is None


def test_dict_round_trip_in_canonical_order():
    state = BeliefState.of("pale skin", "black hair", "angry", "lipstick")
    assert list(state.to_dict()) == ["expression", "hair color", "makeup"]
    assert state.to_dict()["makeup"] == ["lipstick", "pale skin"]
    assert BeliefState.from_dict(state.to_dict()) == state
    assert BeliefState.from_dict({"makeup": ["wearing lipsticks"]}).values == ("lipstick",)


@pytest.mark.parametrize("bad,msg", [
    ({"shoes": ["red"]}, "unknown slot"),
    ({"makeup": ["glitter"]}, "unknown value"),
    ({"makeup": "lipstick"}, "list of values"),
    ({"makeup": ["smiling"]}, "belongs to slot"),
    ({"expression": ["smiling", "sad"]}, "exclude each other"),
    (["smiling"], "must be an object"),
    ({"makeup": [3]}, "unknown value"),
])
def test_from_dict_rejects_bad_states(bad, msg):
    with pytest.raises(OntologyError, match=msg):
        BeliefState.from_dict(bad)


def test_span_format_and_round_trip():
    state = BeliefState.of("smiling", "black hair", "lipstick", "pale skin")
    assert state.to_span() == "<sos_b> [expression] smiling [hair color] black hair [makeup] lipstick, pale skin <eos_b>"
    assert BeliefState().to_span() == "<sos_b> <eos_b>"
    for values in [(), ("goatee",), VALUES[4:5] + ("bangs", "sideburns", "big lips", "earrings")]:
        s = BeliefState.of(*values)
        assert BeliefState.from_span(s.to_span()) == (s, [])


@pytest.mark.parametrize("garbage", [
    "", "<sos_b>", "]]][[[", "[expression", "[] , ,", "\x00\xff\ud800", "<eos_b> [makeup] <sos_b>",
    "[expression] [expression] smiling smiling", "a" * 10000, "[" * 500 + "]" * 500,
])
def test_lenient_parse_of_garbage_never_raises(garbage):
    state, dropped = BeliefState.from_span(garbage)
    assert isinstance(state, BeliefState)
    assert all(d.reason for d in dropped)


def test_lenient_parse_reports_what_it_dropped():
    state, dropped = BeliefState.from_span(
        "<sos_b> junk [expression] smiling, sad [hair colour] grey [foo] bar [makeup] glitter <eos_b>")
    assert state.values == ("sad", "gray hair")
    reasons = {d.text: d.reason for d in dropped}
    assert reasons["junk"].startswith("text before")
    assert "exclusive" in reasons["smiling"]
    assert reasons["[foo]"] == "unknown slot"
    assert "unknown value" in reasons["glitter"]
    assert BeliefState.from_span(None)[1][0].reason == "not a string"  # type: ignore[arg-type]


def test_value_under_the_wrong_slot_is_kept():
    state, dropped = BeliefState.from_span("<sos_b> [makeup] smiling <eos_b>")
    assert state.values == ("smiling",) and dropped == []


def test_diff_and_requirements_text():
    before = BeliefState.of("black hair", "mustache")
    after = before.change("black hair", "blond hair").remove("mustache").add("smiling")
    assert after.diff(before) == (("smiling", "blond hair"), ("black hair", "mustache"))
    assert parse_requirements("expression: smiling; hair color: black hair") == BeliefState.of("smiling", "black hair")
    assert parse_requirements(after.to_text()) == after
    with pytest.raises(OntologyError, match="slot: value"):
        parse_requirements("smiling")
