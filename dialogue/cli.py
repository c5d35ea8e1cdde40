"""`i2edit train-dialogue` and `i2edit eval-dialogue`."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The training options (shared by `i2edit train-dialogue` and `python -m dialogue.train`)."""
    parser.add_argument("--data", type=Path, required=True, help="corpus directory with train.jsonl and val.jsonl")
    parser.add_argument("--out", type=Path, required=True,
                        help="output directory: best model, checkpoint/ for --resume, train_log.jsonl")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--init", type=Path, help="fine-tune this HF T5 / PPTOD / trained model directory")
    start.add_argument("--preset", help="train from scratch with this preset (scratch, tiny)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64, help="global batch size (default 64)")
    parser.add_argument("--lr", type=float, default=None,
                        help="AdamW learning rate (default 5e-5 with --init, the preset's own with --preset)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-dialogues", type=int, default=None,
                        help="train on the first N training dialogues (default: all)")
    parser.add_argument("--val-dialogues", type=int, default=None,
                        help="validate on the first N validation dialogues (default: all)")
    parser.add_argument("--save-every", type=int, default=200, help="steps between resumable checkpoints")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (smoke runs)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads per process")
    parser.add_argument("--response-ratio", type=float, default=1.0,
                        help="share of the response examples trained on each epoch, drawn afresh per epoch "
                             "(every tracking example is always used; default 1: all)")
    parser.add_argument("--dropout", type=float, default=None,
                        help="dropout rate while training (default: the model's own; the scratch preset has 0)")
    parser.add_argument("--token-noise", type=float, default=0.0,
                        help="share of context word pieces replaced by random ones in each batch (default 0)")
    parser.add_argument("--deepen", type=int, default=1, metavar="N",
                        help="start from an --init model with N times its layers: each block followed by N-1 "
                             "copies that start as the identity, so the start computes what --init did "
                             "(default 1: as it is)")


def config_from_args(args: argparse.Namespace):
    from dialogue.train import TrainConfig

    return TrainConfig(
        data_dir=args.data, out_dir=args.out, init=args.init, preset=args.preset, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, resume=args.resume, seed=args.seed,
        train_dialogues=args.train_dialogues, val_dialogues=args.val_dialogues, save_every=args.save_every,
        max_steps=args.max_steps, threads=args.threads, response_ratio=args.response_ratio,
        dropout=args.dropout, token_noise=args.token_noise, deepen=args.deepen,
    )


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
    from data_tools.schema import read_dialogues

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
