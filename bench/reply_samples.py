"""What the number of sampled replies per turn (`reply_samples`) buys and costs.

For each count K it evaluates the shipped model on the test dialogues with the gold previous state (replies:
false claims, Distinct-1/2 per dialogue, BLEU, and how often no sample could be filled so that the plain
fallback reply was used) and times one batched call on `--users` fourth turns with `server_load.py`'s
`burst_seconds` (median of 3, the server's dialogue threads). Tracking does not depend on K.

    .venv/bin/python bench/reply_samples.py [--samples 1,2,4] [--data var/corpus/test.jsonl] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def fallback_share(results) -> float:
    """Share of turns whose reply is the plain fallback (no sampled reply could be filled)."""
    from dialogue.model import fallback_reply

    used = sum(r.prediction.delex == fallback_reply(r.prediction.change, r.prediction.act) for r in results)
    return used / len(results) if results else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", default="1,2,4", help="comma-separated reply sample counts")
    parser.add_argument("--data", type=Path, default=ROOT / "var" / "corpus" / "test.jsonl")
    parser.add_argument("--model", type=Path, default=None, help="model directory (default: the shipped one)")
    parser.add_argument("--users", type=int, default=50, help="turns in the timed batch")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here (e.g. results/...)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as in the server's dialogue process
    import torch

    from dialogue.evaluate import predict_dialogues, summarize
    from dialogue.model import DialogueModel
    from dialogue.records import read_dialogues
    from server.dialogue_process import default_dialogue_threads
    from server_load import burst_seconds

    torch.set_num_threads(default_dialogue_threads())
    model = DialogueModel.from_pretrained(args.model, device="cpu")
    shipped = model.settings.reply_samples
    dialogues = read_dialogues(args.data)
    rows = []
    for k in (int(x) for x in args.samples.split(",")):
        model.settings = replace(model.settings, reply_samples=k)
        results = predict_dialogues(model, dialogues, batch_size=64)
        summary = summarize(results)
        row = {"reply_samples": k, "fallback_share": fallback_share(results),
               **{key: summary[key] for key in ("false_claims", "distinct_1_per_dialogue", "distinct_2_per_dialogue",
                                                "bleu", "joint_accuracy", "turns")},
               "batch_ms": burst_seconds(model, args.users, turn=4) * 1000}
        rows.append(row)
        print(f"K={k}: fallback {row['fallback_share']:.2%}, false claims {row['false_claims']}, Distinct-1/2 per "
              f"dialogue {row['distinct_1_per_dialogue']:.3f}/{row['distinct_2_per_dialogue']:.3f}, BLEU "
              f"{row['bleu']:.2f}, {args.users} turns in one call: {row['batch_ms']:.0f} ms", flush=True)
    if args.out:
        args.out.write_text(json.dumps({
            "command": "bench/reply_samples.py " + " ".join(sys.argv[1:]), "data": str(args.data),
            "model": str(args.model or "dialogue/shipped"), "shipped_reply_samples": shipped,
            "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(), "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
