"""The demo e4e encoder: the project's `Encoder4Editing` (small IR-SE trunk), trained to invert the demo
generator.

Every training face has known parameters, hence a known code w = mapping(conditioner(parameters)), so the
encoder learns by regression onto that code (repeated over the W+ rows, which is e4e's aim of staying close
to W) plus the reconstruction loss through the frozen generator (L1 on a Laplacian pyramid and on pixels),
as e4e does. The encoder predicts offsets from the generator's `latent_avg`, which is added outside it.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from editing.demo_world.generator_train import GeneratorFollower, latent_of, laplacian_l1, load_trained_generator, w_plus
from editing.demo_world.loop import load_run_modules, train_loop
from editing.demo_world.world import SIZE, degrade, sample_batch
from editing.e4e import E4E, Encoder4Editing
from editing.generator import Generator

log = logging.getLogger(__name__)

ENCODER_TRUNK = {"blocks": (1, 2, 2, 1), "widths": (32, 48, 64, 128)}
IMAGE_LOSS_WEIGHT = 1.0
RELOAD_EVERY = 100
IMAGE_LOSS_FROM = 1500


def build_encoder(generator: Generator) -> Encoder4Editing:
    return Encoder4Editing(n_styles=generator.n_latent, input_size=SIZE, style_dim=generator.style_dim,
                           **ENCODER_TRUNK)


def e4e_opts() -> dict:
    """The `opts` stored in the checkpoint (as the public e4e file does), with the trunk layout."""
    return {"encoder_type": "Encoder4Editing", "stylegan_size": SIZE, "start_from_latent_avg": True,
            "dataset_type": "demo_world", "encoder_blocks": list(ENCODER_TRUNK["blocks"]),
            "encoder_widths": list(ENCODER_TRUNK["widths"])}


def train_encoder(run_dir: Path, generator_run: Path, steps: int = 5000, batch: int = 16, lr: float = 1e-3,
                  seed: int = 5, show_progress: bool = True) -> E4E:
    """Train (resuming) and return the E4E module. While the generator run is still being trained, its
    newest weights are reloaded every `RELOAD_EVERY` steps, so the encoder can start early and follow; the
    first `IMAGE_LOSS_FROM` steps regress codes only, later steps add the reconstruction loss."""
    torch.manual_seed(seed)
    follower = GeneratorFollower(generator_run)
    generator, conditioner = follower.generator, follower.conditioner
    encoder = build_encoder(generator)
    opt = torch.optim.Adam(encoder.parameters(), lr=lr, betas=(0.9, 0.99))

    def step_fn(step: int, gen: torch.Generator) -> dict[str, float]:
        if step % RELOAD_EVERY == 0:
            follower.refresh()
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / 100) * 0.5 * (1 + torch.cos(torch.tensor(step / steps * torch.pi)).item())
        data = sample_batch(batch, gen, soft_fraction=0.2)
        with torch.no_grad():
            target = w_plus(generator, latent_of(generator, conditioner, data.identities, data.looks))
            w_scale = float(target.std())
        codes = encoder(degrade(data.images, gen) if step % 2 else data.images) + generator.latent_avg.view(1, 1, -1)
        latent = ((codes - target) ** 2).mean() / w_scale ** 2
        losses = {"latent": latent}
        if step >= IMAGE_LOSS_FROM:
            images = generator.synthesis(codes)
            losses["image"] = laplacian_l1(images, data.images) + (images - data.images).abs().mean()
        loss = latent + IMAGE_LOSS_WEIGHT * losses.get("image", 0.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {k: float(v.detach()) for k, v in losses.items()}

    train_loop("e4e", run_dir, {"encoder": encoder}, {"opt": opt}, steps, step_fn, seed, log_every=50,
               show_progress=show_progress)
    follower.refresh()
    return assemble(encoder, generator)


def assemble(encoder: Encoder4Editing, generator: Generator) -> E4E:
    """The E4E module (encoder + decoder + latent_avg rows) in eval mode."""
    latent_avg = generator.latent_avg.view(1, -1).repeat(generator.n_latent, 1)
    return E4E(encoder.eval(), generator.eval(), latent_avg, e4e_opts()).eval().requires_grad_(False)


def load_trained_encoder(run_dir: Path, generator_run: Path) -> E4E:
    generator, _ = load_trained_generator(generator_run)
    encoder = build_encoder(generator)
    load_run_modules(run_dir, {"encoder": encoder})
    return assemble(encoder, generator)


def reconstruction_agreement(e4e: E4E, judge, n: int = 500) -> dict[str, float]:
    """`judge.value_agreement` of the e4e inversions (encode, then synthesise) of `n` held-out renders."""
    from editing.demo_world.judge import value_agreement

    return value_agreement(lambda data: e4e(data.images)[0], judge, n)
