"""The edit-job worker: claims queued jobs from the database and runs them on its own editor.

- Claiming is one atomic `UPDATE ... WHERE status = 'queued' ... RETURNING id`, so any number of workers, in this
  process or in `i2edit worker` processes, can share one database without running a job twice.
- One editor (one model instance) per worker, built on the first job; a worker runs one job at a time, so no
  model ever runs two edits at once.
- While a job runs, a heartbeat thread stamps `heartbeat_at` and watches `cancel_requested`; the optimiser's
  progress callback stores step / total and, every so often, a preview image.
- At start-up (and every `stale_after_s` seconds) jobs left `running` by a process that is gone, or whose
  heartbeat stopped, are re-queued once; a job abandoned a second time is failed with the reason.
"""
from __future__ import annotations

import collections
import hashlib
import io
import logging
import os
import socket
import threading
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from dialogue.ontology import BeliefState
from server.db import Database
from server.editing_setup import EditingSetup, EditorLike
from server.images import ImageStore
from server.models import Conversation, EditJob, Photo, Turn, utcnow
from server.settings import Settings

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 2  # a job is started at most this many times
PROGRESS_EVERY_S = 0.25  # at most this often a progress write
PREVIEW_EVERY_S = 0.75  # at most this often a stored preview
INVERSION_CACHE = 8  # inversions kept in memory per worker

_LIVE_NONCES: set[str] = set()  # workers alive in this process (to tell a dead in-process worker's jobs)


class JobCancelled(Exception):
    """Raised inside a job when its cancellation was requested."""


class Worker:
    """Runs edit jobs one at a time; `start()` in a thread, or `run(stop)` in the calling thread."""

    def __init__(self, settings: Settings, db: Database, store: ImageStore, editing: EditingSetup,
                 wake: threading.Event | None = None, name: str = "worker"):
        self.settings = settings
        self.db = db
        self.store = store
        self.editing = editing
        self.wake = wake or threading.Event()
        self.nonce = os.urandom(4).hex()
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{self.nonce}:{name}"
        self.editor: EditorLike | None = None
        self._inversions: collections.OrderedDict[str, Any] = collections.OrderedDict()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._current_cancel: threading.Event | None = None

    # --- life cycle -------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=self.worker_id, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after interrupting the running edit, which goes back to the queue for the next worker."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout)

    def request_stop(self) -> None:
        """Ask `run` to return soon (safe from a signal handler): the running edit is interrupted and re-queued."""
        self._stop.set()
        self.wake.set()
        if self._current_cancel is not None:
            self._current_cancel.set()

    def run(self, poll_s: float = 1.0) -> None:
        """Recover abandoned jobs, then run queued jobs until `stop()`."""
        _LIVE_NONCES.add(self.nonce)
        try:
            recover_stale_jobs(self.db, self.settings.stale_after_s)
            self._load_editor()
            last_recovery = time.monotonic()
            while not self._stop.is_set():
                if self.run_once():
                    continue
                if time.monotonic() - last_recovery > self.settings.stale_after_s:
                    recover_stale_jobs(self.db, self.settings.stale_after_s)
                    last_recovery = time.monotonic()
                self.wake.wait(poll_s)
                self.wake.clear()
        finally:
            _LIVE_NONCES.discard(self.nonce)

    # --- one job ------------------------------------------------------------------------------------
    def run_once(self) -> bool:
        """Claim and run one queued job; False when none was waiting."""
        job_id = claim_job(self.db, self.worker_id)
        if job_id is None:
            return False
        cancel = self._current_cancel = threading.Event()
        heartbeat = _Heartbeat(self.db, job_id, self.worker_id, cancel, interval_s=self.settings.stale_after_s / 6)
        heartbeat.start()
        try:
            self._run_job(job_id, cancel)
        except Exception as exc:
            if self._stop.is_set() and self._requeue(job_id):
                pass
            elif cancel.is_set() or isinstance(exc, JobCancelled):
                self._finish(job_id, status="cancelled", error="cancelled: a newer turn superseded this edit")
            else:
                log.exception("edit job %s failed", job_id)
                self._finish(job_id, status="failed", error=f"the edit failed: {exc}")
        finally:
            heartbeat.stop()
            self._current_cancel = None
        return True

    def _run_job(self, job_id: str, cancel: threading.Event) -> None:
        with self.db.read() as session:
            job = session.get(EditJob, job_id)
            turn = session.get(Turn, job.turn_id)
            photo = session.scalar(select(Photo).join(Conversation, Conversation.photo_id == Photo.id)
                                   .where(Conversation.id == job.conversation_id))
            state = BeliefState.from_dict(turn.belief_state)
            turn_id = turn.id
        if photo is None:
            raise RuntimeError("the conversation has no photo to edit")
        if self.editor is None:
            self._load_editor(raise_error=True)
        inversion = self._inversion(photo)
        if cancel.is_set():
            raise JobCancelled()
        progress = _Progress(self.db, self.store, job_id, self.worker_id, cancel)
        result = self.editor.edit(inversion, state, mode="multi", steps=self.settings.edit_steps,
                                  progress=progress, cancel=cancel)
        if cancel.is_set():
            raise JobCancelled()
        key = self.store.put(result.image)
        metrics = _jsonable(getattr(result, "metrics", None) or {})
        with self.db.write() as session:
            done = session.execute(
                update(EditJob).where(EditJob.id == job_id, EditJob.worker_id == self.worker_id,
                                      EditJob.status == "running")
                .values(status="done", image_key=key, metrics=metrics, finished_at=utcnow(), error=None,
                        preview_key=None,
                        step=progress.total or progress.step, total=progress.total or progress.step)
                .execution_options(synchronize_session=False)).rowcount
            if done:
                session.execute(update(Turn).where(Turn.id == turn_id).values(image_key=key)
                                .execution_options(synchronize_session=False))
        progress.discard_preview()

    def _load_editor(self, raise_error: bool = False) -> None:
        """Build this worker's editor (its own model instance); a failure is logged and retried on the next job."""
        started = time.monotonic()
        try:
            self.editor = self.editing.factory()
        except Exception as exc:
            if raise_error:
                raise RuntimeError(f"the editor could not be loaded: {exc}") from exc
            log.error("worker %s could not load its editor (jobs will fail until it can): %s", self.worker_id, exc)
            return
        log.info("worker %s loaded its editor in %.1f s", self.worker_id, time.monotonic() - started)

    def _inversion(self, photo: Photo) -> Any:
        """The photo's inversion for these weights: from memory, the data dir's cache, or computed (and cached)."""
        weights = self.editing.weights_id
        cache_key = f"{photo.image_key}|{weights}"
        if cache_key in self._inversions:
            self._inversions.move_to_end(cache_key)
            return self._inversions[cache_key]
        inversion = None
        codec = self.editing.dump_inversion and self.editing.load_inversion
        cached_file = (self.settings.inversions_dir / photo.inversion_key) if photo.inversion_key else None
        if codec and cached_file is not None and photo.inversion_weights == weights and cached_file.is_file():
            try:
                inversion = self.editing.load_inversion(cached_file.read_bytes())
            except Exception as exc:  # a damaged cache file is recomputed, never fatal
                log.warning("cached inversion %s unreadable (%s); inverting again", cached_file, exc)
        if inversion is None:
            inversion = self.editor.invert(self.store.open(photo.image_key))
            if codec:
                self._save_inversion(photo, inversion)
        self._inversions[cache_key] = inversion
        while len(self._inversions) > INVERSION_CACHE:
            self._inversions.popitem(last=False)
        return inversion

    def _save_inversion(self, photo: Photo, inversion: Any) -> None:
        tag = hashlib.sha256(self.editing.weights_id.encode()).hexdigest()[:12]
        name = f"{photo.image_key.split('.')[0]}-{tag}.inv"
        folder = self.settings.inversions_dir
        folder.mkdir(parents=True, exist_ok=True)
        temp = folder / f".{name}.{self.nonce}"
        temp.write_bytes(self.editing.dump_inversion(inversion))
        os.replace(temp, folder / name)
        with self.db.write() as session:
            session.execute(update(Photo).where(Photo.id == photo.id)
                            .values(inversion_key=name, inversion_weights=self.editing.weights_id)
                            .execution_options(synchronize_session=False))

    def _requeue(self, job_id: str) -> bool:
        """Give an edit interrupted by this worker's shutdown back to the queue, without counting the attempt.

        False when the job was meanwhile superseded (then it is cancelled instead).
        """
        with self.db.write() as session:
            changed = session.execute(
                update(EditJob).where(EditJob.id == job_id, EditJob.worker_id == self.worker_id,
                                      EditJob.status == "running", EditJob.cancel_requested.is_(False))
                .values(status="queued", worker_id=None, step=0, total=0, attempts=EditJob.attempts - 1,
                        error=None)
                .execution_options(synchronize_session=False)).rowcount
        if changed:
            log.info("edit job %s interrupted by shutdown; back in the queue", job_id)
        return bool(changed)

    def _finish(self, job_id: str, status: str, error: str) -> None:
        with self.db.write() as session:
            job = session.get(EditJob, job_id)
            if job is None or job.worker_id != self.worker_id or job.status != "running":
                return
            preview = job.preview_key
            if status == "cancelled" and job.cancel_requested and job.error:
                error = job.error  # the reason the canceller gave (e.g. the owner's cancel)
            job.status, job.error, job.finished_at, job.preview_key = status, error, utcnow(), None
        if preview:
            _drop_preview_if_unused(self.db, self.store, preview, keep_job=None)


# --- claiming and recovery ------------------------------------------------------------------------

def claim_job(db: Database, worker_id: str) -> str | None:
    """Atomically move the oldest queued job to `running` for `worker_id`; its id, or None."""
    oldest = (select(EditJob.id).where(EditJob.status == "queued").order_by(EditJob.created_at, EditJob.id)
              .limit(1).with_for_update(skip_locked=True).scalar_subquery())
    now = utcnow()
    with db.write() as session:
        return session.execute(
            update(EditJob).where(EditJob.id == oldest, EditJob.status == "queued")
            .values(status="running", worker_id=worker_id, attempts=EditJob.attempts + 1, started_at=now,
                    heartbeat_at=now, cancel_requested=False, error=None)
            .returning(EditJob.id).execution_options(synchronize_session=False)
        ).scalar_one_or_none()


def recover_stale_jobs(db: Database, stale_after_s: float) -> list[str]:
    """Re-queue (once) or fail running jobs whose worker is gone; returns the ids handled."""
    now = utcnow()
    limit = now - timedelta(seconds=stale_after_s)
    handled = []
    with db.read() as session:
        running = session.execute(select(EditJob.id, EditJob.worker_id, EditJob.heartbeat_at, EditJob.attempts)
                                  .where(EditJob.status == "running")).all()
    for job_id, worker_id, heartbeat_at, attempts in running:
        if not _worker_gone(worker_id) and heartbeat_at is not None and heartbeat_at >= limit:
            continue
        if attempts < MAX_ATTEMPTS:
            values = dict(status="queued", worker_id=None,
                          error=f"re-queued: the worker running it ({worker_id}) stopped")
        else:
            values = dict(status="failed", finished_at=now,
                          error=f"the edit was interrupted {attempts} times (its worker process stopped); "
                                "giving up. Send the turn again to retry.")
        with db.write() as session:
            changed = session.execute(
                update(EditJob).where(EditJob.id == job_id, EditJob.status == "running",
                                      EditJob.worker_id == worker_id)
                .values(**values).execution_options(synchronize_session=False)).rowcount
        if changed:
            log.warning("edit job %s left running by %s: %s", job_id, worker_id, values["status"])
            handled.append(job_id)
    return handled


def _worker_gone(worker_id: str | None) -> bool:
    """True when `worker_id` names a worker on this host that no longer runs."""
    if not worker_id:
        return True
    parts = worker_id.split(":")
    if len(parts) < 3 or parts[0] != socket.gethostname():
        return False  # another host: only its heartbeat can tell
    try:
        pid = int(parts[1])
    except ValueError:
        return False
    if pid == os.getpid():
        return parts[2] not in _LIVE_NONCES
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


# --- while a job runs -----------------------------------------------------------------------------

class _Heartbeat:
    """Stamps the job's heartbeat and sets `cancel` when the job's cancellation is requested."""

    def __init__(self, db: Database, job_id: str, worker_id: str, cancel: threading.Event, interval_s: float):
        self.db, self.job_id, self.worker_id, self.cancel = db, job_id, worker_id, cancel
        self.interval_s = max(0.2, min(interval_s, 5.0))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id[:8]}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                with self.db.write() as session:
                    session.execute(update(EditJob).where(EditJob.id == self.job_id,
                                                          EditJob.worker_id == self.worker_id)
                                    .values(heartbeat_at=utcnow()).execution_options(synchronize_session=False))
                    job = session.get(EditJob, self.job_id)
                    if job is None or job.cancel_requested or job.worker_id != self.worker_id:
                        self.cancel.set()
            except Exception:  # a missed heartbeat is retried next interval
                log.warning("heartbeat of job %s failed", self.job_id, exc_info=True)


class _Progress:
    """The optimiser's `progress(step, total, losses, preview)` callback: throttled writes to the job row.

    Each write also reads back `cancel_requested`, so a superseded edit stops within a fraction of a second.
    """

    def __init__(self, db: Database, store: ImageStore, job_id: str, worker_id: str, cancel: threading.Event):
        self.db, self.store, self.job_id, self.worker_id, self.cancel = db, store, job_id, worker_id, cancel
        self.step = self.total = 0
        self._last_write = self._last_preview = 0.0
        self._preview_key: str | None = None

    def __call__(self, step: int, total: int, losses: Any = None, preview: Any = None) -> None:
        self.step, self.total = int(step), int(total)
        now = time.monotonic()
        values: dict[str, Any] = {}
        if preview is not None and now - self._last_preview >= PREVIEW_EVERY_S:
            old = self._preview_key
            self._preview_key = self.store.put(_to_pil(preview), "jpg")
            values["preview_key"] = self._preview_key
            self._last_preview = now
            if old and old != self._preview_key:
                _drop_preview_if_unused(self.db, self.store, old, keep_job=self.job_id)
        if values or now - self._last_write >= PROGRESS_EVERY_S or step >= total:
            values.update(step=self.step, total=self.total)
            with self.db.write() as session:
                wanted = session.execute(
                    update(EditJob).where(EditJob.id == self.job_id, EditJob.worker_id == self.worker_id)
                    .values(**values).returning(EditJob.cancel_requested)
                    .execution_options(synchronize_session=False)).scalar_one_or_none()
            if wanted is None or wanted:  # cancelled, or no longer this worker's job
                self.cancel.set()
            self._last_write = now

    def discard_preview(self) -> None:
        """Delete the last preview file once the job row no longer shows it (the job is done)."""
        if self._preview_key:
            _drop_preview_if_unused(self.db, self.store, self._preview_key, keep_job=None)


def _drop_preview_if_unused(db: Database, store: ImageStore, key: str, keep_job: str | None) -> None:
    """Delete a preview file unless another job still shows it (identical edits give identical previews)."""
    with db.read() as session:
        query = select(EditJob.id).where(EditJob.preview_key == key)
        if keep_job is not None:
            query = query.where(EditJob.id != keep_job)
        if session.scalar(query.limit(1)) is None and session.scalar(
                select(Turn.id).where(Turn.image_key == key).limit(1)) is None:
            store.delete(key)


def _to_pil(preview: Any):
    """A preview as a PIL image (the editor may hand a PIL image or PNG/JPEG bytes)."""
    from PIL import Image

    if isinstance(preview, Image.Image):
        return preview
    if isinstance(preview, (bytes, bytearray)):
        return Image.open(io.BytesIO(preview)).convert("RGB")
    raise TypeError(f"unsupported preview type {type(preview).__name__}")


def _jsonable(metrics: dict[str, Any]) -> dict[str, Any]:
    """Metrics with numbers as floats and anything else as text, ready for a JSON column."""
    out: dict[str, Any] = {}
    for name, value in metrics.items():
        if isinstance(value, dict):
            out[str(name)] = _jsonable(value)
        elif isinstance(value, (int, float, str, bool)) or value is None:
            out[str(name)] = value
        else:
            try:
                out[str(name)] = float(value)
            except (TypeError, ValueError):
                out[str(name)] = str(value)
    return out
