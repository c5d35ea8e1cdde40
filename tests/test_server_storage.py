"""Settings, migrations, the image store and upload decoding, the rate limiter."""
from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from PIL import Image
from sqlalchemy import inspect, text

sys.path.insert(0, str(Path(__file__).parent))
from server_fixtures import png_bytes  # noqa: E402

from server.db import Database  # noqa: E402
from server.errors import ApiError  # noqa: E402
from server.images import ImageRejected, ImageStore, decode_upload  # noqa: E402
from server.models import Base  # noqa: E402
from server.security import RateLimiter, check_same_origin  # noqa: E402
from server.settings import MAX_STORED_SIDE, RateLimit, Settings, SettingsError  # noqa: E402


# --- settings -------------------------------------------------------------------------------------

def test_settings_defaults_and_environment():
    default = Settings.from_env({})
    assert default.data_dir == Path("var").resolve() and default.weights == "auto" and default.workers == 1
    assert default.db_url == f"sqlite:///{Path('var/i2edit.sqlite3').resolve()}"
    env = {"I2EDIT_DATA_DIR": "/srv/i2", "I2EDIT_DATABASE_URL": "postgresql://u@h/db", "I2EDIT_WEIGHTS": "demo",
           "I2EDIT_DEVICE": "cuda:1", "I2EDIT_EDIT_STEPS": "50", "I2EDIT_RATE_LIMIT": "5/second",
           "I2EDIT_WORKERS": "0", "I2EDIT_TRUST_PROXY": "yes", "I2EDIT_STALE_AFTER": "12.5"}
    settings = Settings.from_env(env)
    assert settings.data_dir == Path("/srv/i2") and settings.db_url == "postgresql://u@h/db"
    assert (settings.weights, settings.device, settings.edit_steps, settings.workers) == ("demo", "cuda:1", 50, 0)
    assert settings.rate_limit == RateLimit(5, 1.0) and settings.trust_proxy and settings.stale_after_s == 12.5


def test_a_relative_data_dir_is_made_absolute_once_against_the_start_up_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({"I2EDIT_DATA_DIR": "var"})
    monkeypatch.chdir("/")  # a library resolving paths against another directory later must not matter
    assert settings.data_dir == tmp_path.resolve() / "var" and settings.images_dir.is_absolute()
    assert Settings(data_dir=Path("~/i2")).data_dir == Path.home() / "i2"


def test_cli_overrides_beat_the_environment_and_none_is_ignored():
    settings = Settings.from_env({"I2EDIT_DATA_DIR": "/a", "I2EDIT_WORKERS": "3"}, data_dir=Path("/b"),
                                 workers=None)
    assert settings.data_dir == Path("/b") and settings.workers == 3


@pytest.mark.parametrize("name,value", [("I2EDIT_EDIT_STEPS", "-3"), ("I2EDIT_EDIT_STEPS", "many"),
                                        ("I2EDIT_RATE_LIMIT", "lots"), ("I2EDIT_TRUST_PROXY", "maybe"),
                                        ("I2EDIT_WORKERS", "-1")])
def test_bad_settings_name_the_variable(name, value):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_rate_limit_parsing():
    assert RateLimit.parse("60/minute") == RateLimit(60, 60.0)
    assert RateLimit.parse("1000 / hour") == RateLimit(1000, 3600.0)
    assert RateLimit.parse("0").count == 0


# --- migrations -----------------------------------------------------------------------------------

def test_migrations_create_the_schema_the_models_describe(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    db.upgrade()
    db.upgrade()  # idempotent
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0002"
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    assert set(inspect(db.engine).get_table_names()) >= {"photos", "conversations", "turns", "edit_jobs"}
    db.dispose()


def test_upgrade_keeps_existing_rows(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.sqlite3'}"
    db = Database(url)
    db.upgrade()
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO photos (image_key, width, height, source, created_at) "
                          "VALUES ('k', 1, 1, 'upload', '2025-01-01')"))
    db.dispose()
    again = Database(url)
    again.upgrade()
    with again.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM photos")).scalar() == 1
    again.dispose()


# --- images ---------------------------------------------------------------------------------------

def test_store_names_files_by_content(tmp_path):
    store = ImageStore(tmp_path)
    image = Image.new("RGB", (8, 8), (1, 2, 3))
    key = store.put(image)
    assert store.put(image.copy()) == key and len(key) == 68 and key.endswith(".png")
    assert store.path(key) == tmp_path / key[:2] / key and store.exists(key)
    assert store.open(key).getpixel((0, 0)) == (1, 2, 3)
    assert store.put(image, "jpg").endswith(".jpg")
    for bad in ("../x.png", "a" * 64 + ".exe", "", "/etc/passwd"):
        assert not store.exists(bad)
        with pytest.raises(KeyError):
            store.path(bad)


def test_decode_applies_exif_rotation_and_converts_to_rgb():
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.new("RGB", (40, 20), (255, 0, 0)).save(buffer, format="JPEG", exif=exif.tobytes())
    image = decode_upload(buffer.getvalue())
    assert image.size == (20, 40) and image.mode == "RGB"
    rgba = io.BytesIO()
    Image.new("RGBA", (10, 10), (0, 0, 255, 128)).save(rgba, format="PNG")
    assert decode_upload(rgba.getvalue()).mode == "RGB"


def test_decode_downscales_big_photos():
    image = decode_upload(png_bytes((MAX_STORED_SIDE * 2, 100)))
    assert image.size == (MAX_STORED_SIDE, 50)


def test_decode_refuses_bombs_and_junk():
    bomb = io.BytesIO()
    Image.new("L", (9_000, 9_000)).save(bomb, format="PNG")  # 81 MP: over our limit, under PIL's
    with pytest.raises(ImageRejected, match="megapixels") as info:
        decode_upload(bomb.getvalue())
    assert info.value.status == 413
    for junk in (b"GIF89a....", b"\x89PNG\r\n\x1a\n" + b"\0" * 40, b"<svg xmlns='http://www.w3.org/2000/svg'/>"):
        with pytest.raises(ImageRejected) as info:
            decode_upload(junk)
        assert info.value.status == 400


# --- security helpers -----------------------------------------------------------------------------

def test_rate_limiter_window_slides():
    now = [0.0]
    limiter = RateLimiter(RateLimit(2, 10.0), clock=lambda: now[0])
    limiter.hit("a")
    limiter.hit("a")
    limiter.hit("b")  # per client
    with pytest.raises(ApiError) as info:
        limiter.hit("a")
    assert info.value.status == 429 and info.value.headers["Retry-After"] == "10"
    now[0] = 10.5
    limiter.hit("a")
    RateLimiter(RateLimit(0, 1.0)).hit("a")  # 0 = off


class _Req:
    def __init__(self, headers, host="localhost:8000"):
        self.headers, self.host = headers, host


def test_same_origin_check():
    check_same_origin(_Req({}))
    check_same_origin(_Req({"Origin": "http://localhost:8000", "Sec-Fetch-Site": "same-origin"}))
    check_same_origin(_Req({"Sec-Fetch-Site": "none"}))
    for headers in ({"Origin": "http://localhost:9999"}, {"Sec-Fetch-Site": "same-site"},
                    {"Origin": "https://attacker.example", "Sec-Fetch-Site": "cross-site"}):
        with pytest.raises(ApiError) as info:
            check_same_origin(_Req(headers))
        assert info.value.status == 403
