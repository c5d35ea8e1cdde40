"""What the demo world keeps beside its weight set: the judge and the sample faces, shipped as
`editing/demo_set/demo_world.json`. How to edit with the set (the optimiser settings `DEMO_OPTIMIZER`, no face
alignment: demo faces are rendered aligned; sample faces only) is in its manifest's `editor` entry, which
`ship` writes; `demo_editor_settings()` reads it.
"""
from __future__ import annotations

import json
from pathlib import Path

from editing.weights.weight_set import DEMO_SET_DIR, MANIFEST_NAME, read_manifest

SETTINGS_FILE = "demo_world.json"
# The value of the settings' "latent" entry for a generator trained on the world's own latent space
# (`generator_train`: G(z) = render(params(z))); sets without it have a GLO-style generator whose z means nothing.
WORLD_LATENT = "world"
# StyleCLIP's optimiser, rescaled to the demo world. Its W codes vary about 0.25 per dimension across faces
# (FFHQ's about 1) and its CLIP's cosines move little, so a strong L2 term holds the code at the start (with
# lr 0.03 and l2_lambda 0.03 the judge saw 0 of 10 requested gray-hair edits on 16 test dialogues) and no L2
# term loses the identity. Multi-turn judge success / identity on the first 8 test dialogues (id_lambda
# 0.005 unless said): lr 0.1, l2 0: 0.19 / 0.23; lr 0.1, l2 0.002: 0.26 / 0.68; lr 0.05, l2 0.002: 0.30 / 0.80;
# the same with id_lambda 0.05: 0.26 / 0.92 (kept: one edit fewer succeeds, the face stays itself). Fewer steps
# than the paper's 300, so that a chat turn stays short on a CPU. The demo CLIP reads one text per value far
# better than a long description of the whole state, so the CLIP term is the mean over the requested values'
# texts ("per_attribute"): on the first 16 test dialogues (multi-turn, 60 turns) judge success went from 0.27
# to 0.38 and the share of requested values the judge sees from 0.55 to 0.69 (softmax-weighting the worst
# value, 100 steps or lr 0.1 did not do better on that share).
DEMO_OPTIMIZER = {"steps": 60, "lr": 0.05, "l2_lambda": 0.002, "id_lambda": 0.05, "text_objective": "per_attribute"}
# Sample faces for the chat server: name -> profile (every slot filled, like the simulator's profiles).
SAMPLE_FACES: dict[str, tuple[str, ...]] = {
    "alex": ("no smiling", "brown hair", "straight hair", "no makeup"),
    "blair": ("smiling", "blond hair", "wavy hair", "lipstick", "earrings"),
    "casey": ("no smiling", "black hair", "straight hair", "mustache", "bushy eyebrows", "no makeup"),
    "drew": ("sad", "gray hair", "wavy hair", "receding hairline", "goatee", "no makeup"),
    "emery": ("smiling", "black hair", "wavy hair", "bangs", "heavy makeup", "rosy cheeks"),
    "frankie": ("angry", "brown hair", "straight hair", "sideburns", "big lips", "pale skin", "no makeup"),
}


def read_settings(directory: Path = DEMO_SET_DIR) -> dict:
    path = Path(directory) / SETTINGS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the demo set is not shipped in this checkout "
                                "(train it with `i2edit demo-world train ...` and `i2edit demo-world ship`)")
    return json.loads(path.read_text())


def demo_editor_settings(directory: Path = DEMO_SET_DIR, preview_every: int = 0):
    """The `OptimizerSettings` to edit with the demo set (its manifest's `editor` entry)."""
    return read_manifest(Path(directory) / MANIFEST_NAME).optimizer_settings(preview_every=preview_every)


def sample_faces(directory: Path = DEMO_SET_DIR) -> list[Path]:
    """Paths of the shipped sample face images."""
    return [Path(directory) / name for name in read_settings(directory)["samples"]]
