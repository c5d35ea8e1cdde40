"""Critique and refine (after EditThinker's think-while-edit loop): check an edit value by value, push what fell
short, keep the best result.

After the first optimisation, the critic (`editing.pipeline.critic.Critic`) judges each requested value from its CLIP
score. While some value falls short and the budget allows, one more round continues from the current code with
the short values' CLIP terms weighted up (`boost`), the L2/ID anchor unchanged (in multi-turn mode: the
original inversion, so the edit does not drift from the photo). The result kept is the best by the critic over
all rounds, the first edit included (`Critic.rank`). Each round's scores and verdicts are recorded.
"""
from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Callable

import torch

from editing.pipeline.critic import Critic
from editing.pipeline.optimizer import OptimizerSettings, ProgressFn, optimize_latent
from editing.pipeline.prompts import attribute_text

# scores(image [1, 3, H, W]) -> {value: CLIP cosine} for every requested value
ScoreFn = Callable[[torch.Tensor], dict[str, float]]


@dataclass(frozen=True)
class RefineSettings:
    """At most `rounds` rounds of `round_steps` optimiser steps each (None: half the edit's steps), a short
    value's CLIP term weighted `boost` times an ordinary one."""

    rounds: int = 2
    round_steps: int | None = None
    boost: float = 3.0

    def __post_init__(self) -> None:
        if self.rounds < 0:
            raise ValueError(f"rounds must be 0 or more, got {self.rounds}")
        if self.round_steps is not None and self.round_steps < 1:
            raise ValueError(f"round_steps must be at least 1, got {self.round_steps}")
        if self.boost < 1:
            raise ValueError(f"boost must be at least 1, got {self.boost}")

    def steps_per_round(self, edit_steps: int) -> int:
        return self.round_steps or max(1, edit_steps // 2)

    def max_extra_steps(self, edit_steps: int) -> int:
        """The most steps refinement can add to an edit of `edit_steps` steps."""
        return self.rounds * self.steps_per_round(edit_steps)


@dataclass
class Round:
    """One round: 0 is the first edit. `steps` run in it; `scores` {value: cosine}; `verdicts` {value: bool or
    None (no threshold)}; `pushed` the values weighted up in it (empty for round 0)."""

    round: int
    steps: int
    scores: dict[str, float]
    verdicts: dict[str, bool | None]
    pushed: tuple[str, ...] = ()

    def to_json(self) -> dict:
        return {"round": self.round, "steps": self.steps, "pushed": list(self.pushed),
                "scores": {v: round(s, 4) for v, s in self.scores.items()}, "verdicts": dict(self.verdicts)}


@dataclass
class Refined:
    """The best result: `w` [1, n_latent, dim], `image` [1, 3, H, W], its `round`; all `rounds`; extra `steps`."""

    w: torch.Tensor
    image: torch.Tensor
    kept_round: int
    rounds: list[Round]
    steps: int

    def to_json(self) -> dict:
        return {"kept_round": self.kept_round, "extra_steps": self.steps, "rounds": [r.to_json() for r in self.rounds]}


def refine(generator, clip, identity, critic: Critic, texts: tuple[str, ...], w: torch.Tensor, image: torch.Tensor,
           anchor: torch.Tensor, scores: ScoreFn, optimizer: OptimizerSettings, settings: RefineSettings,
           progress: ProgressFn | None = None, cancel: threading.Event | None = None,
           step_offset: int = 0, total_steps: int | None = None) -> Refined:
    """Critique the edit (`w`, its render `image`) and refine it (module docstring).

    `texts`: the CLIP term's texts of the first edit; `anchor` [1, n_latent, dim] the code L2/ID keep the result
    near; `progress` sees steps counted on from `step_offset` out of `total_steps` (the first edit's steps plus
    the refinement budget), with the round number in `losses["round"]`.
    """
    first = scores(image)
    rounds = [Round(0, 0, first, critic.verdicts(first))]
    best_w, best_image, best_round, best_rank = w, image, 0, critic.rank(first)
    round_steps = settings.steps_per_round(optimizer.steps)
    total = total_steps or step_offset + settings.max_extra_steps(optimizer.steps)
    extra = 0
    current_w, current_scores = w, first
    for number in range(1, settings.rounds + 1):
        short = critic.shortfalls(current_scores)
        if not short:
            break
        offset = step_offset + extra

        def forward(step: int, _total: int, losses: dict, preview, _offset=offset, _round=number) -> None:
            if progress is not None:
                progress(_offset + step, total, {**losses, "round": float(_round)}, preview)

        pushed = tuple(short) if settings.boost > 1 else ()  # boost 1: more steps, same weights
        result = optimize_latent(
            generator, clip, texts + tuple(attribute_text(v) for v in pushed), current_w, anchor, identity,
            dataclasses.replace(optimizer, steps=round_steps), forward, cancel,
            text_weights=[1.0] * len(texts) + [settings.boost - 1.0] * len(pushed))
        extra += result.steps
        current_w, current_scores = result.w, scores(result.image)
        rounds.append(Round(number, result.steps, current_scores, critic.verdicts(current_scores), tuple(short)))
        rank = critic.rank(current_scores)
        if rank > best_rank:
            best_w, best_image, best_round, best_rank = result.w, result.image, number, rank
    return Refined(best_w, best_image, best_round, rounds, extra)
