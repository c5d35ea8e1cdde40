"""Time the model work of a chat turn on the demo set: the dialogue model's step plus the edit it triggers.

A short scripted chat (four user turns) on one shipped sample face, in this one process: each turn runs
`DialogueModel.step(history, text)` and then `Editor.edit(inversion, state)` with the demo set's optimiser
settings (multi-turn mode), the two calls the chat server's worker makes. It runs no server: no HTTP, job
queue, database or image store, so a turn through `i2edit serve` takes this plus their overhead (see
bench/server_load.py for the server's own figures). Prints seconds per turn and the median, and writes them
to `--json` (default results/demo_world_turn.json).

    .venv/bin/python bench/demo_world_turn.py [--threads 1] [--steps N] [--dialogue-model DIR] [--weights DIR]
        [--json PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

TURNS = ("Hi! Could you make him smile?", "Now give him black hair please.", "Add a mustache too.",
         "And some earrings.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the server uses 1)")
    parser.add_argument("--steps", type=int, default=None, help="optimiser steps (default: the demo set's)")
    parser.add_argument("--dialogue-model", type=Path, default=None, help="model directory (default: shipped)")
    parser.add_argument("--weights", type=Path, default=None, help="demo weight-set directory (default: shipped)")
    parser.add_argument("--json", type=Path, default=Path("results/demo_world_turn.json"), help="where to write the figures")
    args = parser.parse_args()

    import torch

    from dialogue.model import DialogueModel
    from editing.demo_world.settings import demo_editor_settings, sample_faces
    from editing.pipeline.editor import Editor

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    dialogue = DialogueModel.from_pretrained(args.dialogue_model, device="cpu")
    from editing.weights.weight_set import DEMO_SET_DIR

    weights = args.weights or DEMO_SET_DIR
    editor = Editor.from_weights(str(weights / "manifest.json"), settings=demo_editor_settings(weights), align_faces=False)
    inversion = editor.invert(sample_faces(weights)[0])
    print(f"loading and inverting: {time.perf_counter() - started:.1f} s")
    history: list[tuple[str, str]] = []
    totals = []
    for text in TURNS:
        t0 = time.perf_counter()
        state, reply = dialogue.step(history, text)
        t1 = time.perf_counter()
        result = editor.edit(inversion, state, steps=args.steps)
        t2 = time.perf_counter()
        history.append((text, reply))
        totals.append(t2 - t0)
        print(f"turn {len(history)}: dialogue {t1 - t0:.2f} s + edit {t2 - t1:.2f} s ({result.steps} steps) = "
              f"{t2 - t0:.2f} s   state: {state.to_text() or '(empty)'}")
    print(f"median turn: {statistics.median(totals):.2f} s  max: {max(totals):.2f} s  threads: {args.threads}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "command": "bench/demo_world_turn.py", "threads": args.threads, "steps": args.steps or editor.settings.steps,
        "turn_seconds": totals, "median_seconds": statistics.median(totals), "max_seconds": max(totals),
        "load_average": os.getloadavg(), "weights": str(weights),
        "measures": "dialogue step + edit in one process (no server, queue, database or store)"}, indent=2) + "\n")


if __name__ == "__main__":
    main()
