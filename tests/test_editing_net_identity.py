"""Identity network: exact model_ir_se50.pth layout, reference crop and pooling, the ID loss, facenet option."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from editing.networks.checkpoints import CheckpointError
from editing.networks.identity import Backbone, IdentityNet, load_identity

DATA = Path(__file__).parent / "data" / "editing"
SMALL_TRUNK = {"blocks": (1, 1, 1, 1), "widths": (16, 32, 48, 64)}


@pytest.fixture(scope="module")
def identity_file(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    backbone = Backbone(112, embedding_dim=128, **SMALL_TRUNK)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so that a wrong load would show
        for m in backbone.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("identity") / "ir_se_small.pth"
    torch.save(backbone.state_dict(), path)
    return path


def test_full_backbone_matches_the_ir_se50_key_manifest():
    with torch.device("meta"):
        backbone = Backbone()
    expected = json.loads((DATA / "model_ir_se50.json").read_text())["keys"]
    assert {k: list(v.shape) for k, v in backbone.state_dict().items()} == expected


def test_identity_file_loads_strictly_and_round_trips(identity_file):
    net = load_identity(identity_file)
    assert net.kind == "arcface" and net.input_size == 112
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    saved = torch.load(identity_file)
    assert all(torch.equal(net.net.state_dict()[k], v) for k, v in saved.items())
    assert net.net.config == {"input_size": 112, "blocks": [1, 1, 1, 1], "widths": [16, 32, 48, 64], "embedding_dim": 128}


def test_files_without_batchnorm_counters_still_load(identity_file, tmp_path):
    state = {k: v for k, v in torch.load(identity_file).items() if not k.endswith("num_batches_tracked")}
    old = tmp_path / "old_torch.pth"
    torch.save(state, old)
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(load_identity(old)(x), load_identity(identity_file)(x))


def test_reference_crop_and_pooling(identity_file):
    net = load_identity(identity_file)
    x256 = torch.rand(2, 3, 256, 256) * 2 - 1
    expected = F.adaptive_avg_pool2d(x256[:, :, 35:223, 32:220], 112)
    torch.testing.assert_close(net.preprocess(x256), expected)
    x1024 = torch.rand(1, 3, 1024, 1024) * 2 - 1
    torch.testing.assert_close(net.preprocess(x1024), net.preprocess(F.avg_pool2d(x1024, 4)))
    assert net.preprocess(x256).min() < -0.5  # stays in [-1, 1]: no rescaling to [0, 1]


def test_embeddings_are_normalised_and_the_loss_compares_identities(identity_file):
    net = load_identity(identity_file)
    a, b = torch.rand(2, 3, 256, 256) * 2 - 1, torch.rand(2, 3, 256, 256) * 2 - 1
    with torch.no_grad():
        emb = net(a)
    assert emb.shape == (2, 128)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(2))
    assert net.loss(a, a).abs() < 1e-5
    img = b.clone().requires_grad_(True)
    ref = a.clone().requires_grad_(True)
    loss = net.loss(img, ref)
    expected = (1 - (net(b) * net(a)).sum(1)).mean()
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert img.grad is not None and img.grad.abs().sum() > 0
    assert ref.grad is None  # the reference embedding is a constant


@pytest.mark.slow  # InceptionResnetV1 is 23 M parameters: built twice and run at 160 px
def test_facenet_state_dict_is_served_behind_the_same_interface(tmp_path):
    from facenet_pytorch import InceptionResnetV1

    torch.manual_seed(0)
    model = InceptionResnetV1(classify=True, num_classes=5).eval()
    path = tmp_path / "facenet.pt"
    torch.save(model.state_dict(), path)
    net = load_identity(path)
    assert (net.kind, net.input_size) == ("facenet", 160)
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    with torch.no_grad():
        model.classify = False
        expected = model(F.adaptive_avg_pool2d(x[:, :, 35:223, 32:220], 160) * (127.5 / 128))
        torch.testing.assert_close(net(x), expected)


def test_bad_identity_files_are_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        load_identity(tmp_path / "absent.pth")
    other = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, other)
    with pytest.raises(CheckpointError, match="other.pth is neither"):
        load_identity(other)
    with pytest.raises(ValueError, match="arcface"):
        IdentityNet(torch.nn.Identity(), 112, kind="vgg")
