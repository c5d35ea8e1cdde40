"""Self-critique on the demo world, side by side: the same test dialogues edited multi-turn with the critic's
refinement (the editor's rounds) and without it (`--refine-rounds 0`: judged, not refined), in two processes
started together. Writes one JSON with both runs' judge success, target distances, time per edit and the
critic's agreement with the judge and on the true targets, per value.

    .venv/bin/python bench/critic_eval.py --limit 32 --out results/critic_demo_world.json

Needs a weight set with calibrated critic thresholds (`i2edit demo-world calibrate`) and the test corpus
(`i2edit data build --out var/corpus`). Each run writes its own folder under `--work` (reports, sheets).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

KEYS = ("success", "success_by_turn", "turns_by_turn", "values_found", "min_rel", "avg_rel", "target_lpips",
        "original_target_lpips", "target_ratio", "target_l1", "original_target_l1", "target_ratio_l1",
        "seconds_per_edit", "critic_agrees_with_judge", "critic_on_targets", "refined_edits", "critic_by_value",
        "found_by_value")


def run_side_by_side(limit: int, weights: str, work: Path, dialogues: str | None) -> dict[str, dict]:
    """Start both evaluations at once (one torch thread each) and return {run: demo_world.json}."""
    runs = {"with_critique": [], "without_critique": ["--refine-rounds", "0"]}
    procs = {}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name, extra in runs.items():
        cmd = [sys.executable, "-m", "server.cli", "demo-world", "eval", "--limit", str(limit), "--modes", "multi",
               "--weights", weights, "--out", str(work / name), "--json", "--fid-samples", "0", "--threads", "1",
               *extra, *(["--dialogues", dialogues] if dialogues else [])]
        procs[name] = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    out = {}
    for name, proc in procs.items():
        stdout, _ = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"the {name} run failed (exit {proc.returncode})")
        out[name] = json.loads(stdout)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=32, help="test dialogues (default %(default)s)")
    parser.add_argument("--weights", default="editing/demo_set", help="demo-world weight set (default %(default)s)")
    parser.add_argument("--dialogues", default=None, help="test-split file (default: var/corpus/test.jsonl)")
    parser.add_argument("--work", type=Path, default=Path("var/critic_eval"), help="run folders (default %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("results/critic_demo_world.json"))
    args = parser.parse_args(argv)
    started = time.time()
    results = run_side_by_side(args.limit, args.weights, args.work, args.dialogues)
    summary = {
        "command": "python bench/critic_eval.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "weights": args.weights, "dialogues": results["with_critique"]["dialogues"],
        "steps": results["with_critique"]["steps"], "wall_s": round(time.time() - started, 1),
        "load_average": os.getloadavg(),
        "runs": {name: {k: r["modes"]["multi"].get(k) for k in KEYS} for name, r in results.items()},
    }
    on, off = summary["runs"]["with_critique"], summary["runs"]["without_critique"]
    summary["success_gain_points"] = 100 * (on["success"] - off["success"])
    summary["time_ratio"] = on["seconds_per_edit"] / off["seconds_per_edit"]
    summary["target_lpips_change"] = on["target_lpips"] - off["target_lpips"]
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: summary[k] for k in ("success_gain_points", "time_ratio", "target_lpips_change")}))
    print(f"critic agrees with the judge on {off['critic_agrees_with_judge']:.3f} of (edit, value) pairs "
          f"without refinement, {on['critic_agrees_with_judge']:.3f} with; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
