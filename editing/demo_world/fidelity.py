"""How close the demo generator's pictures are to the world: Fréchet distances in the judge's feature space,
and the sheet of random samples.

The world's faces are render(params(z)) for z ~ N(0, I) (`data_tools.faces.latent`), so the reference set is
`n` such renders; against it are compared
- `random`: G(z') for `n` other random z' (are random samples faces of the world?);
- `own_codes`: G(z) for the reference faces' own z (the generator's reconstructions of the renders; only for a
  generator trained on the world's latent space, see `generator_train`);
- `e4e`: the e4e inversions of the reference renders (what editing starts from).
Features: the judge's hidden layer (`AttributeJudge.embed`, 192 numbers), as FID uses Inception's pool layer;
the Inception network cannot be downloaded here.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from data_tools.faces import render_faces
from data_tools.faces.latent import params_from_latent

log = logging.getLogger(__name__)

REFERENCE_SEED, RANDOM_SEED, SHEET_SEED = 9_300_001, 9_300_002, 9_300_003


def judge_features(judge, images: torch.Tensor, batch: int = 250) -> np.ndarray:
    """Judge embeddings [N, hidden] of images [N, 3, H, W] in [-1, 1]."""
    return torch.cat([judge.embed(images[i:i + batch]) for i in range(0, len(images), batch)]).double().numpy()


def world_codes(n: int, seed: int, dim: int) -> torch.Tensor:
    """`n` seeded Gaussian codes [n, dim]."""
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def generate(generator, z: torch.Tensor, batch: int = 100) -> torch.Tensor:
    """G(z) [N, 3, size, size] through the generator's own mapping network (no truncation, stored noise)."""
    return torch.cat([generator([z[i:i + batch]], randomize_noise=False)[0] for i in range(0, len(z), batch)]).clamp(-1, 1)


@torch.no_grad()
def generator_fidelity(generator, judge, e4e=None, n: int = 2000, own_codes: bool = True) -> dict[str, float | int | None]:
    """Fréchet distances (judge features) of `n` random G(z), of G at the renders' own codes (when `own_codes`)
    and of `e4e`'s inversions (when given) against `n` renders of random z; also `renders_split`: the
    distance between two halves of the renders (the floor that `n` samples allow)."""
    from editing.pipeline.metrics import frechet_distance

    z = world_codes(n, REFERENCE_SEED, generator.style_dim)
    renders = render_faces(*params_from_latent(z), generator.size)
    reference = judge_features(judge, renders)
    half = n // 2
    result: dict[str, float | int | None] = {
        "n": n,
        "renders_split": frechet_distance(reference[:half], reference[half:]),
        "random": frechet_distance(judge_features(judge, generate(generator, world_codes(n, RANDOM_SEED, generator.style_dim))),
                                   reference),
        "own_codes": None,
        "e4e": None,
    }
    if own_codes:
        result["own_codes"] = frechet_distance(judge_features(judge, generate(generator, z)), reference)
    if e4e is not None:
        inversions = torch.cat([e4e(renders[i:i + 100])[0] for i in range(0, n, 100)]).clamp(-1, 1)
        result["e4e"] = frechet_distance(judge_features(judge, inversions), reference)
    return result


@torch.no_grad()
def random_sheet(generator, path: Path, n: int = 64, columns: int = 8, scale: int = 2) -> Path:
    """Write a PNG of `n` random G(z) (seeded, no truncation), `columns` a row, each enlarged `scale`×."""
    from editing.demo_world.sheets import grid_image

    images = generate(generator, world_codes(n, SHEET_SEED, generator.style_dim))
    path.parent.mkdir(parents=True, exist_ok=True)
    grid_image(images, columns, scale).save(path)
    return path
