"""Corpus statistics (paper Table 2, Fig. 3) and the `i2edit data build|stats` commands."""
from __future__ import annotations

import json

import pytest

from data_tools.phrasebank import PhraseBank
from dialogue.records import Dialogue, Turn
from data_tools.simulator import simulate_dialogue
from data_tools.stats import PAPER_TABLE_2, corpus_stats, values_named
from dialogue.ontology import VALUES, BeliefState
from server.cli import main

TABLE_2_KEYS = ("avg_turns", "avg_utterances", "avg_words_user", "avg_words_system",
                "avg_attributes_mentioned", "avg_attributes_edited")


def test_values_named_finds_synonyms_and_ignores_slot_names():
    assert values_named("Done. How about a fringe?") == {"bangs"}
    assert values_named("What about grey hair and a moustache?") == {"gray hair", "mustache"}
    assert values_named("Would you like to change the hair color or the facial hair?") == set()
    assert values_named("I suggest a neutral expression. What do you think?") == {"no smiling"}


def test_definitions_on_a_worked_example():
    one = Dialogue("a", None, [
        Turn("Make her smile.", BeliefState.of("smiling"), "Done. How about bangs?", "suggest"),
        Turn("No thanks, make her sad instead.", BeliefState.of("sad"), "Okay. Anything else?", "next"),
    ])
    two = Dialogue("b", None, [
        Turn("Lipstick and earrings please.", BeliefState.of("lipstick", "earrings"), "Here you go.", "next"),
    ])
    stats = corpus_stats([one, two])
    assert stats["dialogues"] == 2 and stats["utterances"] == 6
    assert stats["avg_turns"] == 1.5 and stats["avg_utterances"] == 3.0
    assert stats["avg_words_user"] == round((3 + 6 + 4) / 3, 3)
    assert stats["avg_words_system"] == round((4 + 3 + 3) / 3, 3)
    # mentioned: {smiling, sad, bangs (suggested)} and {lipstick, earrings}; edited: final states {sad}, {lipstick, earrings}
    assert stats["avg_attributes_mentioned"] == 2.5
    assert stats["avg_attributes_edited"] == 1.5
    assert list(stats["value_counts"]) == list(VALUES)
    assert {v: c for v, c in stats["value_counts"].items() if c} == {"smiling": 1, "sad": 1, "lipstick": 1,
                                                                     "earrings": 1}
    assert stats["combination_counts"] == {"lipstick + earrings": 1, "sad": 1}


def test_a_simulated_corpus_lands_within_15_percent_of_table_2():
    bank = PhraseBank.load()
    stats = corpus_stats([simulate_dialogue(bank, "train", 11, i) for i in range(1000)])
    for key in TABLE_2_KEYS:
        assert abs(stats[key] - PAPER_TABLE_2[key]) <= 0.15 * PAPER_TABLE_2[key], (key, stats[key])
    assert sum(stats["combination_counts"].values()) == 1000
    assert all(stats["value_counts"][v] > 0 for v in VALUES)


def test_build_and_stats_commands(tmp_path, capsys):
    out = tmp_path / "corpus"
    assert main(["data", "build", "--out", str(out), "--dialogues", "36", "--seed", "2"]) == 0
    printed = capsys.readouterr().out
    assert "built 36 dialogues" in printed
    files = [str(out / f"{split}.jsonl") for split in ("train", "val", "test")]
    assert main(["data", "validate", *files]) == 0
    capsys.readouterr()
    assert main(["data", "stats", *files, "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert set(stats) == {"dialogues", "utterances", *TABLE_2_KEYS, "value_counts", "combination_counts"}
    assert stats["dialogues"] == 36
    assert main(["data", "stats", files[0]]) == 0
    table = capsys.readouterr().out
    assert "Avg # attributes edited per dialogue" in table and "Requests per value" in table


def test_stats_refuses_an_invalid_file(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"dialogue_id": "x", "turns": []}\n')
    assert main(["data", "stats", str(bad)]) == 1
    assert f"{bad}:1: dialogue x: 'turns' is empty" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["data", "build", "--out", "x", "--dialogues", "2"]])
def test_build_rejects_too_few_dialogues(argv, capsys):
    assert main(argv) == 1
    assert "at least 3" in capsys.readouterr().err
