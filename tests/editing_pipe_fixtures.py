"""Shared, process-wide fixtures for the editing pipeline tests: one fixture weight set (random networks
in the public formats, `editing.weights.fixtures.make_fixtures`), one Editor on it, and real photos from
scikit-image. Built lazily, once per test process."""
from __future__ import annotations

import functools
import tempfile

import numpy as np
from PIL import Image

FIXTURE_SIZE = 32
_TEMP = tempfile.TemporaryDirectory(prefix="i2edit-pipe-")


@functools.lru_cache(maxsize=None)
def weight_set():
    from editing.weights.fixtures import make_fixtures

    return make_fixtures(f"{_TEMP.name}/weights", size=FIXTURE_SIZE, seed=0)


@functools.lru_cache(maxsize=None)
def editor():
    from editing.pipeline.editor import Editor

    return Editor.from_weights(weight_set(), device="cpu")


def astronaut() -> Image.Image:
    """Eileen Collins' NASA portrait (scikit-image `data.astronaut`, 512x512): one clear face."""
    from skimage import data

    return Image.fromarray(data.astronaut())


def coffee() -> Image.Image:
    """A cup of coffee (scikit-image `data.coffee`): MTCNN finds no face in it."""
    from skimage import data

    return Image.fromarray(data.coffee())


def flat(color=(128, 128, 128), size=(200, 160)) -> Image.Image:
    return Image.fromarray(np.full((size[1], size[0], 3), color, dtype=np.uint8))


def record_optimiser_texts(monkeypatch) -> list:
    """Let `Editor.edit` run the real optimiser, recording the CLIP texts of each call (one tuple per call)."""
    import editing.pipeline.editor as editor_module

    calls = []
    real = editor_module.optimize_latent

    def spy(generator, clip, texts, *rest):
        calls.append(texts)
        return real(generator, clip, texts, *rest)

    monkeypatch.setattr(editor_module, "optimize_latent", spy)
    return calls
