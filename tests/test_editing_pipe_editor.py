"""The Editor facade on the fixture weight set: inversion, the two modes, metrics, serialisation."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from editing_pipe_fixtures import astronaut, editor, record_optimiser_texts, weight_set  # noqa: E402

import editing.pipeline.editor as editor_module  # noqa: E402
from dialogue.ontology import BeliefState  # noqa: E402
from editing import EditResult, Editor, Inversion  # noqa: E402
from editing.pipeline.editor import plan_edit  # noqa: E402
from editing.pipeline.optimizer import OptimizerSettings  # noqa: E402
from editing.pipeline.prompts import description  # noqa: E402

STEPS = 2


@pytest.fixture(scope="module")
def inversion():
    return editor().invert(astronaut(), align=False)


def test_invert_gives_w_plus_and_reconstruction(inversion):
    ed = editor()
    size = ed.generator.size
    assert inversion.w_s.shape == (1, ed.generator.n_latent, ed.generator.style_dim)
    assert inversion.aligned.size == (size, size) and inversion.reconstruction.size == (size, size)
    again = ed.invert(astronaut(), align=False)
    assert torch.equal(again.w_s, inversion.w_s)  # stored noise, eval mode: deterministic


def test_invert_aligns_real_photos_by_default(inversion):
    aligned = editor().invert(astronaut())
    assert aligned.w_s.shape == inversion.w_s.shape
    assert not torch.equal(aligned.w_s, inversion.w_s)  # a different crop of the same photo


def test_inversion_round_trips_through_bytes_and_files(inversion, tmp_path):
    back = Inversion.from_bytes(inversion.to_bytes())
    assert torch.equal(back.w_s, inversion.w_s)
    assert np.array_equal(np.asarray(back.aligned), np.asarray(inversion.aligned))
    assert np.array_equal(np.asarray(back.reconstruction), np.asarray(inversion.reconstruction))
    path = inversion.save(tmp_path / "photo.inv")
    assert torch.equal(Inversion.load(path).w_s, inversion.w_s)
    (tmp_path / "junk.inv").write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.inv: not a stored inversion"):
        Inversion.load(tmp_path / "junk.inv")


def _result(inversion, state, w):
    return EditResult(image=inversion.reconstruction, tensor=torch.zeros(1), w=w, state=state, mode="single",
                      text=None, metrics={}, steps=0, seconds=0.0, device="cpu")


def test_plans_start_from_the_right_latent_with_the_right_text(inversion):
    first = BeliefState.of("smiling")
    second = BeliefState.of("smiling", "black hair")
    previous = _result(inversion, first, inversion.w_s + 1.0)

    multi = plan_edit(inversion, second, "multi", previous)
    assert multi.start is inversion.w_s and multi.anchor is inversion.w_s
    assert multi.text == description(second) == "a face of a person with a smile and black hair"

    single = plan_edit(inversion, second, "single", previous)
    assert single.start is previous.w and single.anchor is previous.w
    assert single.text == "a face of a person with black hair"

    opening = plan_edit(inversion, first, "single", None)
    assert opening.start is inversion.w_s and opening.text == "a face of a person with a smile"

    assert plan_edit(inversion, BeliefState(), "multi").text is None
    assert multi.attribute_texts == ("a face of a person with a smile", "a face of a person with black hair")
    assert multi.clip_texts("description") == (multi.text,)
    assert multi.clip_texts("per_attribute") == multi.attribute_texts
    assert single.clip_texts("per_attribute") == ("a face of a person with black hair",)
    with pytest.raises(ValueError, match="mode must be one of multi, single"):
        plan_edit(inversion, first, "both")


def test_modes_run_the_optimiser_from_the_right_latent(inversion, monkeypatch):
    calls = []
    real = editor_module.optimize_latent

    def spy(generator, clip, text, w_start, w_anchor, identity, settings, progress, cancel):
        calls.append((text, w_start.clone(), w_anchor.clone(), settings.steps))
        return real(generator, clip, text, w_start, w_anchor, identity, settings, progress, cancel)

    monkeypatch.setattr(editor_module, "optimize_latent", spy)
    ed = editor()
    turn1 = BeliefState.of("smiling")
    turn2 = BeliefState.of("smiling", "mustache")
    multi1 = ed.edit(inversion, turn1, "multi", steps=STEPS)
    ed.edit(inversion, turn2, "multi", previous=multi1, steps=STEPS)
    single1 = ed.edit(inversion, turn1, "single", steps=STEPS)
    single2 = ed.edit(inversion, turn2, "single", previous=single1, steps=STEPS)

    texts = [c[0] for c in calls]  # the default objective: one description each
    assert texts == [("a face of a person with a smile",), ("a face of a person with a smile and a mustache",),
                     ("a face of a person with a smile",), ("a face of a person with a mustache",)]
    for text, start, anchor, steps in calls[:3]:
        assert torch.equal(start, inversion.w_s) and torch.equal(anchor, inversion.w_s) and steps == STEPS
    assert torch.equal(calls[3][1], single1.w) and torch.equal(calls[3][2], single1.w)
    assert not torch.equal(single1.w, inversion.w_s)
    assert single2.mode == "single" and single2.state == turn2 and single2.steps == STEPS


def test_per_attribute_objective_gives_the_optimiser_one_text_per_value(inversion, monkeypatch):
    calls = record_optimiser_texts(monkeypatch)
    ed = editor()
    ed.settings = OptimizerSettings(steps=STEPS, text_objective="per_attribute")
    state = BeliefState.of("smiling", "mustache")
    multi = ed.edit(inversion, state, "multi")
    single = ed.edit(inversion, BeliefState.of("smiling"), "single", previous=_result(inversion, state, multi.w))
    assert calls == [("a face of a person with a smile", "a face of a person with a mustache"),
                     ("a face of a person with no mustache",)]
    assert multi.text == "a face of a person with a smile and a mustache" and multi.steps == STEPS
    assert single.text == "a face of a person with no mustache"


def test_edit_result_carries_image_latent_and_metrics(inversion):
    ed = editor()
    state = BeliefState.of("black hair", "lipstick")
    result = ed.edit(inversion, state, steps=STEPS)
    size = ed.generator.size
    assert isinstance(result.image, Image.Image) and result.image.size == (size, size)
    assert result.tensor.shape == (1, 3, size, size) and result.w.shape == inversion.w_s.shape
    m = result.metrics
    assert list(m["per_attribute"]) == ["black hair", "lipstick"]
    assert m["min_rel"] == min(m["per_attribute"].values()) <= m["avg_rel"] <= max(m["per_attribute"].values())
    assert -1 <= m["identity"] <= 1
    assert m["lpips"] is None and "lpips-backbone" in m["skipped"]["lpips"]
    assert result.device == "cpu" and result.seconds > 0 and result.text.startswith("a face of a person")


def test_empty_state_returns_the_reconstruction_without_optimising(inversion, monkeypatch):
    monkeypatch.setattr(editor_module, "optimize_latent", lambda *a, **k: pytest.fail("optimised"))
    result = editor().edit(inversion, BeliefState(), steps=STEPS)
    assert result.steps == 0 and result.text is None
    assert torch.equal(result.w, inversion.w_s)
    assert np.array_equal(np.asarray(result.image), np.asarray(inversion.reconstruction))
    assert result.metrics["avg_rel"] is None and result.metrics["per_attribute"] == {}


def test_single_mode_without_a_target_keeps_the_previous_image(inversion, monkeypatch):
    previous = _result(inversion, BeliefState.of("black hair"), inversion.w_s + 0.1)
    monkeypatch.setattr(editor_module, "optimize_latent", lambda *a, **k: pytest.fail("optimised"))
    result = editor().edit(inversion, BeliefState(), "single", previous=previous)
    assert torch.equal(result.w, previous.w) and result.steps == 0


def test_from_weights_names_missing_files(tmp_path):
    import shutil

    from editing.weights.weight_set import read_manifest

    source = weight_set()
    for name in ("manifest.json", "generator.pt", "e4e.pt", "clip.safetensors", "clip.json"):
        shutil.copy(source.root / name, tmp_path / name)
    with pytest.raises(FileNotFoundError, match="cannot edit without identity.*identity.pth"):
        Editor.from_weights(read_manifest(tmp_path / "manifest.json"))
