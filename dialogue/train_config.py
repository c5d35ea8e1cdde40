"""What `i2edit train-dialogue` (and `python -m dialogue.train`) takes: `TrainConfig` and its command-line options.

Kept apart from `dialogue.train` so that building the command line needs no torch, and so that the command
line and the training loop both depend on this module instead of on each other.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path


@dataclass
class TrainConfig:
    """What `i2edit train-dialogue` takes. Exactly one of `init`/`preset` when not resuming."""

    data_dir: Path
    out_dir: Path
    init: Path | None = None          # an HF T5 / PPTOD / project-trained directory to fine-tune
    preset: str | None = None         # or a from-scratch preset name (dialogue.presets)
    epochs: int = 10
    batch_size: int = 64              # per process: the global batch is batch_size x processes
    lr: float | None = None           # None: 5e-5 with --init (the paper's), the preset's own with --preset
    resume: bool = False
    seed: int = 0
    train_dialogues: int | None = None  # train on the first N training dialogues (None: all)
    val_dialogues: int | None = None  # validate on the first N validation dialogues (None: all)
    save_every: int = 200             # optimizer steps between resumable checkpoints
    max_steps: int | None = None      # stop after this many optimizer steps in total (tests, smoke runs)
    eval_batch_size: int = 128
    warmup_ratio: float = 0.02
    response_ratio: float = 1.0       # share of the act and response examples trained on per epoch (all tracking)
    threads: int | None = None        # torch CPU threads per process
    dropout: float | None = None      # set the model's dropout rate for this training (None: keep the model's)
    token_noise: float = 0.0          # share of context word pieces replaced by random ones in each batch
    deepen: int = 1                   # with `init`: that many blocks per block of it (dialogue.deepen)
    tracking: str | None = None       # "history" or "update" (None: the --init model's, else "update")
    responses: str | None = None      # "literal" or "delexicalised" (None: the --init model's, else delexicalised)
    context_turns: int | None = None  # earlier exchanges the update format reads (None: the --init model's, else 1)
    simulate: int | None = None       # fresh simulated training dialogues per epoch (set by `i2edit train-dialogue`)
    bf16: bool = False                # forward and backward under bfloat16 autocast (weights stay float32)


def add_train_arguments(parser: argparse.ArgumentParser, data_required: bool = True) -> None:
    """The training options (shared by `i2edit train-dialogue` and `python -m dialogue.train`)."""
    parser.add_argument("--data", type=Path, required=data_required,
                        help="corpus directory with train.jsonl and val.jsonl")
    parser.add_argument("--out", type=Path, required=True,
                        help="output directory: best model, checkpoint/ for --resume, train_log.jsonl")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--init", type=Path, help="fine-tune this HF T5 / PPTOD / trained model directory")
    start.add_argument("--preset", help="train from scratch with this preset (scratch, tiny)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64,
                        help="examples per optimizer step in each process (default 64); with N processes "
                             "(accelerate launch, torchrun) the global batch is N times this")
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
                        help="share of the dialogue act and response examples trained on each epoch, drawn "
                             "afresh per epoch (every tracking example is always used; default 1: all)")
    parser.add_argument("--dropout", type=float, default=None,
                        help="dropout rate while training (default: the model's own; the scratch preset has 0)")
    parser.add_argument("--token-noise", type=float, default=0.0,
                        help="share of context word pieces replaced by random ones in each batch (default 0)")
    parser.add_argument("--deepen", type=int, default=1, metavar="N",
                        help="start from an --init model with N times its layers: each block followed by N-1 "
                             "copies that start as the identity, so the start computes what --init did "
                             "(default 1: as it is)")
    parser.add_argument("--bf16", action="store_true",
                        help="compute in bfloat16 (autocast; weights and optimizer stay float32): about 1.7x "
                             "faster on a CPU with AVX-512 BF16")
    parser.add_argument("--tracking", choices=("history", "update"), default=None,
                        help="update: read the previous state and the last exchanges, write the update "
                             "([add] ... [remove] ...); history: read the whole history, write the whole state "
                             "(default: the --init model's format, else update)")
    parser.add_argument("--responses", choices=("literal", "delexicalised"), default=None,
                        help="delexicalised: dialogue act + reply with placeholders filled from the change; "
                             "literal: the reply from the context (default: the --init model's, else "
                             "delexicalised)")
    parser.add_argument("--context-turns", type=int, default=None, metavar="N",
                        help="earlier exchanges the update format reads (0: all; default: the --init model's, "
                             "else 1)")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        data_dir=args.data, out_dir=args.out, init=args.init, preset=args.preset, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, resume=args.resume, seed=args.seed,
        train_dialogues=args.train_dialogues, val_dialogues=args.val_dialogues, save_every=args.save_every,
        max_steps=args.max_steps, threads=args.threads, response_ratio=args.response_ratio,
        dropout=args.dropout, token_noise=args.token_noise, deepen=args.deepen, tracking=args.tracking,
        responses=args.responses, context_turns=args.context_turns, simulate=getattr(args, "simulate", None),
        bf16=args.bf16,
    )
