"""The demo e4e encoder: the project's `Encoder4Editing` (small IR-SE trunk), trained to invert the demo
generator.

Every training face is drawn from a Gaussian code z (`data_tools.faces.latent`), whose W code mapping(z) the
generator draws as that face, so the encoder learns by regression onto that code (repeated over the W+ rows,
which is e4e's aim of staying close to W) plus the reconstruction loss through the frozen generator (L1 on a
Laplacian pyramid and on pixels, weighted by the values' regions as in the generator's training), as e4e
does. The encoder predicts offsets from the generator's `latent_avg`, which is added outside it. With
`init`, the encoder starts from an earlier demo set's e4e (its trunk already reads faces).
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import torch

from data_tools.faces import render_faces
from data_tools.faces.latent import params_from_latent
from editing.demo_world.generator_train import (
    GeneratorFollower, laplacian_l1, load_trained_generator, region_weights, w_plus,
)
from editing.demo_world.loop import load_run_modules, train_loop
from editing.demo_world.world import SIZE, degrade
from editing.networks.e4e import E4E, Encoder4Editing
from editing.networks.generator import Generator

log = logging.getLogger(__name__)

ENCODER_TRUNK = {"blocks": (1, 2, 2, 1), "widths": (32, 48, 64, 128)}
IMAGE_LOSS_WEIGHT = 1.0
RELOAD_EVERY = 100
IMAGE_LOSS_FROM = 0.3  # share of the steps that regress codes only


def build_encoder(generator: Generator) -> Encoder4Editing:
    return Encoder4Editing(n_styles=generator.n_latent, input_size=SIZE, style_dim=generator.style_dim,
                           **ENCODER_TRUNK)


def e4e_opts() -> dict:
    """The `opts` stored in the checkpoint (as the public e4e file does), with the trunk layout."""
    return {"encoder_type": "Encoder4Editing", "stylegan_size": SIZE, "start_from_latent_avg": True,
            "dataset_type": "demo_world", "encoder_blocks": list(ENCODER_TRUNK["blocks"]),
            "encoder_widths": list(ENCODER_TRUNK["widths"])}


def train_encoder(run_dir: Path, generator_run: Path, steps: int = 5000, batch: int = 16, lr: float = 1e-3,
                  seed: int = 5, init: Path | None = None, show_progress: bool = True) -> E4E:
    """Train (resuming) and return the E4E module. While the generator run is still being trained, its
    newest weights are reloaded every `RELOAD_EVERY` steps, so the encoder can start early and follow; the
    first `IMAGE_LOSS_FROM` of the steps regress codes only, later steps add the reconstruction loss.
    `init`: a demo weight-set directory whose e4e the encoder starts from (copied into `run_dir/init`)."""
    torch.manual_seed(seed)
    follower = GeneratorFollower(generator_run)
    generator = follower.generator
    encoder = build_encoder(generator)
    if init is not None:
        encoder.load_state_dict(_initial_encoder(run_dir, Path(init)).state_dict())
    opt = torch.optim.Adam(encoder.parameters(), lr=lr, betas=(0.9, 0.99))
    image_from = int(steps * IMAGE_LOSS_FROM)

    def step_fn(step: int, gen: torch.Generator) -> dict[str, float]:
        if step % RELOAD_EVERY == 0:
            follower.refresh()
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / 100) * 0.5 * (1 + torch.cos(torch.tensor(step / steps * torch.pi)).item())
        z = torch.randn(batch, generator.style_dim, generator=gen)
        identities, looks = params_from_latent(z)
        images = render_faces(identities, looks, generator.size)
        with torch.no_grad():
            target = w_plus(generator, generator.mapping(z))
            w_scale = float(target.std())
        codes = encoder(degrade(images, gen) if step % 2 else images) + generator.latent_avg.view(1, 1, -1)
        latent = ((codes - target) ** 2).mean() / w_scale ** 2
        losses = {"latent": latent}
        if step >= image_from:
            weight = region_weights(identities, looks, generator.size)
            out = generator.synthesis(codes)
            losses["image"] = laplacian_l1(out, images, weight) + ((out - images).abs() * weight).mean() / weight.mean()
        loss = latent + IMAGE_LOSS_WEIGHT * losses.get("image", 0.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {k: float(v.detach()) for k, v in losses.items()}

    train_loop("e4e", run_dir, {"encoder": encoder}, {"opt": opt}, steps, step_fn, seed, log_every=50,
               show_progress=show_progress)
    follower.refresh()
    return assemble(encoder, generator)


def _initial_encoder(run_dir: Path, init: Path) -> Encoder4Editing:
    """The e4e encoder of the weight set `init`, kept as `run_dir/init/e4e.pt` for resumed runs."""
    from editing.networks.e4e import load_e4e

    kept = run_dir / "init" / "e4e.pt"
    if not kept.is_file():
        if not (init / "e4e.pt").is_file():
            raise FileNotFoundError(f"--init {init}: no e4e.pt there (a demo weight-set directory is expected)")
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(init / "e4e.pt", kept)
    return load_e4e(kept).encoder


def assemble(encoder: Encoder4Editing, generator: Generator) -> E4E:
    """The E4E module (encoder + decoder + latent_avg rows) in eval mode."""
    latent_avg = generator.latent_avg.view(1, -1).repeat(generator.n_latent, 1)
    return E4E(encoder.eval(), generator.eval(), latent_avg, e4e_opts()).eval().requires_grad_(False)


def load_trained_encoder(run_dir: Path, generator_run: Path) -> E4E:
    generator = load_trained_generator(generator_run)
    encoder = build_encoder(generator)
    load_run_modules(run_dir, {"encoder": encoder})
    return assemble(encoder, generator)


def reconstruction_agreement(e4e: E4E, judge, n: int = 500) -> dict[str, float]:
    """`judge.value_agreement` of the e4e inversions (encode, then synthesise) of `n` held-out renders."""
    from editing.demo_world.judge import value_agreement

    return value_agreement(lambda data: e4e(data.images)[0], judge, n)
