"""Evaluate a dialogue model on I2Edit-format dialogues with gold history as input, and as the previous state
either the gold one (`chained=False`, the usual teacher-forced figure) or the state the model itself wrote the
turn before (`chained=True`: what a chat does, where one wrong turn carries over to the next)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from dialogue.acts import false_claims
from dialogue.formats import Prediction
from dialogue.metrics import (
    BLEU_SCORER, SACREBLEU_SCORER, corpus_bleu_4, distinct_n, distinct_n_per_dialogue, is_spurious, joint_accuracy,
    sacrebleu_4, slot_accuracy,
)
from dialogue.model import DialogueModel
from dialogue.ontology import BeliefState

DISTINCT_CONVENTION = (
    "distinct_*_corpus: distinct n-grams / all n-grams over every response of the file; "
    "distinct_*_per_dialogue: the same over the responses of one dialogue, averaged over dialogues. The paper's "
    "Distinct-1/2 (0.50 / 0.88 for PPTOD on I2Edit) can only be compared with the per-dialogue figures: over a "
    "whole corpus of short task replies no model comes near them.")


@dataclass(frozen=True)
class TurnResult:
    """Gold and predicted outputs of one turn (`previous`: the gold state before it; `given`: the state the
    model read, the gold one or, chained, its own previous prediction)."""

    dialogue_id: str
    turn: int
    user: str
    previous: BeliefState
    gold_state: BeliefState
    gold_response: str
    prediction: Prediction
    given: BeliefState | None = None

    @property
    def false_claims(self) -> set[str]:
        """Values the reply names that its turn did not change (nor suggests); see `acts.false_claims`."""
        change = self.prediction.change
        if change is None:
            return set()
        return false_claims(self.prediction.response, change, self.prediction.act)

    @property
    def spurious(self) -> bool:
        """Whether the turn changed, from the state the model read, a slot that the gold turn left alone."""
        return is_spurious(self.previous, self.gold_state, self.prediction.state, self.given)

    def to_json(self) -> dict:
        act = self.prediction.act
        return {
            "dialogue_id": self.dialogue_id, "turn": self.turn, "user": self.user,
            "gold_belief_state": self.gold_state.to_dict(),
            "pred_belief_state": self.prediction.state.to_dict(),
            "pred_belief_span": self.prediction.belief_span,
            "dropped": [f"{d.text} ({d.reason})" for d in self.prediction.dropped],
            "correct": self.gold_state == self.prediction.state,
            "spurious_change": self.spurious,
            "pred_act": act.to_text() if act is not None else None,
            "gold_response": self.gold_response, "pred_response": self.prediction.response,
            "pred_delex": self.prediction.delex,
            "false_claims": sorted(self.false_claims),
        }


def predict_dialogues(model: DialogueModel, dialogues, batch_size: int = 64, progress: bool = False,
                      chained: bool = False) -> list[TurnResult]:
    """Run every task on every turn with gold history, `batch_size` turns per batch. The previous state is the
    gold one, or with `chained` the model's own prediction of the turn before (turns then run position by
    position across dialogues). Results come in dialogue order."""
    from tqdm import tqdm

    slots = []  # (dialogue number, turn number, turn, gold history, gold previous state, dialogue id)
    longest = 0
    for number, dialogue in enumerate(dialogues):
        history: list[tuple[str, str]] = []
        previous = BeliefState()
        for index, turn in enumerate(dialogue.turns):
            slots.append((number, index, turn, list(history), previous, dialogue.dialogue_id))
            history.append((turn.user, turn.system))
            previous = turn.belief_state
        longest = max(longest, len(dialogue.turns))
    waves = [[s for s in slots if s[1] == i] for i in range(longest)] if chained else [slots]
    own: dict[int, BeliefState] = {}  # dialogue number -> the state the model wrote last (chained)
    done: dict[tuple[int, int], TurnResult] = {}
    with tqdm(total=len(slots), desc="turns", unit="turn", disable=not progress) as bar:
        for wave in waves:
            for start in range(0, len(wave), batch_size):
                chunk = wave[start:start + batch_size]
                given = [own.get(n, BeliefState()) if chained else prev for n, _, _, _, prev, _ in chunk]
                predictions = model.predict([(history, turn.user, state)
                                             for (_, _, turn, history, _, _), state in zip(chunk, given)])
                for (n, i, t, _, prev, d), state, p in zip(chunk, given, predictions):
                    done[n, i] = TurnResult(d, i, t.user, prev, t.belief_state, t.system, p,
                                            given=state if chained else None)
                    own[n] = p.state
                bar.update(len(chunk))
    return [done[n, i] for n, i, *_ in slots]


def summarize(results: Sequence[TurnResult]) -> dict:
    """The metrics object `eval-dialogue --json` prints (fractions for shares and accuracies, BLEU 0-100)."""
    gold = [r.gold_state for r in results]
    pred = [r.prediction.state for r in results]
    hyps = [r.prediction.response for r in results]
    refs = [r.gold_response for r in results]
    by_dialogue: dict[str, list[str]] = {}
    for r in results:
        by_dialogue.setdefault(r.dialogue_id, []).append(r.prediction.response)
    turns = len(results)
    by_turn: dict[int, list[bool]] = {}
    for r in results:
        by_turn.setdefault(r.turn, []).append(r.gold_state == r.prediction.state)
    false_claim_turns = sum(bool(r.false_claims) for r in results)
    spurious = sum(r.spurious for r in results)
    suggestions = sum(r.prediction.act is not None and r.prediction.act.policy == "suggest" for r in results)
    return {
        "joint_accuracy": joint_accuracy(gold, pred),
        "slot_accuracy": slot_accuracy(gold, pred),
        "joint_accuracy_by_turn": [sum(v) / len(v) for _, v in sorted(by_turn.items())],
        "spurious_changes": spurious,
        "spurious_change_share": spurious / turns if turns else 0.0,
        "false_claims": false_claim_turns,
        "false_claim_share": false_claim_turns / turns if turns else 0.0,
        "suggestion_share": suggestions / turns if turns else 0.0,
        "bleu": corpus_bleu_4(refs, hyps),
        "bleu_scorer": BLEU_SCORER,
        "sacrebleu": sacrebleu_4(refs, hyps),
        "sacrebleu_scorer": SACREBLEU_SCORER,
        "distinct_1_corpus": distinct_n(hyps, 1),
        "distinct_2_corpus": distinct_n(hyps, 2),
        "distinct_1_per_dialogue": distinct_n_per_dialogue(list(by_dialogue.values()), 1),
        "distinct_2_per_dialogue": distinct_n_per_dialogue(list(by_dialogue.values()), 2),
        "distinct_convention": DISTINCT_CONVENTION,
        "turns": turns,
        "dialogues": len(by_dialogue),
        "dropped_values": sum(len(r.prediction.dropped) for r in results),
    }


def write_predictions(results: Sequence[TurnResult], path: Path) -> None:
    """One JSON object a line: ids, user text, gold/predicted state and response, act, checks."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for r in results:
            f.write(json.dumps(r.to_json(), ensure_ascii=False) + "\n")
