"""The critic: does an edited image show each requested value? CLIP's verdict against a threshold per value.

The score of a value is the cosine between the CLIP embedding of the image and that of the value's text
(`editing.pipeline.prompts.attribute_text`), the same number as the per-attribute relevance of paper eq. 1. A value is
judged present when its score reaches the value's threshold. Thresholds are calibrated per weight set on
images with and without each value (`calibrate_thresholds`): the demo set on its own renders, the public
weights on a user's labelled folder of aligned faces (`i2edit calibrate`). They live in the weight set's
manifest under `"critic"`:

    "critic": {"thresholds": {"smiling": 0.31, ...}, "calibrated_on": "…", "balanced_accuracy": {...}}

A value without a threshold gets no verdict (`None`), never a guessed one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from dialogue.ontology import VALUES


@dataclass(frozen=True)
class Threshold:
    """One value's calibrated threshold and how well it separated the calibration images.

    `balanced_accuracy`: mean of the true-positive and true-negative rates at `threshold` on the calibration
    set (0.5 is chance); `n_with` / `n_without`: images with and without the value."""

    threshold: float
    balanced_accuracy: float
    n_with: int
    n_without: int


def fit_threshold(with_value: Sequence[float], without_value: Sequence[float]) -> Threshold:
    """The threshold that best separates two score samples (maximum balanced accuracy; ties: the midpoint of
    the widest gap). Both samples must be non-empty."""
    pos = np.sort(np.asarray(with_value, dtype=np.float64))
    neg = np.sort(np.asarray(without_value, dtype=np.float64))
    if not len(pos) or not len(neg):
        raise ValueError(f"need scores with and without the value (got {len(pos)} and {len(neg)})")
    candidates = np.unique(np.concatenate([pos, neg]))
    # a threshold t judges "present" when score >= t; try every observed score and one above the largest
    cuts = np.concatenate([candidates, [candidates[-1] + 1e-6]])
    tpr = 1.0 - np.searchsorted(pos, cuts, side="left") / len(pos)
    tnr = np.searchsorted(neg, cuts, side="left") / len(neg)
    balanced = (tpr + tnr) / 2
    best = int(np.argmax(balanced))
    # any cut between the largest score below cuts[best] and cuts[best] judges alike: take the midpoint
    threshold = float((cuts[best] + candidates[best - 1]) / 2) if best > 0 else float(cuts[0])
    return Threshold(threshold, float(balanced[best]), len(pos), len(neg))


def calibrate_thresholds(scores: Mapping[str, tuple[Sequence[float], Sequence[float]]],
                         min_images: int = 5) -> dict[str, Threshold]:
    """Thresholds for every value with at least `min_images` calibration images on each side.

    `scores[value] = (scores of images that show it, scores of images that do not)`."""
    out: dict[str, Threshold] = {}
    for value, (with_value, without_value) in scores.items():
        if value not in VALUES:
            raise ValueError(f"{value!r} is not an ontology value")
        if len(with_value) >= min_images and len(without_value) >= min_images:
            out[value] = fit_threshold(with_value, without_value)
    return out


@dataclass(frozen=True)
class Critic:
    """Per-value verdicts from CLIP scores. Empty `thresholds`: no verdicts at all (`calibrated` is False)."""

    thresholds: Mapping[str, float] = field(default_factory=dict)

    @property
    def calibrated(self) -> bool:
        return bool(self.thresholds)

    @classmethod
    def from_manifest(cls, entry: Mapping | None) -> "Critic":
        """From a manifest's `"critic"` entry (None or no thresholds: an uncalibrated critic)."""
        thresholds = dict((entry or {}).get("thresholds") or {})
        unknown = sorted(set(thresholds) - set(VALUES))
        if unknown:
            raise ValueError(f"critic thresholds for unknown values: {', '.join(unknown)}")
        return cls({value: float(t) for value, t in thresholds.items()})

    def verdicts(self, scores: Mapping[str, float]) -> dict[str, bool | None]:
        """{value: present?} for each scored value; None where the value has no threshold."""
        return {value: (None if value not in self.thresholds else bool(score >= self.thresholds[value]))
                for value, score in scores.items()}

    def shortfalls(self, scores: Mapping[str, float]) -> list[str]:
        """The scored values judged absent, in the order given."""
        return [value for value, verdict in self.verdicts(scores).items() if verdict is False]

    def rank(self, scores: Mapping[str, float]) -> tuple[int, float]:
        """A sort key for "best by the critic": values judged present, then the smallest margin over the
        threshold among the values that have one (higher is better)."""
        judged = {v: s - self.thresholds[v] for v, s in scores.items() if v in self.thresholds}
        if not judged:
            return (0, 0.0)
        return (sum(margin >= 0 for margin in judged.values()), min(judged.values()))


def manifest_entry(thresholds: Mapping[str, Threshold], calibrated_on: str) -> dict:
    """The manifest's `"critic"` entry for `thresholds` (canonical value order)."""
    ordered = [v for v in VALUES if v in thresholds]
    return {
        "thresholds": {v: round(thresholds[v].threshold, 5) for v in ordered},
        "balanced_accuracy": {v: round(thresholds[v].balanced_accuracy, 4) for v in ordered},
        "images": {v: [thresholds[v].n_with, thresholds[v].n_without] for v in ordered},
        "calibrated_on": calibrated_on,
    }
