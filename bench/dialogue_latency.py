"""Latency of `DialogueModel.step()` per chat turn: p50 and p95 over at least 50 turns.

Replays dialogues turn by turn as the chat server does (history grows, and each turn gets the state the
previous `step` returned) and times each `step` call: tracking and the act in one batched decode, then the
sampled replies in a second one.

    .venv/bin/python bench/dialogue_latency.py [--model DIR] [--data FILE] [--turns 60] [--threads 1]
                                          [--impl fast|reference] [--device cpu|cuda|auto] [--json FILE]

Default model: the shipped one; default dialogues: tests/data/dialogue/handwritten.jsonl.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="model directory (default: shipped model)")
    parser.add_argument("--data", type=Path, default=ROOT / "tests" / "data" / "dialogue" / "handwritten.jsonl")
    parser.add_argument("--turns", type=int, default=60, help="turns to time (at least 50)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--impl", choices=("fast", "reference"), default="fast",
                        help="greedy decoder: dialogue.greedy (default) or Hugging Face generate")
    parser.add_argument("--warmup", type=int, default=3, help="untimed turns first")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    if args.turns < 50:
        parser.error("--turns must be at least 50")

    import torch

    from dialogue.records import read_dialogues
    from dialogue.model import DialogueModel

    torch.set_num_threads(args.threads)
    model = DialogueModel.from_pretrained(args.model, device=args.device)
    model.impl = args.impl
    dialogues = read_dialogues(args.data)
    times = []
    while len(times) < args.turns + args.warmup:
        for dialogue in dialogues:
            history, state = [], None
            for turn in dialogue.turns[: args.turns + args.warmup - len(times)]:
                start = time.perf_counter()
                state, reply = model.step(history, turn.user, state)
                times.append(time.perf_counter() - start)
                history.append((turn.user, reply))
            if len(times) == args.turns + args.warmup:
                break
    times = sorted(times[args.warmup:])
    p50 = statistics.median(times) * 1000
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))] * 1000
    print(f"model: {args.model or 'shipped'}  impl: {args.impl}  turns: {len(times)}  threads: {args.threads}  "
          f"device: {model.device}")
    print(f"step() latency  p50 {p50:.1f} ms   p95 {p95:.1f} ms   mean {statistics.mean(times) * 1000:.1f} ms")
    if args.json:
        device_name = torch.cuda.get_device_name(model.device) if model.device.type == "cuda" else "cpu"
        args.json.write_text(json.dumps({
            "model": str(args.model or "shipped"), "impl": args.impl, "device": str(model.device),
            "device_name": device_name, "threads": args.threads, "turns": len(times), "p50_ms": p50, "p95_ms": p95,
            "mean_ms": statistics.mean(times) * 1000}, indent=2) + "\n")


if __name__ == "__main__":
    main()
