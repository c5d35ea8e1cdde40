"""The demo generator: the project's StyleGAN2 `Generator`, trained without a discriminator.

Adversarial training does not fit on a shared 2-core CPU (about 1 s per 64 px G+D iteration), so the
generator learns to reproduce renders from their known parameters instead, in the way GLO trains a
generator from fixed codes: a small `Conditioner` MLP turns (identity parameters, look strengths) into z,
the generator's own mapping network turns z into w, and the synthesis network renders w repeated over the
W+ rows. The loss is L1 on a Laplacian pyramid plus plain L1; from step `PERCEPTUAL_FROM` on (once the
coarse picture is learnt) an LPIPS-style distance on the attribute judge's features is added, which
sharpens the small parts that carry the ontology values (mouth, brows, beard, earrings). A third of each batch has in-between looks,
so W space holds the continuum between values and interpolates smoothly; a small random jitter of the W+
rows teaches the synthesis network that a slightly perturbed code still means the same face, which keeps
latent optimisation on the face manifold. An exponential moving average of the weights (`g_ema`) is what
ships.
"""
from __future__ import annotations

import copy
import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from editing.demo_world.loop import load_run_modules, train_loop
from editing.demo_world.world import CONDITION_DIM, condition_vector, heldout_batch, sample_batch
from editing.generator import Generator

log = logging.getLogger(__name__)

GENERATOR_CONFIG = {"size": 64, "style_dim": 128, "n_mlp": 4,
                    "channels": {4: 128, 8: 128, 16: 64, 32: 32, 64: 16}}
EMA_DECAY = 0.998
MAPPING_LR_SCALE = 50.0  # the mapping's weights carry lr_mul 0.01; this restores a comparable pace
W_JITTER = 0.05
PERCEPTUAL_FROM = 2300
PERCEPTUAL_WEIGHT = 0.25


class Conditioner(nn.Module):
    """condition [B, CONDITION_DIM] (see `world.condition_vector`) → z [B, style_dim]."""

    def __init__(self, style_dim: int = GENERATOR_CONFIG["style_dim"], hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(CONDITION_DIM, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden),
                                 nn.LeakyReLU(0.2), nn.Linear(hidden, style_dim))

    def forward(self, condition: torch.Tensor) -> torch.Tensor:
        return self.net(condition)


def build_generator() -> Generator:
    return Generator(**GENERATOR_CONFIG)


def latent_of(generator: Generator, conditioner: Conditioner, identities: torch.Tensor,
              looks: torch.Tensor) -> torch.Tensor:
    """w [B, style_dim] of faces with known parameters."""
    return generator.mapping(conditioner(condition_vector(identities, looks)))


def w_plus(generator: Generator, w: torch.Tensor) -> torch.Tensor:
    """w [B, style_dim] → W+ [B, n_latent, style_dim] (the same row everywhere)."""
    return w.unsqueeze(1).repeat(1, generator.n_latent, 1)


def render_known(generator: Generator, conditioner: "Conditioner", identities: torch.Tensor,
                 looks: torch.Tensor) -> torch.Tensor:
    """The generator's images [B, 3, size, size] of faces with known parameters."""
    return generator.synthesis(w_plus(generator, latent_of(generator, conditioner, identities, looks)))


def laplacian_l1(x: torch.Tensor, y: torch.Tensor, levels: int = 4) -> torch.Tensor:
    """Mean L1 distance between the Laplacian pyramids of x and y [B, 3, H, W] (each level weighted equally)."""
    loss = x.new_zeros(())
    for _ in range(levels):
        x_low, y_low = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
        x_band = x - F.interpolate(x_low, scale_factor=2, mode="bilinear", align_corners=False)
        y_band = y - F.interpolate(y_low, scale_factor=2, mode="bilinear", align_corners=False)
        loss = loss + (x_band - y_band).abs().mean()
        x, y = x_low, y_low
    return loss + (x - y).abs().mean()


@torch.no_grad()
def ema_update(target: nn.Module, source: nn.Module, decay: float) -> None:
    for t, s in zip(target.parameters(), source.parameters()):
        t.lerp_(s, 1 - decay)
    for t, s in zip(target.buffers(), source.buffers()):
        t.copy_(s)


def train_generator(run_dir: Path, judge_path: Path, steps: int = 8000, batch: int = 12, lr: float = 2e-3,
                    seed: int = 2, show_progress: bool = True) -> tuple[Generator, Conditioner]:
    """Train (resuming from `run_dir`) and return the EMA generator and conditioner. `judge_path`: the
    trained attribute judge (its features give the perceptual term)."""
    from editing.demo_world.judge import load_judge

    judge = load_judge(judge_path)
    torch.manual_seed(seed)
    generator, conditioner = build_generator(), Conditioner()
    generator.noises.requires_grad_(False)
    g_ema, c_ema = copy.deepcopy(generator).eval(), copy.deepcopy(conditioner).eval()
    mapping = list(generator.style.parameters()) + list(conditioner.parameters())
    mapping_ids = {id(p) for p in mapping}
    synthesis = [p for p in generator.parameters() if id(p) not in mapping_ids]
    opt = torch.optim.Adam([{"params": synthesis, "lr": lr},
                            {"params": list(generator.style.parameters()), "lr": lr * MAPPING_LR_SCALE},
                            {"params": list(conditioner.parameters()), "lr": lr}], betas=(0.9, 0.99))
    base_lrs = [g["lr"] for g in opt.param_groups]

    def step_fn(step: int, gen: torch.Generator) -> dict[str, float]:
        decay = 1.0 if step < steps * 0.8 else 0.5 * (1 + torch.cos(torch.tensor((step - steps * 0.8) / (steps * 0.2) * torch.pi)).item())
        for group, base in zip(opt.param_groups, base_lrs):
            group["lr"] = base * min(1.0, (step + 1) / 200) * max(decay, 0.05)
        data = sample_batch(batch, gen, soft_fraction=0.33)
        w = latent_of(generator, conditioner, data.identities, data.looks)
        codes = w_plus(generator, w)
        jitter = torch.randn(codes.shape, generator=gen) * W_JITTER * w.detach().std()
        codes = codes + jitter * (torch.rand(batch, 1, 1, generator=gen) < 0.5)
        images = generator.synthesis(codes)
        pyramid = laplacian_l1(images, data.images)
        l1 = (images - data.images).abs().mean()
        losses = {"lap": pyramid, "l1": l1}
        if step >= PERCEPTUAL_FROM:
            losses["judge"] = judge.feature_distance(images, data.images).mean()
        loss = pyramid + l1 + PERCEPTUAL_WEIGHT * losses.get("judge", 0.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema_update(g_ema, generator, EMA_DECAY if step > 500 else 0.9)
        ema_update(c_ema, conditioner, EMA_DECAY if step > 500 else 0.9)
        return {k: float(v.detach()) for k, v in losses.items()}

    heldout = heldout_batch(64)

    @torch.no_grad()
    def on_log(step: int) -> dict[str, float]:
        images = render_known(g_ema, c_ema, heldout.identities, heldout.looks)
        return {"heldout_l1": float((images - heldout.images).abs().mean())}

    modules = {"generator": generator, "conditioner": conditioner, "g_ema": g_ema, "c_ema": c_ema}
    train_loop("generator", run_dir, modules, {"opt": opt}, steps, step_fn, seed, checkpoint_every=50,
               log_every=50, on_log=on_log, show_progress=show_progress)
    return g_ema.eval(), c_ema.eval()


def load_trained_generator(run_dir: Path) -> tuple[Generator, Conditioner]:
    """The EMA generator and conditioner of a (possibly unfinished) run, in eval mode."""
    g_ema, c_ema = build_generator(), Conditioner()
    load_run_modules(run_dir, {"g_ema": g_ema, "c_ema": c_ema})
    g_ema.latent_avg.copy_(mean_w(g_ema, c_ema))
    return g_ema.eval().requires_grad_(False), c_ema.eval().requires_grad_(False)


@torch.no_grad()
def mean_w(generator: Generator, conditioner: Conditioner, n: int = 4096) -> torch.Tensor:
    """The mean w [style_dim] over `n` held-out faces (the checkpoint's latent_avg)."""
    data = heldout_batch(n, offset=7) if n <= 512 else None
    if data is None:
        from data_tools.faces import sample_identities
        from data_tools.faces.look import sample_looks

        gen = torch.Generator().manual_seed(4242)
        identities, looks = sample_identities(n, generator=gen), sample_looks(n, gen)
    else:
        identities, looks = data.identities, data.looks
    return latent_of(generator, conditioner, identities, looks).mean(0)


def generator_agreement(generator: Generator, conditioner: Conditioner, judge, n: int = 500) -> dict[str, float]:
    """`judge.value_agreement` of the generator's pictures of `n` held-out faces from their known parameters:
    the ceiling for what an inversion can keep."""
    from editing.demo_world.judge import value_agreement

    return value_agreement(lambda data: render_known(generator, conditioner, data.identities, data.looks), judge, n)


class GeneratorFollower:
    """The EMA generator and conditioner of a generator run, reloaded by `refresh()` whenever the run has
    saved newer weights, so that networks trained on the generator (e4e, CLIP) can start before it ends."""

    def __init__(self, run_dir: Path):
        self.state_file = run_dir / "state.pt"
        self.run_dir = run_dir
        self.generator, self.conditioner = load_trained_generator(run_dir)
        self.mtime = self.state_file.stat().st_mtime

    def refresh(self) -> bool:
        """Reload if the run saved since the last load; returns whether it did."""
        mtime = self.state_file.stat().st_mtime
        if mtime == self.mtime:
            return False
        fresh, fresh_conditioner = load_trained_generator(self.run_dir)
        self.generator.load_state_dict(fresh.state_dict())
        self.generator.latent_avg.copy_(fresh.latent_avg)
        self.conditioner.load_state_dict(fresh_conditioner.state_dict())
        self.mtime = mtime
        return True

    @torch.no_grad()
    def render(self, identities: torch.Tensor, looks: torch.Tensor) -> torch.Tensor:
        """The generator's images [B, 3, size, size] of faces with known parameters."""
        return render_known(self.generator, self.conditioner, identities, looks)
