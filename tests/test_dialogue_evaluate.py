"""`i2edit eval-dialogue`: the JSON summary, the predictions file, gold history; the shipped model."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dialogue.records import read_dialogues
from dialogue.evaluate import predict_dialogues, summarize
from dialogue.model import DialogueModel, default_model_dir
from dialogue.ontology import BeliefState
from dialogue.train import corpus_texts
from server.cli import main as i2edit
from tests.dialogue_fixtures import write_corpus

KEYS = {"joint_accuracy", "slot_accuracy", "bleu", "bleu_scorer", "distinct_1", "distinct_2", "turns", "dialogues"}
HANDWRITTEN = Path(__file__).parent / "data" / "dialogue" / "handwritten.jsonl"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    corpus = write_corpus(root / "corpus", {"train": 20, "test": 3})
    model = DialogueModel.from_preset("tiny", corpus_texts(read_dialogues(corpus / "train.jsonl")))
    model.save_pretrained(root / "model")
    return corpus, root / "model"


def test_eval_cli_prints_the_metrics_object_and_writes_predictions(setup, tmp_path, capsys):
    corpus, model_dir = setup
    out = tmp_path / "pred.jsonl"
    assert i2edit(["eval-dialogue", "--data", str(corpus / "test.jsonl"), "--model", str(model_dir),
                   "--json", "--predictions", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert KEYS <= set(summary)
    dialogues = read_dialogues(corpus / "test.jsonl")
    assert summary["dialogues"] == len(dialogues)
    assert summary["turns"] == sum(len(d.turns) for d in dialogues)
    for key in ("joint_accuracy", "slot_accuracy", "distinct_1", "distinct_2"):
        assert 0.0 <= summary[key] <= 1.0
    assert 0.0 <= summary["bleu"] <= 100.0 and "Treebank" in summary["bleu_scorer"]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == summary["turns"]
    first = dialogues[0].turns[0]
    assert rows[0]["gold_belief_state"] == first.belief_state.to_dict()
    assert rows[0]["gold_response"] == first.system and "pred_belief_state" in rows[0]


def test_evaluation_uses_gold_history(setup, monkeypatch):
    corpus, model_dir = setup
    model = DialogueModel.from_pretrained(model_dir, device="cpu")
    seen = []
    monkeypatch.setattr(model, "predict", lambda turns, tasks=None: seen.extend(turns) or [
        type("P", (), {"state": BeliefState(), "response": "", "dropped": [], "belief_span": ""})()
        for _ in turns])
    dialogue = read_dialogues(corpus / "test.jsonl")[0]
    results = predict_dialogues(model, [dialogue], batch_size=2)
    assert [len(h) for h, _ in seen] == list(range(len(dialogue.turns)))
    assert seen[-1][0] == [(t.user, t.system) for t in dialogue.turns[:-1]]
    assert summarize(results)["turns"] == len(dialogue.turns)


def test_eval_cli_names_a_missing_model_file(setup, tmp_path, capsys):
    corpus, _ = setup
    assert i2edit(["eval-dialogue", "--data", str(corpus / "test.jsonl"), "--model", str(tmp_path)]) == 1
    assert "config.json" in capsys.readouterr().err


def test_handwritten_dialogues_are_valid_and_cover_replies_and_removals():
    dialogues = read_dialogues(HANDWRITTEN)
    assert 20 <= len(dialogues) <= 30
    users = [t.user.lower() for d in dialogues for t in d.turns]
    assert any(u.startswith("sure") for u in users) and any("instead" in u for u in users)
    assert any(len(b.belief_state) < len(a.belief_state) for d in dialogues for a, b in zip(d.turns, d.turns[1:]))


def test_shipped_model_loads_by_default_and_fits_the_size_limit():
    """The model is committed (dialogue/shipped/): a checkout or install without it is broken, not skippable."""
    shipped = default_model_dir()
    assert (shipped / "config.json").is_file(), f"the shipped dialogue model is missing from {shipped}"
    size = sum(p.stat().st_size for p in default_model_dir().iterdir() if p.is_file())
    assert size <= 40 * 2**20
    model = DialogueModel.from_pretrained(device="cpu")
    state, response = model.step([], "Please make her smile.")
    assert isinstance(state, BeliefState) and response
