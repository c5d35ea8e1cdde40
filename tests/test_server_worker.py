"""The edit-job worker: atomic claiming across threads and processes, progress, cancellation, failures,
recovery of jobs left running by a dead process, and the restart test (kill -9 a worker mid-edit, start again)."""
from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).parent))
from server_fixtures import FakeDialogue, FakeEditor, fake_editing, make_settings, wait_for  # noqa: E402

from server.app import create_app, shutdown, start  # noqa: E402
from server.db import Database  # noqa: E402
from server.jobs import MACHINE_KEY, claim_job, recover_stale_jobs  # noqa: E402
from server.models import Conversation, EditJob, Photo, Turn, new_id, utcnow  # noqa: E402

from PIL import Image  # noqa: E402

TESTS_DIR = Path(__file__).parent


@pytest.fixture
def samples(tmp_path):
    folder = tmp_path / "samples"
    folder.mkdir()
    Image.new("RGB", (40, 40), (10, 200, 30)).save(folder / "ada.png")
    return {"ada": folder / "ada.png"}


def queue_jobs(db: Database, count: int) -> list[str]:
    """`count` queued jobs on one conversation (rows only; enough for claiming)."""
    with db.write() as session:
        photo = Photo(image_key="0" * 64 + ".png", width=1, height=1, source="upload")
        conversation = Conversation(id=new_id(), owner_hash="h", photo=photo)
        session.add(conversation)
        session.flush()
        ids = []
        for index in range(count):
            turn = Turn(conversation_id=conversation.id, index=index, user_text="smile",
                        belief_state={"expression": ["smiling"]}, response="ok")
            session.add(turn)
            session.flush()
            job = EditJob(id=new_id(), conversation_id=conversation.id, turn_id=turn.id, status="queued", step=0,
                          total=0, attempts=0, cancel_requested=False, created_at=utcnow())
            session.add(job)
            ids.append(job.id)
    return ids


@pytest.fixture
def db(tmp_path):
    database = Database(make_settings(tmp_path).db_url)
    database.upgrade()
    yield database
    database.dispose()


def test_claims_are_exclusive_across_threads(db):
    ids = queue_jobs(db, 40)
    claimed: list[tuple[str, str]] = []
    lock = threading.Lock()

    def claimer(name: str):
        while (job_id := claim_job(db, f"host:1:{name}:t")) is not None:
            with lock:
                claimed.append((job_id, name))

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(job for job, _ in claimed) == sorted(ids)
    with db.read() as session:
        rows = session.scalars(select(EditJob)).all()
    assert all(r.status == "running" and r.attempts == 1 for r in rows)
    assert {r.worker_id.split(":")[2] for r in rows} == {name for _, name in claimed}


def test_claims_are_exclusive_across_processes(tmp_path, db):
    ids = queue_jobs(db, 30)
    script = textwrap.dedent(f"""
        import sys
        from server.db import Database
        from server.worker import claim_job
        db = Database({db.url!r})
        name = sys.argv[1]
        while (job := claim_job(db, "otherhost:1:" + name + ":p")) is not None:
            print(job, flush=True)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, f"p{i}"], stdout=subprocess.PIPE, text=True)
             for i in range(3)]
    outputs = [proc.communicate(timeout=120)[0].split() for proc in procs]
    assert all(proc.returncode == 0 for proc in procs)
    claimed = [job for out in outputs for job in out]
    assert sorted(claimed) == sorted(ids)  # every job once, none twice


def test_stale_running_jobs_are_requeued_once_then_failed(db):
    dead, live, remote = queue_jobs(db, 3)
    now = utcnow()
    with db.write() as session:
        for job_id, worker, attempts in ((dead, f"{os.uname().nodename}:999999:dead:w:{MACHINE_KEY}", 1),
                                         (live, f"{os.uname().nodename}:{os.getppid()}:live:w:{MACHINE_KEY}", 1),
                                         (remote, "elsewhere:1:x:w:0123456789ab", 2)):
            job = session.get(EditJob, job_id)
            job.status, job.worker_id, job.attempts, job.heartbeat_at = "running", worker, attempts, now
    handled = recover_stale_jobs(db, stale_after_s=60)
    assert handled == [dead]  # the live process and the fresh remote heartbeat are left alone
    with db.read() as session:
        job = session.get(EditJob, dead)
        assert job.status == "queued" and "stopped" in job.error
    # the remote worker's heartbeat goes stale; it already had its second attempt -> failed with the reason
    assert set(recover_stale_jobs(db, stale_after_s=-1)) == {remote, live}
    with db.read() as session:
        job = session.get(EditJob, remote)
        assert job.status == "failed" and "interrupted 2 times" in job.error and job.finished_at is not None


@pytest.fixture
def app_factory(tmp_path, samples):
    apps = []

    def make(editing=None, **settings):
        app = create_app(make_settings(tmp_path, **settings), dialogue=FakeDialogue(),
                         editing=editing or fake_editing(samples=samples))
        start(app)
        apps.append(app)
        return app

    yield make
    for app in apps:
        shutdown(app)


def new_turn(client, text: str, sample: str | None = "ada", cid: str | None = None):
    if cid is None:
        cid = client.post("/api/conversations", json={"sample": sample} if sample else {}).get_json()["id"]
    body = client.post(f"/api/conversations/{cid}/turns", json={"text": text}).get_json()["turn"]
    return cid, body["job"]


def job_of(client, job_id: str) -> dict:
    return client.get(f"/api/jobs/{job_id}").get_json()


def test_progress_and_previews_are_stored_while_running(app_factory, samples):
    gate = threading.Event()
    client = app_factory(editing=fake_editing(samples=samples, steps=6, gate=gate)).test_client()
    _, job = new_turn(client, "smile")
    running = wait_for(lambda: (j := job_of(client, job["id"]))["step"] == 6 and j)
    assert running["status"] == "running" and running["progress"] == 1.0 and running["total"] == 6
    assert running["preview_url"] and client.get(running["preview_url"]).mimetype == "image/jpeg"
    gate.set()
    done = wait_for(lambda: (j := job_of(client, job["id"]))["status"] == "done" and j)
    assert done["image_url"] and done["preview_url"] is None


def test_a_newer_turn_cancels_the_running_edit(app_factory, samples):
    client = app_factory(editing=fake_editing(samples=samples, steps=150, step_s=0.01), stale_after_s=1.2
                         ).test_client()
    cid, first = new_turn(client, "smile")
    wait_for(lambda: job_of(client, first["id"])["status"] == "running")
    _, second = new_turn(client, "black hair", cid=cid)
    cancelled = wait_for(lambda: (j := job_of(client, first["id"]))["status"] == "cancelled" and j)
    assert "superseded" in cancelled["error"]
    done = wait_for(lambda: (j := job_of(client, second["id"]))["status"] == "done" and j, timeout=30)
    assert done["image_url"]


class _SlowToStop(FakeEditor):
    """Once it sees its cancellation, says so (`saw_cancel`) and waits for `release` before giving up: the
    moment between a worker noticing a cancel and recording it."""

    def __init__(self, saw_cancel: threading.Event, release: threading.Event, **kwargs):
        super().__init__(**kwargs)
        self.saw_cancel, self.release = saw_cancel, release

    def edit(self, inversion, state, mode="multi", previous=None, steps=None, progress=None, cancel=None, effort=0):
        if cancel is not None and not self.saw_cancel.is_set():
            while not cancel.wait(0.02):
                pass
            self.saw_cancel.set()
            self.release.wait(10)
            raise RuntimeError("cancelled")
        return super().edit(inversion, state, mode, previous, steps, progress, cancel, effort)


def test_an_undo_that_withdraws_a_cancel_the_worker_already_saw_still_gets_its_image(app_factory, samples):
    # "smile" is running; "black hair" asks it to stop; the worker notices; then undo returns to "smile" and
    # withdraws the cancel before the worker records it. The edit must run again, not end cancelled with the
    # head turn left without an image (a race seen once in the suite).
    saw_cancel, release = threading.Event(), threading.Event()
    editing = fake_editing(samples=samples)
    editing = dataclasses.replace(editing, factory=lambda: _SlowToStop(saw_cancel, release, steps=2))
    client = app_factory(editing=editing, stale_after_s=1.2).test_client()
    cid, first = new_turn(client, "smile")
    wait_for(lambda: job_of(client, first["id"])["status"] == "running")
    new_turn(client, "black hair", cid=cid)
    assert saw_cancel.wait(10)
    undone = client.post(f"/api/conversations/{cid}/undo")
    assert undone.status_code == 200 and undone.get_json()["turns"][0]["job"]["id"] == first["id"]
    release.set()
    done = wait_for(lambda: (j := job_of(client, first["id"]))["status"] == "done" and j, timeout=30)
    assert done["image_url"]
    head = client.get(f"/api/conversations/{cid}").get_json()
    assert head["turns"][0]["image_url"] == done["image_url"]


def test_a_failed_edit_says_why(app_factory, samples):
    client = app_factory(editing=fake_editing(samples=samples, fail="no face found in the photo")).test_client()
    _, job = new_turn(client, "smile")
    failed = wait_for(lambda: (j := job_of(client, job["id"]))["status"] == "failed" and j)
    assert failed["error"] == "the edit failed: no face found in the photo"
    assert failed["image_url"] is None


def test_one_editor_per_worker_never_two_edits_at_once(app_factory, samples):
    FakeEditor.instances.clear()
    client = app_factory(editing=fake_editing(samples=samples, steps=8, step_s=0.01), workers=2).test_client()
    jobs = [new_turn(client, text)[1] for text in ("smile", "black hair", "lipstick", "sad", "bangs", "goatee")]
    for job in jobs:
        wait_for(lambda: job_of(client, job["id"])["status"] == "done", timeout=30)
    assert 1 <= len(FakeEditor.instances) <= 2
    assert all(editor.max_active == 1 for editor in FakeEditor.instances)
    assert sum(editor.edits for editor in FakeEditor.instances) == 6


def test_inversions_are_cached_in_the_store(app_factory, tmp_path):
    FakeEditor.instances.clear()
    first = app_factory()
    client = first.test_client()
    cid, job = new_turn(client, "smile")
    wait_for(lambda: job_of(client, job["id"])["status"] == "done")
    cookie = client.get_cookie("i2edit_owner").value
    shutdown(first)
    assert len(list((tmp_path / "data" / "images").glob("*/*.inv"))) == 1  # in the image store
    assert FakeEditor.instances[0].inverted == 1

    second = app_factory()  # a new process would start with an empty memory cache, like this one
    client = second.test_client()
    client.set_cookie("i2edit_owner", cookie)
    _, job = new_turn(client, "black hair", cid=cid)
    wait_for(lambda: job_of(client, job["id"])["status"] == "done")
    assert FakeEditor.instances[-1].inverted == 0 and FakeEditor.instances[-1].edits == 1


def test_graceful_shutdown_puts_the_running_edit_back(app_factory, samples, tmp_path):
    gate = threading.Event()
    app = app_factory(editing=fake_editing(samples=samples, gate=gate))
    client = app.test_client()
    _, job = new_turn(client, "smile")
    wait_for(lambda: job_of(client, job["id"])["status"] == "running")
    shutdown(app)
    with Database(make_settings(tmp_path).db_url).read() as session:
        row = session.get(EditJob, job["id"])
        assert row.status == "queued" and row.attempts == 0 and row.worker_id is None


# --- restart: kill -9 a worker process in the middle of an edit ------------------------------------

def start_doomed_worker(tmp_path: Path) -> subprocess.Popen:
    """A worker process whose edits never finish (they wait on a gate nobody opens)."""
    script = textwrap.dedent(f"""
        import sys, threading
        from pathlib import Path
        sys.path.insert(0, {str(TESTS_DIR)!r})
        from server_fixtures import fake_editing, make_settings
        from server.db import Database
        from server.images import open_store
        from server.worker import Worker
        settings = make_settings(Path({str(tmp_path)!r}))
        db = Database(settings.db_url)
        Worker(settings, db, open_store(settings, db), fake_editing(gate=threading.Event()),
               name="doomed").run(poll_s=0.1)
    """)
    return subprocess.Popen([sys.executable, "-c", script])


def kill_when_running(proc: subprocess.Popen, client, job_id: str, attempt: int) -> None:
    wait_for(lambda: (j := job_of(client, job_id))["status"] == "running" and j["step"] > 0
             and _attempts(client, job_id) == attempt, timeout=60)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def _attempts(client, job_id: str) -> int:
    db = client.application.extensions["i2edit"].db
    with db.read() as session:
        return session.get(EditJob, job_id).attempts


def test_restart_resumes_a_job_left_running(app_factory, tmp_path):
    front = app_factory(workers=0)  # the web app; the edit runs in another process
    client = front.test_client()
    cid, job = new_turn(client, "smile")
    photo_url = client.get(f"/api/conversations/{cid}").get_json()["photo"]["url"]
    doomed = start_doomed_worker(tmp_path)
    kill_when_running(doomed, client, job["id"], attempt=1)
    cookie = client.get_cookie("i2edit_owner").value
    shutdown(front)

    restarted = app_factory()  # start-up finds the job running under a dead process: re-queued, then run
    client = restarted.test_client()
    client.set_cookie("i2edit_owner", cookie)
    done = wait_for(lambda: (j := job_of(client, job["id"]))["status"] == "done" and j, timeout=30)
    assert _attempts(client, job["id"]) == 2
    view = client.get(f"/api/conversations/{cid}").get_json()
    assert view["photo"]["url"] == photo_url and client.get(photo_url).status_code == 200
    assert [t["user"] for t in view["turns"]] == ["smile"]
    assert view["turns"][0]["belief_state"] == {"expression": ["smiling"]}
    assert view["turns"][0]["image_url"] == done["image_url"]
    assert client.get(done["image_url"]).status_code == 200


def test_restart_fails_visibly_a_job_interrupted_twice(app_factory, tmp_path):
    front = app_factory(workers=0)
    client = front.test_client()
    cid, job = new_turn(client, "smile")
    for attempt in (1, 2):  # the second doomed worker re-queues the job at its start-up, then dies too
        kill_when_running(start_doomed_worker(tmp_path), client, job["id"], attempt=attempt)
    cookie = client.get_cookie("i2edit_owner").value
    shutdown(front)

    restarted = app_factory()
    client = restarted.test_client()
    client.set_cookie("i2edit_owner", cookie)
    failed = job_of(client, job["id"])
    assert failed["status"] == "failed" and "interrupted 2 times" in failed["error"]
    view = client.get(f"/api/conversations/{cid}").get_json()
    assert view["turns"][0]["job"]["status"] == "failed"
