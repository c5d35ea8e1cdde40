"""PPTOD text formats: context, prompts, targets and lenient reading of generated spans."""
from __future__ import annotations

from dataclasses import dataclass

from dialogue.formats import (
    PPTOD_SPECIAL_TOKENS, RESPOND, TRACK, belief_target, build_context, clean_utterance, encoder_text,
    parse_belief, parse_response, response_target, turn_examples,
)
from dialogue.ontology import BeliefState


@dataclass
class Turn:
    user: str
    system: str
    belief_state: BeliefState


def test_context_wraps_history_then_current_user_turn():
    context = build_context([("make her smile", "Done.")], "  now\nblack   hair ")
    assert context == "<sos_u> make her smile <eos_u> <sos_r> Done. <eos_r> <sos_u> now black hair <eos_u>"
    assert build_context([], "hi") == "<sos_u> hi <eos_u>"


def test_encoder_text_has_task_prompt_and_context_markers():
    assert encoder_text(TRACK, "<sos_u> hi <eos_u>") == \
        "translate dialogue to belief state: <sos_context> <sos_u> hi <eos_u> <eos_context>"
    assert encoder_text(RESPOND, "C").startswith("translate dialogue to system response: <sos_context>")


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


def test_turn_examples_use_gold_history_and_both_tasks():
    turns = [Turn("add bangs", "Done.", BeliefState.of("bangs")),
             Turn("and a smile", "Okay.", BeliefState.of("bangs", "smiling"))]
    examples = list(turn_examples(turns))
    assert [e.task for e in examples] == [TRACK, RESPOND, TRACK, RESPOND]
    assert examples[2].context == "<sos_u> add bangs <eos_u> <sos_r> Done. <eos_r> <sos_u> and a smile <eos_u>"
    assert examples[2].target == "<sos_b> [expression] smiling [hairstyle] bangs <eos_b>"
    assert examples[3].target == "<sos_r> Okay. <eos_r>"
    assert examples[3].source == encoder_text(RESPOND, examples[3].context)
