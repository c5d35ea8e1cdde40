"""The server on PostgreSQL: migrations, the API flow with an edit job, and exclusive claims.

Uses `I2EDIT_TEST_POSTGRES_URL` when set; otherwise starts a throwaway PostgreSQL cluster (Unix socket only)
when `initdb` and `pg_ctl` are installed; otherwise skips and says why (fails when `.ci/run` requires it).
"""
from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from server_fixtures import FakeDialogue, fake_editing, make_settings, wait_for  # noqa: E402
from topology import PostgresUnavailable, create_database, drop_database, postgres_cluster  # noqa: E402

from alembic.autogenerate import compare_metadata  # noqa: E402
from alembic.migration import MigrationContext  # noqa: E402

from server.app import create_app, shutdown, start  # noqa: E402
from server.db import Database  # noqa: E402
from server.models import Base  # noqa: E402
from server.jobs import claim_job  # noqa: E402


@pytest.fixture(scope="module")
def server_url(system_parts):
    try:
        with postgres_cluster() as url:
            yield url
    except PostgresUnavailable as exc:
        system_parts.missing(str(exc))


@pytest.fixture
def database_url(server_url):
    """A fresh, empty database on the server for one test."""
    url = create_database(server_url)
    yield url
    drop_database(server_url, url)


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
