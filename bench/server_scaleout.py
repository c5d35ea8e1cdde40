"""Edit jobs spread over processes under load: none lost or finished twice, and how soon a dead worker's job is back
in the queue.

    .venv/bin/python bench/server_scaleout.py [--people 12] [--kills 3] [--edit-steps 20]
                                              [--out results/server_scaleout.json]

Starts the topology of `tests/test_server_scaleout.py` on this machine: a throwaway PostgreSQL cluster, two web
processes (`i2edit serve --workers 0 --store database`) and two edit workers on fixture weights, each in a
working directory of its own. Worker A runs in a process namespace of its own (`unshare --pid --fork`, which needs
root; without it A is an ordinary process and the script says so), so to the others it is on another machine:
its abandoned jobs can come back only through their heartbeat going stale (the database's clock,
`I2EDIT_STALE_AFTER`, default 20 s), not through the same-machine process check.

People chat without pause (a photo, three turns with edits, waiting for each edit, then a new conversation), one
thread each, alternating between the web processes. Meanwhile worker A is killed with SIGKILL in the middle of an
edit `--kills` times (restarted after each), and worker B once. For each kill: seconds until the job was back in
the queue (queued again, or already taken by another worker) and until it was done. At the end, with the load
stopped and every edit waited for: jobs lost (still pending, or a turn whose edit never ended), jobs finished twice
(a "done" log line twice for one job, or two done jobs for one turn), and the totals.
"""
from __future__ import annotations

import argparse
import collections
import io
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from PIL import Image
from sqlalchemy import create_engine, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from topology import create_database, postgres_cluster, start_web, start_worker  # noqa: E402

from server.models import EditJob  # noqa: E402

TEXTS = ("Please make her smile.", "Now give her black hair.", "Add some lipstick too.")


class Person(threading.Thread):
    """Conversations back to back until `stop`; records every edit job it waited for and any error."""

    def __init__(self, number: int, urls: list[str], stop: threading.Event):
        super().__init__(name=f"person-{number}", daemon=True)
        self.number, self.urls, self.stop = number, urls, stop
        self.jobs: dict[str, str] = {}  # job id -> final status
        self.errors: list[str] = []
        self.conversations = 0

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.conversation()
            except (requests.RequestException, AssertionError, KeyError) as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")

    def conversation(self) -> None:
        session = requests.Session()
        k = self.number + self.conversations
        self.conversations += 1
        photo = io.BytesIO()
        Image.new("RGB", (48, 48), (k * 7 % 256, 90, k * 13 % 256)).save(photo, "PNG")
        created = session.post(self.urls[k % 2] + "/api/conversations", files={"photo": ("me.png", photo.getvalue())},
                               timeout=120)
        assert created.status_code == 201, created.text
        cid = created.json()["id"]
        for turn, text in enumerate(TEXTS, 1):
            response = session.post(f"{self.urls[(k + turn) % 2]}/api/conversations/{cid}/turns", json={"text": text},
                                    timeout=120)
            assert response.status_code == 201, response.text
            job = response.json()["turn"]["job"]
            if job is None:
                continue
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                status = session.get(f"{self.urls[(k + turn + 1) % 2]}/api/jobs/{job['id']}", timeout=120).json()
                if status["status"] not in ("queued", "running"):
                    break
                time.sleep(0.25)
            self.jobs[job["id"]] = status["status"]


def worker_id_of(process) -> str:
    """The worker's id, from the line it prints once it waits for jobs (this run's, not an earlier one's)."""
    return re.findall(r"Worker (\S+) is waiting for jobs", process.log_text())[-1]


def kill_mid_edit(engine, process, timeout_s: float = 120.0) -> tuple[str, float] | None:
    """SIGKILL `process` (a worker) while it runs an edit: (the job, the kill's time), or None when the edit ended
    between the look and the kill."""
    worker_id = worker_id_of(process)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            job = conn.execute(select(EditJob.id).where(EditJob.status == "running", EditJob.worker_id == worker_id)
                               ).scalar_one_or_none()
        if job is not None:
            process.kill()
            killed_at = time.monotonic()
            with engine.connect() as conn:
                status = conn.execute(select(EditJob.status).where(EditJob.id == job)).scalar_one()
            return (job, killed_at) if status == "running" else None
        time.sleep(0.01)
    raise SystemExit(f"worker {worker_id} ran no edit within {timeout_s:.0f} s")


def follow(engine, job: str, worker_id: str, killed_at: float, timeout_s: float = 120.0) -> dict:
    """Seconds from the kill until `job` was back in the queue, and until it ended."""
    back = None
    while time.monotonic() - killed_at < timeout_s:
        with engine.connect() as conn:
            status, owner = conn.execute(select(EditJob.status, EditJob.worker_id).where(EditJob.id == job)).one()
        now = time.monotonic() - killed_at
        if back is None and (status != "running" or owner != worker_id):
            back = now
        if status not in ("queued", "running"):
            return {"job": job, "back_in_queue_s": round(back, 2), "ended_s": round(now, 2), "status": status}
        time.sleep(0.05)
    return {"job": job, "back_in_queue_s": back and round(back, 2), "ended_s": None, "status": "pending"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=12, help="people chatting at once")
    parser.add_argument("--kills", type=int, default=3, help="times worker A is killed mid-edit")
    parser.add_argument("--edit-steps", type=int, default=20)
    parser.add_argument("--out", type=Path, help="write the figures as JSON to this file (e.g. results/...)")
    args = parser.parse_args()

    from editing.weights.fixtures import make_fixtures

    root = Path(tempfile.mkdtemp(prefix="i2edit-scaleout-"))
    weights = root / "weights"
    make_fixtures(weights, size=32)
    namespaced = os.geteuid() == 0 and shutil.which("unshare") is not None
    other_machine = ["unshare", "--pid", "--fork", "--kill-child"] if namespaced else []
    shared = ["--store", "database", "--weights", str(weights), "--align", "off", "--torch-threads", "1"]
    worker_args = [*shared, "--device", "cpu", "--edit-steps", str(args.edit_steps)]
    started = time.monotonic()
    processes = []
    try:
        with postgres_cluster() as server_url:
            url = create_database(server_url)
            engine = create_engine(url)

            def worker_a():  # in a process namespace of its own when it can be
                process = start_worker(url, root / "worker-a", *worker_args, wait=False, prefix=other_machine)
                processes.append(process)
                return process.wait_ready()

            webs = [start_web(url, root / f"web-{i}", "--workers", "0", "--rate-limit", "0", *shared, wait=False)
                    for i in (1, 2)]
            processes.extend(webs)
            worker_b = start_worker(url, root / "worker-b", *worker_args, wait=False)
            processes.append(worker_b)
            a = worker_a()
            for process in [*webs, worker_b]:
                process.wait_ready()
            stop = threading.Event()
            people = [Person(n, [w.url for w in webs], stop) for n in range(args.people)]
            for person in people:
                person.start()
            kills = []
            time.sleep(5)  # under load first
            while len([k for k in kills if k["worker"] == "A"]) < args.kills:
                dead_id = worker_id_of(a)
                killed = kill_mid_edit(engine, a)
                if killed is not None:
                    kills.append({"worker": "A", "seen_as": "another machine" if namespaced else "this machine",
                                  **follow(engine, killed[0], dead_id, killed[1])})
                    print(f"worker A killed: {kills[-1]}", flush=True)
                a = worker_a()
            dead_id = worker_id_of(worker_b)
            killed = kill_mid_edit(engine, worker_b)
            if killed is not None:
                kills.append({"worker": "B", "seen_as": "this machine", **follow(engine, killed[0], dead_id,
                                                                                 killed[1])})
                print(f"worker B killed: {kills[-1]}", flush=True)
            stop.set()
            for person in people:
                person.join(600)

            with engine.connect() as conn:
                jobs = conn.execute(select(EditJob.id, EditJob.status, EditJob.turn_id)).all()
            engine.dispose()
            logs = "".join((root / name / "output.log").read_text(errors="replace")
                           for name in ("worker-a", "worker-b"))
    finally:
        for process in processes:
            if process.proc.poll() is None:
                process.stop()
        shutil.rmtree(root, ignore_errors=True)

    statuses = collections.Counter(status for _, status, _ in jobs)
    finished = collections.Counter(re.findall(r"edit job ([0-9a-f]{32}) done by", logs))
    done_per_turn = collections.Counter(turn for _, status, turn in jobs if status == "done")
    waited = {job: status for person in people for job, status in person.jobs.items()}
    result = {
        "command": " ".join(sys.argv), "people": args.people, "edit_steps": args.edit_steps,
        "worker_a_namespaced": namespaced, "stale_after_s": 20.0, "cpus": os.cpu_count(),
        "load_average": round(os.getloadavg()[0], 2), "wall_s": round(time.monotonic() - started, 1),
        "conversations": sum(p.conversations for p in people), "jobs": len(jobs), "job_statuses": dict(statuses),
        "lost": statuses["queued"] + statuses["running"] + sum(1 for s in waited.values() if s in ("queued", "running")),
        "finished_twice": sum(1 for n in finished.values() if n > 1) + sum(1 for n in done_per_turn.values() if n > 1),
        "client_errors": sum(len(p.errors) for p in people), "client_error_examples": [e for p in people
                                                                                       for e in p.errors][:5],
        "kills": kills,
        "max_back_in_queue_s": max((k["back_in_queue_s"] or float("inf") for k in kills), default=None),
    }
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0 if not result["lost"] and not result["finished_twice"] else 1


if __name__ == "__main__":
    sys.exit(main())
