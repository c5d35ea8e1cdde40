"""The shipped demo set: it loads through the public checkpoint loaders, the judge reads renders, and a short
edit moves the judge towards the requested value."""
from __future__ import annotations

import pytest
import torch

from dialogue.ontology import VALUE_INDEX, BeliefState
from editing.demo_world.judge import load_judge
from editing.demo_world.settings import demo_editor_settings, read_settings, sample_faces
from editing.demo_world.world import heldout_batch, render_profile
from editing.networks.e4e import load_e4e
from editing.networks.generator import load_generator
from editing.networks.identity import load_identity
from editing.weights.weight_set import DEMO_SET_DIR, EDIT_ROLES, resolve_set


@pytest.fixture(scope="module")
def demo_set():
    return resolve_set("demo")


def test_manifest_lists_every_edit_role_with_matching_checksums(demo_set):
    assert demo_set.name == "demo"
    for role in EDIT_ROLES:
        check = demo_set.files[role].check()
        assert check.status == "ok", f"{role}: {check.detail}"
    total = sum(p.stat().st_size for p in DEMO_SET_DIR.rglob("*") if p.is_file())
    assert total <= 60e6


def test_networks_load_with_the_public_loaders(demo_set):
    generator = load_generator(demo_set.path("generator"))
    e4e = load_e4e(demo_set.path("e4e"))
    identity = load_identity(demo_set.path("identity"))
    clip = demo_set.load("clip")
    image = heldout_batch(2).images
    w = e4e.encode(image)
    assert w.shape == (2, generator.n_latent, generator.style_dim)
    assert generator.synthesis(w).shape == (2, 3, generator.size, generator.size)
    assert torch.allclose(identity(image).norm(dim=1), torch.ones(2), atol=1e-4)
    assert clip.similarity(image, ["a face of a person with a smile"]).shape == (2, 1)
    for key, value in e4e.decoder.state_dict().items():
        assert torch.equal(value, generator.state_dict()[key]), key


def test_judge_reads_held_out_renders():
    judge = load_judge(DEMO_SET_DIR / read_settings()["judge"])
    data = heldout_batch(64, offset=5)
    accuracy = (judge.present(data.images) == (data.looks > 0.5)).float().mean()
    assert accuracy > 0.9


def test_sample_faces_are_shipped():
    faces = sample_faces()
    assert faces and all(path.is_file() for path in faces)


def test_short_edit_moves_the_judge_towards_the_requested_value():
    from editing.pipeline.editor import Editor
    from editing.pipeline.image_tensors import tensor_to_pil

    editor = Editor.from_weights("demo", settings=demo_editor_settings(), align_faces=False)
    judge = load_judge(DEMO_SET_DIR / read_settings()["judge"])
    _, _, face = render_profile("test-edit", ("no smiling", "brown hair", "straight hair", "no makeup"))
    inversion = editor.invert(tensor_to_pil(face.unsqueeze(0)))
    result = editor.edit(inversion, BeliefState.of("black hair"), steps=30)
    before = judge.probabilities(face.unsqueeze(0))[0, VALUE_INDEX["black hair"]]
    after = judge.probabilities(result.tensor)[0, VALUE_INDEX["black hair"]]
    assert after > before + 0.3


class _SeesEverything:
    """A stand-in judge that finds every value in every image."""

    def present(self, images):
        return torch.ones(len(images), len(VALUE_INDEX), dtype=torch.bool)


def test_value_agreement_counts_pairs_and_recall_per_value():
    from editing.demo_world.judge import value_agreement

    result = value_agreement(lambda data: data.images, _SeesEverything(), n=40, batch=20)
    truth = torch.cat([heldout_batch(20, offset=20_000 + start).looks > 0.5 for start in (0, 20)])
    assert result["value_agreement"] == pytest.approx(float(truth.float().mean()))
    assert result["same_values"] == 0.0  # no face shows all 23 values
    shown = {v for v, k in VALUE_INDEX.items() if truth[:, k].any()}
    assert result["recall_by_value"] == {v: 1.0 for v in shown}
