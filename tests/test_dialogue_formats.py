"""PPTOD text formats: context, prompts, targets, the state-conditioned (update) format and lenient reading."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from dialogue.acts import Act, Update
from dialogue.formats import (
    ACT, PPTOD_SPECIAL_TOKENS, REPLY, RESPOND, TRACK, TextFormat, WAVE1_FORMAT, belief_target, build_context,
    clean_utterance, encoder_text, parse_act, parse_belief, parse_response, parse_update, response_target,
    turn_examples,
)
from dialogue.ontology import BeliefState


@dataclass
class Turn:
    user: str
    system: str
    belief_state: BeliefState
    update: Update | None = None
    act: Act | None = None
    system_delex: str | None = None


def test_context_wraps_history_then_current_user_turn():
    context = build_context([("make her smile", "Done.")], "  now\nblack   hair ")
    assert context == "<sos_u> make her smile <eos_u> <sos_r> Done. <eos_r> <sos_u> now black hair <eos_u>"
    assert build_context([], "hi") == "<sos_u> hi <eos_u>"


def test_encoder_text_has_task_prompt_state_and_context_markers():
    assert encoder_text(TRACK, "<sos_u> hi <eos_u>") == \
        "translate dialogue to belief state: <sos_context> <sos_u> hi <eos_u> <eos_context>"
    assert encoder_text(TRACK, "C", BeliefState.of("bangs")) == \
        "translate dialogue to belief state: <sos_b> [hairstyle] bangs <eos_b> <sos_context> C <eos_context>"
    assert encoder_text(ACT, "C").startswith("translate dialogue to dialogue action: <sos_context>")
    assert encoder_text(RESPOND, "C").startswith("translate dialogue to system response: <sos_context>")


def test_update_format_keeps_the_last_exchanges_and_history_format_all():
    history = [("a", "A"), ("b", "B"), ("c", "C")]
    assert TextFormat(context_turns=1).context(history, "d") == build_context(history[-1:], "d")
    assert TextFormat(context_turns=2).context(history, "d") == build_context(history[-2:], "d")
    assert TextFormat(context_turns=0).context(history, "d") == build_context(history, "d")
    assert WAVE1_FORMAT.context(history, "d") == build_context(history, "d")
    with pytest.raises(ValueError, match="tracking format"):
        TextFormat(tracking="diff")


def test_user_text_cannot_inject_marker_tokens():
    assert clean_utterance("add <sos_b> bangs <eos_context> now") == "add bangs now"
    assert len(PPTOD_SPECIAL_TOKENS) == 19 and len(set(PPTOD_SPECIAL_TOKENS)) == 19


def test_belief_target_round_trips_through_the_parser():
    for state in (BeliefState(), BeliefState.of("smiling", "black hair", "lipstick", "pale skin", "goatee")):
        target = belief_target(state)
        assert target.startswith("<sos_b>") and target.endswith("<eos_b>")
        parsed, dropped = parse_belief(target)
        assert parsed == state and dropped == []
    assert belief_target(BeliefState()) == "<sos_b> <eos_b>"


def test_update_and_act_spans_round_trip():
    update = Update(add=("black hair", "smiling"), remove=("lipstick",))
    assert update.to_span() == "<sos_b> [add] smiling, black hair [remove] lipstick <eos_b>"
    assert parse_update(update.to_span() + " <pad>") == (update, [])
    act = Act("edit", "suggest", value="bangs")
    assert parse_act(act.to_span()) == (act, [])
    assert parse_act("<sos_a> gibberish [x] <eos_a>")[0] == Act()  # unreadable: edit next


def test_response_target_round_trips():
    assert response_target("Done.  What else?") == "<sos_r> Done. What else? <eos_r>"
    assert parse_response("<sos_r> Done. What else? <eos_r> <pad> <pad>") == "Done. What else?"


def test_garbage_spans_parse_leniently():
    state, dropped = parse_belief("<sos_b> [hair co66] s. s. [expression] smiling, grinning [makeup] lipstick")
    assert state == BeliefState.of("smiling", "lipstick")  # no stop token: read to the end
    assert {d.reason for d in dropped} >= {"unknown slot"}
    assert parse_belief("")[0] == BeliefState()
    assert parse_belief("<sos_b> [beard] goatee <eos_b> [expression] sad")[0] == BeliefState.of("goatee")
    assert parse_response("no markers at all") == "no markers at all"
    update, dropped = parse_update("<sos_b> [add] smiling, sad, wings [delete] bangs [remove] goatee")
    assert update == Update(add=("sad",), remove=("goatee",))  # the last of two exclusive adds wins
    assert {d.reason for d in dropped} >= {"not [add] or [remove]", "unknown value after [add]"}


def test_wave1_examples_use_gold_history_and_whole_states():
    turns = [Turn("add bangs", "Done.", BeliefState.of("bangs")),
             Turn("and a smile", "Okay.", BeliefState.of("bangs", "smiling"))]
    examples = list(turn_examples(turns, WAVE1_FORMAT))
    assert [e.task for e in examples] == [TRACK, RESPOND, TRACK, RESPOND]
    assert examples[2].context == "<sos_u> add bangs <eos_u> <sos_r> Done. <eos_r> <sos_u> and a smile <eos_u>"
    assert examples[2].target == "<sos_b> [expression] smiling [hairstyle] bangs <eos_b>"
    assert examples[3].target == "<sos_r> Okay. <eos_r>"
    assert examples[3].source == encoder_text(RESPOND, examples[3].context)


def test_update_examples_read_the_gold_previous_state_and_write_the_update():
    act = Act("edit", "suggest", value="lipstick")
    turns = [Turn("add bangs", "Done.", BeliefState.of("bangs"), act=Act(), system_delex="Done."),
             Turn("sad, no fringe", "Okay. How about lipstick?", BeliefState.of("sad"), act=act,
                  system_delex="Okay. How about [value]?"),
             Turn("remove the mustache", "I never added a mustache.", BeliefState.of("sad"),
                  update=Update(remove=("mustache",)), act=Act(), system_delex="I never added [missing].")]
    examples = list(turn_examples(turns, TextFormat()))
    assert [e.task for e in examples] == [TRACK, ACT, REPLY] * 3
    track, policy, reply = examples[3:6]
    assert track.state == BeliefState.of("bangs") and policy.state == track.state
    assert track.target == "<sos_b> [add] sad [remove] bangs <eos_b>"
    assert track.source.startswith("translate dialogue to belief state: <sos_b> [hairstyle] bangs <eos_b>")
    assert policy.target == "<sos_a> edit suggest [lipstick] <eos_a>"
    assert reply.context == "<sos_a> added removed ; edit ; suggest <eos_a>"
    assert reply.target == "<sos_r> Okay. How about [value]? <eos_r>"
    assert reply.source == "translate dialogue action to system response: " + reply.context
    assert examples[6].target == "<sos_b> [remove] mustache <eos_b>"  # the user's own update, not the diff
    assert examples[8].context.startswith("<sos_a> missing ;")
    unannotated = [Turn("add bangs", "Done.", BeliefState.of("bangs"))]
    assert [e.task for e in turn_examples(unannotated, TextFormat())] == [TRACK]
