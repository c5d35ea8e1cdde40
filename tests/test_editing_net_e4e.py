"""e4e encoder: exact e4e_ffhq_encode.pt layout, strict loading of fixture checkpoints, encoding."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from editing.networks.checkpoints import CheckpointError
from editing.networks.e4e import E4E, Encoder4Editing, load_e4e
from editing.networks.generator import Generator, load_generator
from editing.weights.fixtures import make_fixtures

DATA = Path(__file__).parent / "data" / "editing"


def manifest(name: str) -> dict[str, list[int]]:
    return json.loads((DATA / name).read_text())["keys"]


@pytest.fixture(scope="module")
def fixture_set(tmp_path_factory):
    return make_fixtures(tmp_path_factory.mktemp("e4e_fixtures"), size=64)


def test_full_e4e_matches_the_checkpoint_key_manifest():
    with torch.device("meta"):
        e4e = E4E(Encoder4Editing(), Generator(), torch.zeros(18, 512), {})
    expected = manifest("e4e_ffhq_encode_encoder.json")
    expected.update({f"decoder.{k}": v for k, v in manifest("g_ema_1024_cm2.json").items()})
    assert {k: list(v.shape) for k, v in e4e.state_dict().items()} == expected
    assert e4e.encoder.taps == [6, 20, 23]
    assert [len(s.convs) // 2 for s in e4e.encoder.styles] == [4] * 3 + [5] * 4 + [6] * 11


def test_fixture_checkpoint_loads_strictly_and_round_trips(fixture_set):
    path = fixture_set.path("e4e")
    ckpt = torch.load(path, weights_only=False)
    e4e = load_e4e(path)
    assert not e4e.training and not any(p.requires_grad for p in e4e.parameters())
    state = e4e.state_dict()
    assert set(state) == set(ckpt["state_dict"])
    assert all(torch.equal(state[k], v) for k, v in ckpt["state_dict"].items())
    assert e4e.encoder.config == {"n_styles": 10, "input_size": 64, "blocks": [1, 1, 1, 1],
                                  "widths": [16, 32, 48, 64], "style_dim": 64, "coarse_index": 3, "middle_index": 7}
    assert torch.equal(e4e.latent_avg, ckpt["latent_avg"])
    assert e4e.opts["stylegan_size"] == 64


def test_encode_adds_latent_avg_and_decodes(fixture_set):
    e4e = load_e4e(fixture_set.path("e4e"))
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        w_plus = e4e.encode(x)
        assert w_plus.shape == (2, 10, 64)
        torch.testing.assert_close(w_plus, e4e.encoder(x) + e4e.latent_avg)
        image, w2 = e4e(x)
    assert image.shape == (2, 3, 64, 64)
    torch.testing.assert_close(w2, w_plus)
    torch.testing.assert_close(image, e4e.decoder.synthesis(w_plus))


def test_encode_resizes_other_sizes_to_the_encoder_input(fixture_set):
    e4e = load_e4e(fixture_set.path("e4e"))
    big = torch.rand(1, 3, 128, 128) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(e4e.encode(big), e4e.encode(F.avg_pool2d(big, 2)))
        assert e4e.encode(torch.rand(1, 3, 48, 48)).shape == (1, 10, 64)
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        e4e.encode(torch.rand(3, 64, 64))


def test_load_generator_uses_the_e4e_decoder(fixture_set):
    generator = load_generator(fixture_set.path("e4e"))
    reference = load_generator(fixture_set.path("generator"))
    torch.testing.assert_close(generator.latent_avg, reference.latent_avg)
    w = torch.randn(1, 10, 64)
    with torch.no_grad():
        torch.testing.assert_close(generator.synthesis(w), reference.synthesis(w))


def test_equal_width_stages_need_the_layout_in_opts(tmp_path):
    encoder = Encoder4Editing(n_styles=8, input_size=32, blocks=(1, 2, 1, 1), widths=(16, 16, 32, 32), style_dim=16)
    decoder = Generator(32, 16, 1, channels={4: 16, 8: 16, 16: 16, 32: 16})
    state = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    state.update({f"decoder.{k}": v for k, v in decoder.state_dict().items()})
    path = tmp_path / "e4e_equal_widths.pt"
    torch.save({"state_dict": state, "latent_avg": torch.zeros(8, 16), "opts": {}}, path)
    with pytest.raises(CheckpointError, match="e4e_equal_widths.pt.*stages"):
        load_e4e(path)
    torch.save({"state_dict": state, "latent_avg": torch.zeros(8, 16),
                "opts": {"encoder_blocks": [1, 2, 1, 1], "encoder_widths": [16, 16, 32, 32]}}, path)
    assert load_e4e(path).encoder.config == encoder.config


def test_bad_e4e_files_are_reported(fixture_set, tmp_path):
    with pytest.raises(FileNotFoundError, match="absent_e4e.pt"):
        load_e4e(tmp_path / "absent_e4e.pt")
    generator_only = fixture_set.path("generator")
    with pytest.raises(CheckpointError, match=r"generator.pt has no 'state_dict' entry.*g_ema"):
        load_e4e(generator_only)
    ckpt = torch.load(fixture_set.path("e4e"), weights_only=False)
    ckpt["latent_avg"] = torch.zeros(3, 64)
    wrong_avg = tmp_path / "wrong_avg.pt"
    torch.save(ckpt, wrong_avg)
    with pytest.raises(CheckpointError, match=r"wrong_avg.pt: latent_avg has shape \[3, 64\]"):
        load_e4e(wrong_avg)


def test_options_pickled_as_a_namespace_load_with_the_safe_loader(fixture_set, tmp_path):
    import argparse

    ckpt = torch.load(fixture_set.path("e4e"), weights_only=False)
    ckpt["opts"] = argparse.Namespace(**ckpt["opts"])  # some forks save the options object itself
    path = tmp_path / "namespace_opts.pt"
    torch.save(ckpt, path)
    e4e = load_e4e(path)
    assert e4e.opts["stylegan_size"] == 64
