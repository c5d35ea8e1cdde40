"""The demo generator: the project's StyleGAN2 `Generator`, trained to draw the world from its own latent space.

Adversarial training does not fit on a shared 2-core CPU (about 1 s per 64 px G+D iteration), but the demo
world needs none: its sampling is a function of a Gaussian vector (`data_tools.faces.latent`), so for every
z ~ N(0, I) the right picture is known, render(params(z)). The generator learns G(z) = render(params(z))
through its own mapping network, so every z is a face of the world by construction and W is filled where
inversions and edits go (the earlier, GLO-style generator only ever saw the codes of a conditioner MLP, and
random z gave colour blobs).

The loss is L1 on a Laplacian pyramid plus plain L1, both weighted per pixel by `region_weights`: the
renderer's own regions of the values (`data_tools.faces.regions`), each scaled by how small it is, so that
the mouth, brows, beard and earrings count as much as the hair; with a warm start, plus an LPIPS-style term on
the earlier demo CLIP's image tower (`ClipFeatureDistance`; not the judge, the referee). The W+ rows of half
the batch are jittered by 5 % of the codes' spread across faces, so a slightly perturbed code still draws the
same face. An exponential moving average (`g_ema`) is what ships.

Warm start (`init`): the synthesis network starts from an earlier demo generator, widened
function-preservingly (`widen_generator`) to `GENERATOR_CONFIG`'s channels, and for the first
`MAPPING_FIT_STEPS` steps only the mapping network learns, by regression in W onto the earlier e4e's code of
render(params(z)), so that the synthesis network receives codes it can already draw.
"""
from __future__ import annotations

import copy
import logging
import shutil
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from data_tools.faces import render_faces
from data_tools.faces.latent import latent_from_params, params_from_latent
from data_tools.faces.regions import value_regions
from editing.demo_world.loop import load_run_modules, train_loop
from editing.demo_world.world import SIZE, heldout_batch
from editing.networks.generator import Generator

log = logging.getLogger(__name__)

GENERATOR_CONFIG = {"size": 64, "style_dim": 128, "n_mlp": 4,
                    "channels": {4: 128, 8: 128, 16: 96, 32: 64, 64: 32}}
EMA_DECAY = 0.998
# The mapping's weights carry lr_mul 0.01 (StyleGAN2's slow mapping, made for millions of images); this pace
# lets it learn in thousands of steps. At 50 (the relative pace of the synthesis weights), 1,300 end-to-end steps
# after the warm start left the mapping blurring the categories (held-out L1 0.172 -> 0.143; the judge found
# lipstick on 2 % and mustaches on 0 % of faces drawn from their own codes).
MAPPING_LR_SCALE = 500.0
W_JITTER = 0.05
MAPPING_FIT_STEPS = 1500
REGION_WEIGHT = 2.0
REGION_AREA = 0.03  # a value's region weighs fully up to this share of the image, less when larger
PERCEPTUAL_WEIGHT = 0.25
LATENT_AVG_SEED = 4242


def build_generator() -> Generator:
    return Generator(**GENERATOR_CONFIG)


def w_plus(generator: Generator, w: torch.Tensor) -> torch.Tensor:
    """w [B, style_dim] → W+ [B, n_latent, style_dim] (the same row everywhere)."""
    return w.unsqueeze(1).repeat(1, generator.n_latent, 1)


def codes_of(generator: Generator, identities: torch.Tensor, looks: torch.Tensor) -> torch.Tensor:
    """The faces' own z [B, style_dim] (`latent_from_params`, fixed seed for the ignored components)."""
    return latent_from_params(identities, looks, generator.style_dim)


def render_known(generator: Generator, identities: torch.Tensor, looks: torch.Tensor) -> torch.Tensor:
    """The generator's images [B, 3, size, size] of faces with known parameters, from their own codes."""
    return generator.synthesis(w_plus(generator, generator.mapping(codes_of(generator, identities, looks))))


def laplacian_l1(x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None = None, levels: int = 4) -> torch.Tensor:
    """Mean L1 distance between the Laplacian pyramids of x and y [B, 3, H, W], each level weighted equally;
    `weight` [B, 1, H, W] weighs pixels (average-pooled down the pyramid; normalised to mean 1)."""
    if weight is None:
        weight = x.new_ones(x.shape[0], 1, *x.shape[-2:])
    loss = x.new_zeros(())
    for _ in range(levels):
        x_low, y_low = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
        x_band = x - F.interpolate(x_low, scale_factor=2, mode="bilinear", align_corners=False)
        y_band = y - F.interpolate(y_low, scale_factor=2, mode="bilinear", align_corners=False)
        loss = loss + ((x_band - y_band).abs() * weight).mean() / weight.mean()
        x, y, weight = x_low, y_low, F.avg_pool2d(weight, 2)
    return loss + ((x - y).abs() * weight).mean() / weight.mean()


def region_weights(identities: torch.Tensor, looks: torch.Tensor, size: int = SIZE) -> torch.Tensor:
    """Per-pixel loss weights [B, 1, size, size]: 1 + `REGION_WEIGHT` × the sum over the 23 values of each
    value's region, scaled by min(1, `REGION_AREA` / its mean area in the batch). Where several values are
    drawn (the mouth: expression, lipstick, big lips, mustache) the weight reaches about 10; hair about 1.5."""
    regions = value_regions(identities, looks, size)
    area = regions.mean((0, 2, 3), keepdim=True).clamp_min(1e-4)
    return 1 + REGION_WEIGHT * (regions * (REGION_AREA / area).clamp(max=1)).sum(1, keepdim=True)


@torch.no_grad()
def ema_update(target: nn.Module, source: nn.Module, decay: float) -> None:
    for t, s in zip(target.parameters(), source.parameters()):
        t.lerp_(s, 1 - decay)
    for t, s in zip(target.buffers(), source.buffers()):
        t.copy_(s)


@torch.no_grad()
def widen_generator(source: Generator, target: Generator) -> None:
    """Copy `source`'s weights into the wider `target` (same size, style_dim and depth; at least as many
    channels everywhere) so that `target` draws exactly what `source` draws. Each tensor goes into the leading
    slice; the new input channels of a convolution get zero weights towards the old outputs (the new output
    channels keep their fresh initialisation), and the ToRGB weights, which are not demodulated, are scaled
    by sqrt(new fan-in / old fan-in) against the larger equalised-lr scale."""
    old_state, new_state = source.state_dict(), target.state_dict()
    for key, new in new_state.items():
        old = old_state[key]
        if old.shape == new.shape:
            new.copy_(old)
            continue
        if old.ndim == 5:  # modulated conv weight [1, out, in, k, k]
            out, inp = old.shape[1], old.shape[2]
            new[:, :out, inp:] = 0
            scale = (new.shape[2] / inp) ** 0.5 if "to_rgb" in key else 1.0
            new[:, :out, :inp] = old * scale
        else:  # per-channel vectors and modulation [in, style_dim]: leading slice
            new[tuple(slice(0, n) for n in old.shape)] = old
    target.load_state_dict(new_state)


@torch.no_grad()
def mean_w(generator: Generator, n: int = 4096) -> torch.Tensor:
    """The mean w [style_dim] of `n` seeded random z (the checkpoint's latent_avg)."""
    z = torch.randn(n, generator.style_dim, generator=torch.Generator().manual_seed(LATENT_AVG_SEED))
    return generator.mapping(z).mean(0)


def _warm_start(run_dir: Path, init: Path, generator: Generator):
    """Copy the init weight set's generator and e4e into `run_dir/init` (so a resumed run needs nothing else),
    load its widened synthesis network into `generator` and return the e4e (the mapping fit's teacher)."""
    from editing.networks.e4e import load_e4e
    from editing.networks.generator import load_generator

    kept = run_dir / "init"
    kept.mkdir(parents=True, exist_ok=True)
    for name in ("generator.pt", "e4e.pt"):
        if not (kept / name).is_file():
            if not (init / name).is_file():
                raise FileNotFoundError(f"warm start needs {init / name} (a demo weight set's generator and e4e)")
            shutil.copy2(init / name, kept / name)
    old = load_generator(kept / "generator.pt")
    mapping_state = {k: v.clone() for k, v in generator.style.state_dict().items()}
    widen_generator(old, generator)
    generator.style.load_state_dict(mapping_state)  # the mapping is new: it learns z -> the old W space
    return load_e4e(kept / "e4e.pt")


class ClipFeatureDistance(nn.Module):
    """An LPIPS-style distance on the demo CLIP's image tower (frozen): its stem and first three residual stages,
    channels unit-normalised at every position, squared difference, spatial mean, summed over the stages. The
    tower was trained to tell the 23 values apart, so its features weigh the small parts that carry them; it is
    not the judge, which stays an independent referee. images [B, 3, H, W] in [-1, 1] → distances [B]."""

    def __init__(self, scorer):
        super().__init__()
        self.scorer = scorer.eval().requires_grad_(False)
        self.visual = scorer.model.visual

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = self.visual.stem(self.scorer.preprocess(images))
        out = [x]
        for layer in (self.visual.layer1, self.visual.layer2, self.visual.layer3):
            x = layer(x)
            out.append(x)
        return [f / (f.norm(dim=1, keepdim=True) + 1e-10) for f in out]

    def forward(self, images: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        return sum(((a - b) ** 2).sum(1).mean((1, 2)) for a, b in zip(self.features(images), self.features(references)))


def _perceptual(run_dir: Path, init: Path) -> ClipFeatureDistance:
    """The perceptual term's network: the init weight set's CLIP, kept as `run_dir/init/clip.safetensors`."""
    from safetensors.torch import load_file

    from editing.demo_world.clip_net import build_clip

    kept = run_dir / "init" / "clip.safetensors"
    if not kept.is_file():
        if not (init / "clip.safetensors").is_file():
            raise FileNotFoundError(f"the perceptual term needs {init / 'clip.safetensors'} (a demo weight set's CLIP)")
        shutil.copy2(init / "clip.safetensors", kept)
    model, scorer = build_clip()
    model.load_state_dict({k: v.float() for k, v in load_file(str(kept)).items()})
    return ClipFeatureDistance(scorer)


def train_generator(run_dir: Path, steps: int = 16000, batch: int = 16, lr: float = 2e-3, seed: int = 2,
                    init: Path | None = None, perceptual_weight: float = PERCEPTUAL_WEIGHT,
                    show_progress: bool = True) -> Generator:
    """Train (resuming from `run_dir`) and return the EMA generator (with its latent_avg). `init`: a demo
    weight-set directory to warm-start from (its generator and e4e; its CLIP gives the perceptual term), or
    None to start from scratch (then without the perceptual term) or to resume a run as it was started."""
    torch.manual_seed(seed)
    if init is None and (run_dir / "init" / "generator.pt").is_file():
        init = run_dir / "init"  # a warm-started run resumes as one, with or without --init
    generator = build_generator()
    generator.noises.requires_grad_(False)
    teacher = _warm_start(run_dir, Path(init), generator) if init is not None else None
    perceptual = _perceptual(run_dir, Path(init)) if init is not None and perceptual_weight else None
    fit_steps = MAPPING_FIT_STEPS if teacher is not None else 0
    g_ema = copy.deepcopy(generator).eval()
    mapping = list(generator.style.parameters())
    mapping_ids = {id(p) for p in mapping}
    synthesis = [p for p in generator.parameters() if id(p) not in mapping_ids]
    opt = torch.optim.Adam([{"params": synthesis, "lr": lr}, {"params": mapping, "lr": lr * MAPPING_LR_SCALE}],
                           betas=(0.9, 0.99))
    base_lrs = [g["lr"] for g in opt.param_groups]

    def step_fn(step: int, gen: torch.Generator) -> dict[str, float]:
        z = torch.randn(batch, generator.style_dim, generator=gen)
        identities, looks = params_from_latent(z)
        target = render_faces(identities, looks, generator.size)
        if step < fit_steps:  # mapping only, regression onto the earlier e4e's code
            for index, (group, base) in enumerate(zip(opt.param_groups, base_lrs)):
                group["lr"] = base * min(1.0, (step + 1) / 50) * (index == 1)  # group 1: the mapping
            with torch.no_grad():
                goal = teacher.encode(target).mean(1)
            loss = ((generator.mapping(z) - goal) ** 2).mean() / float(goal.var(0).mean())
            losses = {"w_fit": loss}
        else:
            t = (step - fit_steps) / max(1, steps - fit_steps)
            decay = 1.0 if t < 0.8 else 0.5 * (1 + torch.cos(torch.tensor((t - 0.8) / 0.2 * torch.pi)).item())
            for group, base in zip(opt.param_groups, base_lrs):
                group["lr"] = base * min(1.0, (step - fit_steps + 1) / 200) * max(decay, 0.05)
            weight = region_weights(identities, looks, generator.size)
            codes = w_plus(generator, generator.mapping(z))
            jitter = torch.randn(codes.shape, generator=gen) * W_JITTER * codes.detach().std(0, keepdim=True)
            images = generator.synthesis(codes + jitter * (torch.rand(batch, 1, 1, generator=gen) < 0.5))
            pyramid = laplacian_l1(images, target, weight)
            l1 = ((images - target).abs() * weight).mean() / weight.mean()
            loss = pyramid + l1
            losses = {"lap": pyramid, "l1": l1}
            if perceptual is not None:
                losses["clip"] = perceptual(images, target).mean()
                loss = loss + perceptual_weight * losses["clip"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema_update(g_ema, generator, EMA_DECAY if step > fit_steps + 500 else 0.9)
        return {k: float(v.detach()) for k, v in losses.items()}

    heldout = heldout_batch(64)

    @torch.no_grad()
    def on_log(step: int) -> dict[str, float]:
        images = render_known(g_ema, heldout.identities, heldout.looks)
        return {"heldout_l1": float((images - heldout.images).abs().mean())}

    modules = {"generator": generator, "g_ema": g_ema}
    train_loop("generator", run_dir, modules, {"opt": opt}, steps, step_fn, seed, checkpoint_every=50,
               log_every=50, on_log=on_log, show_progress=show_progress)
    g_ema.latent_avg.copy_(mean_w(g_ema))
    return g_ema.eval()


def load_trained_generator(run_dir: Path) -> Generator:
    """The EMA generator of a (possibly unfinished) run, in eval mode, with its latent_avg."""
    g_ema = build_generator()
    load_run_modules(run_dir, {"g_ema": g_ema})
    g_ema.latent_avg.copy_(mean_w(g_ema))
    return g_ema.eval().requires_grad_(False)


def generator_agreement(generator: Generator, judge, n: int = 500) -> dict[str, float]:
    """`judge.value_agreement` of the generator's pictures of `n` held-out faces from their own codes: the
    ceiling for what an inversion can keep."""
    from editing.demo_world.judge import value_agreement

    return value_agreement(lambda data: render_known(generator, data.identities, data.looks), judge, n)


class GeneratorFollower:
    """The EMA generator of a generator run, reloaded by `refresh()` whenever the run has saved newer weights,
    so that networks trained on the generator (e4e, CLIP) can start before it ends."""

    def __init__(self, run_dir: Path):
        self.state_file = run_dir / "state.pt"
        self.run_dir = run_dir
        self.generator = load_trained_generator(run_dir)
        self.mtime = self.state_file.stat().st_mtime

    def refresh(self) -> bool:
        """Reload if the run saved since the last load; returns whether it did."""
        mtime = self.state_file.stat().st_mtime
        if mtime == self.mtime:
            return False
        fresh = load_trained_generator(self.run_dir)
        self.generator.load_state_dict(fresh.state_dict())
        self.generator.latent_avg.copy_(fresh.latent_avg)
        self.mtime = mtime
        return True

    @torch.no_grad()
    def render(self, identities: torch.Tensor, looks: torch.Tensor) -> torch.Tensor:
        """The generator's images [B, 3, size, size] of faces with known parameters."""
        return render_known(self.generator, identities, looks)
