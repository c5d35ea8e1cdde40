"""Where the demo-world training runs stand: steps, wall time and the logged figures of each run.

Reads every `train.log` under the runs root (default runs/demo_world2; one folder per run, see `i2edit
demo-world train`). The seconds in a log line count from the start of that process, so a resumed run's wall
time is the sum of its segments. Writes `--json` (default results/demo_world_runs.json) with, per run, the
steps done and planned, the wall time, the last logged figures and every logged line's figures (the series
behind a learning curve), and prints one line per run.

    .venv/bin/python bench/demo_world_runs.py [--runs runs/demo_world2] [--json PATH]
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

LINE = re.compile(r"step (\d+)/(\d+) (.*) \(([\d.]+) s\)$")


def read_log(path: Path) -> dict:
    """{"steps", "planned", "wall_seconds", "segments", "last", "series"} of one train.log."""
    series, wall, segment_end, segments = [], 0.0, 0.0, 1
    for line in path.read_text().splitlines():
        match = LINE.search(line)
        if not match:
            continue
        step, planned, text, seconds = int(match[1]), int(match[2]), match[3], float(match[4])
        if seconds < segment_end:  # a new process: the previous segment ended at segment_end
            wall += segment_end
            segments += 1
        segment_end = seconds
        words = text.split(" ")
        figures = {words[i]: float(words[i + 1]) for i in range(0, len(words) - 1, 2)}
        series.append({"step": step, "seconds": round(wall + seconds, 1), **figures})
    if not series:
        return {"steps": 0, "planned": None, "wall_seconds": 0.0, "segments": 0, "last": {}, "series": []}
    return {"steps": series[-1]["step"], "planned": planned, "wall_seconds": round(wall + segment_end, 1),
            "segments": segments, "last": series[-1], "series": series}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs/demo_world2"))
    parser.add_argument("--json", type=Path, default=Path("results/demo_world_runs.json"))
    args = parser.parse_args()
    runs = {str(log.parent.relative_to(args.runs)): read_log(log) for log in sorted(args.runs.rglob("train.log"))}
    result = {"command": "bench/demo_world_runs.py", "runs_root": str(args.runs), "runs": runs}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    for name, run in runs.items():
        last = " ".join(f"{k} {v}" for k, v in run["last"].items() if k not in ("step", "seconds"))
        print(f"{name:24s} step {run['steps']}/{run['planned']}  {run['wall_seconds'] / 3600:.2f} h in "
              f"{run['segments']} segment(s)  {last}")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
