"""CLIP wrapper: StyleCLIP-equivalent area resize, range mapping, local loading (safetensors, TorchScript), text cache."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from editing.networks import clip_model
from editing.networks.checkpoints import CheckpointError
from editing.networks.clip_model import OPENAI_MEAN, OPENAI_STD, area_resize, load_clip
from editing.weights.fixtures import FIXTURE_CLIP_CONFIG, make_fixtures


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory):
    return make_fixtures(tmp_path_factory.mktemp("clip_fixtures"), size=32).path("clip")


def styleclip_resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """StyleCLIP's CLIP-loss resize: 7x nearest upsampling, then AvgPool2d(size // 32)."""
    return F.avg_pool2d(F.interpolate(x, scale_factor=7, mode="nearest"), size // 32)


def test_area_resize_equals_styleclip_upsample_and_pool_for_1024_px():
    # A 1024 px wide strip: the same 7x nearest + AvgPool2d(32) construction, without the 7168 px square.
    x = torch.rand(1, 3, 32, 1024, dtype=torch.float64)
    torch.testing.assert_close(area_resize(x, (7, 224)), styleclip_resize(x, 1024))


def test_area_resize_equals_styleclip_for_a_square_256_px_image():
    x = torch.rand(2, 3, 256, 256, dtype=torch.float64)
    torch.testing.assert_close(area_resize(x, 224), styleclip_resize(x, 256))


def test_area_resize_of_integer_factors_is_average_pooling_and_preserves_constants():
    x = torch.rand(1, 3, 448, 448)
    torch.testing.assert_close(area_resize(x, 224), F.avg_pool2d(x, 2))
    torch.testing.assert_close(area_resize(torch.full((1, 1, 1000, 1000), 0.3), 224), torch.full((1, 1, 224, 224), 0.3))
    assert area_resize(x, 448) is x


def test_preprocess_clamps_maps_to_unit_range_and_normalises(clip_path):
    clip = load_clip(clip_path)
    assert clip.image_size == 32
    mean, std = torch.tensor(OPENAI_MEAN).view(1, 3, 1, 1), torch.tensor(OPENAI_STD).view(1, 3, 1, 1)
    img = torch.full((1, 3, 64, 64), -1.0)
    img[..., :32] = 1.0
    img[..., 0, 0] = 5.0  # out of range: clamped to 1
    out = clip.preprocess(img)
    assert out.shape == (1, 3, 32, 32)
    torch.testing.assert_close(out[..., 16:], ((0 - mean) / std).expand(1, 3, 32, 16))
    torch.testing.assert_close(out[..., :16], ((1 - mean) / std).expand(1, 3, 32, 16))


def test_fixture_clip_loads_strictly_and_round_trips(clip_path):
    from safetensors.torch import load_file

    clip = load_clip(clip_path)
    assert not clip.training and not any(p.requires_grad for p in clip.parameters())
    saved = load_file(str(clip_path))
    assert set(clip.model.state_dict()) == set(saved)
    assert all(torch.equal(clip.model.state_dict()[k], v) for k, v in saved.items())


def test_embeddings_similarity_and_gradients(clip_path):
    clip = load_clip(clip_path)
    img = (torch.rand(2, 3, 64, 64) * 2 - 1).requires_grad_(True)
    texts = ["a smiling face", "a face with black hair", "a face with lipstick"]
    image_emb, text_emb = clip.encode_image(img), clip.encode_text(texts)
    assert image_emb.shape == (2, 32) and text_emb.shape == (3, 32)
    torch.testing.assert_close(image_emb.norm(dim=1), torch.ones(2))
    torch.testing.assert_close(text_emb.norm(dim=1), torch.ones(3))
    sim = clip.similarity(img, texts)
    torch.testing.assert_close(sim, image_emb @ text_emb.T)
    (1 - sim[:, 0]).sum().backward()
    assert img.grad.abs().sum() > 0
    assert not text_emb.requires_grad


def test_text_embeddings_are_cached_with_lru_eviction(clip_path, monkeypatch):
    clip = load_clip(clip_path)
    calls = []
    encode = clip.model.encode_text
    monkeypatch.setattr(clip.model, "encode_text", lambda tokens, normalize: calls.append(len(tokens)) or encode(tokens, normalize=normalize))
    first = clip.encode_text(["a", "b", "a"])
    again = clip.encode_text(["b", "a", "c"])
    assert calls == [2, 1]  # "a", "b" once; then only "c"
    torch.testing.assert_close(again[0], first[1])
    torch.testing.assert_close(first[0], first[2])
    monkeypatch.setattr(clip_model, "TEXT_CACHE_SIZE", 2)
    clip.encode_text(["d"])  # use order is b, a, c: keeps the two most recent
    assert list(clip._text_cache) == ["c", "d"]
    clip.encode_text(["a", "c", "d"])
    assert calls[-1] == 1  # "a" was evicted and is encoded again
    assert list(clip._text_cache) == ["c", "d"]
    with pytest.raises(TypeError, match="list of strings"):
        clip.encode_text("a smiling face")


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
def test_openai_torchscript_file_loads_with_quickgelu(clip_path, tmp_path):
    from open_clip.model import CLIP

    reference = load_clip(clip_path)
    scripted = torch.jit.script(reference.model.eval())
    ts_path = tmp_path / "tiny-openai.pt"
    torch.jit.save(scripted, str(ts_path))
    config = {**FIXTURE_CLIP_CONFIG, "quick_gelu": False}
    (tmp_path / "tiny-openai.json").write_text(json.dumps(config))
    clip = load_clip(ts_path)
    assert isinstance(clip.model, CLIP)
    assert isinstance(clip.model.transformer.resblocks[0].mlp.gelu, type(reference.model.transformer.resblocks[0].mlp.gelu))
    img = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(clip.similarity(img, ["a face"]), reference.similarity(img, ["a face"]))


def test_config_argument_and_builtin_name(clip_path, tmp_path):
    plain = tmp_path / "weights.safetensors"
    plain.write_bytes(clip_path.read_bytes())  # no sidecar JSON next to this copy
    with pytest.raises(CheckpointError, match="does not match the network"):
        load_clip(plain)  # falls back to ViT-B-32-quickgelu, whose shapes differ
    assert load_clip(plain, config=FIXTURE_CLIP_CONFIG).image_size == 32
    with pytest.raises(ValueError, match="unknown open_clip model 'no-such-model'"):
        load_clip(plain, model_name="no-such-model")


def test_bad_clip_files_are_reported(clip_path, tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.safetensors"):
        load_clip(tmp_path / "absent.safetensors")
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(clip_path.read_bytes()[:1000])
    (tmp_path / "corrupt.json").write_text(json.dumps(FIXTURE_CLIP_CONFIG))
    with pytest.raises(CheckpointError, match="corrupt.safetensors"):
        load_clip(corrupt)
    (tmp_path / "corrupt.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt.json is not valid JSON"):
        load_clip(corrupt)
