"""`i2edit train-dialogue` and `i2edit eval-dialogue`."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from dialogue.train_config import add_train_arguments, config_from_args


def register(subparsers) -> None:
    train = subparsers.add_parser(
        "train-dialogue", help="train the T5 belief tracker + responder (multi-task)",
        description="Train the dialogue model on an I2Edit-format corpus. Several GPUs: "
                    "torchrun --nproc_per_node N -m dialogue.train --data DIR --out DIR ...")
    add_train_arguments(train)
    train.set_defaults(func=_train)

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
    ev.set_defaults(func=_evaluate)


def _train(args: argparse.Namespace) -> int:
    from dialogue.train import train

    summary = train(config_from_args(args))
    print(f"best validation joint accuracy {summary.best_val_joint_accuracy:.4f} after "
          f"{summary.epochs_done} epoch(s), {summary.steps} steps; model in {args.out}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from dialogue.records import read_dialogues

    from dialogue.evaluate import predict_dialogues, summarize, write_predictions
    from dialogue.model import DialogueModel

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    dialogues = read_dialogues(args.data)
    model = DialogueModel.from_pretrained(args.model, device=args.device)
    results = predict_dialogues(model, dialogues, batch_size=args.batch_size, progress=True)
    summary = summarize(results)
    if args.predictions:
        write_predictions(results, args.predictions)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{summary['dialogues']} dialogues, {summary['turns']} turns (gold history)")
        print(f"joint accuracy  {summary['joint_accuracy']:.4f}")
        print(f"slot accuracy   {summary['slot_accuracy']:.4f}")
        print(f"BLEU-4          {summary['bleu']:.2f}   [{summary['bleu_scorer']}]")
        print(f"Distinct-1/2    {summary['distinct_1']:.4f} / {summary['distinct_2']:.4f}")
    return 0
