"""Faults a deployment hits, each with the behaviour that holds it: database errors in the worker, an editor that
cannot load, a hung dialogue process, dead workers' jobs on a timer by the database's clock, proxies, two web
processes on one database (undo, rate limit), the per-owner cap, queue expiry and position, health endpoints,
and an app factory that starts nothing."""
from __future__ import annotations

import http.client
import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

sys.path.insert(0, str(Path(__file__).parent))
from server_fixtures import FakeDialogue, LiveServer, fake_editing, make_settings, png_bytes, wait_for  # noqa: E402

from server import worker as worker_module  # noqa: E402
from server.app import create_app, shutdown, start  # noqa: E402
from server.db import Database, db_now  # noqa: E402
from server.editing_setup import EditingSetup  # noqa: E402
from server.jobs import claim_job, recover_stale_jobs  # noqa: E402
from server.models import EditJob, utcnow  # noqa: E402
from server.settings import RateLimit  # noqa: E402
from server.worker import _Heartbeat  # noqa: E402

I2EDIT = [sys.executable, "-m", "server.cli"]


@pytest.fixture
def samples(tmp_path):
    folder = tmp_path / "samples"
    folder.mkdir()
    Image.new("RGB", (40, 40), (10, 200, 30)).save(folder / "ada.png")
    return {"ada": folder / "ada.png"}


@pytest.fixture
def make_app(tmp_path, samples):
    """Started apps on `tmp_path`'s data dir (two of them share its database: two web processes)."""
    apps = []

    def make(editing=None, dialogue=None, started: bool = True, **settings):
        app = create_app(make_settings(tmp_path, **settings), dialogue=dialogue or FakeDialogue(),
                         editing=editing or fake_editing(samples=samples))
        if started:
            start(app)
        apps.append(app)
        return app

    yield make
    for app in apps:
        shutdown(app)


def new_turn(client, text: str, cid: str | None = None):
    if cid is None:
        cid = client.post("/api/conversations", json={"sample": "ada"}).get_json()["id"]
    response = client.post(f"/api/conversations/{cid}/turns", json={"text": text})
    return cid, response


def job_of(client, job_id: str) -> dict:
    return client.get(f"/api/jobs/{job_id}").get_json()


# --- the edit worker ------------------------------------------------------------------------------

def test_a_database_error_does_not_end_the_in_process_worker(make_app, monkeypatch):
    real_claim = worker_module.claim_job
    failures = []

    def locked_twice(db, worker_id):
        if len(failures) < 2:
            failures.append(worker_id)
            raise OperationalError("UPDATE edit_jobs ...", {}, Exception("database is locked"))
        return real_claim(db, worker_id)

    monkeypatch.setattr(worker_module, "claim_job", locked_twice)
    app = make_app()
    client = app.test_client()
    _, response = new_turn(client, "smile")
    job = response.get_json()["turn"]["job"]
    done = wait_for(lambda: (j := job_of(client, job["id"]))["status"] == "done" and j, timeout=30)
    assert len(failures) == 2 and done["image_url"]
    worker = app.extensions["i2edit"].workers[0]
    assert worker._thread.is_alive() and worker.problem is None


def broken_editing(samples) -> EditingSetup:
    def factory():
        raise RuntimeError("CUDA error: no kernel image is available for execution on the device")

    return EditingSetup(factory=factory, weights_id="broken", detail="Editing with broken weights.",
                        samples=samples)


def test_a_worker_whose_editor_cannot_load_claims_nothing_and_says_so(make_app, samples):
    app = make_app(editing=broken_editing(samples))
    client = app.test_client()
    jobs = [new_turn(client, text)[1].get_json()["turn"]["job"] for text in ("smile", "black hair", "lipstick")]
    worker = app.extensions["i2edit"].workers[0]
    wait_for(lambda: worker.problem is not None and not worker._thread.is_alive(), timeout=30)
    assert "could not be loaded" in worker.problem and "no kernel image" in worker.problem
    time.sleep(0.5)
    assert [job_of(client, j["id"])["status"] for j in jobs] == ["queued"] * 3  # left for a healthy worker
    with app.extensions["i2edit"].db.read() as session:
        assert {row.attempts for row in session.scalars(select(EditJob))} == {0}
    ready = client.get("/readyz")
    assert ready.status_code == 503 and not ready.get_json()["checks"]["edit_workers"]["ok"]
    assert "no kernel image" in ready.get_json()["checks"]["edit_workers"]["detail"]
    assert client.get("/healthz").status_code == 200  # alive, just not ready


@pytest.fixture(scope="module")
def fixture_weights(tmp_path_factory):
    from editing.weights import fixtures

    out = tmp_path_factory.mktemp("weights")
    fixtures.make_fixtures(out, size=32)
    return out


@pytest.mark.slow
def test_i2edit_worker_exits_non_zero_when_its_editor_cannot_load(tmp_path, fixture_weights, make_app):
    front = make_app(workers=0)
    client = front.test_client()
    _, response = new_turn(client, "smile")
    job = response.get_json()["turn"]["job"]
    env = {k: v for k, v in os.environ.items() if k != "I2EDIT_DEBUG"}
    result = subprocess.run(  # a GPU this machine does not have: the editor cannot be built
        [*I2EDIT, "worker", "--data-dir", str(tmp_path / "data"), "--weights", str(fixture_weights),
         "--align", "off", "--device", "cuda:7", "--torch-threads", "1"],
        capture_output=True, text=True, env=env, timeout=180)
    assert result.returncode == 1, result.stderr
    assert "error: the editor could not be loaded" in result.stderr and "Traceback" not in result.stderr
    assert job_of(client, job["id"])["status"] == "queued"


# --- the dialogue process -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_dialogue(tmp_path_factory) -> Path:
    from dialogue.model import DialogueModel

    texts = ["make her smile please", "now black hair", "Done. What else do you want?",
             "[expression] smiling [hair color] black hair", "translate dialogue to belief state:"] * 20
    directory = tmp_path_factory.mktemp("tiny-dialogue")
    DialogueModel.from_preset("tiny", texts).save_pretrained(directory)
    return directory


@pytest.mark.slow
def test_a_hung_dialogue_process_holds_no_conversation(tmp_path, tiny_dialogue, samples):
    app = create_app(make_settings(tmp_path, dialogue_model=str(tiny_dialogue), dialogue_timeout_s=2.0,
                                   torch_threads=1),
                     editing=fake_editing(samples=samples))
    start(app)
    try:
        client = app.test_client()
        cid = client.post("/api/conversations", json={}).get_json()["id"]
        process = app.extensions["i2edit"].dialogue.model
        hung = process._process
        os.kill(hung.pid, signal.SIGSTOP)  # alive, holding its pipe, answering nothing
        started = time.monotonic()
        response = client.post(f"/api/conversations/{cid}/turns", json={"text": "make her smile please"})
        assert response.status_code == 503 and "did not answer within 2 s" in response.get_json()["detail"]
        assert time.monotonic() - started < 15
        hung.join(5)
        assert not hung.is_alive()  # killed, not left stopped
        again = client.post(f"/api/conversations/{cid}/turns", json={"text": "make her smile please"})
        assert again.status_code == 201  # not 409: the conversation was let go; a new child answers
        assert process._process.pid != hung.pid
        assert [t["index"] for t in client.get(f"/api/conversations/{cid}").get_json()["turns"]] == [0]
    finally:
        shutdown(app)


# --- abandoned jobs: on a timer, by the database's clock ------------------------------------------

def test_a_dead_workers_job_is_recovered_while_every_worker_is_busy(make_app, samples):
    gate = threading.Event()
    app = make_app(editing=fake_editing(samples=samples, gate=gate), stale_after_s=2.0)
    client = app.test_client()
    _, busy = new_turn(client, "smile")
    busy_job = busy.get_json()["turn"]["job"]
    wait_for(lambda: job_of(client, busy_job["id"])["status"] == "running")
    _, orphan = new_turn(client, "black hair")  # another conversation: queued behind the busy worker
    orphan_job = orphan.get_json()["turn"]["job"]
    db = app.extensions["i2edit"].db
    with db.write() as session:  # as if a worker on another machine took it and died 10 s ago
        session.execute(update(EditJob).where(EditJob.id == orphan_job["id"])
                        .values(status="running", worker_id="elsewhere:1:x:w:0123456789ab", attempts=1,
                                heartbeat_at=db_now(-10)))
    started = time.monotonic()
    requeued = wait_for(lambda: (j := job_of(client, orphan_job["id"]))["status"] == "queued" and j, timeout=10)
    assert "stopped" in requeued["error"] and time.monotonic() - started < 5
    gate.set()
    wait_for(lambda: job_of(client, orphan_job["id"])["status"] == "done", timeout=30)


def test_heartbeats_and_staleness_use_the_database_clock(tmp_path, monkeypatch):
    from test_server_worker import queue_jobs

    db = Database(make_settings(tmp_path).db_url)
    db.upgrade()
    (job_id,) = queue_jobs(db, 1)
    behind = utcnow() - timedelta(hours=1)
    monkeypatch.setattr(worker_module, "utcnow", lambda: behind)  # the worker's host clock is an hour behind
    worker_id = "elsewhere:1:x:w:0123456789ab"
    assert claim_job(db, worker_id) == job_id
    heartbeat = _Heartbeat(db, job_id, worker_id, threading.Event(), interval_s=0.2)
    heartbeat.start()
    time.sleep(0.6)
    heartbeat.stop()
    with db.connect() as conn:
        stamped, now = conn.execute(select(EditJob.heartbeat_at, db_now()).where(EditJob.id == job_id)).one()
    assert timedelta(0) <= now - stamped < timedelta(seconds=5)
    assert recover_stale_jobs(db, stale_after_s=60) == []  # fresh by the one clock that counts
    with db.read() as session:
        assert session.get(EditJob, job_id).status == "running"
    db.dispose()


# --- proxies --------------------------------------------------------------------------------------

def test_behind_proxies_the_client_cannot_choose_its_address(make_app):
    client = make_app(rate_limit=RateLimit(2, 60.0), trust_proxy=1).test_client()
    for spoof in ("1.1.1.1", "2.2.2.2"):  # the client writes any first entry; the proxy appends what it saw
        response = client.post("/api/conversations", json={}, headers={"X-Forwarded-For": f"{spoof}, 203.0.113.7"})
        assert response.status_code == 201
    third = client.post("/api/conversations", json={}, headers={"X-Forwarded-For": "3.3.3.3, 203.0.113.7"})
    assert third.status_code == 429
    assert client.post("/api/conversations", json={},
                       headers={"X-Forwarded-For": "203.0.113.7, 198.51.100.2"}).status_code == 201


def test_two_proxy_hops_and_no_proxy(make_app, tmp_path):
    two = make_app(rate_limit=RateLimit(1, 60.0), trust_proxy=2).test_client()
    chain = {"X-Forwarded-For": "1.1.1.1, 203.0.113.7, 10.0.0.5"}  # client's entry, edge proxy, inner proxy
    assert two.post("/api/conversations", json={}, headers=chain).status_code == 201
    chain["X-Forwarded-For"] = "9.9.9.9, 203.0.113.7, 10.0.0.6"
    assert two.post("/api/conversations", json={}, headers=chain).status_code == 429


def test_without_a_trusted_proxy_forwarded_headers_are_ignored_under_waitress(make_app):
    app = make_app(rate_limit=RateLimit(1, 60.0))
    server = LiveServer(app)
    try:
        statuses = []
        for spoof in ("1.1.1.1", "2.2.2.2"):
            conn = http.client.HTTPConnection("127.0.0.1", int(server.url.rsplit(":", 1)[1]), timeout=30)
            conn.request("POST", "/api/conversations", body="{}",
                         headers={"Content-Type": "application/json", "X-Forwarded-For": spoof})
            statuses.append(conn.getresponse().status)
            conn.close()
        assert statuses == [201, 429]
    finally:
        server.stop()


@pytest.mark.slow
def test_serve_behind_one_proxy_counts_the_address_the_proxy_saw(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "I2EDIT_DEBUG"}
    env["I2EDIT_DIALOGUE_MODEL"] = str(tmp_path / "no-model")
    proc = subprocess.Popen([*I2EDIT, "serve", "--port", "0", "--data-dir", str(tmp_path / "data"), "--weights",
                             "none", "--trust-proxy", "1", "--rate-limit", "2/minute"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        for line in proc.stdout:
            match = re.search(r"running at http://127\.0\.0\.1:(\d+)/", line)
            if match:
                break
        else:
            raise AssertionError("serve printed no URL")
        threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
        statuses = []
        for spoof in ("1.1.1.1", "2.2.2.2", "3.3.3.3"):
            conn = http.client.HTTPConnection("127.0.0.1", int(match.group(1)), timeout=30)
            conn.request("POST", "/api/conversations", body="{}",
                         headers={"Content-Type": "application/json", "X-Forwarded-For": f"{spoof}, 203.0.113.7"})
            statuses.append(conn.getresponse().status)
            conn.close()
        assert statuses == [201, 201, 429]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


# --- two web processes on one database ------------------------------------------------------------

def test_an_undo_from_another_web_process_during_a_turn_is_never_lost(make_app):
    slow = FakeDialogue(delay_s=1.0)
    web_1 = make_app(dialogue=slow, workers=0)
    web_2 = make_app(workers=0)  # same data dir: the same database, another Runtime (its own locks)
    client_1 = web_1.test_client()
    cid, _ = new_turn(client_1, "smile")
    new_turn(client_1, "black hair", cid=cid)
    client_2 = web_2.test_client()
    client_2.set_cookie("i2edit_owner", client_1.get_cookie("i2edit_owner").value)
    result = {}
    thread = threading.Thread(target=lambda: result.update(
        turn=client_1.post(f"/api/conversations/{cid}/turns", json={"text": "lipstick"})))
    thread.start()
    wait_for(lambda: slow.calls >= 3)  # the turn is with the (slow) dialogue model now
    undo = client_2.post(f"/api/conversations/{cid}/undo")
    thread.join()
    turn = result["turn"]
    assert sorted([turn.status_code, undo.status_code]) in ([200, 409], [201, 409])  # exactly one wins
    view = client_2.get(f"/api/conversations/{cid}").get_json()
    if undo.status_code == 200:  # the undo won: the late turn was refused and nothing of it stored
        assert view["head"] == 0 and [t["user"] for t in view["turns"]] == ["smile", "black hair"]
    else:
        assert view["head"] == 2 and view["path"] == [0, 1, 2]


def test_rate_limits_are_shared_by_web_processes(make_app):
    clients = [make_app(rate_limit=RateLimit(3, 60.0), workers=0).test_client() for _ in range(2)]
    statuses = [clients[i % 2].post("/api/conversations", json={}).status_code for i in range(4)]
    assert statuses == [201, 201, 201, 429]


def test_images_are_shared_through_the_database_store(tmp_path, samples):
    url = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    apps = [create_app(make_settings(tmp_path / name, database_url=url, store="database", workers=0),
                       dialogue=FakeDialogue(), editing=fake_editing(samples=samples)) for name in ("a", "b")]
    for app in apps:
        start(app)
    try:
        first, second = (app.test_client() for app in apps)
        created = first.post("/api/conversations", data={"photo": (io.BytesIO(png_bytes()), "f.png")},
                             content_type="multipart/form-data").get_json()
        second.set_cookie("i2edit_owner", first.get_cookie("i2edit_owner").value)
        image = second.get(created["photo"]["url"])
        assert image.status_code == 200 and image.data == first.get(created["photo"]["url"]).data
        assert not (tmp_path / "a" / "data" / "images").exists()  # nothing in either data dir
    finally:
        for app in apps:
            shutdown(app)


# --- the queue: cap, expiry, position ---------------------------------------------------------------

def test_an_owner_may_have_a_few_edits_pending_at_once(make_app, samples):
    gate = threading.Event()
    client = make_app(editing=fake_editing(samples=samples, gate=gate), max_queued_per_owner=2).test_client()
    first = [new_turn(client, text)[1] for text in ("smile", "black hair")]
    assert [r.status_code for r in first] == [201, 201]
    cid, third = new_turn(client, "lipstick")
    assert third.status_code == 429 and third.get_json()["error"] == "too_many_edits"
    assert client.get(f"/api/conversations/{cid}").get_json()["turns"] == []  # nothing stored
    other_owner = client.application.test_client()
    assert new_turn(other_owner, "lipstick")[1].status_code == 201
    _, fourth = new_turn(client, "bangs")
    assert fourth.status_code == 429
    gate.set()
    for response in first:
        wait_for(lambda: job_of(client, response.get_json()["turn"]["job"]["id"])["status"] == "done")
    assert new_turn(client, "lipstick", cid=cid)[1].status_code == 201


def test_an_edit_nobody_takes_expires_visibly(make_app):
    client = make_app(workers=0, stale_after_s=2.0, queue_expiry_s=1.0).test_client()
    _, response = new_turn(client, "smile")
    job = response.get_json()["turn"]["job"]
    failed = wait_for(lambda: (j := job_of(client, job["id"]))["status"] == "failed" and j, timeout=15)
    assert "no edit worker took this edit" in failed["error"] and failed["queue_position"] is None


def test_the_job_json_says_where_a_queued_edit_stands(make_app):
    app = make_app(workers=0)
    clients = [app.test_client() for _ in range(3)]  # three people
    jobs = [new_turn(c, text)[1].get_json()["turn"]["job"] for c, text in zip(clients, ("smile", "sad", "bangs"))]
    assert [j["queue_position"] for j in jobs] == [1, 2, 3]
    claim_job(app.extensions["i2edit"].db, "elsewhere:1:x:w:0123456789ab")
    assert [job_of(c, j["id"])["queue_position"] for c, j in zip(clients, jobs)] == [None, 1, 2]
    assert job_of(clients[0], jobs[0]["id"])["status"] == "running"


# --- health and start-up --------------------------------------------------------------------------

def test_health_endpoints(make_app):
    app = make_app(started=False)
    client = app.test_client()
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 503
    start(app)
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["ready"] is True
    assert set(ready.get_json()["checks"]) == {"started", "database", "dialogue", "edit_workers"}


def test_the_app_factory_starts_nothing(tmp_path, samples):
    before = set(threading.enumerate())
    settings = make_settings(tmp_path)
    app = create_app(settings, dialogue=FakeDialogue(), editing=fake_editing(samples=samples))
    assert not Path(settings.db_url.removeprefix("sqlite:///")).exists()  # no database touched
    assert not set(threading.enumerate()) - before  # no worker, janitor or dialogue thread
    assert app.extensions["i2edit"].workers == [] and app.extensions["i2edit"].dialogue is None
    rt = start(app)
    assert len(rt.workers) == 1 and rt.dialogue is not None and rt.sample_keys
    assert {t.name for t in set(threading.enumerate()) - before} >= {"job-janitor", "dialogue-runner"}
    shutdown(app)
    wait_for(lambda: not set(threading.enumerate()) - before, timeout=15)


def test_readyz_reports_an_unreachable_database(make_app, monkeypatch):
    app = make_app(workers=0)

    def unreachable():
        raise OperationalError("SELECT 1", {}, Exception("could not connect to server: Connection refused"))

    monkeypatch.setattr(app.extensions["i2edit"].db, "ping", unreachable)
    ready = app.test_client().get("/readyz")
    assert ready.status_code == 503
    assert "Connection refused" in ready.get_json()["checks"]["database"]["detail"]
