"""The demo world's sampling written as a function of a Gaussian vector: z ~ N(0, I) → (identity, look).

This is what lets a generator learn the world through its own mapping network: every z is a face, so G(z)
for random z is a face of the world by construction (see `editing.demo_world.generator_train`).

z is read after the same PixelNorm the StyleGAN2 mapping network applies first (z scaled to a mean square of
1), so the face depends only on what the mapping network sees. Its first `N_LATENT_USED` components decide
the face, in this order:

- 19 drawn identity parameters: the normal CDF Φ(z) (uniform in [0, 1], like `sample_identities`);
- 4 expression and 4 hair-colour components: softmax(z / `GROUP_TEMPERATURE`): the largest component wins
  (each value with probability 1/4, like `sample_looks`), with in-between looks where two are close;
- wavy hair and the 12 additive values: a threshold (wavy when z > 0, each additive value present when
  z > Φ⁻¹(1 − `P_ADDITIVE`)), softened over a band of width `RAMP` so that the face changes continuously.

The other components of z are ignored. `latent_from_params` is the inverse: the canonical z of a face with
known parameters (binary look values sit at the median of their side of the threshold).
"""
from __future__ import annotations

import torch

from data_tools.faces.identity import IDENTITY_PARAMS, N_IDENTITY, PARAM_INDEX
from data_tools.faces.look import ADDITIVE, EXPRESSIONS, HAIR_COLORS, N_VALUES, WAVY, normalize_look

DRAWN = tuple(i for i, name in enumerate(IDENTITY_PARAMS) if not name.startswith("natural_"))
P_ADDITIVE = 0.4  # as sample_looks
GROUP_TEMPERATURE = 0.1
RAMP = 0.2
N_LATENT_USED = len(DRAWN) + len(EXPRESSIONS) + len(HAIR_COLORS) + 1 + len(ADDITIVE)
_ID, _EXPR, _HAIR = slice(0, len(DRAWN)), slice(len(DRAWN), len(DRAWN) + 4), slice(len(DRAWN) + 4, len(DRAWN) + 8)
_WAVY = len(DRAWN) + 8
_ADD = slice(_WAVY + 1, N_LATENT_USED)
_NORMAL = torch.distributions.Normal(0.0, 1.0)
_ADD_THRESHOLD = float(_NORMAL.icdf(torch.tensor(1 - P_ADDITIVE)))
_ADD_ON, _ADD_OFF = float(_NORMAL.icdf(torch.tensor(1 - P_ADDITIVE / 2))), float(_NORMAL.icdf(torch.tensor((1 - P_ADDITIVE) / 2)))
_WAVY_ON = float(_NORMAL.icdf(torch.tensor(0.75)))
_GROUP_TOP = 1.0  # the canonical code's winning group component
_FLOOR = 1e-3  # smallest group weight the canonical code represents


def pixel_norm(z: torch.Tensor) -> torch.Tensor:
    """z [B, D] scaled to a mean square of 1 per row (StyleGAN2's PixelNorm)."""
    return z * torch.rsqrt(z.pow(2).mean(1, keepdim=True) + 1e-8)


def _ramp(z: torch.Tensor, threshold: float) -> torch.Tensor:
    return (0.5 + (z - threshold) / RAMP).clamp(0, 1)


def params_from_latent(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """z [B, D] (D ≥ `N_LATENT_USED`) → (identities [B, N_IDENTITY] in [0, 1], looks [B, 23]).

    The identities' `natural_*` entries follow the look (hair colour and texture), so that a profile of
    the face that leaves those slots open keeps them."""
    if z.ndim != 2 or z.shape[1] < N_LATENT_USED:
        raise ValueError(f"z must be [B, D] with D >= {N_LATENT_USED}, got {list(z.shape)}")
    u = pixel_norm(z.float())
    identities = torch.zeros(len(u), N_IDENTITY, device=u.device)
    identities[:, list(DRAWN)] = _NORMAL.cdf(u[:, _ID])
    looks = torch.zeros(len(u), N_VALUES, device=u.device)
    looks[:, EXPRESSIONS] = torch.softmax(u[:, _EXPR] / GROUP_TEMPERATURE, dim=1)
    looks[:, HAIR_COLORS] = torch.softmax(u[:, _HAIR] / GROUP_TEMPERATURE, dim=1)
    looks[:, WAVY] = _ramp(u[:, _WAVY], 0.0)
    looks[:, ADDITIVE] = _ramp(u[:, _ADD], _ADD_THRESHOLD)
    identities[:, PARAM_INDEX["natural_hair_color"]] = (u[:, _HAIR].argmax(1).float() + 0.5) / 4
    identities[:, PARAM_INDEX["natural_wavy"]] = (u[:, _WAVY] > 0).float()
    return identities, normalize_look(looks)


def _group_code(weights: torch.Tensor) -> torch.Tensor:
    logits = GROUP_TEMPERATURE * weights.clamp_min(_FLOOR).log()
    return logits - logits.amax(1, keepdim=True) + _GROUP_TOP


def _threshold_code(strength: torch.Tensor, threshold: float, on: float, off: float) -> torch.Tensor:
    inside = threshold + (strength - 0.5) * RAMP
    return torch.where(strength >= 1, torch.full_like(strength, on), torch.where(strength <= 0, torch.full_like(strength, off), inside))


def latent_from_params(identities: torch.Tensor, looks: torch.Tensor, dim: int = 128,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """The canonical z [B, dim] of faces with known `identities` [B, N_IDENTITY] and `looks` [B, 23]:
    `params_from_latent(latent_from_params(i, l))` gives back `i` (drawn parameters, clamped to
    [1e-4, 1 − 1e-4]) and `normalize_look(l)` (group weights below 1e-3 become 1e-3). The ignored
    components are Gaussian (from `generator`, seed 0 by default) scaled so that z has a mean square of 1,
    which PixelNorm then leaves unchanged."""
    if dim < N_LATENT_USED:
        raise ValueError(f"dim must be at least {N_LATENT_USED}, got {dim}")
    looks = normalize_look(looks.float())
    b = len(identities)
    z = torch.zeros(b, dim, device=identities.device)
    z[:, _ID] = _NORMAL.icdf(identities[:, list(DRAWN)].float().clamp(1e-4, 1 - 1e-4))
    z[:, _EXPR] = _group_code(looks[:, EXPRESSIONS])
    z[:, _HAIR] = _group_code(looks[:, HAIR_COLORS])
    z[:, _WAVY] = _threshold_code(looks[:, WAVY], 0.0, _WAVY_ON, -_WAVY_ON)
    z[:, _ADD] = _threshold_code(looks[:, ADDITIVE], _ADD_THRESHOLD, _ADD_ON, _ADD_OFF)
    if dim > N_LATENT_USED:
        generator = generator if generator is not None else torch.Generator().manual_seed(0)
        rest = torch.randn(b, dim - N_LATENT_USED, generator=generator).to(z.device)
        room = (dim - z[:, :N_LATENT_USED].pow(2).sum(1, keepdim=True)).clamp_min(0)
        z[:, N_LATENT_USED:] = rest * (room / rest.pow(2).sum(1, keepdim=True).clamp_min(1e-8)).sqrt()
    return z
