"""Upload decoding, and `ImageStore`: images (and cached inversions) named by the SHA-256 of their content.

Uploads are decoded with a pixel-count guard (decompression bombs), EXIF-rotated, converted to RGB, downscaled to
at most `MAX_STORED_SIDE` pixels a side and re-encoded as PNG, so no uploaded byte is stored or served as-is.

An image key is `<64 hex digits>.<png|jpg>` (the API serves only these); the store also keeps cached inversions
as `<64 hex>.inv`. Anything else is refused before a path or a query is built, so keys cannot escape the store.
Two stores, chosen by `I2EDIT_STORE`:
- `LocalImageStore` (`local`, the default): files `images/<first two hex digits>/<key>` in the data dir; one
  machine, or a folder every machine mounts.
- `DatabaseImageStore` (`database`): rows of the `stored_blobs` table in the server's database, so web processes
  and workers on several machines share everything through PostgreSQL alone.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from server.db import Database
from server.models import StoredBlob
from server.settings import MAX_IMAGE_PIXELS, MAX_STORED_SIDE, MAX_UPLOAD_BYTES, Settings

KEY_PATTERN = re.compile(r"[0-9a-f]{64}\.(png|jpg)")  # images: what the API may serve
STORED_KEY_PATTERN = re.compile(r"[0-9a-f]{64}\.(png|jpg|inv)")  # everything the store keeps
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
    """Whether `key` names an image (PNG or JPEG) the API may serve."""
    return bool(KEY_PATTERN.fullmatch(key))


def _checked(key: str) -> str:
    if not STORED_KEY_PATTERN.fullmatch(key):
        raise KeyError(key)
    return key


class ImageStore(ABC):
    """Content-addressed bytes: `put_bytes` returns `<sha256>.<ext>`; storing the same bytes twice is one entry."""

    @abstractmethod
    def _write(self, key: str, data: bytes) -> None:
        """Store `data` under `key` unless it is there already (atomic: readers never see part of it)."""

    @abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """The stored bytes; `KeyError` when `key` is malformed or absent."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete(self, key: str) -> None:
        """Forget `key` (nothing happens when it is absent)."""

    def put_bytes(self, data: bytes, ext: str) -> str:
        """Store bytes of our own making (`ext`: png, jpg or inv); returns the key."""
        key = _checked(f"{hashlib.sha256(data).hexdigest()}.{ext}")
        self._write(key, data)
        return key

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

    def open(self, key: str) -> Image.Image:
        with Image.open(io.BytesIO(self.get_bytes(key))) as image:
            return image.convert("RGB")


class LocalImageStore(ImageStore):
    """Files `root/<first two hex digits>/<key>` (the data dir's `images/`)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        """The file for `key`; raises `KeyError` for a malformed key (never builds a path from one)."""
        return self.root / key[:2] / _checked(key)

    def exists(self, key: str) -> bool:
        return bool(STORED_KEY_PATTERN.fullmatch(key)) and self.path(key).is_file()

    def _write(self, key: str, data: bytes) -> None:
        target = self.path(key)
        if target.is_file():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temp, target)  # atomic: readers never see a half-written file

    def get_bytes(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            raise KeyError(key) from None

    def delete(self, key: str) -> None:
        if STORED_KEY_PATTERN.fullmatch(key):
            self.path(key).unlink(missing_ok=True)


class DatabaseImageStore(ImageStore):
    """Rows of `stored_blobs` in the server's database (shared by every machine that uses the database)."""

    def __init__(self, db: Database):
        self.db = db

    def exists(self, key: str) -> bool:
        if not STORED_KEY_PATTERN.fullmatch(key):
            return False
        with self.db.connect() as conn:
            return conn.execute(select(StoredBlob.key).where(StoredBlob.key == key)).first() is not None

    def _write(self, key: str, data: bytes) -> None:
        if self.exists(key):
            return
        try:
            with self.db.write() as session:
                session.execute(insert(StoredBlob).values(key=key, data=data, size=len(data)))
        except IntegrityError:  # another process stored the same bytes meanwhile
            pass

    def get_bytes(self, key: str) -> bytes:
        _checked(key)
        with self.db.connect() as conn:
            data = conn.execute(select(StoredBlob.data).where(StoredBlob.key == key)).scalar_one_or_none()
        if data is None:
            raise KeyError(key)
        return bytes(data)

    def delete(self, key: str) -> None:
        if STORED_KEY_PATTERN.fullmatch(key):
            with self.db.write() as session:
                session.execute(delete(StoredBlob).where(StoredBlob.key == key))


def open_store(settings: Settings, db: Database) -> ImageStore:
    """The store `settings.store` names: `local` (the data dir's images/) or `database`."""
    if settings.store == "database":
        return DatabaseImageStore(db)
    return LocalImageStore(settings.images_dir)
