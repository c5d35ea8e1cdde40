"""The server on PostgreSQL: migrations, the API flow with an edit job, and exclusive claims.

Uses `I2EDIT_TEST_POSTGRES_URL` when set; otherwise starts a throwaway PostgreSQL cluster (Unix socket only)
when `initdb` and `pg_ctl` are installed; otherwise skips and says why (fails when `.ci/run` requires it).
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from server_fixtures import FakeDialogue, fake_editing, make_settings, wait_for  # noqa: E402

from alembic.autogenerate import compare_metadata  # noqa: E402
from alembic.migration import MigrationContext  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from server.app import create_app, shutdown, start  # noqa: E402
from server.db import Database  # noqa: E402
from server.models import Base  # noqa: E402
from server.worker import claim_job  # noqa: E402


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@pytest.fixture(scope="module")
def server_url(system_parts):
    system_parts.import_module("psycopg2", "psycopg2 is not installed (pip install -e '.[postgres]')")
    if os.environ.get("I2EDIT_TEST_POSTGRES_URL"):
        yield os.environ["I2EDIT_TEST_POSTGRES_URL"]
        return
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        system_parts.missing("no PostgreSQL server: set I2EDIT_TEST_POSTGRES_URL or install postgresql "
                             "(initdb, pg_ctl)")
    root = Path(tempfile.mkdtemp(prefix="i2edit-pg-"))  # directly in /tmp: pytest's tmp is private to root
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        if shutil.which("runuser") is None:
            system_parts.missing("running as root without runuser: cannot start a PostgreSQL cluster")
        try:
            subprocess.run(["id", "postgres"], check=True, capture_output=True)
        except subprocess.CalledProcessError:
            system_parts.missing("running as root and there is no 'postgres' user to run PostgreSQL as")
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    options = f"-c listen_addresses='' -c unix_socket_directories={sock} -c fsync=off"
    try:
        subprocess.run([*as_user, initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync"],
                       check=True, capture_output=True, text=True)
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-o", options, "-w", "-l", str(root / "log"), "start"],
                       check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(root, ignore_errors=True)
        system_parts.missing(f"could not start a throwaway PostgreSQL cluster: "
                             f"{(exc.stderr or exc.stdout).strip()}")
    try:
        yield f"postgresql+psycopg2://postgres@/postgres?host={sock}"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def database_url(server_url):
    """A fresh, empty database on the server for one test."""
    name = f"i2edit_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    base, _, query = server_url.partition("?")
    yield f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


def test_migrations_on_postgres(database_url):
    db = Database(database_url)
    db.upgrade()
    db.upgrade()
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    db.dispose()


def test_chat_and_edit_on_postgres(tmp_path, database_url):
    samples = tmp_path / "ada.png"
    from PIL import Image

    Image.new("RGB", (32, 32), (9, 9, 9)).save(samples)
    app = create_app(make_settings(tmp_path, database_url=database_url), dialogue=FakeDialogue(),
                     editing=fake_editing(samples={"ada": samples}))
    start(app)
    try:
        client = app.test_client()
        cid = client.post("/api/conversations", json={"sample": "ada"}).get_json()["id"]
        body = client.post(f"/api/conversations/{cid}/turns", json={"text": "smile"}).get_json()["turn"]
        assert body["belief_state"] == {"expression": ["smiling"]}
        done = wait_for(lambda: (j := client.get(f"/api/jobs/{body['job']['id']}").get_json())["status"] == "done"
                        and j)
        assert client.get(done["image_url"]).status_code == 200
        client.post(f"/api/conversations/{cid}/turns", json={"text": "black hair"})
        assert client.post(f"/api/conversations/{cid}/undo").get_json()["head"] == 0
    finally:
        shutdown(app)


def test_claims_are_exclusive_on_postgres(tmp_path, database_url):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_server_worker import queue_jobs  # the same rows as the SQLite test

    db = Database(database_url)
    db.upgrade()
    ids = queue_jobs(db, 30)
    claimed: list[str] = []
    lock = threading.Lock()

    def claimer(name: str):
        while (job_id := claim_job(db, f"h:1:{name}:x")) is not None:
            with lock:
                claimed.append(job_id)

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == sorted(ids)
    db.dispose()
