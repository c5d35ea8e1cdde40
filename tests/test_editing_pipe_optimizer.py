"""The StyleCLIP optimiser on the fixture networks (real classes, random weights)."""
from __future__ import annotations

import math
import sys
import threading
from pathlib import Path

import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from editing_pipe_fixtures import editor  # noqa: E402

from editing.pipeline.losses import ClipLoss, latent_l2  # noqa: E402
from editing.pipeline.optimizer import Cancelled, OptimizerSettings, optimize_latent, styleclip_lr  # noqa: E402

TEXT = "a face of a person with a smile"


@pytest.fixture(scope="module")
def nets():
    ed = editor()
    torch.manual_seed(1)
    w_s = ed.generator.mapping(torch.randn(1, ed.generator.style_dim)).unsqueeze(1)
    w_s = w_s.repeat(1, ed.generator.n_latent, 1).detach()
    return ed, w_s


def test_learning_rate_schedule_matches_styleclip():
    total, lr = 300, 0.1
    assert styleclip_lr(0, total, lr) == 0.0
    assert math.isclose(styleclip_lr(15, total, lr), lr)  # warm-up ends at 5 %
    assert math.isclose(styleclip_lr(7, total, lr), lr * 7 / 15)
    assert math.isclose(styleclip_lr(150, total, lr), lr)
    assert math.isclose(styleclip_lr(225, total, lr), lr)  # ramp-down starts at 75 %
    t = 262.5 / 300
    assert math.isclose(styleclip_lr(262.5, total, lr), lr * (0.5 - 0.5 * math.cos(math.pi * (1 - t) / 0.25)))
    assert math.isclose(styleclip_lr(262.5, total, lr), lr / 2)
    assert 0 < styleclip_lr(299, total, lr) < 0.001


def test_optimiser_lowers_the_clip_loss(nets):
    ed, w_s = nets
    settings = OptimizerSettings(steps=12, l2_lambda=0.0, id_lambda=0.0)
    result = optimize_latent(ed.generator, ed.clip, TEXT, w_s, settings=settings)
    loss = ClipLoss(ed.clip, TEXT)
    with torch.no_grad():
        before = float(loss(ed.generator.synthesis(w_s)))
        after = float(loss(result.image))
    assert after < before
    assert result.steps == 12 and len(result.history) == 12
    assert set(result.losses) == {"clip", "l2", "total"}
    assert result.w.shape == w_s.shape and not result.w.requires_grad


def test_several_texts_average_their_clip_terms(nets):
    ed, w_s = nets
    texts = (TEXT, "a face of a person with black hair")
    with torch.no_grad():
        images = torch.cat([ed.generator.synthesis(w_s), ed.generator.synthesis(w_s + 0.3)])
        expected = (ClipLoss(ed.clip, texts[0])(images) + ClipLoss(ed.clip, texts[1])(images)) / 2
        torch.testing.assert_close(ClipLoss(ed.clip, texts)(images), expected)
    with pytest.raises(ValueError, match="at least one text"):
        ClipLoss(ed.clip, [])
    result = optimize_latent(ed.generator, ed.clip, texts, w_s, settings=OptimizerSettings(steps=2))
    assert result.texts == texts
    assert optimize_latent(ed.generator, ed.clip, TEXT, w_s, settings=OptimizerSettings(steps=1)).texts == (TEXT,)
    with pytest.raises(ValueError, match="text_objective must be one of description, per_attribute"):
        OptimizerSettings(text_objective="sentence")


def test_optimiser_is_deterministic(nets):
    ed, w_s = nets
    settings = OptimizerSettings(steps=3)
    a = optimize_latent(ed.generator, ed.clip, TEXT, w_s, identity=ed.identity, settings=settings)
    b = optimize_latent(ed.generator, ed.clip, TEXT, w_s, identity=ed.identity, settings=settings)
    assert torch.equal(a.w, b.w) and torch.equal(a.image, b.image)
    assert "id" in a.losses


def test_larger_l2_weight_keeps_w_closer_to_the_anchor(nets):
    ed, w_s = nets
    distances = []
    for l2 in (0.0, 1.0):
        settings = OptimizerSettings(steps=8, l2_lambda=l2, id_lambda=0.0)
        result = optimize_latent(ed.generator, ed.clip, TEXT, w_s, settings=settings)
        distances.append(float(latent_l2(result.w, w_s)))
    assert distances[1] < distances[0]


def test_anchor_differs_from_start(nets):
    ed, w_s = nets
    anchor = w_s + 0.5
    settings = OptimizerSettings(steps=2, id_lambda=0.0)
    result = optimize_latent(ed.generator, ed.clip, TEXT, w_s, w_anchor=anchor, settings=settings)
    # step 0 has lr 0, so the first recorded L2 is the start-to-anchor distance
    assert math.isclose(result.history[0]["l2"], float(latent_l2(w_s, anchor)), rel_tol=1e-4)


def test_progress_and_previews(nets):
    ed, w_s = nets
    calls = []

    def progress(step, total, losses, preview):
        calls.append((step, total, sorted(losses), preview))

    optimize_latent(ed.generator, ed.clip, TEXT, w_s, identity=ed.identity,
                    settings=OptimizerSettings(steps=4, preview_every=2), progress=progress)
    assert [c[0] for c in calls] == [1, 2, 3, 4] and all(c[1] == 4 for c in calls)
    assert calls[0][2] == ["clip", "id", "l2", "total"]
    previews = [c[3] for c in calls]
    assert previews[0] is None and previews[2] is None
    assert isinstance(previews[1], Image.Image) and previews[3].size == (ed.generator.size,) * 2


def test_cancellation_stops_before_the_next_step(nets):
    ed, w_s = nets
    cancel = threading.Event()
    seen = []

    def progress(step, total, losses, preview):
        seen.append(step)
        if step == 2:
            cancel.set()

    with pytest.raises(Cancelled) as info:
        optimize_latent(ed.generator, ed.clip, TEXT, w_s, settings=OptimizerSettings(steps=50),
                        progress=progress, cancel=cancel)
    assert seen == [1, 2]
    assert info.value.step == 2 and info.value.total == 50


def test_fast_mode_uses_the_low_resolution_rgb(nets):
    ed, w_s = nets
    seen_sizes = []
    original = ed.clip.encode_image

    def spy(img):
        seen_sizes.append(img.shape[-1])
        return original(img)

    ed.clip.encode_image = spy
    try:
        result = optimize_latent(ed.generator, ed.clip, TEXT, w_s,
                                 settings=OptimizerSettings(steps=2, clip_size=32, id_lambda=0.0))
    finally:
        del ed.clip.encode_image
    assert seen_sizes == [32, 32]
    assert result.image.shape[-1] == ed.generator.size


def test_bad_inputs_are_rejected(nets):
    ed, w_s = nets
    with pytest.raises(ValueError, match="unsqueeze"):
        optimize_latent(ed.generator, ed.clip, TEXT, w_s[0])
    with pytest.raises(ValueError, match="one code at a time"):
        optimize_latent(ed.generator, ed.clip, TEXT, w_s.repeat(2, 1, 1))
    with pytest.raises(ValueError, match="steps"):
        OptimizerSettings(steps=0)
    with pytest.raises(ValueError, match="clip_size"):
        OptimizerSettings(clip_size=100)
