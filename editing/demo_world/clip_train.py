"""The demo CLIP: an open_clip `CLIP` with a small custom config, trained contrastively on renders and
captions written with the pipeline's prompt templates (`captions`).

A caption holds, partly, for many faces of a batch, so the loss is the pairwise sigmoid loss (SigLIP) over
the [faces × captions] matrix with graded targets: the share of a caption's claims that hold for the face
(`captions.agreement`). The cosine thus grows with every described value a face gains, which gives the
StyleCLIP optimiser a slope to climb. The image tower is open_clip's ModifiedResNet (it learnt faster here
than a ViT of the same cost). Images go through the same preprocessing as at edit time
(`ClipScorer.preprocess`) plus blur, shift and noise; half of each batch is the generator's rendering of
the same faces (the newest weights of the generator run, reloaded as it trains), so that CLIP reads the
generator's outputs, whose gradients drive the edits.

From step `VALUE_TEXT_FROM` on, each face is also paired with the 23 single-value attribute texts
(`prompts.attribute_text`, the texts T of AvgRel/MinRel), positive where the face shows the value. With
captions alone, 1,800 steps taught colours and large shapes but left the small parts at chance (held-out
ROC AUC about 0.5 for the expressions, straight/wavy, mustache); this dense pairing gives every value a
signal in every batch.

It was not enough for those values: at step 3000 the text tower wrote one and the same embedding for the four
expression texts (pairwise cosine 1.00), and one for straight and wavy hair, so the value-text loss had no
gradient that could tell them apart, on either tower (a symmetric saddle: a linear probe on the image tower's
embedding found no expression either, while the same tower trained on the labels directly learnt them).
From step `SEPARATION_FROM` on, a text-side term pushes the 23 value texts apart (the mean squared positive
cosine between two different ones), and the value-text loss weighs `LATE_VALUE_TEXT_WEIGHT`: once the texts
differ, the image tower is pulled towards the text of the value a face shows.
"""
from __future__ import annotations

import logging
import random
from pathlib import Path

import torch
import torch.nn.functional as F

from data_tools.faces.look import look_values
from dialogue.ontology import VALUES
from editing.demo_world.captions import agreement, caption_for
from editing.demo_world.clip_net import build_clip
from editing.demo_world.loop import load_run_modules, train_loop
from editing.demo_world.world import degrade, heldout_batch, sample_batch
from editing.pipeline.prompts import attribute_text

log = logging.getLogger(__name__)

RELOAD_EVERY = 100
VALUE_TEXT_FROM = 1800
VALUE_TEXT_WEIGHT = 1.0
SEPARATION_FROM = 3000
SEPARATION_WEIGHT = 1.0
LATE_VALUE_TEXT_WEIGHT = 2.0


def train_clip(run_dir: Path, generator_run: Path, steps: int = 7000, batch: int = 48, lr: float = 1e-3,
               seed: int = 3, init: Path | None = None, show_progress: bool = True):
    """Train (resuming) and return the ClipScorer. `init`: a demo weight-set directory whose CLIP (trained
    through all three stages) the run starts from, in the last stage (copied into `run_dir/init`)."""
    from editing.demo_world.generator_train import GeneratorFollower

    torch.manual_seed(seed)
    model, scorer = build_clip()
    value_text_from, separation_from = VALUE_TEXT_FROM, SEPARATION_FROM
    if init is None and (run_dir / "init" / "clip.safetensors").is_file():
        init = run_dir / "init"  # a run started from a weight set resumes as one, with or without --init
    if init is not None:
        model.load_state_dict(_initial_weights(run_dir, Path(init)))
        value_text_from = separation_from = 0
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05, betas=(0.9, 0.98))
    follower = GeneratorFollower(generator_run)
    value_texts = [attribute_text(v) for v in VALUES]

    def step_fn(step: int, gen: torch.Generator) -> dict[str, float]:
        if step % RELOAD_EVERY == 0:
            follower.refresh()
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / 200) * 0.5 * (1 + torch.cos(torch.tensor(step / steps * torch.pi)).item())
        data = sample_batch(batch, gen)
        half = batch // 2
        images = torch.cat([follower.render(data.identities[:half], data.looks[:half]), data.images[half:]])
        rng = random.Random(int(torch.randint(1 << 30, (1,), generator=gen)))
        values = [look_values(look) for look in data.looks]
        captions = [caption_for(v, rng) for v in values]
        target = agreement(captions, [frozenset(v) for v in values])
        image_features = model.encode_image(scorer.preprocess(degrade(images, gen)), normalize=True)
        text_features = model.encode_text(scorer.tokenizer([c.text for c in captions]), normalize=True)
        logits = image_features @ text_features.T * model.logit_scale.exp() + model.logit_bias
        losses = {"sigmoid": F.binary_cross_entropy_with_logits(logits, target)}
        if step >= value_text_from:
            value_features = model.encode_text(scorer.tokenizer(value_texts), normalize=True)
            value_logits = image_features @ value_features.T * model.logit_scale.exp() + model.logit_bias
            losses["value_sigmoid"] = F.binary_cross_entropy_with_logits(value_logits, (data.looks > 0.5).float())
        value_weight = VALUE_TEXT_WEIGHT
        if step >= separation_from:
            losses["text_separation"] = text_separation(value_features)
            value_weight = LATE_VALUE_TEXT_WEIGHT
        loss = (losses["sigmoid"] + value_weight * losses.get("value_sigmoid", 0.0)
                + SEPARATION_WEIGHT * losses.get("text_separation", 0.0))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {k: float(v.detach()) for k, v in losses.items()}

    heldout = heldout_batch(128, offset=3)

    @torch.no_grad()
    def on_log(step: int) -> dict[str, float]:
        model.eval()
        scorer._text_cache.clear()
        return {"value_auc_renders": value_auc(scorer, heldout.images, heldout.looks),
                "value_auc_generated": value_auc(scorer, follower.render(heldout.identities, heldout.looks),
                                                 heldout.looks)}

    train_loop("clip", run_dir, {"clip": model}, {"opt": opt}, steps, step_fn, seed, log_every=50,
               on_log=on_log, show_progress=show_progress)
    model.eval()
    scorer._text_cache.clear()
    return scorer


def _initial_weights(run_dir: Path, init: Path) -> dict[str, torch.Tensor]:
    """The CLIP state dict of the weight set `init` (float32), kept as `run_dir/init/clip.safetensors`."""
    import shutil

    from safetensors.torch import load_file

    kept = run_dir / "init" / "clip.safetensors"
    if not kept.is_file():
        if not (init / "clip.safetensors").is_file():
            raise FileNotFoundError(f"--init {init}: no clip.safetensors there (a demo weight-set directory is expected)")
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(init / "clip.safetensors", kept)
    return {k: v.float() for k, v in load_file(str(kept)).items()}


def text_separation(features: torch.Tensor) -> torch.Tensor:
    """The mean squared positive cosine between two different rows of unit `features` [N, E]: 0 when no two
    texts point the same way (negative cosines are not pushed further)."""
    cosines = features @ features.T
    different = ~torch.eye(len(features), dtype=torch.bool, device=features.device)
    return cosines[different].clamp(min=0).pow(2).mean()


@torch.no_grad()
def value_aucs(scorer, images: torch.Tensor, looks: torch.Tensor) -> dict[str, float]:
    """How well each single-value text detects its value: {value: ROC AUC of cos(image, attribute text)
    between faces that show the value and faces that do not} (values shown by all or none are left out)."""
    sims = scorer.similarity(images, [attribute_text(v) for v in VALUES])  # [B, 23]
    present = looks > 0.5
    aucs = {}
    for k, value in enumerate(VALUES):
        pos, neg = sims[present[:, k], k], sims[~present[:, k], k]
        if len(pos) and len(neg):
            aucs[value] = float((pos.view(-1, 1) > neg.view(1, -1)).float().mean())
    return aucs


def value_auc(scorer, images: torch.Tensor, looks: torch.Tensor) -> float:
    """The mean of `value_aucs` over the values."""
    aucs = value_aucs(scorer, images, looks)
    return sum(aucs.values()) / len(aucs)


def load_trained_clip(run_dir: Path):
    """The ClipScorer of a (possibly unfinished) run, in eval mode."""
    model, scorer = build_clip()
    load_run_modules(run_dir, {"clip": model})
    return scorer.eval().requires_grad_(False)
