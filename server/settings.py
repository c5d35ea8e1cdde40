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
| `I2EDIT_RATE_LIMIT` | `60/minute` | state-changing API requests per client; `0` disables |
| `I2EDIT_WORKERS` | `1` | edit workers inside `i2edit serve` (0: rely on `i2edit worker`) |
| `I2EDIT_THREADS` | `64` | waitress request threads |
| `I2EDIT_TRUST_PROXY` | `0` | take the client address from `X-Forwarded-For` (behind a proxy) |
| `I2EDIT_TORCH_THREADS` | `1` for `serve` (its dialogue process: 2 where there are 2 cores), torch's default for `worker` | CPU threads per torch op (see the README) |
| `I2EDIT_STALE_AFTER` | `60` | seconds without a heartbeat before a running job counts as abandoned |
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
    trust_proxy: bool = False
    stale_after_s: float = 60.0
    torch_threads: int | None = None

    def __post_init__(self) -> None:
        # Resolved once, against the working directory at start-up: a relative path would otherwise be read
        # against whatever directory a library resolves it from later (Flask's `send_file` uses the app's
        # package folder, which served every image as a 500).
        object.__setattr__(self, "data_dir", Path(self.data_dir).expanduser().resolve())

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
    def inversions_dir(self) -> Path:
        return self.data_dir / "inversions"

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
        read("I2EDIT_TRUST_PROXY", "trust_proxy", _boolean)
        read("I2EDIT_STALE_AFTER", "stale_after_s", _positive_float)
        read("I2EDIT_TORCH_THREADS", "torch_threads", _positive_int)
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


def _boolean(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise SettingsError("must be 1/0, true/false, yes/no or on/off")
