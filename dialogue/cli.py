"""`i2edit eval-dialogue` (`i2edit train-dialogue` is registered by `data_tools.cli`: it can simulate its
training dialogues, and `data_tools` depends on `dialogue`, not the other way round)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers) -> None:
    ev = subparsers.add_parser(
        "eval-dialogue", help="joint/slot accuracy, BLEU, Distinct-1/2 on a dialogue file",
        description="Evaluate a dialogue model on an I2Edit-format JSONL file with gold history as context.")
    ev.add_argument("--data", type=Path, required=True, help="I2Edit-format dialogues (JSON Lines)")
    ev.add_argument("--model", type=Path, default=None, help="model directory (default: the shipped model)")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.add_argument("--predictions", type=Path, default=None, help="write per-turn gold and predictions here")
    ev.add_argument("--batch-size", type=int, default=64, help="turns per generate call")
    ev.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    ev.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 is fastest on a busy CPU)")
    ev.add_argument("--out", type=Path, default=None, help="also write the JSON object to this file")
    ev.add_argument("--chained", action="store_true",
                    help="each turn reads the state the model itself wrote the turn before, as in a chat "
                         "(default: the gold previous state)")
    ev.set_defaults(func=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    from dialogue.records import read_dialogues

    from dialogue.evaluate import predict_dialogues, summarize, write_predictions
    from dialogue.model import DialogueModel

    import time

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    dialogues = read_dialogues(args.data)
    model = DialogueModel.from_pretrained(args.model, device=args.device)
    started = time.perf_counter()
    results = predict_dialogues(model, dialogues, batch_size=args.batch_size, progress=True, chained=args.chained)
    summary = summarize(results)
    summary.update(model=str(args.model or "dialogue/shipped"), data=str(args.data),
                   previous_state="own prediction (chained)" if args.chained else "gold",
                   seconds=round(time.perf_counter() - started, 1))
    if args.predictions:
        write_predictions(results, args.predictions)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=2) + "\n")
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{summary['dialogues']} dialogues, {summary['turns']} turns (gold history; previous state: "
              f"{summary['previous_state']})")
        print(f"joint accuracy      {summary['joint_accuracy']:.4f}")
        print(f"slot accuracy       {summary['slot_accuracy']:.4f}")
        print(f"spurious changes    {summary['spurious_changes']} ({summary['spurious_change_share']:.2%} of turns)")
        print(f"false claims        {summary['false_claims']} ({summary['false_claim_share']:.2%} of replies)")
        print(f"suggestions         {summary['suggestion_share']:.2%} of replies")
        print(f"BLEU-4              {summary['bleu']:.2f} [{summary['bleu_scorer']}]")
        print(f"                    {summary['sacrebleu']:.2f} [{summary['sacrebleu_scorer']}]")
        print(f"Distinct-1/2        {summary['distinct_1_per_dialogue']:.3f} / {summary['distinct_2_per_dialogue']:.3f} "
              f"per dialogue, {summary['distinct_1_corpus']:.4f} / {summary['distinct_2_corpus']:.4f} over the corpus")
    return 0
