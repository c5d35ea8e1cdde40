"""The server spread over processes that share only PostgreSQL: LISTEN/NOTIFY wake-ups, weights known by their
content, and the whole topology under load while a worker is killed mid-edit.

The topology test starts a throwaway PostgreSQL cluster, two web processes (`i2edit serve --workers 0`) and two
edit workers (`i2edit worker`), each in its own working directory, sharing only the database and the image store
in it (`--store database`); the real dialogue model and the real editor on fixture weights. Sixty people each
upload a photo and send three turns, alternating between the web processes and waiting for each edit; meanwhile
one worker is killed with SIGKILL in the middle of an edit, restarted, and killed again. At the end every job is
done or failed with its reason, no job was finished twice, and every image loads through either web process.
"""
from __future__ import annotations

import collections
import io
import re
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from PIL import Image
from sqlalchemy import create_engine, select

sys.path.insert(0, str(Path(__file__).parent))
from server_fixtures import wait_for  # noqa: E402
from topology import (  # noqa: E402
    PostgresUnavailable, create_database, drop_database, postgres_cluster, start_web, start_worker,
)

from server.db import Database  # noqa: E402
from server.job_signal import JobSignal  # noqa: E402
from server.models import EditJob, Turn  # noqa: E402

TEXTS = ("Please make her smile.", "Now give her black hair.", "Add some lipstick too.")


@pytest.fixture(scope="module")
def server_url(system_parts):
    try:
        with postgres_cluster() as url:
            yield url
    except PostgresUnavailable as exc:
        system_parts.missing(str(exc))


@pytest.fixture
def database_url(server_url):
    url = create_database(server_url)
    yield url
    drop_database(server_url, url)


def test_a_notify_wakes_a_listener_in_another_process_at_once(database_url):
    listener_db, sender_db = Database(database_url), Database(database_url)
    listener_db.upgrade()
    listener, sender = JobSignal(listener_db), JobSignal(sender_db)
    listener.listen()
    try:
        wait_for(lambda: listener.listening, timeout=10)
        assert listener.poll_s == 30.0  # a listening worker hardly polls
        listener.clear()
        started = time.monotonic()
        sender.set()
        assert listener.wait(5) and time.monotonic() - started < 1.0
    finally:
        listener.close()
        listener_db.dispose()
        sender_db.dispose()


@pytest.fixture(scope="module")
def fixture_weights(tmp_path_factory):
    from editing.weights import fixtures

    out = tmp_path_factory.mktemp("weights")
    fixtures.make_fixtures(out, size=32)
    return out


def test_weights_are_known_by_their_content_not_their_path(tmp_path, fixture_weights):
    from server.editing_setup import probe_editing

    copy = tmp_path / "elsewhere" / "weights"
    shutil.copytree(fixture_weights, copy)
    here, there = (probe_editing(str(path), "cpu", align="off") for path in (fixture_weights, copy))
    assert here.weights_id == there.weights_id and here.weights_id.startswith("sha256:")
    assert probe_editing(str(copy), "cpu", align="on").weights_id != here.weights_id
    e4e = copy / "e4e.pt"
    e4e.write_bytes(e4e.read_bytes() + b"\0")  # other content at the same path
    assert probe_editing(str(copy), "cpu", align="off").weights_id != here.weights_id


# --- the whole topology ---------------------------------------------------------------------------

class Person:
    """One user: a photo, an owner cookie, three turns sent alternately through the two web processes."""

    def __init__(self, number: int, urls: list[str]):
        self.number, self.urls = number, urls
        self.session = requests.Session()  # keeps the owner cookie (cookies ignore the port)
        self.conversation = ""
        self.jobs: list[dict] = []

    def web(self, k: int) -> str:
        return self.urls[(self.number + k) % 2]

    def run(self) -> None:
        buffer = io.BytesIO()
        Image.new("RGB", (48, 48), (self.number * 4 % 256, 90, 255 - self.number * 4 % 256)).save(buffer, "PNG")
        created = self.session.post(self.web(0) + "/api/conversations", files={"photo": ("me.png", buffer.getvalue())},
                                    timeout=60)
        assert created.status_code == 201, created.text
        self.conversation = created.json()["id"]
        for k, text in enumerate(TEXTS):
            response = self.session.post(f"{self.web(k + 1)}/api/conversations/{self.conversation}/turns",
                                         json={"text": text}, timeout=60)
            assert response.status_code == 201, response.text
            job = response.json()["turn"]["job"]
            if job is not None:
                self.jobs.append(self.wait(job["id"], k))

    def wait(self, job_id: str, k: int) -> dict:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            job = self.session.get(f"{self.web(k)}/api/jobs/{job_id}", timeout=60).json()
            if job["status"] not in ("queued", "running"):
                return job
            assert job["status"] != "queued" or job["queue_position"] >= 1
            time.sleep(0.25)
        raise AssertionError(f"edit job {job_id} still pending after 150 s: lost")


def running_job_of(engine, pid: int) -> str | None:
    with engine.connect() as conn:
        rows = conn.execute(select(EditJob.id, EditJob.worker_id).where(EditJob.status == "running")).all()
    return next((job for job, worker in rows if worker and worker.split(":")[1] == str(pid)), None)


def kill_mid_edit(engine, worker, deadline_s: float = 90.0) -> tuple[str | None, float]:
    """SIGKILL `worker` as soon as it runs an edit. Returns the edit's job, or None when the edit ended between the
    look and the kill, and the kill's time (monotonic)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        job = running_job_of(engine, worker.pid)
        if job is not None:
            worker.kill()
            killed_at = time.monotonic()
            with engine.connect() as conn:
                status, = conn.execute(select(EditJob.status).where(EditJob.id == job)).one()
            return (job if status == "running" else None), killed_at  # running under a dead worker: mid-edit
        time.sleep(0.01)
    raise AssertionError(f"worker {worker.pid} ran no edit within {deadline_s:.0f} s")


@pytest.mark.slow
def test_two_web_processes_and_two_workers_on_postgres_lose_no_job(tmp_path, database_url, fixture_weights):
    shared = ["--store", "database", "--weights", str(fixture_weights), "--align", "off", "--torch-threads", "1"]
    worker_args = [*shared, "--device", "cpu", "--edit-steps", "3"]
    webs = [start_web(database_url, tmp_path / f"web-{i}", "--workers", "0", "--rate-limit", "0", *shared,
                      wait=False) for i in (1, 2)]
    workers = [start_worker(database_url, tmp_path / f"worker-{i}", *worker_args, wait=False) for i in (1, 2)]
    for process in [*webs, *workers]:  # all four start at once
        process.wait_ready()
    engine = create_engine(database_url)
    kills: list[tuple[str, float, float]] = []  # (job, seconds until it was back in the queue or taken again)
    try:
        assert all("LISTEN/NOTIFY" in w.log_text() for w in workers)
        people = [Person(n, [w.url for w in webs]) for n in range(60)]
        pool = ThreadPoolExecutor(max_workers=10)
        futures = [pool.submit(person.run) for person in people]

        while len(kills) < 2:  # kill worker 1 in the middle of an edit, twice, restarting it each time
            job, killed_at = kill_mid_edit(engine, workers[0])
            dead_pid = str(workers[0].pid)

            def back_in_queue():
                with engine.connect() as conn:
                    status, worker_id = conn.execute(select(EditJob.status, EditJob.worker_id)
                                                     .where(EditJob.id == job)).one()
                return status != "running" or dead_pid not in (worker_id or "")

            if job is not None:
                wait_for(back_in_queue, timeout=60, interval=0.05)
                kills.append((job, time.monotonic() - killed_at))
            workers[0] = start_worker(database_url, tmp_path / "worker-1", *worker_args)
        for future in futures:
            future.result(timeout=300)
        pool.shutdown()

        with engine.connect() as conn:
            jobs = conn.execute(select(EditJob.id, EditJob.status, EditJob.error, EditJob.turn_id,
                                       EditJob.image_key, EditJob.attempts)).all()
            turn_images = dict(conn.execute(select(Turn.id, Turn.image_key)).all())
        statuses = collections.Counter(status for _, status, *_ in jobs)
        assert set(statuses) <= {"done", "failed"}, statuses  # nothing queued, running or lost
        assert statuses["failed"] <= 1, statuses  # only an edit killed twice may fail ...
        assert all(error for _, status, error, *_ in jobs if status != "done")  # ... and it says why
        assert len(jobs) >= 150  # nearly every turn asked for a new edit
        for job_id, status, _, turn_id, image_key, attempts in jobs:
            assert attempts <= 2
            if status == "done":
                assert turn_images[turn_id] == image_key
        assert len(jobs) == sum(len(p.jobs) for p in people)  # one job per edit asked for, none left behind

        logs = "".join(w.log_text() for w in workers)
        finished = collections.Counter(re.findall(r"edit job ([0-9a-f]{32}) done by", logs))
        assert finished and max(finished.values()) == 1  # no job finished twice
        done_ids = {job_id for job_id, status, *_ in jobs if status == "done"}
        assert set(finished) <= done_ids and len(done_ids - set(finished)) <= 2
        by_worker = collections.Counter(re.findall(r"done by [^:]+:(\d+):", logs))
        assert len(by_worker) >= 2 and str(workers[1].pid) in by_worker  # both workers took jobs

        for person in people:  # every image loads through either web process
            for web in webs:
                view = person.session.get(f"{web.url}/api/conversations/{person.conversation}", timeout=60).json()
                urls = [view["photo"]["url"]] + [t["image_url"] for t in view["turns"] if t["image_url"]]
                assert len(urls) >= 2
                for url in urls:
                    image = person.session.get(web.url + url, timeout=60)
                    assert image.status_code == 200 and image.content[:8] == b"\x89PNG\r\n\x1a\n", url
        assert all(seconds < 30 for _, seconds in kills), kills
    finally:
        engine.dispose()
        for process in [*workers, *webs]:
            process.stop()
