"""StyleGAN2 generator: exact g_ema layout, W+ shape checks, stored noise, loading and its errors."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from editing.networks.checkpoints import CheckpointError
from editing.networks.discriminator import Discriminator
from editing.networks.generator import Generator, load_generator
from editing.networks.stylegan_layers import ModulatedConv2d

DATA = Path(__file__).parent / "data" / "editing"
SMALL = dict(size=32, style_dim=32, n_mlp=2, channels={4: 32, 8: 32, 16: 16, 32: 16})


def manifest(name: str) -> dict[str, list[int]]:
    return json.loads((DATA / name).read_text())["keys"]


def shapes(module: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in module.state_dict().items()}


@pytest.fixture()
def small_generator() -> Generator:
    torch.manual_seed(0)
    g = Generator(**SMALL).eval()
    with torch.no_grad():  # a fresh generator has zero noise strength; make the noise matter
        for i in range(g.num_layers):
            conv = g.conv1 if i == 0 else g.convs[i - 1]
            conv.noise.weight.fill_(0.5)
    return g


def test_full_generator_matches_g_ema_key_manifest():
    with torch.device("meta"):
        g = Generator(1024, 512, 8, channel_multiplier=2)
    expected = manifest("g_ema_1024_cm2.json")
    assert len(expected) == 171
    assert shapes(g) == expected
    assert list(g.state_dict()) == list(expected)  # same order as rosinality's state dict
    assert (g.n_latent, g.num_layers) == (18, 17)
    assert round(sum(p.numel() for p in g.parameters()) / 1e6, 2) == 30.37


def test_latent_avg_is_a_buffer_outside_the_state_dict():
    g = Generator(**SMALL)
    assert "latent_avg" not in g.state_dict()
    assert g.latent_avg.shape == (32,)


def test_full_discriminator_has_rosinality_d_layout():
    with torch.device("meta"):
        d = Discriminator(1024, channel_multiplier=2)
    got = shapes(d)
    assert got["convs.0.0.weight"] == [32, 3, 1, 1]
    assert got["convs.0.1.bias"] == [32]
    assert got["convs.1.conv1.0.weight"] == [32, 32, 3, 3]
    assert got["convs.1.conv2.0.kernel"] == [4, 4]
    assert got["convs.1.conv2.1.weight"] == [64, 32, 3, 3]
    assert got["convs.1.skip.1.weight"] == [64, 32, 1, 1]
    assert got["convs.8.conv2.1.weight"] == [512, 512, 3, 3]
    assert got["final_conv.0.weight"] == [512, 513, 3, 3]
    assert got["final_linear.0.weight"] == [512, 8192]
    assert got["final_linear.1.weight"] == [1, 512]
    assert "convs.9.conv1.0.weight" not in got


def test_small_discriminator_scores_a_batch():
    d = Discriminator(32, channels={4: 16, 8: 16, 16: 8, 32: 8})
    assert d(torch.randn(4, 3, 32, 32)).shape == (4, 1)


def test_w_plus_without_batch_dimension_is_rejected(small_generator):
    w = torch.randn(small_generator.n_latent, 32)
    with pytest.raises(ValueError, match=r"\[B, 8, 32\].*unsqueeze\(0\)"):
        small_generator.synthesis(w)
    with pytest.raises(ValueError, match=r"\[B, 8, 32\]"):
        small_generator.synthesis(torch.randn(1, 7, 32))


def test_stored_noise_makes_synthesis_deterministic(small_generator):
    w = torch.randn(2, small_generator.n_latent, 32)
    with torch.no_grad():
        first, second = small_generator.synthesis(w), small_generator.synthesis(w)
        random_noise = small_generator.synthesis(w, randomize_noise=True)
    assert first.shape == (2, 3, 32, 32)
    assert torch.equal(first, second)
    assert not torch.allclose(first, random_noise)


def test_skip_branch_rgbs_per_resolution(small_generator):
    w = torch.randn(1, small_generator.n_latent, 32)
    with torch.no_grad():
        image, rgbs = small_generator.synthesis(w, return_rgbs=True)
    assert [r.shape[-1] for r in rgbs] == [4, 8, 16, 32]
    assert torch.equal(rgbs[-1], image)


def test_max_resolution_stops_early_at_that_skip_rgb(small_generator):
    w = torch.randn(2, small_generator.n_latent, 32)
    with torch.no_grad():
        _, rgbs = small_generator.synthesis(w, return_rgbs=True)
        assert torch.equal(small_generator.synthesis(w, max_resolution=16), rgbs[2])
        low, low_rgbs = small_generator.synthesis(w, max_resolution=8, return_rgbs=True)
    assert [r.shape[-1] for r in low_rgbs] == [4, 8] and torch.equal(low, rgbs[1])
    for bad in (12, 64, 2):
        with pytest.raises(ValueError, match="max_resolution"):
            small_generator.synthesis(w, max_resolution=bad)


def test_batched_synthesis_equals_per_sample(small_generator):
    w = torch.randn(3, small_generator.n_latent, 32)
    with torch.no_grad():
        batched = small_generator.synthesis(w)
        single = torch.cat([small_generator.synthesis(w[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batched, single, rtol=1e-4, atol=1e-5)


def test_rosinality_forward_agrees_with_synthesis(small_generator):
    g = small_generator
    z = torch.randn(2, 32)
    with torch.no_grad():
        w = g.mapping(z)
        image, latent = g([z], return_latents=True, randomize_noise=False)
        assert torch.equal(latent, w.unsqueeze(1).repeat(1, g.n_latent, 1))
        torch.testing.assert_close(image, g.synthesis(latent))
        w2 = g.mapping(torch.randn(2, 32))
        _, mixed = g([w, w2], input_is_latent=True, inject_index=3, return_latents=True, randomize_noise=False)
        assert torch.equal(mixed[:, :3], w.unsqueeze(1).expand(2, 3, 32))
        assert torch.equal(mixed[:, 3:], w2.unsqueeze(1).expand(2, g.n_latent - 3, 32))
        g.latent_avg.copy_(w[0])
        _, truncated = g([w2], input_is_latent=True, truncation=0.5, return_latents=True)
        torch.testing.assert_close(truncated[:, 0], w[0] + 0.5 * (w2 - w[0]))
    with pytest.raises(TypeError, match="list of tensors"):
        g(torch.randn(1, g.n_latent, 32), input_is_latent=True)


def test_modulated_conv_matches_a_per_sample_convolution():
    torch.manual_seed(1)
    conv = ModulatedConv2d(6, 5, 3, style_dim=8)
    x, w = torch.randn(2, 6, 7, 7), torch.randn(2, 8)
    with torch.no_grad():
        out = conv(x, w)
        for b in range(2):
            s = conv.modulation(w[b : b + 1])[0]  # [in]
            weight = conv.weight[0] * conv.scale * s.view(1, 6, 1, 1)
            weight = weight / torch.sqrt(weight.pow(2).sum([1, 2, 3], keepdim=True) + 1e-8)
            torch.testing.assert_close(out[b : b + 1], F.conv2d(x[b : b + 1], weight, padding=1))


def test_upsampling_modulated_conv_doubles_resolution_and_batches_consistently():
    torch.manual_seed(2)
    conv = ModulatedConv2d(4, 3, 3, style_dim=8, upsample=True)
    x, w = torch.randn(2, 4, 5, 5), torch.randn(2, 8)
    with torch.no_grad():
        out = conv(x, w)
        assert out.shape == (2, 3, 10, 10)
        torch.testing.assert_close(out[1:], conv(x[1:], w[1:]))


def save_generator(g: Generator, path: Path, **extra) -> None:
    torch.save({"g_ema": g.state_dict(), "latent_avg": g.mean_latent(64)[0], **extra}, path)


def test_load_generator_round_trip(small_generator, tmp_path):
    path = tmp_path / "g.pt"
    save_generator(small_generator, path)
    loaded = load_generator(path)
    assert not loaded.training
    assert not any(p.requires_grad for p in loaded.parameters())
    assert (loaded.size, loaded.style_dim, loaded.n_latent, loaded.channels) == (32, 32, 8, SMALL["channels"])
    torch.testing.assert_close(loaded.latent_avg, torch.load(path)["latent_avg"])
    for key, value in small_generator.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    w = torch.randn(1, 8, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.synthesis(w), small_generator.synthesis(w))


def test_missing_kernel_buffers_are_regenerated(small_generator, tmp_path):
    state = {k: v for k, v in small_generator.state_dict().items() if not k.endswith("kernel")}
    assert len(state) < len(small_generator.state_dict())
    path = tmp_path / "no_kernels.pt"
    torch.save({"g_ema": state, "latent_avg": torch.zeros(32)}, path)
    loaded = load_generator(path)
    w = torch.randn(1, 8, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.synthesis(w), small_generator.synthesis(w))


def test_missing_latent_avg_is_estimated_with_a_log_line(small_generator, tmp_path, caplog):
    path = tmp_path / "no_avg.pt"
    torch.save({"g_ema": small_generator.state_dict()}, path)
    with caplog.at_level(logging.INFO, logger="editing.networks.generator"):
        loaded = load_generator(path)
    assert "no latent_avg" in caplog.text
    assert loaded.latent_avg.abs().sum() > 0


def test_missing_file_error_names_the_file(tmp_path):
    path = tmp_path / "absent.pt"
    with pytest.raises(FileNotFoundError, match=str(path)):
        load_generator(path)


def test_corrupt_file_error_names_the_file(small_generator, tmp_path):
    good = tmp_path / "good.pt"
    save_generator(small_generator, good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=str(truncated)):
        load_generator(truncated)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match=str(garbage)):
        load_generator(garbage)


def test_wrong_contents_are_reported(small_generator, tmp_path):
    other = tmp_path / "other.pt"
    torch.save({"model": {}}, other)
    with pytest.raises(CheckpointError, match=r"no 'g_ema' entry.*model"):
        load_generator(other)
    state = small_generator.state_dict()
    state["style.1.weight"] = torch.zeros(32, 16)
    bad = tmp_path / "bad_shape.pt"
    torch.save({"g_ema": state}, bad)
    with pytest.raises(CheckpointError, match=r"bad_shape.pt.*style.1.weight"):
        load_generator(bad)
