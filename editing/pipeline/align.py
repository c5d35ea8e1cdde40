"""Face alignment: MTCNN's five landmarks → the FFHQ crop that StyleGAN2 and e4e were trained on.

facenet-pytorch's MTCNN finds faces and five landmarks (left eye, right eye, nose, left and right
mouth corners; its P/R/O-net weights ship inside the package, so nothing is downloaded). The FFHQ
recipe then builds an oriented square ("quad") from the eye-to-eye and eye-to-mouth vectors, pads
the photo by reflection where the quad leaves it (blurring the padding as FFHQ does), and resamples
the quad to the requested sizes (the generator's, and 256 for e4e).

All coordinates are pixels of the EXIF-corrected photo, `(x, y)`.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

log = logging.getLogger(__name__)

# Detection runs on a copy whose longer side is at most this many pixels: MTCNN's image pyramid
# starts at 20-pixel faces, so a 12-megapixel photo would otherwise take many seconds.
DETECT_MAX_SIDE = 1024
# The quad is resampled at up to this size before the final antialiased resize (FFHQ used 4096).
MAX_TRANSFORM_SIZE = 4096


class NoFaceError(ValueError):
    """The photo contains no face that the detector can find."""


@dataclass(frozen=True)
class FaceLandmarks:
    """One detected face.

    `points` [5, 2]: left eye, right eye, nose, left mouth corner, right mouth corner (x, y pixels);
    `box` [4]: x0, y0, x1, y1; `probability`: MTCNN's face score in [0, 1].
    """

    points: np.ndarray
    box: np.ndarray
    probability: float

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return float(max(0.0, x1 - x0) * max(0.0, y1 - y0))


def load_photo(photo: "Image.Image | str | Path") -> Image.Image:
    """An RGB PIL image with its EXIF orientation applied (phones store portraits rotated)."""
    if not isinstance(photo, (str, Path)):
        return ImageOps.exif_transpose(photo).convert("RGB")
    path = Path(photo)
    if not path.is_file():
        raise FileNotFoundError(f"photo {path} does not exist")
    try:
        with Image.open(path) as opened:
            return ImageOps.exif_transpose(opened).convert("RGB")
    except OSError as exc:
        raise ValueError(f"cannot read {path} as an image: {exc}") from exc


@functools.lru_cache(maxsize=2)
def _mtcnn(device: str):
    from facenet_pytorch import MTCNN

    return MTCNN(keep_all=True, device=device)


def detect_faces(image: Image.Image, device: str = "cpu") -> list[FaceLandmarks]:
    """All faces MTCNN finds in `image` (RGB), largest first."""
    scale = min(1.0, DETECT_MAX_SIDE / max(image.size))
    small = image if scale == 1.0 else image.resize(
        (max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BILINEAR)
    boxes, probs, points = _mtcnn(str(device)).detect(small, landmarks=True)
    if boxes is None:
        return []
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) / scale
    points = np.asarray(points, dtype=np.float64).reshape(-1, 5, 2) / scale
    probs = np.asarray(probs, dtype=np.float64).reshape(-1)
    faces = [FaceLandmarks(points=p, box=b, probability=float(s)) for b, p, s in zip(boxes, points, probs)]
    return sorted(faces, key=lambda f: f.area, reverse=True)


def largest_face(image: Image.Image, device: str = "cpu", source: str = "the photo") -> FaceLandmarks:
    """The largest face; raises `NoFaceError` when there is none, warns when there are several."""
    faces = detect_faces(image, device)
    if not faces:
        raise NoFaceError(
            f"no face found in {source} ({image.width}x{image.height}); use a photo where one face is "
            "clearly visible, or pass an already aligned face crop with alignment turned off (--no-align)")
    if len(faces) > 1:
        log.warning("%d faces found in %s; editing the largest (box %s)",
                    len(faces), source, np.round(faces[0].box).astype(int).tolist())
    return faces[0]


def ffhq_quad(points: np.ndarray) -> np.ndarray:
    """The FFHQ crop square for five landmarks [5, 2]: corners [4, 2] (top-left, bottom-left,
    bottom-right, top-right, as PIL's QUAD transform expects)."""
    points = np.asarray(points, dtype=np.float64)
    eye_left, eye_right, _, mouth_left, mouth_right = points
    eye_avg = (eye_left + eye_right) / 2
    eye_to_eye = eye_right - eye_left
    mouth_avg = (mouth_left + mouth_right) / 2
    eye_to_mouth = mouth_avg - eye_avg
    # x: the crop's horizontal half-axis, tilted between the eye line and the face's vertical axis.
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    center = eye_avg + eye_to_mouth * 0.1
    return np.stack([center - x - y, center - x + y, center + x + y, center + x - y])


def crop_quad(image: Image.Image, quad: np.ndarray, sizes: tuple[int, ...]) -> dict[int, Image.Image]:
    """Resample the square `quad` [4, 2] of `image` to each of `sizes` (square RGB images).

    FFHQ's recipe: shrink a much larger photo first (no aliasing), crop to the quad plus a border,
    reflect-pad where the quad leaves the photo (fading the padding into a blurred, then flat copy so
    that it reads as background), resample the quad at up to 4x the output size, then downsize with
    an antialiasing filter.
    """
    from scipy.ndimage import gaussian_filter

    quad = np.asarray(quad, dtype=np.float64).copy()
    qsize = float(np.hypot(*(quad[3] - quad[0])))  # side of the square, pixels
    out_size = max(sizes)
    transform_size = min(MAX_TRANSFORM_SIZE, 4 * out_size)

    shrink = int(np.floor(qsize / out_size * 0.5))
    if shrink > 1:
        image = image.resize((int(np.rint(image.width / shrink)), int(np.rint(image.height / shrink))),
                             Image.LANCZOS)
        quad /= shrink
        qsize /= shrink

    def bounds() -> tuple[int, int, int, int]:
        return (int(np.floor(quad[:, 0].min())), int(np.floor(quad[:, 1].min())),
                int(np.ceil(quad[:, 0].max())), int(np.ceil(quad[:, 1].max())))

    border = max(int(np.rint(qsize * 0.1)), 3)
    x0, y0, x1, y1 = bounds()
    crop = (max(x0 - border, 0), max(y0 - border, 0), min(x1 + border, image.width), min(y1 + border, image.height))
    if crop[2] - crop[0] < image.width or crop[3] - crop[1] < image.height:
        image = image.crop(crop)
        quad -= crop[:2]

    x0, y0, x1, y1 = bounds()
    pad = np.array([max(-x0 + border, 0), max(-y0 + border, 0),
                    max(x1 - image.width + border, 0), max(y1 - image.height + border, 0)])
    if pad.max() > border - 4:
        pad = np.maximum(pad, int(np.rint(qsize * 0.3)))
        array = np.pad(np.asarray(image, dtype=np.float32), ((pad[1], pad[3]), (pad[0], pad[2]), (0, 0)),
                       mode="reflect")
        h, w, _ = array.shape
        yy, xx = np.ogrid[:h, :w]
        # > 0 only in the padding, reaching 1 at its outer edge.
        mask = np.maximum(
            1.0 - np.minimum(xx.astype(np.float32) / pad[0], (w - 1 - xx).astype(np.float32) / pad[2]),
            1.0 - np.minimum(yy.astype(np.float32) / pad[1], (h - 1 - yy).astype(np.float32) / pad[3]),
        )[..., None]
        blur = qsize * 0.02
        array += (gaussian_filter(array, [blur, blur, 0]) - array) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
        array += (np.median(array, axis=(0, 1)) - array) * np.clip(mask, 0.0, 1.0)
        image = Image.fromarray(np.uint8(np.clip(np.rint(array), 0, 255)), "RGB")
        quad += pad[:2]

    square = image.transform((transform_size, transform_size), Image.QUAD, tuple((quad + 0.5).flatten()),
                             Image.BILINEAR)
    return {size: square.resize((size, size), Image.LANCZOS) for size in sizes}


@dataclass(frozen=True)
class AlignedFace:
    """An FFHQ-aligned face: `images[size]` is a square RGB crop; `face` the detection it came from;
    `quad` [4, 2] the crop square in photo pixels."""

    images: dict[int, Image.Image]
    face: FaceLandmarks
    quad: np.ndarray


def align_face(photo: "Image.Image | str | Path", sizes: tuple[int, ...] = (1024, 256),
               device: str = "cpu") -> AlignedFace:
    """Detect the largest face in `photo` (path or PIL image, EXIF orientation applied) and return its
    FFHQ-aligned crops at each of `sizes`. Raises `NoFaceError` when there is no face."""
    source = str(photo) if isinstance(photo, (str, Path)) else "the photo"
    image = load_photo(photo)
    face = largest_face(image, device, source)
    quad = ffhq_quad(face.points)
    return AlignedFace(images=crop_quad(image, quad, tuple(sizes)), face=face, quad=quad)
