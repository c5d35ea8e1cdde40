"""Identity parameters of a demo-world face: everything about a face that the ontology does not name.

An identity is a vector of `N_IDENTITY` numbers in [0, 1] (`[B, N_IDENTITY]` for a batch), one per name in
`IDENTITY_PARAMS`. The last two (`natural_hair_color`, `natural_wavy`) are not drawn directly: they pick the hair
colour and texture a face has when its profile leaves those slots open (see `look.look_from_values`).
"""
from __future__ import annotations

import torch

IDENTITY_PARAMS: tuple[str, ...] = (
    "face_width", "face_length", "jaw", "skin_tone", "eye_size", "eye_spacing", "eye_height", "iris_hue",
    "nose_length", "nose_width", "mouth_width", "lip_thickness", "hair_length", "hair_volume", "hair_shade",
    "brow_height", "background_hue", "background_lightness", "shirt_hue", "natural_hair_color", "natural_wavy",
)
N_IDENTITY = len(IDENTITY_PARAMS)
PARAM_INDEX: dict[str, int] = {name: i for i, name in enumerate(IDENTITY_PARAMS)}


def sample_identities(n: int, seed: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """`n` random identities, `[n, N_IDENTITY]` float32 uniform in [0, 1].

    The same `seed` gives the same identities on every machine (CPU generator). Pass either `seed` or an
    already seeded `generator` (to draw several batches from one stream).
    """
    if generator is None:
        generator = torch.Generator().manual_seed(0 if seed is None else int(seed))
    return torch.rand(n, N_IDENTITY, generator=generator)
