"""Settings, migrations, the image stores and upload decoding, the database clock, the shared rate limiter."""
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

from server.db import Database, db_now  # noqa: E402
from server.errors import ApiError  # noqa: E402
from server.images import (  # noqa: E402
    DatabaseImageStore, ImageRejected, LocalImageStore, decode_upload, open_store,
)
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
           "I2EDIT_WORKERS": "0", "I2EDIT_TRUST_PROXY": "yes", "I2EDIT_STALE_AFTER": "12.5",
           "I2EDIT_STORE": "database", "I2EDIT_DIALOGUE_TIMEOUT": "5", "I2EDIT_MAX_QUEUED": "2",
           "I2EDIT_QUEUE_EXPIRY": "60"}
    settings = Settings.from_env(env)
    assert settings.data_dir == Path("/srv/i2") and settings.db_url == "postgresql://u@h/db"
    assert (settings.weights, settings.device, settings.edit_steps, settings.workers) == ("demo", "cuda:1", 50, 0)
    assert settings.rate_limit == RateLimit(5, 1.0) and settings.trust_proxy == 1 and settings.stale_after_s == 12.5
    assert (settings.store, settings.dialogue_timeout_s, settings.max_queued_per_owner,
            settings.queue_expiry_s) == ("database", 5.0, 2, 60.0)
    assert Settings.from_env({"I2EDIT_TRUST_PROXY": "2"}).trust_proxy == 2
    assert Settings.from_env({"I2EDIT_TRUST_PROXY": "no"}).trust_proxy == 0


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
                                        ("I2EDIT_WORKERS", "-1"), ("I2EDIT_STORE", "s3"),
                                        ("I2EDIT_DIALOGUE_TIMEOUT", "0"), ("I2EDIT_MAX_QUEUED", "0")])
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
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == _head_revision()
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    assert set(inspect(db.engine).get_table_names()) >= {"photos", "conversations", "turns", "edit_jobs",
                                                         "stored_blobs", "rate_limit_windows"}
    db.dispose()


def _head_revision() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from server.db import MIGRATIONS_DIR

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    heads = ScriptDirectory.from_config(config).get_heads()
    assert len(heads) == 1, f"the migrations have several heads: {heads}"
    return heads[0]


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

@pytest.fixture(params=["local", "database"])
def store(request, tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    db.upgrade()
    yield open_store(Settings(data_dir=tmp_path, store=request.param), db)
    db.dispose()


def test_stores_name_entries_by_content(store):
    image = Image.new("RGB", (8, 8), (1, 2, 3))
    key = store.put(image)
    assert store.put(image.copy()) == key and len(key) == 68 and key.endswith(".png")
    assert store.exists(key) and store.open(key).getpixel((0, 0)) == (1, 2, 3)
    assert store.put(image, "jpg").endswith(".jpg")
    inversion = store.put_bytes(b"latent codes", "inv")
    assert inversion.endswith(".inv") and store.get_bytes(inversion) == b"latent codes"
    store.delete(key)
    assert not store.exists(key)
    with pytest.raises(KeyError):
        store.get_bytes(key)
    for bad in ("../x.png", "a" * 64 + ".exe", "", "/etc/passwd", "A" * 64 + ".png"):
        assert not store.exists(bad)
        with pytest.raises(KeyError):
            store.get_bytes(bad)
    with pytest.raises(KeyError):
        store.put_bytes(b"x", "exe")


def test_the_local_store_keeps_files_under_two_hex_digits(tmp_path):
    store = LocalImageStore(tmp_path)
    key = store.put(Image.new("RGB", (4, 4)))
    assert store.path(key) == tmp_path / key[:2] / key and store.path(key).is_file()


def test_the_database_store_is_shared_by_every_process_on_the_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.sqlite3'}"
    first, second = Database(url), Database(url)
    first.upgrade()
    key = DatabaseImageStore(first).put(Image.new("RGB", (4, 4), (9, 8, 7)))
    assert DatabaseImageStore(second).open(key).getpixel((0, 0)) == (9, 8, 7)
    assert DatabaseImageStore(second).put_bytes(DatabaseImageStore(first).get_bytes(key), "png") == key
    first.dispose()
    second.dispose()


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

@pytest.fixture
def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    database.upgrade()
    yield database
    database.dispose()


def test_rate_limiter_window_slides(db):
    now = [1000.0]  # the start of a 10 s window
    limiter = RateLimiter(db, RateLimit(2, 10.0), clock=lambda: now[0])
    limiter.hit("a")
    limiter.hit("a")
    limiter.hit("b")  # per client
    with pytest.raises(ApiError) as info:
        limiter.hit("a")
    # the two hits weigh 2 until their window ends, then fade over the next one: 1 left at its middle
    assert info.value.status == 429 and info.value.headers["Retry-After"] == "15"
    now[0] = 1012.0
    with pytest.raises(ApiError):
        limiter.hit("a")  # 2 x 0.8 + 1 > 2
    now[0] = 1015.0
    limiter.hit("a")
    RateLimiter(db, RateLimit(0, 1.0)).hit("a")  # 0 = off


def test_rate_limits_are_shared_by_processes_on_one_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.sqlite3'}"
    web_1, web_2 = Database(url), Database(url)
    web_1.upgrade()
    first, second = (RateLimiter(db, RateLimit(3, 60.0), clock=lambda: 60.0) for db in (web_1, web_2))
    first.hit("10.0.0.1")
    second.hit("10.0.0.1")
    first.hit("10.0.0.1")
    with pytest.raises(ApiError):
        second.hit("10.0.0.1")  # the other process's hits count
    assert first.forget_old() == 0
    later = RateLimiter(web_1, RateLimit(3, 60.0), clock=lambda: 200.0)
    assert later.forget_old() == 1  # two windows on, the counter is dropped
    later.hit("10.0.0.1")
    web_1.dispose()
    web_2.dispose()


def test_the_database_clock(db):
    from sqlalchemy import select

    from server.models import utcnow

    with db.connect() as conn:
        now, earlier = conn.execute(select(db_now(), db_now(-90))).one()
    assert abs((now - utcnow()).total_seconds()) < 5  # this machine's clock and SQLite's are one here
    assert abs((now - earlier).total_seconds() - 90) < 0.01


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
