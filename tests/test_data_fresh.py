"""Fresh simulated training dialogues every epoch (`i2edit train-dialogue --simulate N`)."""
from __future__ import annotations

import json

import pytest

from data_tools.fresh import SimulatedSource
from data_tools.simulator import build_corpus, corpus_dialogues
from dialogue.records import read_dialogues
from server.cli import main as i2edit


def test_corpus_dialogues_are_the_built_corpus_and_train_goes_on(tmp_path):
    paths = build_corpus(tmp_path, dialogues=36, seed=2)
    for split, path in paths.items():
        built = read_dialogues(path)
        assert corpus_dialogues(split, 0, len(built), seed=2, total=36) == built
    more = corpus_dialogues("train", 30, 5, seed=2, total=36)  # past the 30 training dialogues of that corpus
    assert [d.dialogue_id for d in more] == [f"train-{i:06d}" for i in range(31, 36)]


def test_each_epoch_brings_new_dialogues_and_a_resumed_run_sees_the_same():
    source = SimulatedSource(4, seed=1, val_dialogues=3)
    first, second = source.train(0), source.train(1)
    assert len(first) == len(second) == 4
    assert {d.dialogue_id for d in first}.isdisjoint(d.dialogue_id for d in second)
    assert SimulatedSource(4, seed=1).train(1) == second
    assert source.val() == corpus_dialogues("val", 0, 3, seed=1)
    with pytest.raises(ValueError, match="--simulate"):
        SimulatedSource(0)


@pytest.mark.usefixtures("one_torch_thread")
def test_train_dialogue_simulates_its_data_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train-dialogue", "--simulate", "12", "--out", str(out), "--preset", "tiny", "--epochs", "2",
            "--batch-size", "16", "--val-dialogues", "3", "--threads", "1", "--response-ratio", "0.5"]
    assert i2edit(args + ["--max-steps", "2"]) == 0
    assert i2edit(args + ["--resume"]) == 0
    assert "best validation joint accuracy" in capsys.readouterr().out
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]
    settings = json.loads((out / "i2edit_dialogue.json").read_text())
    assert (settings["tracking"], settings["responses"], settings["context_turns"]) == ("update", "delexicalised", 1)
    assert i2edit(["train-dialogue", "--out", str(tmp_path / "x"), "--preset", "tiny"]) == 1
    assert "--data DIR" in capsys.readouterr().err
