"""Server settings: one object read from `I2EDIT_*` environment variables, with CLI overrides.

| variable | default | meaning |
|---|---|---|
| `I2EDIT_DATA_DIR` | `./var` | database file, images, cached inversions (made absolute at start-up) |
| `I2EDIT_DATABASE_URL` | `sqlite:///<data dir>/i2edit.sqlite3` | any SQLAlchemy URL |
| `I2EDIT_DIALOGUE_MODEL` | the shipped model | a dialogue model directory |
| `I2EDIT_WEIGHTS` | `auto` (`ffhq` if present, else `demo`) | editing weight set name or directory; `none` = dialogue only |
| `I2EDIT_DEVICE` | `auto` (CUDA when available) | torch device for the editor |
| `I2EDIT_ALIGN` | `auto` (on, except for the demo set) | face alignment before inversion: `on`, `off`, `auto` |
| `I2EDIT_EDIT_STEPS` | the editor's default (300) | optimisation steps per edit |
| `I2EDIT_RATE_LIMIT` | `60/minute` | state-changing requests per client, counted in the database; `0`: off |
| `I2EDIT_WORKERS` | `1` | edit workers inside `i2edit serve` (0: rely on `i2edit worker`) |
| `I2EDIT_THREADS` | `64` | waitress request threads |
| `I2EDIT_TRUST_PROXY` | `0` | proxies in front of the app whose `X-Forwarded-*` headers count (`yes` = 1) |
| `I2EDIT_TORCH_THREADS` | `1` for `serve` (its dialogue process: 2 where there are 2 cores), torch's default for `worker` | CPU threads per torch op (see the README) |
| `I2EDIT_STALE_AFTER` | `20` | seconds without a heartbeat (database clock): a running job is abandoned |
| `I2EDIT_STORE` | `local` | images and cached inversions: `local` (the data dir) or `database` (shared) |
| `I2EDIT_DIALOGUE_TIMEOUT` | `30` | seconds a dialogue call may take; then its process is killed, the turn fails |
| `I2EDIT_MAX_QUEUED` | `3` | edits one owner may have waiting or running in other conversations at once |
| `I2EDIT_QUEUE_EXPIRY` | `900` | seconds a queued edit may wait for a worker before it fails as abandoned |
"""
from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_TEXT_CHARS = 1000
MAX_IMAGE_PIXELS = 40_000_000  # decoding guard against decompression bombs
MAX_STORED_SIDE = 2048  # uploads larger than this are downscaled before storage
STORE_KINDS = ("local", "database")

_PERIODS = {"second": 1, "minute": 60, "hour": 3600}


class SettingsError(ValueError):
    """A setting with a value the server cannot use."""


@dataclass(frozen=True)
class RateLimit:
    """At most `count` requests per `period_s` seconds; `count == 0` disables the limit."""

    count: int
    period_s: float

    @classmethod
    def parse(cls, text: str) -> "RateLimit":
        """Read `"60/minute"`, `"5/second"`, `"1000/hour"` or `"0"` (no limit)."""
        text = text.strip().lower()
        if text in ("0", "off", "none"):
            return cls(0, 60.0)
        match = re.fullmatch(r"(\d+)\s*/\s*(second|minute|hour)", text)
        if not match:
            raise SettingsError(f"rate limit {text!r} is not 'N/second', 'N/minute', 'N/hour' or '0'")
        return cls(int(match.group(1)), float(_PERIODS[match.group(2)]))

    def __str__(self) -> str:
        return "off" if self.count == 0 else f"{self.count} per {self.period_s:g} s"


@dataclass(frozen=True)
class Settings:
    """Everything the server and its workers need to know; see the module docstring."""

    data_dir: Path = Path("var")
    database_url: str | None = None
    dialogue_model: str | None = None
    weights: str = "auto"
    device: str = "auto"
    align: str = "auto"
    edit_steps: int | None = None
    rate_limit: RateLimit = field(default_factory=lambda: RateLimit(60, 60.0))
    workers: int = 1
    threads: int = 64
    trust_proxy: int = 0  # proxy hops whose X-Forwarded-* headers the app believes
    stale_after_s: float = 20.0
    torch_threads: int | None = None
    store: str = "local"
    dialogue_timeout_s: float = 30.0
    max_queued_per_owner: int = 3
    queue_expiry_s: float = 900.0

    def __post_init__(self) -> None:
        # Resolved once, against the working directory at start-up: a relative path would otherwise be read
        # against whatever directory a library resolves it from later (Flask's `send_file` uses the app's
        # package folder, which served every image as a 500).
        object.__setattr__(self, "data_dir", Path(self.data_dir).expanduser().resolve())
        object.__setattr__(self, "trust_proxy", int(self.trust_proxy))  # True/False: one hop / none
        if self.store not in STORE_KINDS:
            raise SettingsError(f"store {self.store!r}: must be one of {', '.join(STORE_KINDS)}")

    @property
    def db_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'i2edit.sqlite3'}"

    @property
    def images_dir(self) -> Path:
        return self.data_dir / "images"

    @property
    def editing_disabled(self) -> bool:
        return self.weights.strip().lower() in ("none", "off", "")

    def replace(self, **changes: Any) -> "Settings":
        """A copy with `changes` applied; `None` values are ignored (unset CLI flags)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Settings from `I2EDIT_*` variables in `env` (default `os.environ`), then `overrides`."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}

        def read(name: str, key: str, convert) -> None:
            raw = env.get(name)
            if raw is None or raw.strip() == "":
                return
            try:
                values[key] = convert(raw.strip())
            except (ValueError, SettingsError) as exc:
                raise SettingsError(f"{name}={raw!r}: {exc}") from None

        read("I2EDIT_DATA_DIR", "data_dir", Path)
        read("I2EDIT_DATABASE_URL", "database_url", str)
        read("I2EDIT_DIALOGUE_MODEL", "dialogue_model", str)
        read("I2EDIT_WEIGHTS", "weights", str)
        read("I2EDIT_DEVICE", "device", str)
        read("I2EDIT_ALIGN", "align", _align)
        read("I2EDIT_EDIT_STEPS", "edit_steps", _positive_int)
        read("I2EDIT_RATE_LIMIT", "rate_limit", RateLimit.parse)
        read("I2EDIT_WORKERS", "workers", _non_negative_int)
        read("I2EDIT_THREADS", "threads", _positive_int)
        read("I2EDIT_TRUST_PROXY", "trust_proxy", proxy_hops)
        read("I2EDIT_STALE_AFTER", "stale_after_s", _positive_float)
        read("I2EDIT_TORCH_THREADS", "torch_threads", _positive_int)
        read("I2EDIT_STORE", "store", store_kind)
        read("I2EDIT_DIALOGUE_TIMEOUT", "dialogue_timeout_s", _positive_float)
        read("I2EDIT_MAX_QUEUED", "max_queued_per_owner", _positive_int)
        read("I2EDIT_QUEUE_EXPIRY", "queue_expiry_s", _positive_float)
        return cls(**values).replace(**overrides)


def _align(text: str) -> str:
    if text.lower() not in ("auto", "on", "off"):
        raise SettingsError("must be auto, on or off")
    return text.lower()


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise SettingsError("must be a positive integer")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise SettingsError("must be 0 or more")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise SettingsError("must be a positive number")
    return value


def proxy_hops(text: str) -> int:
    """`I2EDIT_TRUST_PROXY`: a number of proxy hops, or yes/no (one hop / none)."""
    lowered = text.lower()
    if lowered in ("true", "yes", "on"):
        return 1
    if lowered in ("false", "no", "off"):
        return 0
    if not lowered.isdigit():
        raise SettingsError("must be the number of proxies in front of the server (0, 1, 2, ...) or yes/no")
    return int(lowered)


def store_kind(text: str) -> str:
    if text.lower() not in STORE_KINDS:
        raise SettingsError(f"must be one of {', '.join(STORE_KINDS)}")
    return text.lower()
