"""Dialogue metrics against hand-computed values and a second BLEU implementation."""
from __future__ import annotations

import math

import pytest

from dialogue.metrics import (
    bleu_tokens, corpus_bleu_4, distinct_n, distinct_n_per_dialogue, is_spurious, joint_accuracy, sacrebleu_4,
    slot_accuracy,
)
from dialogue.ontology import BeliefState

S = BeliefState.of


def test_joint_accuracy_counts_exact_state_matches():
    gold = [S("smiling"), S("smiling", "black hair"), S("goatee", "lipstick"), S()]
    pred = [S("smiling"), S("smiling"), S("lipstick", "goatee"), S("bangs")]
    # turns 1 and 3 match (order carries no meaning), turns 2 and 4 do not
    assert joint_accuracy(gold, pred) == 0.5


def test_slot_accuracy_compares_value_sets_per_slot():
    gold = [S("smiling", "black hair"), S("lipstick", "pale skin")]
    pred = [S("smiling", "blond hair"), S("lipstick")]
    # turn 1: hair color wrong, 4 of 5 slots right; turn 2: makeup set differs, 4 of 5 right
    assert slot_accuracy(gold, pred) == pytest.approx(8 / 10)
    assert slot_accuracy([S()], [S()]) == 1.0


def test_metrics_reject_unpaired_inputs():
    with pytest.raises(ValueError, match="pair up"):
        joint_accuracy([S()], [])
    assert joint_accuracy([], []) == 0.0


def test_bleu_hand_computed_single_pair():
    # hypothesis "the cat sat on the mat" vs reference "the cat sat on a mat": 6 tokens each, so no brevity
    # penalty; matches: 1-grams 5/6, 2-grams 3/5, 3-grams 2/4, 4-grams 1/3
    expected = 100 * math.exp((math.log(5 / 6) + math.log(3 / 5) + math.log(2 / 4) + math.log(1 / 3)) / 4)
    assert corpus_bleu_4(["The cat sat on a mat"], ["the cat sat on the mat"]) == pytest.approx(expected)


def test_bleu_matches_sacrebleu_on_the_same_tokens():
    import sacrebleu

    refs = ["Done. What else would you like to change?", "Here you go! Shall I add some lipstick?",
            "I've made the change. What would you like to do next?", "Okay, it's done. Anything else?"]
    hyps = ["Done. What else do you want to change?", "Here you go. Shall I add lipstick?",
            "I have made the change. What would you like next?", "Okay, it's done. Anything else?"]
    ours = corpus_bleu_4(refs, hyps)
    theirs = sacrebleu.corpus_bleu([" ".join(bleu_tokens(h)) for h in hyps],
                                   [[" ".join(bleu_tokens(r)) for r in refs]],
                                   tokenize="none", smooth_method="none", force=True).score
    assert 0 < ours < 100
    assert ours == pytest.approx(theirs, abs=1e-6)


def test_bleu_lowercases_and_zero_without_four_gram_match():
    assert corpus_bleu_4(["DONE WHAT ELSE NOW"], ["done what else now"]) == pytest.approx(100.0)
    assert corpus_bleu_4(["a b c d"], ["d c b a"]) == pytest.approx(0.0, abs=1e-9)


def test_distinct_n_is_corpus_level_unique_over_total():
    responses = ["Done what else", "done WHAT next"]
    # unigrams: done, what, else, done, what, next -> 4 unique / 6
    assert distinct_n(responses, 1) == pytest.approx(4 / 6)
    # bigrams: (done what), (what else), (done what), (what next) -> 3 unique / 4
    assert distinct_n(responses, 2) == pytest.approx(3 / 4)
    assert distinct_n(["single"], 2) == 0.0


def test_distinct_per_dialogue_averages_over_dialogues():
    dialogues = [["done what else", "done what next"], ["a b", "c d"]]
    # dialogue 1: 4 unique / 6 unigrams; dialogue 2: 4 / 4
    assert distinct_n_per_dialogue(dialogues, 1) == pytest.approx((4 / 6 + 1.0) / 2)
    assert distinct_n_per_dialogue(dialogues, 2) == pytest.approx((3 / 4 + 1.0) / 2)
    assert distinct_n_per_dialogue([["single"]], 2) == 0.0  # no bigram anywhere
    # per dialogue is never below the corpus figure on the same replies
    assert distinct_n_per_dialogue(dialogues, 1) >= distinct_n([r for d in dialogues for r in d], 1)


def test_sacrebleu_is_lowercased_and_in_0_100():
    refs = ["Done. What else would you like to change?", "Here you go! Shall I add some lipstick?"]
    assert sacrebleu_4(refs, [r.upper() for r in refs]) == pytest.approx(100.0)
    assert 0.0 < sacrebleu_4(refs, ["Done. What else do you want?", "Here you go."]) < 100.0


def test_a_spurious_change_touches_a_slot_the_gold_state_left_alone():
    previous = S("smiling", "lipstick")
    assert not is_spurious(previous, S("smiling", "lipstick", "bangs"), S("smiling", "lipstick", "bangs"))
    assert not is_spurious(previous, S("sad", "lipstick"), S("angry", "lipstick"))  # wrong value, right slot
    assert is_spurious(previous, S("smiling", "lipstick", "bangs"), S("lipstick", "bangs"))
    assert is_spurious(previous, previous, S("smiling", "lipstick", "goatee"))
