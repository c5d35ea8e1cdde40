"""The demo identity network: the project's ArcFace `Backbone` (IR-SE trunk, small), trained so that renders
of one identity embed close together whatever their look, and different identities apart.

Each batch holds `identities_per_batch` identities, each rendered with `looks_per_identity` random looks;
the loss is the supervised contrastive loss (all renders of the same identity are positives) on the
L2-normalised embeddings. Images go through `IdentityNet.preprocess` (the StyleCLIP crop), as at edit time.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from data_tools.faces import render_faces, sample_identities
from data_tools.faces.look import sample_looks
from editing.demo_world.loop import load_run_modules, train_loop
from editing.demo_world.world import SIZE, degrade
from editing.networks.identity import Backbone, IdentityNet

log = logging.getLogger(__name__)

IDENTITY_CONFIG = {"input_size": 48, "blocks": (1, 1, 1, 1), "widths": (16, 32, 48, 64), "embedding_dim": 128}
TEMPERATURE = 0.1


def build_identity() -> IdentityNet:
    return IdentityNet(Backbone(**IDENTITY_CONFIG), IDENTITY_CONFIG["input_size"], "arcface")


def identity_batch(n_ids: int, per_id: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(images [n_ids·per_id, 3, SIZE, SIZE], identity labels [n_ids·per_id])."""
    identities = sample_identities(n_ids, generator=gen).repeat_interleave(per_id, 0)
    looks = sample_looks(n_ids * per_id, gen)
    return render_faces(identities, looks, SIZE), torch.arange(n_ids).repeat_interleave(per_id)


def supcon_loss(embeddings: torch.Tensor, labels: torch.Tensor, temperature: float = TEMPERATURE) -> torch.Tensor:
    """Supervised contrastive loss of L2-normalised embeddings [N, D] with labels [N]."""
    logits = embeddings @ embeddings.T / temperature
    self_mask = torch.eye(len(labels), dtype=torch.bool)
    logits = logits.masked_fill(self_mask, float("-inf"))
    positives = (labels.view(-1, 1) == labels.view(1, -1)) & ~self_mask
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    return -(log_prob.masked_fill(~positives, 0).sum(1) / positives.sum(1)).mean()


def train_identity(run_dir: Path, steps: int = 1500, identities_per_batch: int = 16, looks_per_identity: int = 4,
                   lr: float = 2e-3, seed: int = 4, show_progress: bool = True) -> IdentityNet:
    torch.manual_seed(seed)
    net = build_identity()
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)

    def step_fn(step: int, gen: torch.Generator) -> dict[str, float]:
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / 100) * 0.5 * (1 + torch.cos(torch.tensor(step / steps * torch.pi)).item())
        images, labels = identity_batch(identities_per_batch, looks_per_identity, gen)
        loss = supcon_loss(net(degrade(images, gen)), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"supcon": float(loss.detach())}

    heldout = identity_batch(32, 4, torch.Generator().manual_seed(9_100_000))

    @torch.no_grad()
    def on_log(step: int) -> dict[str, float]:
        net.eval()
        return separation(net, *heldout)

    train_loop("identity", run_dir, {"identity": net}, {"opt": opt}, steps, step_fn, seed, log_every=50,
               on_log=on_log, show_progress=show_progress)
    return net.eval()


@torch.no_grad()
def separation(net: IdentityNet, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Mean cosine between renders of the same identity and of different identities, and the share of
    renders whose nearest other render is the same identity."""
    emb = net(images)
    sims = emb @ emb.T
    eye = torch.eye(len(labels), dtype=torch.bool)
    same = (labels.view(-1, 1) == labels.view(1, -1)) & ~eye
    nearest = sims.masked_fill(eye, -2).argmax(1)
    return {"same_cos": float(sims[same].mean()), "other_cos": float(sims[~same & ~eye].mean()),
            "top1": float((labels[nearest] == labels).float().mean())}


def load_trained_identity(run_dir: Path) -> IdentityNet:
    net = build_identity()
    load_run_modules(run_dir, {"identity": net})
    return net.eval().requires_grad_(False)


def heldout_separation(net: IdentityNet, n_ids: int = 64, per_id: int = 4) -> dict[str, float]:
    """`separation` on renders of identities that training never drew."""
    return separation(net, *identity_batch(n_ids, per_id, torch.Generator().manual_seed(9_200_000)))
