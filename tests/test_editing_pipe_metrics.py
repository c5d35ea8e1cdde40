"""Editing metrics: relevance (eq. 1-2), LPIPS and FID with the `lpips` and `pytorch-fid` networks, from local weight
files (random weights here; nothing is downloaded: the suite's network guard would fail the test)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from editing_pipe_fixtures import astronaut, editor  # noqa: E402

from dialogue.ontology import BeliefState  # noqa: E402
from editing.networks.checkpoints import CheckpointError  # noqa: E402
from editing.pipeline.editor import Editor  # noqa: E402
from editing.pipeline.metrics import (  # noqa: E402
    FidInception,
    frechet_distance,
    load_fid_inception,
    load_lpips,
    relevance,
    torch_hub_file,
)
from editing.pipeline.prompts import attribute_text  # noqa: E402


@pytest.fixture(scope="module")
def alexnet_file(tmp_path_factory):
    """torchvision's AlexNet layout (the file LPIPS needs): the conv trunk with random weights, and one small
    classifier entry standing in for the real file's classifier (which LPIPS does not use)."""
    import torchvision

    torch.manual_seed(0)
    state = {k: v for k, v in torchvision.models.alexnet().state_dict().items() if k.startswith("features.")}
    state["classifier.6.bias"] = torch.zeros(1000)
    path = tmp_path_factory.mktemp("lpips") / "alexnet-owt-7be5be79.pth"
    torch.save(state, path)
    return path


def test_relevance_is_the_cosine_to_each_value_text():
    ed = editor()
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    state = BeliefState.of("lipstick", "smiling", "goatee")
    rel = relevance(ed.clip, image, state)
    expected = ed.clip.similarity(image, [attribute_text(v) for v in state.values])[0]
    assert list(rel.per_attribute) == ["smiling", "goatee", "lipstick"]
    assert np.allclose(list(rel.per_attribute.values()), expected.tolist(), atol=1e-6)
    assert rel.avg_rel == pytest.approx(float(expected.mean()), abs=1e-6)
    assert rel.min_rel == pytest.approx(float(expected.min()), abs=1e-6)
    assert relevance(ed.clip, image, BeliefState()) is None


def test_lpips_from_a_local_alexnet_file(alexnet_file, tmp_path):
    import lpips as lpips_package

    lpips = load_lpips(alexnet_file)
    assert isinstance(lpips.network, lpips_package.LPIPS)  # the package's own network, heads included
    saved = torch.load(alexnet_file)
    for name, block in lpips.network.net.named_children():  # every trunk layer comes from the file
        for index, layer in block.named_children():
            for param, value in layer.state_dict().items():
                assert torch.equal(value, saved[f"features.{index}.{param}"]), (name, index, param)
    a = torch.rand(2, 3, 64, 64) * 2 - 1
    b = torch.rand(2, 3, 128, 128) * 2 - 1
    same = lpips(a, a)
    assert same.shape == (2,) and torch.allclose(same, torch.zeros(2), atol=1e-6)
    assert (lpips(a, b) > 0).all()
    del saved["features.8.weight"]
    torch.save(saved, tmp_path / "short.pth")
    with pytest.raises(CheckpointError, match=r"short.pth does not match the network: missing 1: slice4.8.weight"):
        load_lpips(tmp_path / "short.pth")


def test_torch_hub_reads_a_placed_file_and_the_cache_setting_comes_back(tmp_path):
    before = torch.hub.get_dir()
    path = tmp_path / "local_copy.pth"
    torch.save({"w": torch.arange(3.0)}, path)
    url = "https://example.invalid/releases/weights-0123abcd.pth"
    with torch_hub_file(url, path):
        assert torch.hub.get_dir() != before
        state = torch.hub.load_state_dict_from_url(url)  # a download would fail the test (network guard)
    assert torch.equal(state["w"], torch.arange(3.0))
    assert torch.hub.get_dir() == before


def test_editor_reports_lpips_when_its_weights_exist(alexnet_file):
    base = editor()
    ed = Editor(base.generator, base.e4e, base.clip, base.identity, load_lpips(alexnet_file))
    inversion = ed.invert(astronaut(), align=False)
    result = ed.edit(inversion, BeliefState.of("bangs"), steps=1)
    assert result.metrics["lpips"] > 0 and "lpips" not in result.metrics.get("skipped", {})
    empty = ed.edit(inversion, BeliefState())
    assert empty.metrics["lpips"] >= 0


def test_missing_metric_weights_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="alexnet-owt-7be5be79.pth"):
        load_lpips(None)
    with pytest.raises(FileNotFoundError, match="nothere.pth"):
        load_lpips(tmp_path / "nothere.pth")
    with pytest.raises(FileNotFoundError, match="pt_inception-2015-12-05-6726825d.pth"):
        load_fid_inception(None)


def test_frechet_distance_of_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 4))
    b = rng.normal(size=(400, 4))
    shifted = b + np.array([2.0, 0, 0, 0])
    near = frechet_distance(a, b)
    far = frechet_distance(a, shifted)
    assert 0 <= near < 0.2
    assert far == pytest.approx(near + 4.0, abs=0.3)  # |Δμ|² adds 4
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(a[:1], b)


def test_fid_features_batch_and_rescale():
    seen = []

    class Probe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))

        def forward(self, x):
            seen.append((x.shape[0], float(x.min()), float(x.max())))
            return [x.mean(dim=(2, 3), keepdim=True).repeat(1, 2, 1, 1)]

    images = torch.linspace(-1, 1, 5 * 3 * 4 * 4).reshape(5, 3, 4, 4)
    features = FidInception(Probe()).features(images, batch_size=2)
    assert features.shape == (5, 6) and features.dtype == np.float64
    assert [s[0] for s in seen] == [2, 2, 1]
    assert min(s[1] for s in seen) >= 0 and max(s[2] for s in seen) <= 1  # [-1, 1] -> [0, 1]


@pytest.mark.slow
def test_fid_inception_from_a_local_file(tmp_path):
    from pytorch_fid import inception as fi

    torch.manual_seed(0)
    net = fi._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    for name, block in (("Mixed_5b", fi.FIDInceptionA(192, pool_features=32)),
                        ("Mixed_5c", fi.FIDInceptionA(256, pool_features=64)),
                        ("Mixed_5d", fi.FIDInceptionA(288, pool_features=64)),
                        ("Mixed_6b", fi.FIDInceptionC(768, channels_7x7=128)),
                        ("Mixed_6c", fi.FIDInceptionC(768, channels_7x7=160)),
                        ("Mixed_6d", fi.FIDInceptionC(768, channels_7x7=160)),
                        ("Mixed_6e", fi.FIDInceptionC(768, channels_7x7=192)),
                        ("Mixed_7b", fi.FIDInceptionE_1(1280)), ("Mixed_7c", fi.FIDInceptionE_2(2048))):
        setattr(net, name, block)
    path = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(net.state_dict(), path)

    hub_dir = torch.hub.get_dir()
    fid = load_fid_inception(path)
    assert isinstance(fid.network, fi.InceptionV3)  # pytorch-fid's own network
    assert torch.equal(fid.network.blocks[0][0].conv.weight, net.Conv2d_1a_3x3.conv.weight)
    assert torch.equal(fid.network.blocks[3][2].branch_pool.conv.weight, net.Mixed_7c.branch_pool.conv.weight)
    features = fid.features(torch.rand(3, 3, 64, 64) * 2 - 1)
    assert features.shape == (3, 2048)
    assert torch.hub.get_dir() == hub_dir

    torch.save({"Conv2d_1a_3x3.conv.weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="(?s)other.pth does not fit pytorch-fid's network: .*Missing key"):
        load_fid_inception(tmp_path / "other.pth")
