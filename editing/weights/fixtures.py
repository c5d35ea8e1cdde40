"""Random-initialised checkpoints in exactly the public file formats, for tests, CI and offline trials.

`make_fixtures(out_dir, size=64)` writes, in a few seconds:
- `generator.pt`: {"g_ema": state dict, "latent_avg": [style_dim]} (rosinality / stylegan2-ffhq-config-f.pt);
- `e4e.pt`: {"state_dict": encoder.* + decoder.*, "latent_avg": [n_latent, style_dim], "opts": dict}
  (e4e_ffhq_encode.pt; its decoder is the same generator);
- `identity.pth`: a plain IR-SE state dict (model_ir_se50.pth);
- `clip.safetensors` + `clip.json`: a tiny open_clip CLIP and its model config;
- `manifest.json`: the weight set (roles, sha256, sizes), so `resolve_set(out_dir)` finds them.
The networks are small (narrow channels, one unit per IR-SE stage) but use the real code paths.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from editing.weights.weight_set import WeightSet, read_manifest, write_manifest

FIXTURE_STYLE_DIM = 64
FIXTURE_N_MLP = 2
FIXTURE_TRUNK = {"blocks": (1, 1, 1, 1), "widths": (16, 32, 48, 64)}
# A tiny open_clip config: same tokenizer and vocabulary as ViT-B/32, 32 px input.
FIXTURE_CLIP_CONFIG = {
    "embed_dim": 32,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "head_width": 32, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def small_channels(size: int) -> dict[int, int]:
    """Channels per resolution of the fixture generator: 64 up to 8 px, 32 up to 32 px, then 16."""
    return {2**i: 64 if 2**i <= 8 else 32 if 2**i <= 32 else 16 for i in range(2, size.bit_length())}


def make_fixtures(out_dir: str | Path, size: int = 64, seed: int = 0) -> WeightSet:
    """Write the fixture checkpoints for a `size` px generator into `out_dir`; returns their weight set."""
    from open_clip.model import CLIP
    from safetensors.torch import save_file

    from editing.networks.e4e import Encoder4Editing
    from editing.networks.generator import Generator
    from editing.networks.identity import Backbone

    if size < 32 or size > 1024 or size & (size - 1):
        raise ValueError(f"fixture size must be a power of two from 32 to 1024, not {size}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)

    generator = Generator(size, FIXTURE_STYLE_DIM, FIXTURE_N_MLP, channels=small_channels(size))
    latent_avg = generator.mean_latent(4096)[0]
    torch.save({"g_ema": generator.state_dict(), "latent_avg": latent_avg}, out / "generator.pt")

    encoder = Encoder4Editing(n_styles=generator.n_latent, input_size=min(size, 256),
                              style_dim=FIXTURE_STYLE_DIM, **FIXTURE_TRUNK)
    state = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    state.update({f"decoder.{k}": v for k, v in generator.state_dict().items()})
    opts = {"encoder_type": "Encoder4Editing", "stylegan_size": size, "start_from_latent_avg": True,
            "dataset_type": "ffhq_encode", "checkpoint_path": str(out / "e4e.pt")}
    torch.save({"state_dict": state, "latent_avg": latent_avg.repeat(generator.n_latent, 1), "opts": opts},
               out / "e4e.pt")

    torch.save(Backbone(112, embedding_dim=512, **FIXTURE_TRUNK).state_dict(), out / "identity.pth")

    clip = CLIP(**FIXTURE_CLIP_CONFIG)
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, str(out / "clip.safetensors"))
    (out / "clip.json").write_text(json.dumps(FIXTURE_CLIP_CONFIG, indent=2) + "\n")

    manifest = write_manifest(
        out, "fixtures",
        {"generator": {"file": "generator.pt"}, "e4e": {"file": "e4e.pt"}, "identity": {"file": "identity.pth"},
         "clip": {"file": "clip.safetensors", "model_config": FIXTURE_CLIP_CONFIG}},
        description=f"random-initialised test networks ({size} px generator), made by i2edit weights make-fixtures",
    )
    return read_manifest(manifest)
