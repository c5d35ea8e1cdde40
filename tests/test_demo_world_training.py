"""Demo world 2's training runs end to end on a few steps: the generator (warm-started from the shipped set)
resumes where it stopped, e4e follows it, and `ship --base` writes a weight set that the public loaders read,
with the networks that have no run kept from the base set."""
from __future__ import annotations

import json

import torch

from editing.weights.weight_set import DEMO_SET_DIR


def test_generator_and_e4e_runs_resume_and_ship(tmp_path, monkeypatch):
    from editing.demo_world import generator_train
    from editing.demo_world.encoder_train import train_encoder
    from editing.demo_world.generator_train import train_generator
    from editing.demo_world.ship import ship_demo_set
    from editing.networks.e4e import load_e4e
    from editing.networks.generator import load_generator

    monkeypatch.setattr(generator_train, "MAPPING_FIT_STEPS", 2)
    runs = tmp_path / "runs"
    train_generator(runs / "generator", steps=3, batch=2, init=DEMO_SET_DIR, show_progress=False)
    assert (runs / "generator" / "init" / "e4e.pt").is_file()  # a resumed run needs nothing outside its folder
    assert torch.load(runs / "generator" / "state.pt", weights_only=False)["step"] == 3
    generator = train_generator(runs / "generator", steps=4, batch=2, show_progress=False)  # no --init: resumes warm
    log = (runs / "generator" / "train.log").read_text().splitlines()
    last = next(line for line in log if "step 4/4" in line)
    assert " clip " in last and not any("step 1/4" in line for line in log)  # the warm run's CLIP term goes on
    assert generator.latent_avg.abs().sum() > 0

    train_encoder(runs / "e4e", runs / "generator", steps=2, batch=2, init=DEMO_SET_DIR, show_progress=False)
    out = tmp_path / "set"
    manifest = ship_demo_set(runs, out, base=DEMO_SET_DIR)
    assert json.loads((out / "demo_world.json").read_text())["latent"] == "world"
    assert (out / "clip.safetensors").read_bytes() == (DEMO_SET_DIR / "clip.safetensors").read_bytes()
    assert (out / "identity.pth").read_bytes() == (DEMO_SET_DIR / "identity.pth").read_bytes()
    assert json.loads(manifest.read_text())["name"] == "demo"
    shipped = load_generator(out / "generator.pt")
    e4e = load_e4e(out / "e4e.pt")
    z = torch.randn(2, shipped.style_dim)
    assert torch.allclose(shipped([z], randomize_noise=False)[0], generator([z], randomize_noise=False)[0], atol=1e-5)
    assert e4e.encode(torch.zeros(1, 3, 64, 64)).shape == (1, shipped.n_latent, shipped.style_dim)
