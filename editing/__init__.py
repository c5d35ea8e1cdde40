"""Image half of i2edit: photo -> aligned face -> e4e inversion -> StyleCLIP edit per turn, with its metrics.

Subpackages, each built on the ones listed before it:
- `networks`: StyleGAN2, e4e, the identity network, CLIP, and the checkpoint readers they load with;
- `weights`: the registry of public weights files, weight sets and their manifests, download, test fixtures
  (`WeightSet.optimizer_settings` imports the pipeline's `OptimizerSettings` when called, the one way back);
- `pipeline`: the `Editor` and what it runs: alignment, prompts, losses, optimiser, critic, refine, metrics;
- `evaluation`: Table 4 over dialogues, prompt-file runs, the HTML report with its plots and contact sheets;
- `demo_world`: the offline demo domain, its training, evaluation and shipping (weights in `demo_set/`);
- `cli`: the `i2edit` subcommands of this package.

Names are imported lazily so that `import editing` costs nothing until a model is needed.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "Generator": "editing.networks.generator",
    "load_generator": "editing.networks.generator",
    "load_e4e": "editing.networks.e4e",
    "load_identity": "editing.networks.identity",
    "load_clip": "editing.networks.clip_model",
    "Editor": "editing.pipeline.editor",
    "Inversion": "editing.pipeline.editor",
    "EditResult": "editing.pipeline.editor",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'editing' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
