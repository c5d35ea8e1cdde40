"""Single-process CPU training speed of `i2edit train-dialogue` in two source trees, measured alternately.

Each run trains one epoch from scratch on the same simulated dialogues with one torch thread and reads
`examples_per_s` (training examples per second of the epoch, validation included) from its train_log.jsonl;
the trees take turns so that other load on the machine falls on both alike. The SHA-256 of each run's final
weights shows whether the trees train the same model.

    OMP_NUM_THREADS=1 python bench/train_dialogue_speed.py --tree before=/tmp/acc_base --tree after=. \
        --runs 3 --json results/dialogue_train_accelerate.json
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TRAIN_ARGS = ["train-dialogue", "--simulate", "200", "--epochs", "1", "--preset", "scratch", "--val-dialogues", "20",
              "--threads", "1", "--batch-size", "64", "--response-ratio", "1"]


def run_once(tree: Path, out: Path) -> dict:
    """One training run with `tree` first on the path; its epoch record and wall seconds."""
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1")
    started = time.time()
    subprocess.run([sys.executable, "-m", "server.cli", *TRAIN_ARGS, "--out", str(out)], env=env, cwd=tree,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    record = json.loads((out / "train_log.jsonl").read_text().splitlines()[-1])
    return {"examples_per_s": record["examples_per_s"], "epoch_seconds": record["seconds"],
            "steps": record["step"], "val_joint_accuracy": record["val_joint_accuracy"],
            "wall_seconds": round(time.time() - started, 1),
            "weights_sha256": hashlib.sha256((out / "checkpoint" / "model.safetensors").read_bytes()).hexdigest()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", required=True, metavar="NAME=DIR",
                        help="a source tree to time (give two or more)")
    parser.add_argument("--runs", type=int, default=3, help="runs per tree (default 3)")
    parser.add_argument("--json", type=Path, required=True, help="where to write the figures")
    args = parser.parse_args()
    trees = {name: Path(path).resolve() for name, path in (t.split("=", 1) for t in args.tree)}
    runs: dict[str, list[dict]] = {name: [] for name in trees}
    work = Path(tempfile.mkdtemp(prefix="train_speed_"))
    try:
        for i in range(args.runs):
            for name, tree in trees.items():
                runs[name].append(run_once(tree, work / f"{name}-{i}"))
                print(name, i, runs[name][-1], flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = {name: {"median_examples_per_s": statistics.median(r["examples_per_s"] for r in rs),
                      "median_wall_seconds": statistics.median(r["wall_seconds"] for r in rs)}
               for name, rs in runs.items()}
    result = {"command": "OMP_NUM_THREADS=1 python " + " ".join(sys.argv),
              "train_command": "i2edit " + " ".join(TRAIN_ARGS) + " --out DIR",
              "trees": {name: str(tree) for name, tree in trees.items()},
              "load_average_at_end": os.getloadavg(), "summary": summary, "runs": runs}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
