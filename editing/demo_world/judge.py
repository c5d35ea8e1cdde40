"""The attribute judge: a 23-way multi-label CNN that says which ontology values a 64 px demo-world face
shows. It is trained only on renders (with blur, noise and shift augmentations so that it also reads
generator outputs) and shares nothing with CLIP, so it is an independent referee of edits.

Decoding: within the exclusive groups (expression, hair colour, straight/wavy) the strongest value wins;
`no makeup` is present when neither `heavy makeup` nor `lipstick` is; every other value when its
probability exceeds 0.5.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from data_tools.faces.look import EXPRESSIONS, HAIR_COLORS, HEAVY_MAKEUP, LIPSTICK, NO_MAKEUP, STRAIGHT, WAVY
from dialogue.ontology import VALUES
from editing.demo_world.loop import train_loop
from editing.demo_world.world import SIZE, degrade, heldout_batch, sample_batch

log = logging.getLogger(__name__)

_GROUPS = (EXPRESSIONS, HAIR_COLORS, [STRAIGHT, WAVY])


class AttributeJudge(nn.Module):
    """images [B, 3, 64, 64] in [-1, 1] → logits [B, 23] (ontology order).

    Four stages of (3×3 conv, BN, ReLU, stride-2 3×3 conv, BN, ReLU) with `widths` channels, then an MLP
    on the flattened 4×4 map (attributes are tied to places on an aligned face, so no global pooling).
    """

    def __init__(self, widths: Sequence[int] = (16, 32, 64, 96), hidden: int = 192, size: int = SIZE):
        super().__init__()
        self.widths, self.hidden, self.size = tuple(widths), hidden, size
        layers: list[nn.Module] = []
        cin = 3
        for width in widths:
            layers += [nn.Conv2d(cin, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                       nn.Conv2d(width, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width),
                       nn.ReLU(inplace=True)]
            cin = width
        self.features = nn.Sequential(*layers)
        side = size // 2 ** len(widths)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(cin * side * side, hidden), nn.ReLU(inplace=True),
                                  nn.Linear(hidden, len(VALUES)))

    @property
    def config(self) -> dict:
        return {"widths": list(self.widths), "hidden": self.hidden, "size": self.size}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-1] != self.size:
            images = F.interpolate(images, size=(self.size, self.size), mode="area")
        return self.head(self.features(images))

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """[B, 23] sigmoid probabilities (eval mode)."""
        was_training = self.training
        self.eval()
        try:
            return torch.sigmoid(self(images))
        finally:
            self.train(was_training)

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """The hidden layer of the head [B, hidden] (after its ReLU): the feature space of the demo world's
        Fréchet distances (`fidelity`), as Inception's pool features are FID's."""
        was_training = self.training
        self.eval()
        try:
            if images.shape[-1] != self.size:
                images = F.interpolate(images, size=(self.size, self.size), mode="area")
            return self.head[:3](self.features(images))
        finally:
            self.train(was_training)

    def stage_features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The output of each of the four stages, channels unit-normalised at every position (the
        LPIPS recipe): list of [B, widths[k], size / 2^(k+1), size / 2^(k+1)]. Differentiable."""
        out, x = [], images
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i % 6 == 5:  # the ReLU closing each stage
                out.append(x / (x.norm(dim=1, keepdim=True) + 1e-10))
        return out

    def feature_distance(self, images: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        """LPIPS-style distance [B]: squared difference of `stage_features`, mean over positions, summed
        over stages (unit weights). Differentiable in `images`."""
        return sum(((a - b) ** 2).sum(1).mean((1, 2))
                   for a, b in zip(self.stage_features(images), self.stage_features(references)))

    def present(self, images: torch.Tensor) -> torch.Tensor:
        """[B, 23] bool: which values each image shows (decoded as in the module docstring)."""
        return decode(self.probabilities(images))


def decode(probabilities: torch.Tensor) -> torch.Tensor:
    """Probabilities [B, 23] → presence [B, 23] bool (exclusive groups by argmax, no makeup derived)."""
    present = probabilities > 0.5
    for group in _GROUPS:
        part = probabilities[:, group]
        present[:, group] = F.one_hot(part.argmax(1), len(group)).bool()
    present[:, NO_MAKEUP] = ~(present[:, HEAVY_MAKEUP] | present[:, LIPSTICK])
    return present


def present_values(present: torch.Tensor) -> list[tuple[str, ...]]:
    """Presence [B, 23] → the values of each image, canonical order."""
    return [tuple(v for v, p in zip(VALUES, row.tolist()) if p) for row in present]


def train_judge(run_dir: Path, steps: int = 1500, batch: int = 64, lr: float = 2e-3, seed: int = 1,
                show_progress: bool = True) -> AttributeJudge:
    """Train the judge on fresh renders each step (a quarter with in-between looks, soft targets)."""
    judge = AttributeJudge()
    opt = torch.optim.AdamW(judge.parameters(), lr=lr, weight_decay=1e-4)
    sched_steps = steps

    def step_fn(step: int, gen: torch.Generator) -> dict[str, float]:
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / 100) * 0.5 * (1 + torch.cos(torch.tensor(step / sched_steps * torch.pi)).item())
        data = sample_batch(batch, gen, soft_fraction=0.25)
        logits = judge(degrade(data.images, gen))
        loss = F.binary_cross_entropy_with_logits(logits, data.looks)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"bce": float(loss.detach())}

    heldout = heldout_batch(256)

    def on_log(step: int) -> dict[str, float]:
        acc = (decode(judge.probabilities(heldout.images)) == (heldout.looks > 0.5)).float().mean()
        return {"heldout_acc": float(acc)}

    train_loop("judge", run_dir, {"judge": judge}, {"opt": opt}, steps, step_fn, seed,
               log_every=50, on_log=on_log, show_progress=show_progress)
    return judge.eval()


@torch.no_grad()
def judge_accuracy(judge: AttributeJudge, n: int = 2000, offset: int = 1, batch: int = 250) -> dict[str, float]:
    """Per-value accuracy on `n` held-out binary renders (a set training never saw): {value: accuracy}."""
    hits = torch.zeros(len(VALUES))
    for start in range(0, n, batch):
        data = heldout_batch(min(batch, n - start), offset=offset * 1000 + start)
        hits += (judge.present(data.images) == (data.looks > 0.5)).float().sum(0)
    return {v: float(h) / n for v, h in zip(VALUES, hits)}


@torch.no_grad()
def value_agreement(images_of, judge: AttributeJudge, n: int = 500, batch: int = 100) -> dict[str, float]:
    """How well images made from `n` held-out renders keep the renders' ontology values, as the judge sees
    them. `images_of(RenderBatch) -> [B, 3, 64, 64]` makes the images (an inversion, the generator's picture
    of the known parameters). `same_values`: share of images in which the judge finds exactly the render's
    values (all 23 agree); `value_agreement`: share of (image, value) pairs that agree; `judge_on_renders`:
    `same_values` for the renders themselves (the judge's own ceiling); `recall_by_value`: {value: share of
    the images whose render shows the value in which the judge finds it} (values no render shows are left out).
    """
    same = agree = ceiling = 0.0
    found = torch.zeros(len(VALUES))
    shown = torch.zeros(len(VALUES))
    for start in range(0, n, batch):
        data = heldout_batch(min(batch, n - start), offset=20_000 + start)
        truth = data.looks > 0.5
        seen = judge.present(images_of(data))
        same += float((seen == truth).all(1).sum())
        agree += float((seen == truth).float().mean(1).sum())
        ceiling += float((judge.present(data.images) == truth).all(1).sum())
        found += (seen & truth).sum(0)
        shown += truth.sum(0)
    recall = {v: float(f / s) for v, f, s in zip(VALUES, found, shown) if s > 0}
    return {"same_values": same / n, "value_agreement": agree / n, "judge_on_renders": ceiling / n,
            "recall_by_value": recall}


def save_judge(judge: AttributeJudge, path: Path) -> None:
    """Write `path` (.safetensors) and its architecture `path.with_suffix('.json')`."""
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in judge.state_dict().items()}, str(path))
    path.with_suffix(".json").write_text(json.dumps(judge.config, indent=2) + "\n")


def load_judge(path: Path, device: str | torch.device = "cpu") -> AttributeJudge:
    """The judge saved by `save_judge`, in eval mode with frozen parameters."""
    from safetensors.torch import load_file

    path = Path(path)
    config_path = path.with_suffix(".json")
    if not path.is_file() or not config_path.is_file():
        raise FileNotFoundError(f"attribute judge {path} (and its config {config_path}) not found; "
                                "train it with `i2edit demo-world train judge`")
    judge = AttributeJudge(**json.loads(config_path.read_text()))
    judge.load_state_dict(load_file(str(path)))
    judge.eval().requires_grad_(False)
    return judge.to(device)
