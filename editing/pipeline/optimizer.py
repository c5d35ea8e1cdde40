"""StyleCLIP latent optimisation in W+ (paper §4.2, settings of §5.1).

Starting from `w_start`, Adam moves the W+ code so that the generated image matches a text in CLIP
space while staying near an anchor code (L2 on the summed squares) and keeping the anchor image's
identity (ArcFace cosine). Noise is the generator's stored buffers, so the same inputs give the same
edit. The learning rate follows StyleCLIP's schedule: a linear warm-up over the first 5 % of steps
and a cosine ramp-down over the last 25 %.

Cancellation: pass a `threading.Event`; it is checked before every step and, once set, the loop
stops and raises `Cancelled` (nothing is returned, the caller keeps its previous result).
"""
from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import torch

from editing.pipeline.image_tensors import tensor_to_pil
from editing.pipeline.losses import ClipLoss, IdentityLoss, latent_l2
from editing.pipeline.prompts import TEXT_OBJECTIVES

log = logging.getLogger(__name__)

# progress(step, total, losses, preview_or_None): step counts from 1; losses holds floats for
# "clip", "l2", "id" and "total"; the preview is a PIL image of the current step or None.
ProgressFn = Callable[[int, int, dict, Optional[object]], None]


class Cancelled(Exception):
    """The edit was cancelled through its `threading.Event`; `step` steps had run."""

    def __init__(self, step: int, total: int):
        super().__init__(f"edit cancelled after {step} of {total} steps")
        self.step = step
        self.total = total


@dataclass(frozen=True)
class OptimizerSettings:
    """Hyperparameters; the defaults are the paper's (§5.1).

    `preview_every`: pass a preview image to `progress` every this many steps (0: never).
    `text_objective`: what the CLIP term aims at (`editing.pipeline.editor.Editor.edit` applies it). "description":
    one text for the whole request, as StyleCLIP and the paper do; "per_attribute": one text per requested
    value, the CLIP term being the mean of their terms (one minus the AvgRel of paper eq. 1), which a small
    CLIP that reads a long description poorly follows better (the demo set uses it; README, Demo world).
    `clip_size`: fast mode. When set (e.g. 256), CLIP and ID losses see the generator's skip-branch
    RGB image at that resolution instead of the full-size image, so the backward pass skips the
    higher-resolution layers; None uses the full image, as the paper does.
    """

    steps: int = 300
    lr: float = 0.1
    l2_lambda: float = 0.008
    id_lambda: float = 0.005
    preview_every: int = 0
    clip_size: int | None = None
    text_objective: str = "description"

    def __post_init__(self) -> None:
        if self.text_objective not in TEXT_OBJECTIVES:
            raise ValueError(f"text_objective must be one of {', '.join(TEXT_OBJECTIVES)}, "
                             f"not {self.text_objective!r}")
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")
        if self.clip_size is not None and (self.clip_size < 4 or self.clip_size & (self.clip_size - 1)):
            raise ValueError(f"clip_size must be a power of two >= 4, got {self.clip_size}")


@dataclass
class OptimizationResult:
    """`w` [1, n_latent, 512] and `image` [1, 3, size, size] in about [-1, 1] (the render of `w`),
    both detached; `texts` the CLIP term's texts; `losses` of the last step; `history` one losses dict
    per step."""

    w: torch.Tensor
    image: torch.Tensor
    texts: tuple[str, ...]
    steps: int
    losses: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)


def styleclip_lr(step: int, total: int, base_lr: float, rampdown: float = 0.25, rampup: float = 0.05) -> float:
    """StyleCLIP's learning rate at `step` (0-based) of `total`: lr · ½(1 − cos(π·min(1, (1 − t)/rampdown)))
    · min(1, t/rampup), t = step/total. It is 0 at step 0."""
    t = step / total
    ramp = min(1.0, (1.0 - t) / rampdown)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    return base_lr * ramp * min(1.0, t / rampup)


def optimize_latent(
    generator,
    clip,
    text: str | Sequence[str],
    w_start: torch.Tensor,
    w_anchor: torch.Tensor | None = None,
    identity=None,
    settings: OptimizerSettings = OptimizerSettings(),
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    text_weights: Sequence[float] | None = None,
) -> OptimizationResult:
    """Optimise a W+ code towards `text`.

    Args:
        generator: `editing.networks.generator.Generator` (frozen, in eval mode, on the working device).
        clip: `editing.networks.clip_model.ClipScorer`.
        text: the description to match, or several texts whose CLIP terms are averaged.
        w_start: [1, n_latent, 512] starting code (on the generator's device).
        w_anchor: [1, n_latent, 512] code that the L2 and ID terms keep the result near; default `w_start`.
        identity: `editing.networks.identity.IdentityNet`, or None to leave the ID term out.
        settings: hyperparameters (`OptimizerSettings`).
        progress: called after every step (see `ProgressFn`).
        cancel: set it to stop; the loop then raises `Cancelled`.
        text_weights: one positive weight per text for the CLIP term's weighted mean (default equal).

    Returns an `OptimizationResult`; raises `Cancelled` when `cancel` is set.
    """
    generator.check_w_plus(w_start)
    if w_start.shape[0] != 1:
        raise ValueError(f"optimise one code at a time: w_start is {list(w_start.shape)}")
    anchor = (w_start if w_anchor is None else w_anchor).detach()
    generator.check_w_plus(anchor)

    loss_size = None if settings.clip_size is None else min(settings.clip_size, generator.size)

    def render(w: torch.Tensor) -> torch.Tensor:
        """The image the losses see: the full image, or in fast mode the skip RGB at `clip_size`."""
        return generator.synthesis(w, randomize_noise=False, max_resolution=loss_size)

    clip_loss = ClipLoss(clip, text, text_weights)
    id_loss = None
    if identity is not None and settings.id_lambda > 0:
        with torch.no_grad():
            id_loss = IdentityLoss(identity, render(anchor))

    w = w_start.detach().clone().requires_grad_(True)
    adam = torch.optim.Adam([w], lr=settings.lr)
    history: list[dict[str, float]] = []
    total = settings.steps
    for step in range(total):
        if cancel is not None and cancel.is_set():
            raise Cancelled(step, total)
        for group in adam.param_groups:
            group["lr"] = styleclip_lr(step, total, settings.lr)
        seen = render(w)
        terms = {"clip": clip_loss(seen).mean(), "l2": latent_l2(w, anchor).mean()}
        loss = terms["clip"] + settings.l2_lambda * terms["l2"]
        if id_loss is not None:
            terms["id"] = id_loss(seen).mean()
            loss = loss + settings.id_lambda * terms["id"]
        adam.zero_grad(set_to_none=True)
        loss.backward()
        adam.step()
        losses = {name: float(value.detach()) for name, value in terms.items()}
        losses["total"] = float(loss.detach())
        history.append(losses)
        if progress is not None:
            preview = None
            if settings.preview_every and (step + 1) % settings.preview_every == 0:
                if loss_size is None:
                    preview = tensor_to_pil(seen.detach())
                else:
                    with torch.no_grad():
                        preview = tensor_to_pil(generator.synthesis(w.detach(), randomize_noise=False))
            progress(step + 1, total, losses, preview)
    log.debug("optimised %d steps towards %r: %s", total, clip_loss.texts, history[-1])

    with torch.no_grad():
        w_final = w.detach()
        image = generator.synthesis(w_final, randomize_noise=False)
    return OptimizationResult(w=w_final, image=image, texts=clip_loss.texts, steps=total, losses=history[-1],
                              history=history)
