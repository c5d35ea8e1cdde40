"""Dialogue metrics: joint and slot accuracy of tracked states, BLEU-4 and Distinct-n of responses, and the
grounding checks (spurious changes; false claims are `dialogue.acts.false_claims`).

Conventions (also in docs/dialogue.md):
- joint accuracy: share of turns whose predicted state equals the gold one exactly (set equality per slot);
- slot accuracy: share of (turn, slot) pairs, over all 5 slots of every turn, whose predicted value set
  equals the gold one (two empty sets are equal), i.e. TRADE's per-slot accuracy with set-valued slots;
- BLEU: corpus BLEU-4 x100 with nltk's `corpus_bleu` (uniform weights, no smoothing, one reference per
  response) on lowercased responses tokenised by nltk's `TreebankWordTokenizer`; and sacrebleu's
  `corpus_bleu` on the raw responses with its own defaults (13a tokenisation, exp smoothing) plus lowercasing;
- Distinct-n: distinct n-grams / total n-grams, lowercased whitespace tokens, n-grams within one response;
  over the whole corpus (`distinct_n`) and averaged over dialogues (`distinct_n_per_dialogue`: the n-grams of
  all system responses of one dialogue, then the mean over dialogues);
- spurious change: a turn where the predicted state changed a slot (against the gold previous state) that the
  gold state did not change.
"""
from __future__ import annotations

from typing import Sequence

from dialogue.ontology import SLOTS, BeliefState

BLEU_SCORER = "nltk.translate.bleu_score.corpus_bleu (BLEU-4, uniform weights, no smoothing, x100), " \
              "lowercased, nltk TreebankWordTokenizer tokens"
SACREBLEU_SCORER = "sacrebleu.corpus_bleu (BLEU-4, 13a tokenisation, exp smoothing, lowercase=True)"


def _check_pairs(gold: Sequence, pred: Sequence) -> None:
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold items but {len(pred)} predictions: they must pair up one to one")


def joint_accuracy(gold: Sequence[BeliefState], pred: Sequence[BeliefState]) -> float:
    """Share of turns whose predicted state equals the gold state exactly (0.0 for no turns)."""
    _check_pairs(gold, pred)
    return sum(g == p for g, p in zip(gold, pred)) / len(gold) if gold else 0.0


def slot_accuracy(gold: Sequence[BeliefState], pred: Sequence[BeliefState]) -> float:
    """Share of (turn, slot) pairs, all 5 slots of every turn, with equal gold and predicted value sets."""
    _check_pairs(gold, pred)
    if not gold:
        return 0.0
    correct = sum(g.slot_values(s) == p.slot_values(s) for g, p in zip(gold, pred) for s in SLOTS)
    return correct / (len(gold) * len(SLOTS))


def bleu_tokens(text: str) -> list[str]:
    """Lowercased Treebank tokens of a response (the tokenisation `corpus_bleu_4` scores)."""
    from nltk.tokenize import TreebankWordTokenizer

    return TreebankWordTokenizer().tokenize(text.lower())


def corpus_bleu_4(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus BLEU-4 in 0-100 of `hypotheses` against one reference each (see the module conventions)."""
    import warnings

    from nltk.translate.bleu_score import corpus_bleu

    _check_pairs(references, hypotheses)
    if not hypotheses:
        return 0.0
    with warnings.catch_warnings():  # nltk warns when an n-gram order has no match; the score is then 0
        warnings.simplefilter("ignore")
        score = corpus_bleu([[bleu_tokens(r)] for r in references], [bleu_tokens(h) for h in hypotheses])
    return 100.0 * float(score)


def sacrebleu_4(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus BLEU-4 in 0-100 by sacrebleu with its default tokenisation, lowercased (`SACREBLEU_SCORER`)."""
    import sacrebleu

    _check_pairs(references, hypotheses)
    if not hypotheses:
        return 0.0
    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)], lowercase=True).score)


def distinct_n(responses: Sequence[str], n: int) -> float:
    """Distinct n-grams / total n-grams over all `responses` (lowercased, whitespace tokens; 0.0 if none)."""
    grams = []
    for text in responses:
        tokens = text.lower().split()
        grams.extend(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
    return len(set(grams)) / len(grams) if grams else 0.0


def distinct_n_per_dialogue(dialogues: Sequence[Sequence[str]], n: int) -> float:
    """The mean over dialogues of `distinct_n` of each dialogue's responses (dialogues with no n-gram are left
    out; 0.0 if none has one)."""
    scores = [distinct_n(responses, n) for responses in dialogues
              if any(len(r.split()) >= n for r in responses)]
    return sum(scores) / len(scores) if scores else 0.0


def changed_slots(previous: BeliefState, state: BeliefState) -> set[str]:
    """Slots whose value sets differ between two states."""
    return {s for s in SLOTS if previous.slot_values(s) != state.slot_values(s)}


def is_spurious(previous: BeliefState, gold: BeliefState, pred: BeliefState, given: BeliefState | None = None) -> bool:
    """Whether `pred` changed a slot that the gold turn left alone (`gold` against the gold `previous` state).
    The change is counted from `given`, the state the model read (default: `previous`; in a chained evaluation
    its own earlier prediction)."""
    return bool(changed_slots(previous if given is None else given, pred) - changed_slots(previous, gold))
