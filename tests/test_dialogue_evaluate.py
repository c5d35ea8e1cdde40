"""`i2edit eval-dialogue`: the JSON summary, the predictions file, gold history; the shipped model."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dialogue.acts import Act, Update
from dialogue.formats import Prediction
from dialogue.records import read_dialogues
from dialogue.evaluate import TurnResult, predict_dialogues, summarize
from dialogue.model import DialogueModel, default_model_dir
from dialogue.ontology import BeliefState

S = BeliefState.of
from dialogue.train import corpus_texts
from server.cli import main as i2edit
from tests.dialogue_fixtures import write_corpus

KEYS = {"joint_accuracy", "slot_accuracy", "joint_accuracy_by_turn", "spurious_changes", "spurious_change_share",
        "false_claims", "false_claim_share", "suggestion_share", "bleu", "bleu_scorer", "sacrebleu", "sacrebleu_scorer",
        "distinct_1_corpus", "distinct_2_corpus", "distinct_1_per_dialogue", "distinct_2_per_dialogue",
        "distinct_convention", "turns", "dialogues", "model", "data", "seconds"}
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
                   "--json", "--predictions", str(out), "--out", str(tmp_path / "results" / "eval.json")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert KEYS <= set(summary)
    assert json.loads((tmp_path / "results" / "eval.json").read_text()) == summary
    dialogues = read_dialogues(corpus / "test.jsonl")
    assert summary["dialogues"] == len(dialogues)
    assert summary["turns"] == sum(len(d.turns) for d in dialogues)
    for key in ("joint_accuracy", "slot_accuracy", "distinct_1_corpus", "distinct_2_per_dialogue",
                "spurious_change_share", "false_claim_share", "suggestion_share"):
        assert 0.0 <= summary[key] <= 1.0
    assert 0.0 <= summary["bleu"] <= 100.0 and "Treebank" in summary["bleu_scorer"]
    assert 0.0 <= summary["sacrebleu"] <= 100.0 and "per-dialogue" in summary["distinct_convention"]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == summary["turns"]
    first = dialogues[0].turns[0]
    assert rows[0]["gold_belief_state"] == first.belief_state.to_dict()
    assert rows[0]["gold_response"] == first.system and "pred_belief_state" in rows[0]


def test_evaluation_uses_gold_history_and_gold_previous_state(setup, monkeypatch):
    corpus, model_dir = setup
    model = DialogueModel.from_pretrained(model_dir, device="cpu")
    seen = []
    monkeypatch.setattr(model, "predict", lambda turns: seen.extend(turns) or [
        Prediction(BeliefState(), "", [], "") for _ in turns])
    dialogue = read_dialogues(corpus / "test.jsonl")[0]
    results = predict_dialogues(model, [dialogue], batch_size=2)
    assert [len(h) for h, _, _ in seen] == list(range(len(dialogue.turns)))
    assert seen[-1][0] == [(t.user, t.system) for t in dialogue.turns[:-1]]
    assert [s for _, _, s in seen] == [BeliefState()] + [t.belief_state for t in dialogue.turns[:-1]]
    assert summarize(results)["turns"] == len(dialogue.turns)


def test_chained_evaluation_feeds_each_turn_the_models_own_previous_state(setup, monkeypatch):
    corpus, model_dir = setup
    model = DialogueModel.from_pretrained(model_dir, device="cpu")
    dialogues = read_dialogues(corpus / "test.jsonl")[:2]
    assert max(len(d.turns) for d in dialogues) > 1
    wrote = [S("smiling"), S("smiling", "bangs"), S("goatee"), S("goatee", "sad"), S("black hair")]
    seen = []

    def predict(turns):  # each call's states differ from the gold ones and from each other
        out = [Prediction(wrote[(len(seen) + k) % len(wrote)], "", [], "") for k in range(len(turns))]
        seen.extend(turns)
        return out
    monkeypatch.setattr(model, "predict", predict)
    results = predict_dialogues(model, dialogues, batch_size=1, chained=True)
    assert [(r.dialogue_id, r.turn) for r in results] == [
        (d.dialogue_id, i) for d in dialogues for i in range(len(d.turns))]
    by_key = {(r.dialogue_id, r.turn): r for r in results}
    for dialogue in dialogues:
        for i, turn in enumerate(dialogue.turns):
            result = by_key[dialogue.dialogue_id, i]
            own_before = by_key[dialogue.dialogue_id, i - 1].prediction.state if i else BeliefState()
            gold_before = dialogue.turns[i - 1].belief_state if i else BeliefState()
            assert result.given == own_before and result.previous == gold_before
            assert result.gold_state == turn.belief_state
    assert [state for _, _, state in seen].count(BeliefState()) >= len(dialogues)  # every first turn starts empty


def test_a_chained_turn_is_spurious_when_it_changes_its_own_state_where_the_user_said_nothing():
    gold_before, gold = S("smiling"), S("smiling", "bangs")
    own_before = S("sad")  # the model misread an earlier turn
    kept = TurnResult("d", 1, "u", gold_before, gold, "", Prediction(S("sad", "bangs"), "", [], ""), given=own_before)
    dropped = TurnResult("d", 1, "u", gold_before, gold, "", Prediction(S("bangs"), "", [], ""), given=own_before)
    assert not kept.spurious      # carried its own (wrong) expression over, changed only the hairstyle
    assert dropped.spurious       # dropped the expression that this turn did not talk about


def test_false_claims_spurious_changes_and_suggestions_are_counted():
    def result(turn, previous, gold, pred, response, act, update):
        change = update.apply(previous)
        assert change.state == pred
        return TurnResult("d1", turn, "u", previous, gold, "gold reply", Prediction(pred, "", [], response, act, "",
                                                                                     change))
    results = [
        result(0, S(), S("smiling"), S("smiling"), "Here she is with a smile. How about bangs?",
               Act("edit", "suggest", value="bangs"), Update(add=("smiling",))),
        result(1, S("smiling"), S("smiling", "lipstick"), S("lipstick"), "Okay, I got rid of the smile.",
               Act(), Update(add=("lipstick",), remove=("smiling",))),  # smiling removed: spurious, not a claim
        result(2, S("lipstick"), S(), S("lipstick"), "Okay, I got rid of the lipstick.", Act(), Update()),
    ]
    summary = summarize(results)
    assert summary["false_claims"] == 1 and summary["spurious_changes"] == 1
    assert summary["suggestion_share"] == pytest.approx(1 / 3)
    assert summary["joint_accuracy"] == pytest.approx(1 / 3) and summary["joint_accuracy_by_turn"] == [1.0, 0.0, 0.0]
    assert results[2].false_claims == {"lipstick"} and results[1].spurious


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
