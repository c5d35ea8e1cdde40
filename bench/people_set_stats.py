"""Counts for the hand-written people set: dialogues and turns per behaviour tag, system acts, suggestions.

    .venv/bin/python bench/people_set_stats.py [--data FILE] [--json FILE] [--predictions FILE]

With --predictions (the per-turn file of `i2edit eval-dialogue --predictions` on the same data), it adds
joint accuracy over all turns and per tag (on a turn tagged only with no-change tags, a correct state is
the previous one kept).

Default data: tests/data/dialogue/people.jsonl; default output: results/people_set_stats.json. Each turn of
that file carries a `tags` list naming the behaviours it shows, and each `suggest` turn a `suggested_value`
(see docs/dialogue.md, "The hand-written set"); the I2Edit reader ignores turn keys it does not know, so
they are read from the raw JSON lines.
"""
from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TAGS = ("bare_value", "negation", "everyday_word", "reference_back", "accept_and_more", "correction",
        "no_change_chat", "out_of_ontology", "remove_absent", "exclusive_replace", "plain")


def people_set_stats(path: Path) -> dict:
    """Figures for one tagged file; the file is validated first (raises `DataError` when it is bad)."""
    from dialogue.ontology import BeliefState
    from dialogue.records import read_dialogues

    dialogues = read_dialogues(path)
    raw = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    turns_by_tag: Counter[str] = Counter()
    dialogues_by_tag: Counter[str] = Counter()
    acts: Counter[str] = Counter()
    lengths: Counter[int] = Counter()
    added_values: Counter[str] = Counter()
    changed_turns = suggestions_accepted_next_turn = 0
    for dialogue, record in zip(dialogues, raw, strict=True):
        lengths[len(dialogue.turns)] += 1
        seen: set[str] = set()
        previous, suggested = BeliefState(), None
        for turn, raw_turn in zip(dialogue.turns, record["turns"], strict=True):
            tags = raw_turn.get("tags", [])
            turns_by_tag.update(tags)
            seen.update(tags)
            acts[str(turn.system_act)] += 1
            added, removed = turn.belief_state.diff(previous)
            changed_turns += bool(added or removed)
            added_values.update(added)
            if suggested is not None and suggested in added:
                suggestions_accepted_next_turn += 1
            suggested = raw_turn.get("suggested_value")
            previous = turn.belief_state
        dialogues_by_tag.update(seen)
    n_turns = sum(acts.values())
    return {
        "file": str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path),
        "dialogues": len(dialogues),
        "turns": n_turns,
        "turns_per_dialogue": {"min": min(lengths), "max": max(lengths),
                               "mean": round(n_turns / len(dialogues), 2),
                               "histogram": {str(k): lengths[k] for k in sorted(lengths)}},
        "tags": {tag: {"turns": turns_by_tag[tag], "dialogues": dialogues_by_tag[tag]} for tag in TAGS},
        "untagged_turns": n_turns - sum(1 for r in raw for t in r["turns"] if t.get("tags")),
        "system_acts": dict(sorted(acts.items())),
        "suggest_share": round(acts["suggest"] / n_turns, 3),
        "suggestions_accepted_next_turn": suggestions_accepted_next_turn,  # suggested value added by the next turn
        "turns_changing_state": changed_turns,
        "turns_leaving_state_unchanged": n_turns - changed_turns,
        "turns_adding_value": dict(sorted(added_values.items())),
    }


def prediction_stats(records: list[dict], predictions: Path) -> dict:
    """Joint accuracy of an `eval-dialogue --predictions` file, overall and per behaviour tag."""
    by_turn = {}
    for line in predictions.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            by_turn[(row["dialogue_id"], row["turn"])] = row
    correct: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for record in records:
        for number, turn in enumerate(record["turns"]):
            row = by_turn.get((record["dialogue_id"], number))
            if row is None:
                raise ValueError(f"{predictions} has no prediction for {record['dialogue_id']} turn {number} "
                                 "(run eval-dialogue on the same data file)")
            tags = ["all", *turn.get("tags", [])]
            total.update(tags)
            if row["correct"]:
                correct.update(tags)
    return {
        "file": str(predictions),
        "joint_accuracy": round(correct["all"] / total["all"], 3),
        "joint_accuracy_by_tag": {t: round(correct[t] / total[t], 3) for t in TAGS if total[t]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "tests" / "data" / "dialogue" / "people.jsonl")
    parser.add_argument("--json", type=Path, default=ROOT / "results" / "people_set_stats.json")
    parser.add_argument("--predictions", type=Path, default=None,
                        help="per-turn predictions of `i2edit eval-dialogue --predictions` on the same data")
    args = parser.parse_args()
    stats = people_set_stats(args.data.resolve())
    if args.predictions is not None:
        records = [json.loads(line) for line in args.data.read_text(encoding="utf-8").splitlines() if line.strip()]
        stats["predictions"] = prediction_stats(records, args.predictions)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    print(f"{stats['dialogues']} dialogues, {stats['turns']} turns, suggest share {stats['suggest_share']}")
    for tag, counts in stats["tags"].items():
        print(f"  {tag:18} {counts['turns']:4} turns in {counts['dialogues']:3} dialogues")
    if "predictions" in stats:
        found = stats["predictions"]
        print(f"joint accuracy {found['joint_accuracy']}; by tag: {found['joint_accuracy_by_tag']}")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
