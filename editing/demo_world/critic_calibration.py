"""Calibrate the critic of a demo-world weight set on held-out renders (faces with and without each value).

The renders are binary looks, so every face either shows a value or does not; `look_values` reads which. They
come from a held-out seed that no training stream uses (`world.heldout_batch`, its own offset).
"""
from __future__ import annotations

from editing.demo_world.world import heldout_batch
from editing.pipeline.calibrate import thresholds_from_labels, value_scores, write_critic
from editing.pipeline.critic import Threshold, manifest_entry

CALIBRATION_OFFSET = 50_000  # a held-out set of its own (the networks' checks use other offsets)


def calibrate_demo_critic(weight_set, n_faces: int = 1024, device: str = "cpu",
                          min_images: int = 20) -> tuple[dict[str, Threshold], dict]:
    """Fit thresholds for all 23 values with the set's CLIP on `n_faces` held-out renders, store them in the
    set's manifest and return (thresholds, the stored entry)."""
    clip = weight_set.load("clip", device)
    batch = heldout_batch(n_faces, offset=CALIBRATION_OFFSET)
    present = batch.looks > 0.5  # [N, 23]
    scores = value_scores(clip, batch.images.to(device))
    fitted = thresholds_from_labels(scores, present, min_images)
    entry = manifest_entry(fitted, f"{n_faces} held-out demo-world renders (seed offset {CALIBRATION_OFFSET})")
    write_critic(weight_set, entry)
    return fitted, entry
