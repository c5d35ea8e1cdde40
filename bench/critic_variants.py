"""Can a different critic agree with the judge more? Re-scores the edits a `bench/critic_eval.py` run saved
(its run without refinement), with variants of the CLIP critic that need no judge: the shipped one (thresholds
from renders), CLIP scores averaged or minimised over shifted, blurred and downsampled copies of the edit, and
thresholds calibrated on the generator's e4e reconstructions of the renders instead of the renders. One variant
does use the judge, as a ceiling for threshold tuning: the shipped thresholds raised by one offset fitted on the
edits the judge labelled (two folds by dialogue: fitted on one half, measured on the other).

    .venv/bin/python bench/critic_variants.py --run var/critic_eval/without_critique --out results/critic_variants.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from dialogue.ontology import VALUE_INDEX
from editing.demo_world.critic_calibration import CALIBRATION_OFFSET
from editing.demo_world.world import heldout_batch
from editing.pipeline.calibrate import read_critic, thresholds_from_labels, value_scores
from editing.pipeline.critic import Critic
from editing.pipeline.image_tensors import pil_to_tensor
from editing.weights.weight_set import resolve_set


def blur(x: torch.Tensor) -> torch.Tensor:
    """A 5-tap binomial blur of images [B, 3, H, W]."""
    k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
    k = (k[:, None] * k[None, :] / k.sum() ** 2)[None, None]
    flat = F.pad(x.reshape(-1, 1, *x.shape[-2:]), (2, 2, 2, 2), mode="replicate")
    return F.conv2d(flat, k).reshape(x.shape)


def copies(x: torch.Tensor) -> list[torch.Tensor]:
    """The image, six shifted copies, a blurred one and one downsampled to half size and back."""
    shifted = [torch.roll(x, (dy, dx), (2, 3)) for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1), (2, 2), (-2, -2))]
    down = F.interpolate(F.interpolate(x, scale_factor=0.5, mode="area"), size=x.shape[-2:], mode="bilinear",
                         align_corners=False)
    return [x, *shifted, blur(x), down]


def agreement(rows: list[dict], scores: torch.Tensor, thresholds: dict[str, float]) -> float:
    agree = total = 0
    for row, score in zip(rows, scores):
        seen = set(row["extra"]["judge_values"])
        for value in row["extra"]["verdicts"]:
            if value in thresholds:
                agree += bool(score[VALUE_INDEX[value]] >= thresholds[value]) == (value in seen)
                total += 1
    return agree / total


def pairs_of(rows: list[dict], scores: torch.Tensor, thresholds: dict[str, float]) -> list[tuple[float, bool, str]]:
    """(score minus threshold, judge finds the value, dialogue) for every judged (edit, value) pair."""
    return [(float(score[VALUE_INDEX[value]]) - thresholds[value], value in set(row["extra"]["judge_values"]),
             row["dialogue_id"])
            for row, score in zip(rows, scores) for value in row["extra"]["verdicts"] if value in thresholds]


def offset_fitted_on_edits(pairs: list[tuple[float, bool, str]]) -> float:
    """Agreement when one offset added to every threshold is fitted on half the dialogues' pairs (labelled by
    the judge) and measured on the other half, both ways."""
    dialogues = sorted({d for _, _, d in pairs})
    first = set(dialogues[::2])
    offsets = [i / 100 for i in range(-30, 61)]
    agree = 0
    for fit_on_first in (True, False):
        fit = [(m, j) for m, j, d in pairs if (d in first) == fit_on_first]
        held = [(m, j) for m, j, d in pairs if (d in first) != fit_on_first]
        best = max(offsets, key=lambda o: sum((m >= o) == j for m, j in fit))
        agree += sum((m >= best) == j for m, j in held)
    return agree / len(pairs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("var/critic_eval/without_critique"))
    parser.add_argument("--weights", default="editing/demo_set")
    parser.add_argument("--out", type=Path, default=Path("results/critic_variants.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    weight_set = resolve_set(args.weights)
    clip = weight_set.load("clip")
    shipped = Critic.from_manifest(read_critic(weight_set)).thresholds
    rows = [json.loads(line) for line in (args.run / "turns.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r["extra"].get("verdicts")]
    if not rows:
        raise SystemExit(f"{args.run} has no turns the critic judged (calibrate the weight set first)")
    edits = torch.cat([pil_to_tensor(Image.open(args.run / r["image_file"]).convert("RGB"), clip.image_size)
                       for r in rows])
    per_copy = torch.stack([value_scores(clip, c) for c in copies(edits)])  # [copies, N, 23]
    batch = heldout_batch(1024, offset=CALIBRATION_OFFSET)
    with torch.no_grad():
        e4e, generator = weight_set.load("e4e"), weight_set.load("generator")
        recs = torch.cat([generator.synthesis(e4e.encode(batch.images[i:i + 64]), randomize_noise=False)
                          for i in range(0, len(batch.images), 64)]).clamp(-1, 1)
    from_recs = thresholds_from_labels(value_scores(clip, recs), batch.looks > 0.5, 20)
    figures = {
        "shipped (renders)": agreement(rows, per_copy[0], shipped),
        "mean over 9 copies": agreement(rows, per_copy.mean(0), shipped),
        "min over 9 copies": agreement(rows, per_copy.min(0).values, shipped),
        "thresholds from e4e reconstructions": agreement(rows, per_copy[0], {v: t.threshold for v, t in from_recs.items()}),
    }
    pairs = pairs_of(rows, per_copy[0], shipped)
    figures["offset fitted on judged edits (2 folds)"] = offset_fitted_on_edits(pairs)
    result = {"command": "python bench/critic_variants.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "run": str(args.run), "weights": args.weights, "edits": len(rows),
              "agreement_with_judge": figures, "pairs": len(pairs),
              "judge_finds_share": sum(j for _, j, _ in pairs) / len(pairs),
              "critic_says_present_share": sum(m >= 0 for m, _, _ in pairs) / len(pairs)}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for name, value in figures.items():
        print(f"{name:40s} {value:.3f}")
    print(f"{len(pairs)} pairs: the judge finds the value in {result['judge_finds_share']:.2f}, the shipped critic "
          f"says present in {result['critic_says_present_share']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
