"""The critic (per-value CLIP verdicts against calibrated thresholds) and the refine loop of `Editor.edit`."""
from __future__ import annotations

import dataclasses

import pytest
import torch

import editing.pipeline.refine as refine_module
from dialogue.ontology import BeliefState
from editing.pipeline.critic import Critic, calibrate_thresholds, fit_threshold, manifest_entry
from editing.pipeline.optimizer import OptimizerSettings
from editing.pipeline.refine import RefineSettings
from tests.editing_pipe_fixtures import astronaut, editor

STEPS = 4


def test_fit_threshold_separates_two_samples_at_the_midpoint_of_the_gap():
    fitted = fit_threshold([0.5, 0.6, 0.7], [0.1, 0.2, 0.3])
    assert fitted.threshold == pytest.approx(0.4) and fitted.balanced_accuracy == 1.0
    overlapping = fit_threshold([0.3, 0.6], [0.1, 0.4])
    assert overlapping.balanced_accuracy == 0.75 and 0.1 < overlapping.threshold <= 0.3
    with pytest.raises(ValueError, match="with and without"):
        fit_threshold([], [0.1])


def test_calibration_skips_values_with_too_few_images_and_refuses_unknown_values():
    scores = {"smiling": ([0.4] * 6, [0.1] * 6), "goatee": ([0.4] * 2, [0.1] * 9)}
    fitted = calibrate_thresholds(scores, min_images=5)
    assert list(fitted) == ["smiling"]
    entry = manifest_entry(fitted, "test renders")
    assert entry["thresholds"] == {"smiling": pytest.approx(0.25)} and entry["images"] == {"smiling": [6, 6]}
    assert Critic.from_manifest(entry).thresholds == entry["thresholds"]
    with pytest.raises(ValueError, match="not an ontology value"):
        calibrate_thresholds({"glasses": ([0.4] * 6, [0.1] * 6)})
    with pytest.raises(ValueError, match="unknown values: glasses"):
        Critic.from_manifest({"thresholds": {"glasses": 0.2}})


def test_verdicts_shortfalls_and_rank():
    critic = Critic({"smiling": 0.3, "goatee": 0.2})
    scores = {"smiling": 0.35, "goatee": 0.1, "bangs": 0.9}
    assert critic.verdicts(scores) == {"smiling": True, "goatee": False, "bangs": None}
    assert critic.shortfalls(scores) == ["goatee"]
    assert critic.rank(scores) == (1, pytest.approx(-0.1))
    assert critic.rank({"smiling": 0.4, "goatee": 0.25}) > critic.rank(scores)
    assert not Critic.from_manifest(None).calibrated


@pytest.fixture(scope="module")
def inversion():
    return editor().invert(astronaut())


@pytest.fixture()
def critiqued_editor():
    """The shared fixture editor with a critic and refinement swapped in for one test."""
    ed = editor()
    saved = (ed.critic, ed.refine_settings, ed.settings)
    ed.settings = OptimizerSettings(steps=STEPS)
    yield ed
    ed.critic, ed.refine_settings, ed.settings = saved


def test_without_thresholds_an_edit_runs_as_before_and_says_why_there_are_no_verdicts(inversion):
    result = editor().edit(inversion, BeliefState.of("smiling"), steps=STEPS)
    assert result.steps == STEPS and "verdicts" not in result.metrics and "critique" not in result.metrics
    assert "calibrated critic thresholds" in result.metrics["skipped"]["critic"]


def test_a_value_that_falls_short_is_pushed_round_by_round_from_the_original_anchor(critiqued_editor, inversion,
                                                                                      monkeypatch):
    ed = critiqued_editor
    ed.critic = Critic({"smiling": 2.0, "mustache": -2.0})  # a smile can never pass, a mustache always does
    ed.refine_settings = RefineSettings(rounds=2, round_steps=3, boost=3.0)
    calls = []
    real = refine_module.optimize_latent

    def spy(generator, clip, texts, start, anchor, identity, settings, progress, cancel, text_weights):
        calls.append((texts, anchor, settings.steps, text_weights))
        return real(generator, clip, texts, start, anchor, identity, settings, progress, cancel,
                    text_weights=text_weights)

    monkeypatch.setattr(refine_module, "optimize_latent", spy)
    seen = []
    result = ed.edit(inversion, BeliefState.of("smiling", "mustache"), "multi",
                     progress=lambda step, total, losses, preview: seen.append((step, total, losses.get("round"))))

    critique = result.metrics["critique"]
    assert [r["round"] for r in critique["rounds"]] == [0, 1, 2]
    assert [r["pushed"] for r in critique["rounds"]] == [[], ["smiling"], ["smiling"]]
    assert all(r["verdicts"] == {"smiling": False, "mustache": True} for r in critique["rounds"])
    assert result.metrics["verdicts"] == {"smiling": False, "mustache": True}
    assert result.steps == STEPS + 6 and critique["extra_steps"] == 6
    assert len(calls) == 2
    for texts, anchor, steps, weights in calls:
        assert texts[-1] == "a face of a person with a smile" and weights[-1] == 2.0 and steps == 3
        assert torch.equal(anchor, inversion.w_s.to(anchor.device))  # multi-turn: anchored at the photo
    assert [s for s, _, _ in seen] == list(range(1, STEPS + 7)) and {t for _, t, _ in seen} == {STEPS + 6}
    assert [r for _, _, r in seen[STEPS:]] == [1.0] * 3 + [2.0] * 3


def test_an_edit_that_passes_is_not_refined_and_the_best_round_is_kept(critiqued_editor, inversion, monkeypatch):
    ed = critiqued_editor
    ed.critic = Critic({"smiling": -2.0})
    passed = ed.edit(inversion, BeliefState.of("smiling"))
    assert passed.steps == STEPS and passed.metrics["critique"]["rounds"][0]["verdicts"] == {"smiling": True}
    assert passed.metrics["critique"]["kept_round"] == 0

    # a critic whose rank prefers round 0 keeps round 0's image even after refinement ran
    ed.critic = Critic({"smiling": 2.0})
    ranks = iter([(0, 0.0)] + [(0, 0.0), (0, -1.0), (0, -2.0)])  # the first edit, then three rounds
    monkeypatch.setattr(Critic, "rank", lambda self, scores: next(ranks))
    first = ed.edit(inversion, BeliefState.of("smiling"), refine_settings=RefineSettings(rounds=0))
    kept = ed.edit(inversion, BeliefState.of("smiling"), refine_settings=RefineSettings(rounds=2, round_steps=2))
    assert kept.metrics["critique"]["kept_round"] == 0 and len(kept.metrics["critique"]["rounds"]) == 3
    assert torch.equal(kept.w, first.w)


def test_refine_settings_are_checked():
    with pytest.raises(ValueError, match="boost"):
        RefineSettings(boost=0.5)
    with pytest.raises(ValueError, match="rounds"):
        RefineSettings(rounds=-1)
    assert RefineSettings(rounds=3).max_extra_steps(60) == 90
    assert dataclasses.replace(RefineSettings(), round_steps=7).steps_per_round(60) == 7


def test_trying_harder_runs_more_steps_and_more_rounds(critiqued_editor, inversion):
    ed = critiqued_editor
    ed.critic = Critic({"smiling": 2.0})  # never passes: every round runs
    ed.refine_settings = RefineSettings(rounds=1, round_steps=2)
    normal = ed.edit(inversion, BeliefState.of("smiling"))
    harder = ed.edit(inversion, BeliefState.of("smiling"), effort=1)
    assert normal.steps == STEPS + 2 and len(normal.metrics["critique"]["rounds"]) == 2
    assert harder.steps == 2 * STEPS + 2 * 2 and len(harder.metrics["critique"]["rounds"]) == 3
    with pytest.raises(ValueError, match="effort"):
        ed.edit(inversion, BeliefState.of("smiling"), effort=-1)
