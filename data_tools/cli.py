"""`i2edit data build|validate|stats`: simulate, check and describe I2Edit-format corpora; and
`i2edit train-dialogue`, which can train on freshly simulated dialogues (`--simulate N`)."""
from __future__ import annotations

import argparse
import json
import sys
import time


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="build, validate and describe I2Edit-format dialogue corpora")
    commands = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    build = commands.add_parser("build", help="simulate a corpus: DIR/train.jsonl, val.jsonl, test.jsonl")
    build.add_argument("--out", required=True, help="output directory (created if missing)")
    build.add_argument("--dialogues", type=int, default=12_000,
                       help="total dialogues, split 10:1:1 into train/val/test (default 12000)")
    build.add_argument("--seed", type=int, default=0, help="random seed; same seed, same corpus (default 0)")
    build.add_argument("--celeba-attrs", metavar="FILE",
                       help="CelebAMask-HQ-attribute-anno.txt: take face profiles and image names from it "
                            "(default: sampled profiles, images named sim/NNNNNN.png)")
    build.set_defaults(func=_build)

    validate = commands.add_parser("validate", help="check I2Edit-format files; exit 1 if any has a problem")
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.set_defaults(func=_validate)

    stats = commands.add_parser("stats", help="the paper's Table 2 figures (and Fig. 3 counts) for files")
    stats.add_argument("files", nargs="+", metavar="FILE")
    stats.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    stats.set_defaults(func=_stats)

    from dialogue.train_config import add_train_arguments

    train = subparsers.add_parser(
        "train-dialogue", help="train the T5 belief tracker, policy and responder (multi-task)",
        description="Train the dialogue model on an I2Edit-format corpus (--data) or on new simulated dialogues "
                    "every epoch (--simulate N). Several GPUs: accelerate launch --num_processes N "
                    "-m dialogue.train --data DIR --out DIR ... (or torchrun --nproc_per_node N)")
    add_train_arguments(train, data_required=False)
    train.add_argument("--simulate", type=int, default=None, metavar="N",
                       help="train on N new simulated dialogues each epoch (train-split wording), validated on the "
                            "simulated validation split of the same --seed (or --data DIR's val.jsonl when given)")
    train.set_defaults(func=_train)


def _build(args: argparse.Namespace) -> int:
    from .simulator import build_corpus

    start = time.perf_counter()
    paths = build_corpus(args.out, dialogues=args.dialogues, seed=args.seed, celeba_attrs=args.celeba_attrs,
                         progress=sys.stderr.isatty())
    seconds = time.perf_counter() - start
    for split, path in paths.items():
        print(f"{split:5} {path}")
    print(f"built {args.dialogues:,} dialogues in {seconds:.1f} s (seed {args.seed})")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from dialogue.records import iter_problems

    bad = 0
    for name in args.files:
        count = 0
        for problem in iter_problems(name):
            print(problem)
            count += 1
        if count:
            bad += 1
            print(f"{name}: {count} problem(s)")
        else:
            print(f"{name}: ok")
    return 1 if bad else 0


def _stats(args: argparse.Namespace) -> int:
    from dialogue.records import read_dialogues
    from .stats import corpus_stats, format_table

    dialogues = [d for name in args.files for d in read_dialogues(name)]
    stats = corpus_stats(dialogues)
    print(json.dumps(stats, indent=2) if args.json else format_table(stats))
    return 0


def _train(args: argparse.Namespace) -> int:
    from dialogue.train import train
    from dialogue.train_config import config_from_args

    source = None
    if args.simulate is not None:
        from .fresh import SimulatedSource

        source = SimulatedSource(args.simulate, seed=args.seed, val_dialogues=args.val_dialogues, val_dir=args.data)
    elif args.data is None:
        raise ValueError("give --data DIR (a corpus with train.jsonl and val.jsonl) or --simulate N")
    summary = train(config_from_args(args), source)
    print(f"best validation joint accuracy {summary.best_val_joint_accuracy:.4f} after "
          f"{summary.epochs_done} epoch(s), {summary.steps} steps; model in {args.out}")
    return 0
