"""The demo CLIP: an open_clip `CLIP` with a small custom config, trained contrastively on renders and
captions written with the pipeline's prompt templates (`captions`).

A caption holds for every face of the batch that shows all it claims and none of what it denies, so a batch
has many positives per caption; the loss is therefore the pairwise sigmoid loss (SigLIP) over the
[faces × captions] match matrix rather than a softmax over one positive. Images go through the same
preprocessing as at edit time (`ClipScorer.preprocess`), plus blur, shift and noise, and, once a trained
generator exists, half of each batch is the generator's rendering of the same faces, so that the CLIP's
gradients are meaningful on the generator's outputs.
"""
from __future__ import annotations

import logging
import random
from pathlib import Path

import torch
import torch.nn.functional as F

from data_tools.faces.look import look_values
from editing.demo_world.captions import caption_for, matches
from editing.demo_world.loop import load_run_modules, train_loop
from editing.demo_world.world import degrade, heldout_batch, sample_batch

log = logging.getLogger(__name__)

CLIP_CONFIG = {
    "embed_dim": 96,
    "init_logit_scale": 2.302585,  # ln 10
    "init_logit_bias": -5.0,
    "vision_cfg": {"image_size": 64, "patch_size": 8, "width": 96, "layers": 3, "head_width": 32, "mlp_ratio": 4},
    "text_cfg": {"context_length": 48, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def build_clip():
    """(open_clip CLIP, ClipScorer wrapping it) for CLIP_CONFIG, in training mode."""
    import open_clip
    from open_clip.model import CLIP

    from editing.clip_model import ClipScorer

    model = CLIP(**CLIP_CONFIG)
    tokenizer = open_clip.SimpleTokenizer(context_length=CLIP_CONFIG["text_cfg"]["context_length"])
    return model, ClipScorer(model, tokenizer, CLIP_CONFIG["vision_cfg"]["image_size"], CLIP_CONFIG["embed_dim"])


def train_clip(run_dir: Path, steps: int = 1500, batch: int = 48, lr: float = 1e-3, seed: int = 3,
               generator_run: Path | None = None, show_progress: bool = True):
    """Train (resuming) and return the ClipScorer. With `generator_run`, half of each batch is generated."""
    torch.manual_seed(seed)
    model, scorer = build_clip()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05, betas=(0.9, 0.98))
    generator = conditioner = None
    if generator_run is not None:
        from editing.demo_world.generator_train import latent_of, load_trained_generator, w_plus

        generator, conditioner = load_trained_generator(generator_run)

    def images_of(data, gen: torch.Generator) -> torch.Tensor:
        images = data.images
        if generator is not None:
            half = images.shape[0] // 2
            with torch.no_grad():
                w = latent_of(generator, conditioner, data.identities[:half], data.looks[:half])
                images = torch.cat([generator.synthesis(w_plus(generator, w)), images[half:]])
        return degrade(images, gen)

    def step_fn(step: int, gen: torch.Generator) -> dict[str, float]:
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / 200) * 0.5 * (1 + torch.cos(torch.tensor(step / steps * torch.pi)).item())
        data = sample_batch(batch, gen)
        rng = random.Random(int(torch.randint(1 << 30, (1,), generator=gen)))
        faces = [frozenset(look_values(look)) for look in data.looks]
        captions = [caption_for(tuple(sorted(f, key=list(look_values(look)).index)), rng)
                    for f, look in zip(faces, data.looks)]
        target = matches(captions, faces)
        image_features = model.encode_image(scorer.preprocess(images_of(data, gen)), normalize=True)
        tokens = scorer.tokenizer([c.text for c in captions])
        text_features = model.encode_text(tokens, normalize=True)
        logits = image_features @ text_features.T * model.logit_scale.exp() + model.logit_bias
        loss = F.binary_cross_entropy_with_logits(logits, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"sigmoid": float(loss.detach()), "positives": float(target.mean())}

    heldout = heldout_batch(128, offset=3)

    @torch.no_grad()
    def on_log(step: int) -> dict[str, float]:
        model.eval()
        scorer._text_cache.clear()
        return {"heldout_value_acc": value_accuracy(scorer, heldout.images, heldout.looks)}

    train_loop("clip", run_dir, {"clip": model}, {"opt": opt}, steps, step_fn, seed, log_every=50,
               on_log=on_log, show_progress=show_progress)
    model.eval()
    scorer._text_cache.clear()
    return scorer


@torch.no_grad()
def value_accuracy(scorer, images: torch.Tensor, looks: torch.Tensor) -> float:
    """How often, per face and value, the single-value text of a present value scores above that of an absent
    one: the mean over values of the ROC AUC of cos(image, attribute text) as a detector of the value."""
    from dialogue.ontology import VALUES
    from editing.prompts import attribute_text

    sims = scorer.similarity(images, [attribute_text(v) for v in VALUES])  # [B, 23]
    present = looks > 0.5
    aucs = []
    for k in range(len(VALUES)):
        pos, neg = sims[present[:, k], k], sims[~present[:, k], k]
        if len(pos) and len(neg):
            aucs.append(float((pos.view(-1, 1) > neg.view(1, -1)).float().mean()))
    return sum(aucs) / len(aucs)


def load_trained_clip(run_dir: Path):
    """The ClipScorer of a (possibly unfinished) run, in eval mode."""
    model, scorer = build_clip()
    load_run_modules(run_dir, {"clip": model})
    return scorer.eval().requires_grad_(False)
