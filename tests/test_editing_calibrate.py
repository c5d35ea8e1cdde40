"""Fitting the critic's thresholds: labels, a folder of faces, storage with the weight set, the two commands."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from PIL import Image

from dialogue.ontology import VALUE_INDEX, VALUES
from editing.pipeline.calibrate import (
    load_folder, read_critic, read_labels, thresholds_from_labels, value_scores, write_critic,
)
from editing.pipeline.critic import Critic
from editing.weights.weight_set import read_manifest
from server.cli import main
from tests.editing_pipe_fixtures import weight_set


@pytest.fixture()
def fixture_set(tmp_path):
    """A private copy of the fixture weight set (calibration writes into its manifest)."""
    target = tmp_path / "weights"
    shutil.copytree(weight_set().root, target)
    return read_manifest(target / "manifest.json")


@pytest.fixture()
def labelled_folder(tmp_path):
    """Twelve faces: the bright ones labelled smiling, the dark ones not; a JSON label file."""
    folder = tmp_path / "faces"
    folder.mkdir()
    labels = {}
    for i in range(12):
        shade = 40 + 15 * i
        Image.new("RGB", (48, 48), (shade, shade, shade)).save(folder / f"face{i:02d}.png")
        labels[f"face{i:02d}.png"] = ["smiling", "black hair"] if i >= 6 else ["no smiling", "black hair"]
    (folder / "notes.txt").write_text("not an image")
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(labels))
    return folder, path


def test_json_labels_are_canonicalised_and_bad_ones_named(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"a.png": ["moustache", "grey hair"]}))
    labels, labelled = read_labels(good)
    assert labels == {"a.png": ("mustache", "gray hair")} and labelled == VALUES
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"a.png": ["glasses"]}))
    with pytest.raises(ValueError, match="'a.png'"):
        read_labels(bad)
    with pytest.raises(FileNotFoundError, match="CelebAMask-HQ-attribute-anno.txt"):
        read_labels(tmp_path / "missing.txt")


def test_celeba_labels_leave_angry_and_sad_unlabelled(tmp_path):
    from data_tools.celeba import CELEBA_ATTRIBUTES

    rows = [" ".join(["1" if a in ("Smiling", "Black_Hair") else "-1" for a in CELEBA_ATTRIBUTES])]
    path = tmp_path / "anno.txt"
    path.write_text(f"1\n{' '.join(CELEBA_ATTRIBUTES)}\n0.jpg {rows[0]}\n")
    labels, labelled = read_labels(path)
    assert "smiling" in labels["0.jpg"] and "black hair" in labels["0.jpg"]
    assert "angry" not in labelled and "sad" not in labelled and len(labelled) == 21


def test_folder_scores_and_thresholds(fixture_set, labelled_folder):
    folder, label_file = labelled_folder
    labels, labelled = read_labels(label_file)
    clip = fixture_set.load("clip")
    images, present, names = load_folder(folder, labels, clip.image_size)
    assert images.shape == (12, 3, clip.image_size, clip.image_size) and names[0] == "face00.png"
    assert present[:, VALUE_INDEX["black hair"]].all() and present[:, VALUE_INDEX["smiling"]].sum() == 6
    scores = value_scores(clip, images, batch_size=5)
    assert scores.shape == (12, len(VALUES))
    torch.testing.assert_close(scores[3], value_scores(clip, images[3:4])[0])
    fitted = thresholds_from_labels(scores, present, min_images=3, values=labelled)
    assert set(fitted) == {"smiling", "no smiling"}  # black hair: no face without it
    with pytest.raises(ValueError, match="none of the images"):
        load_folder(folder, {"other.png": ("smiling",)}, 32)


def test_thresholds_are_stored_in_the_manifest_or_beside_the_public_files(fixture_set, tmp_path):
    entry = {"thresholds": {"smiling": 0.25}}
    assert write_critic(fixture_set, entry) == fixture_set.root / "manifest.json"
    assert read_critic(read_manifest(fixture_set.root / "manifest.json")) == entry
    assert read_manifest(fixture_set.root / "manifest.json").files  # the manifest still reads

    class PublicFiles:  # the ffhq set: a directory of files, no manifest
        origin, root = "I2EDIT_WEIGHTS_DIR", tmp_path
    assert write_critic(PublicFiles, entry) == tmp_path / "critic.json"
    assert read_critic(PublicFiles) == entry


def test_calibrate_command_stores_thresholds_that_the_editor_then_uses(fixture_set, labelled_folder, capsys):
    from editing.pipeline.editor import Editor

    folder, label_file = labelled_folder
    manifest = fixture_set.root / "manifest.json"
    assert main(["calibrate", "--weights", str(manifest), "--images", str(folder), "--labels", str(label_file),
                 "--min-images", "3", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "12 labelled images" in out and "smiling" in out and f"wrote {manifest}" in out
    critic = Critic.from_manifest(json.loads(manifest.read_text())["critic"])
    assert set(critic.thresholds) == {"smiling", "no smiling"}
    editor = Editor.from_weights(str(manifest), device="cpu")
    assert editor.critic == critic and "critic" not in editor.skipped


def test_calibrate_command_without_enough_faces_is_an_error_and_stores_nothing(fixture_set, labelled_folder, capsys):
    folder, label_file = labelled_folder
    manifest = fixture_set.root / "manifest.json"
    before = manifest.read_text()
    assert main(["calibrate", "--weights", str(manifest), "--images", str(folder), "--labels", str(label_file),
                 "--min-images", "50", "--device", "cpu"]) == 1
    assert "no value could be calibrated" in capsys.readouterr().err
    assert manifest.read_text() == before


def test_demo_world_calibration_fits_every_value_on_renders(fixture_set):
    from editing.demo_world.critic_calibration import calibrate_demo_critic

    fitted, entry = calibrate_demo_critic(fixture_set, n_faces=96, min_images=3)
    assert set(fitted) <= set(VALUES) and len(fitted) >= 15
    assert read_critic(read_manifest(fixture_set.root / "manifest.json")) == entry
    assert entry["calibrated_on"].startswith("96 held-out demo-world renders")
