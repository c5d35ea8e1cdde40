"""Evaluate a dialogue model on I2Edit-format dialogues with gold history as context."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from dialogue.formats import Prediction
from dialogue.metrics import BLEU_SCORER, corpus_bleu_4, distinct_n, joint_accuracy, slot_accuracy
from dialogue.model import DialogueModel
from dialogue.ontology import BeliefState


@dataclass(frozen=True)
class TurnResult:
    """Gold and predicted outputs of one turn."""

    dialogue_id: str
    turn: int
    user: str
    gold_state: BeliefState
    gold_response: str
    prediction: Prediction

    def to_json(self) -> dict:
        return {
            "dialogue_id": self.dialogue_id, "turn": self.turn, "user": self.user,
            "gold_belief_state": self.gold_state.to_dict(),
            "pred_belief_state": self.prediction.state.to_dict(),
            "pred_belief_span": self.prediction.belief_span,
            "dropped": [f"{d.text} ({d.reason})" for d in self.prediction.dropped],
            "correct": self.gold_state == self.prediction.state,
            "gold_response": self.gold_response, "pred_response": self.prediction.response,
        }


def predict_dialogues(model: DialogueModel, dialogues, batch_size: int = 64, progress: bool = False
                      ) -> list[TurnResult]:
    """Run both tasks on every turn (context = gold history), `batch_size` turns per batched greedy decode."""
    from tqdm import tqdm

    items = []
    for dialogue in dialogues:
        history: list[tuple[str, str]] = []
        for index, turn in enumerate(dialogue.turns):
            items.append((dialogue.dialogue_id, index, turn, list(history)))
            history.append((turn.user, turn.system))
    results = []
    with tqdm(total=len(items), desc="turns", unit="turn", disable=not progress) as bar:
        for start in range(0, len(items), batch_size):
            chunk = items[start:start + batch_size]
            predictions = model.predict([(history, turn.user) for _, _, turn, history in chunk])
            results.extend(TurnResult(d, i, t.user, t.belief_state, t.system, p)
                           for (d, i, t, _), p in zip(chunk, predictions))
            bar.update(len(chunk))
    return results


def summarize(results: Sequence[TurnResult]) -> dict:
    """The metrics object `eval-dialogue --json` prints (fractions for accuracies, BLEU 0-100)."""
    gold = [r.gold_state for r in results]
    pred = [r.prediction.state for r in results]
    hyps = [r.prediction.response for r in results]
    return {
        "joint_accuracy": joint_accuracy(gold, pred),
        "slot_accuracy": slot_accuracy(gold, pred),
        "bleu": corpus_bleu_4([r.gold_response for r in results], hyps),
        "bleu_scorer": BLEU_SCORER,
        "distinct_1": distinct_n(hyps, 1),
        "distinct_2": distinct_n(hyps, 2),
        "turns": len(results),
        "dialogues": len({r.dialogue_id for r in results}),
        "dropped_values": sum(len(r.prediction.dropped) for r in results),
    }


def write_predictions(results: Sequence[TurnResult], path: Path) -> None:
    """One JSON object a line: ids, user text, gold/predicted state and response, correctness."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for r in results:
            f.write(json.dumps(r.to_json(), ensure_ascii=False) + "\n")
