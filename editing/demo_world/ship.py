"""Export the trained demo-world networks into `editing/demo_set/` in the public checkpoint formats, with the
weight-set manifest (`editing.weights.weight_set`), the judge, sample faces for the chat server and the demo settings.

Files written (all loadable by the same loaders as the public checkpoints):
- `generator.pt`: {"g_ema", "latent_avg"} like `stylegan2-ffhq-config-f.pt`;
- `e4e.pt`: {"state_dict" (encoder.* + decoder.*), "latent_avg" [n_latent, style_dim], "opts"} like
  `e4e_ffhq_encode.pt`;
- `identity.pth`: an IR-SE state dict like `model_ir_se50.pth`;
- `clip.safetensors` (float16) + `clip.json`: an open_clip state dict and its custom config;
- `judge.safetensors` + `judge.json`: the attribute judge (demo world only);
- `samples/*.png`: faces to start a chat from; `demo_world.json`: the judge and the samples;
- `manifest.json`: the `demo` weight set (roles, sha256, sizes) and how to edit with it (`editor`: the
  optimiser settings `DEMO_OPTIMIZER`, no face alignment, sample faces only).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from editing.demo_world.settings import DEMO_OPTIMIZER, SAMPLE_FACES, SETTINGS_FILE, WORLD_LATENT
from editing.weights.weight_set import DEMO_SET_DIR, EditorDefaults, write_manifest

log = logging.getLogger(__name__)


def _kept(base: Path, out: Path, *names: str) -> None:
    """Copy `names` from the weight set `base` into `out` (nothing to do when they are the same folder)."""
    import shutil

    for name in names:
        if (base / name).resolve() != (out / name).resolve():
            shutil.copy2(base / name, out / name)
        log.info("%s: no training run, kept from %s", name, base)


def ship_demo_set(runs_root: Path, out: Path | None = None, base: Path = DEMO_SET_DIR) -> Path:
    """Write the demo set from the training runs under `runs_root`; returns the manifest path. The generator
    and e4e runs must exist; the identity net, CLIP and the judge come from their runs when there are any, else
    from the weight set `base` unchanged (they read renders, which a new generator does not change)."""
    from safetensors.torch import save_file

    from editing.demo_world.clip_net import CLIP_CONFIG
    from editing.demo_world.clip_train import load_trained_clip
    from editing.demo_world.encoder_train import load_trained_encoder
    from editing.demo_world.generator_train import load_trained_generator
    from editing.demo_world.identity_train import load_trained_identity
    from editing.demo_world.judge import load_judge, save_judge
    from editing.demo_world.world import render_profile
    from editing.pipeline.image_tensors import tensor_to_pil

    out = Path(out or DEMO_SET_DIR)
    out.mkdir(parents=True, exist_ok=True)
    generator = load_trained_generator(runs_root / "generator")
    torch.save({"g_ema": generator.state_dict(), "latent_avg": generator.latent_avg.clone()}, out / "generator.pt")

    e4e = load_trained_encoder(runs_root / "e4e", runs_root / "generator")
    state = {f"encoder.{k}": v for k, v in e4e.encoder.state_dict().items()}
    state.update({f"decoder.{k}": v for k, v in e4e.decoder.state_dict().items()})
    torch.save({"state_dict": state, "latent_avg": e4e.latent_avg.clone(), "opts": e4e.opts}, out / "e4e.pt")

    if (runs_root / "identity" / "state.pt").is_file():
        torch.save(load_trained_identity(runs_root / "identity").net.state_dict(), out / "identity.pth")
    else:
        _kept(base, out, "identity.pth")
    if (runs_root / "clip" / "state.pt").is_file():
        clip = load_trained_clip(runs_root / "clip")
        save_file({k: v.detach().half().contiguous() for k, v in clip.model.state_dict().items()},
                  str(out / "clip.safetensors"))
        (out / "clip.json").write_text(json.dumps(CLIP_CONFIG, indent=2) + "\n")
    else:
        _kept(base, out, "clip.safetensors", "clip.json")
    if (runs_root / "judge" / "judge.safetensors").is_file():
        save_judge(load_judge(runs_root / "judge" / "judge.safetensors"), out / "judge.safetensors")
    else:
        _kept(base, out, "judge.safetensors", "judge.json")

    samples = out / "samples"
    samples.mkdir(exist_ok=True)
    names = []
    for name, values in SAMPLE_FACES.items():
        _, _, image = render_profile(name, values)
        tensor_to_pil(image.unsqueeze(0)).save(samples / f"{name}.png")
        names.append(f"samples/{name}.png")
    settings = {"judge": "judge.safetensors", "samples": names, "latent": WORLD_LATENT}
    (out / SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n")

    manifest = write_manifest(
        out, "demo",
        {"generator": {"file": "generator.pt"}, "e4e": {"file": "e4e.pt"}, "identity": {"file": "identity.pth"},
         "clip": {"file": "clip.safetensors", "model_config": CLIP_CONFIG}},
        description="demo world: networks trained by i2edit on its procedural faces (i2edit demo-world train); "
                    f"{generator.size} px, aligned faces, no downloads",
        # rendered faces come aligned, and its networks know no real photo
        editor=EditorDefaults(optimizer=DEMO_OPTIMIZER, align_faces=False, real_photos=False),
    )
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    log.info("demo set in %s: %.1f MB", out, total / 1e6)
    return manifest
