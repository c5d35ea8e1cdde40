"""Image files under the data dir, named by the SHA-256 of their content.

Uploads are decoded with a pixel-count guard (decompression bombs), EXIF-rotated, converted to RGB, downscaled to
at most `MAX_STORED_SIDE` pixels a side and re-encoded as PNG, so no uploaded byte is stored or served as-is.
A key is `<64 hex digits>.<png|jpg>`; anything else is refused before a path is built, so keys cannot
escape the images folder.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from server.settings import MAX_IMAGE_PIXELS, MAX_STORED_SIDE, MAX_UPLOAD_BYTES

KEY_PATTERN = re.compile(r"[0-9a-f]{64}\.(png|jpg)")
ACCEPTED_FORMATS = {"JPEG", "PNG", "WEBP"}


class ImageRejected(ValueError):
    """An upload that is not an acceptable image; the message says why and what is accepted."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def decode_upload(data: bytes) -> Image.Image:
    """Decode an uploaded JPEG/PNG/WebP into an RGB image, refusing anything else or anything too big.

    Raises `ImageRejected` (status 413 for too many bytes or pixels, 400 otherwise).
    """
    if len(data) > MAX_UPLOAD_BYTES:
        raise ImageRejected(f"the photo is {len(data) / 1e6:.1f} MB; the limit is {MAX_UPLOAD_BYTES // 2**20} MB",
                            413)
    if not data:
        raise ImageRejected("the photo file is empty")
    try:
        image = Image.open(io.BytesIO(data))  # reads the header only
        if image.format not in ACCEPTED_FORMATS:
            raise ImageRejected(f"unsupported image format {image.format}; send a JPEG, PNG or WebP photo")
        width, height = image.size
        if width * height > MAX_IMAGE_PIXELS:  # checked before any pixel is decoded
            raise ImageRejected(
                f"the photo is {width}x{height} pixels; the limit is {MAX_IMAGE_PIXELS // 1_000_000} megapixels", 413)
        image.load()
    except ImageRejected:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError):
        raise ImageRejected("the file is not a readable image; send a JPEG, PNG or WebP photo") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected(f"the image could not be decoded ({exc}); send a JPEG, PNG or WebP photo") from None
    image = ImageOps.exif_transpose(image)
    image = image.convert("RGB")
    if max(image.size) > MAX_STORED_SIDE:
        image.thumbnail((MAX_STORED_SIDE, MAX_STORED_SIDE), Image.Resampling.LANCZOS)
    return image


def valid_key(key: str) -> bool:
    return bool(KEY_PATTERN.fullmatch(key))


class ImageStore:
    """Content-addressed image files: `root/<first two hex digits>/<key>`."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        """The file for `key`; raises `KeyError` for a malformed key (never builds a path from one)."""
        if not valid_key(key):
            raise KeyError(key)
        return self.root / key[:2] / key

    def exists(self, key: str) -> bool:
        return valid_key(key) and self.path(key).is_file()

    def put(self, image: Image.Image, fmt: str = "png") -> str:
        """Encode `image` (PNG, or JPEG quality 85 for previews) and store it; returns its key."""
        buffer = io.BytesIO()
        if fmt == "png":
            image.convert("RGB").save(buffer, format="PNG", optimize=False)
        elif fmt == "jpg":
            image.convert("RGB").save(buffer, format="JPEG", quality=85)
        else:
            raise ValueError(f"unknown image format {fmt!r}; use 'png' or 'jpg'")
        return self.put_bytes(buffer.getvalue(), fmt)

    def put_bytes(self, data: bytes, fmt: str) -> str:
        """Store already-encoded bytes of our own making; returns the key."""
        key = f"{hashlib.sha256(data).hexdigest()}.{fmt}"
        target = self.path(key)
        if target.is_file():
            return key
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temp, target)  # atomic: readers never see a half-written file
        return key

    def open(self, key: str) -> Image.Image:
        with Image.open(self.path(key)) as image:
            return image.convert("RGB")

    def delete(self, key: str) -> None:
        if valid_key(key):
            self.path(key).unlink(missing_ok=True)
