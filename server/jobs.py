"""The edit-job queue in the database: claiming, recovery of abandoned jobs, expiry, queue positions.

- Claiming is one atomic `UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED) AND status = 'queued'
  RETURNING id`, so any number of workers, in one process or on many machines, share one database without
  running a job twice.
- Times that different hosts compare (heartbeats, staleness) come from the database's clock (`db_now`).
- A running job is abandoned when its worker is gone: at once when the worker ran on this machine and its process
  has ended (same boot and process namespace, so the pid means the same process), else when its heartbeat is
  older than `stale_after_s`. It is re-queued once; abandoned a second time, it fails with the reason.
- A job still queued after `queue_expiry_s` (nobody took it: no worker, or a queue far too long) fails with the
  reason, so no page waits forever.
- `Janitor` does recovery and expiry on a timer in every server and worker process; the updates are
  conditional, so several janitors at once do no harm.
"""
from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
from pathlib import Path
from typing import Callable

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from server.db import Database, db_now
from server.models import Conversation, EditJob

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 2  # a job is started at most this many times
PENDING = ("queued", "running")


# --- who runs a job -------------------------------------------------------------------------------

def _machine_key() -> str:
    """Equal for processes that see the same pids: same kernel boot and same pid namespace (a container has its
    own namespace, so two containers on one host do not judge each other's pids)."""
    parts = [socket.gethostname()]
    for source in (lambda: Path("/proc/sys/kernel/random/boot_id").read_text().strip(),
                   lambda: os.readlink("/proc/self/ns/pid")):
        try:
            parts.append(source())
        except OSError:
            pass
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]


MACHINE_KEY = _machine_key()
_LIVE_NONCES: set[str] = set()  # workers alive in this process (to tell a dead in-process worker's jobs)
_LIVE_LOCK = threading.Lock()


def new_worker_id(name: str, nonce: str) -> str:
    """`host:pid:nonce:name:machine` (at most 200 characters): who runs a job, readable in the database."""
    return f"{socket.gethostname()[:100]}:{os.getpid()}:{nonce}:{name[:40]}:{MACHINE_KEY}"


def mark_alive(nonce: str, alive: bool) -> None:
    """Record that the worker with `nonce` runs (or no longer runs) in this process."""
    with _LIVE_LOCK:
        (_LIVE_NONCES.add if alive else _LIVE_NONCES.discard)(nonce)


def worker_gone(worker_id: str | None) -> bool:
    """True when `worker_id` names a worker on this machine that no longer runs (others: only heartbeats tell)."""
    if not worker_id:
        return True
    parts = worker_id.split(":")
    if len(parts) != 5 or parts[4] != MACHINE_KEY:
        return False
    try:
        pid = int(parts[1])
    except ValueError:
        return False
    if pid == os.getpid():
        with _LIVE_LOCK:
            return parts[2] not in _LIVE_NONCES
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


# --- the queue ------------------------------------------------------------------------------------

def claim_job(db: Database, worker_id: str) -> str | None:
    """Atomically move the oldest queued job to `running` for `worker_id`; its id, or None."""
    oldest = (select(EditJob.id).where(EditJob.status == "queued").order_by(EditJob.created_at, EditJob.id)
              .limit(1).with_for_update(skip_locked=True).scalar_subquery())
    with db.write() as session:
        return session.execute(
            update(EditJob).where(EditJob.id == oldest, EditJob.status == "queued")
            .values(status="running", worker_id=worker_id, attempts=EditJob.attempts + 1, started_at=db_now(),
                    heartbeat_at=db_now(), cancel_requested=False, error=None)
            .returning(EditJob.id).execution_options(synchronize_session=False)
        ).scalar_one_or_none()


def recover_stale_jobs(db: Database, stale_after_s: float) -> list[str]:
    """Re-queue (once) or fail running jobs whose worker is gone; returns the ids handled."""
    stale = or_(EditJob.heartbeat_at.is_(None), EditJob.heartbeat_at < db_now(-stale_after_s))
    with db.read() as session:
        running = session.execute(select(EditJob.id, EditJob.worker_id, EditJob.attempts, stale)
                                  .where(EditJob.status == "running")).all()
    handled = []
    for job_id, worker_id, attempts, is_stale in running:
        gone = worker_gone(worker_id)
        if not (gone or is_stale):
            continue
        if attempts < MAX_ATTEMPTS:
            values = dict(status="queued", worker_id=None, step=0, total=0,
                          error=f"re-queued: the worker running it ({worker_id}) stopped")
        else:
            values = dict(status="failed", finished_at=db_now(),
                          error=f"the edit was interrupted {attempts} times (its worker process stopped); "
                                "giving up. Send the turn again to retry.")
        conditions = [EditJob.id == job_id, EditJob.status == "running", EditJob.worker_id == worker_id]
        if not gone:
            conditions.append(stale)  # a heartbeat that landed meanwhile keeps the job where it is
        with db.write() as session:
            changed = session.execute(update(EditJob).where(*conditions).values(**values)
                                      .execution_options(synchronize_session=False)).rowcount
        if changed:
            log.warning("edit job %s left running by %s (%s): %s", job_id, worker_id,
                        "process ended" if gone else f"no heartbeat for {stale_after_s:g} s", values["status"])
            handled.append(job_id)
    return handled


def expire_queued_jobs(db: Database, queue_expiry_s: float) -> list[str]:
    """Fail jobs that have waited in the queue longer than `queue_expiry_s`; returns their ids."""
    waited = f"{queue_expiry_s / 60:g} minutes" if queue_expiry_s >= 120 else f"{queue_expiry_s:g} s"
    with db.write() as session:
        expired = session.execute(
            update(EditJob).where(EditJob.status == "queued", EditJob.created_at < db_now(-queue_expiry_s))
            .values(status="failed", finished_at=db_now(),
                    error=f"no edit worker took this edit within {waited}, so it was dropped. "
                          "Send the turn again to retry.")
            .returning(EditJob.id).execution_options(synchronize_session=False)).scalars().all()
    if expired:
        log.warning("%d edit job(s) expired in the queue", len(expired))
    return list(expired)


def queue_position(session: Session, job: EditJob) -> int | None:
    """1 for the next job a worker will claim, 2 for the one after it, ...; None unless `job` is queued."""
    if job.status != "queued":
        return None
    ahead = session.scalar(select(func.count(EditJob.id)).where(
        EditJob.status == "queued",
        or_(EditJob.created_at < job.created_at, and_(EditJob.created_at == job.created_at, EditJob.id < job.id))))
    return int(ahead or 0) + 1


def pending_edits_elsewhere(session: Session, conversation_id: str) -> int:
    """Queued or running edits of the conversation's owner in the owner's other conversations."""
    owner = select(Conversation.owner_hash).where(Conversation.id == conversation_id).scalar_subquery()
    return int(session.scalar(
        select(func.count(EditJob.id)).join(Conversation, Conversation.id == EditJob.conversation_id)
        .where(Conversation.owner_hash == owner, EditJob.conversation_id != conversation_id,
               EditJob.status.in_(PENDING))) or 0)


# --- on a timer -----------------------------------------------------------------------------------

class Janitor:
    """Every `period_s`: recover abandoned jobs, expire old queued ones, run `chores` (e.g. forget old rate-limit
    windows); rings `wake` when a job went back to the queue. A failing round is logged and tried again."""

    def __init__(self, db: Database, stale_after_s: float, queue_expiry_s: float, wake: Callable[[], None],
                 chores: tuple[Callable[[], object], ...] = (), period_s: float | None = None):
        self.db = db
        self.stale_after_s = stale_after_s
        self.queue_expiry_s = queue_expiry_s
        self.wake = wake
        self.chores = chores
        self.period_s = period_s or min(5.0, stale_after_s / 4)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-janitor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def run_once(self) -> None:
        requeued = recover_stale_jobs(self.db, self.stale_after_s)
        expire_queued_jobs(self.db, self.queue_expiry_s)
        for chore in self.chores:
            chore()
        if requeued:
            self.wake()

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            try:
                self.run_once()
            except Exception as exc:  # e.g. the database is briefly unreachable: the next round tries again
                log.warning("job janitor round failed (retrying in %.0f s): %s", self.period_s, exc)
