"""Face alignment with facenet-pytorch's MTCNN (weights ship in the package) on real photos."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from editing_pipe_fixtures import astronaut, coffee, flat  # noqa: E402

from editing.pipeline.align import (  # noqa: E402
    NoFaceError,
    align_face,
    crop_quad,
    detect_faces,
    ffhq_quad,
    largest_face,
    load_photo,
)

ORIENTATION = 0x0112


def test_astronaut_face_is_found_with_five_landmarks():
    faces = detect_faces(astronaut())
    assert len(faces) == 1
    face = faces[0]
    assert face.probability > 0.9
    left_eye, right_eye, nose, mouth_left, mouth_right = face.points
    assert left_eye[0] < nose[0] < right_eye[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])
    x0, y0, x1, y1 = face.box
    assert np.all((face.points[:, 0] > x0) & (face.points[:, 0] < x1))
    assert np.all((face.points[:, 1] > y0) & (face.points[:, 1] < y1))


def test_aligned_crop_has_ffhq_geometry():
    aligned = align_face(astronaut(), sizes=(256, 64))
    assert {s: im.size for s, im in aligned.images.items()} == {256: (256, 256), 64: (64, 64)}
    # Detect again in the crop: eyes level, centred, about a quarter of the width apart (FFHQ recipe).
    face = largest_face(aligned.images[256])
    left_eye, right_eye = face.points[0], face.points[1]
    assert abs(left_eye[1] - right_eye[1]) < 0.02 * 256
    assert abs((left_eye[0] + right_eye[0]) / 2 - 128) < 0.04 * 256
    assert 0.18 < (right_eye[0] - left_eye[0]) / 256 <= 0.27
    assert 0.3 * 256 < (left_eye[1] + right_eye[1]) / 2 < 0.5 * 256


def test_quad_is_a_square_around_the_face():
    face = largest_face(astronaut())
    quad = ffhq_quad(face.points)
    sides = [np.linalg.norm(quad[i] - quad[(i + 1) % 4]) for i in range(4)]
    assert np.allclose(sides, sides[0], rtol=1e-6)
    assert np.isclose(np.dot(quad[1] - quad[0], quad[3] - quad[0]), 0, atol=1e-6 * sides[0] ** 2)
    centre = quad.mean(0)
    assert np.linalg.norm(centre - face.points.mean(0)) < 0.25 * sides[0]


def test_quad_beyond_the_photo_is_padded_not_black():
    image = astronaut().crop((150, 40, 300, 200))  # the face fills the photo: the quad leaves it
    face = largest_face(image)
    crop = crop_quad(image, ffhq_quad(face.points), (128,))[128]
    corners = np.asarray(crop)[[0, 0, -1, -1], [0, -1, 0, -1]]
    assert corners.min() > 10  # reflected and blurred, not the black fill of a bare transform


def test_photo_without_a_face_raises_a_clear_error(tmp_path):
    path = tmp_path / "coffee.png"
    coffee().save(path)
    with pytest.raises(NoFaceError, match="no face found in .*coffee.png"):
        align_face(path)
    with pytest.raises(ValueError, match="--no-align"):
        align_face(flat())


def test_several_faces_pick_the_largest_and_warn(caplog):
    big = astronaut()
    small = big.resize((256, 256))
    canvas = Image.new("RGB", (800, 512), (200, 200, 200))
    canvas.paste(small, (0, 128))
    canvas.paste(big, (288, 0))
    with caplog.at_level(logging.WARNING, logger="editing.pipeline.align"):
        face = largest_face(canvas)
    assert face.box[0] > 288  # the full-size copy
    assert any("faces found" in r.getMessage() for r in caplog.records)


def test_exif_orientation_is_applied(tmp_path):
    upright = astronaut().crop((0, 0, 512, 384))
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what a phone stores for a portrait shot
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rotated.jpg"
    stored.save(path, exif=exif, quality=95)

    loaded = load_photo(path)
    assert loaded.size == upright.size
    diff = np.abs(np.asarray(loaded, dtype=np.float32) - np.asarray(upright, dtype=np.float32)).mean()
    assert diff < 6

    expected = largest_face(upright).points
    found = align_face(path, sizes=(64,)).face.points
    assert np.abs(found - expected).max() < 6


def test_missing_and_unreadable_photos(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        load_photo(tmp_path / "nope.jpg")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot read .*bad.jpg"):
        load_photo(bad)
