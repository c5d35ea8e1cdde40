"""The edit-job worker: claims queued jobs from the database (`server.jobs`) and runs them on its own editor.

- One editor (one model instance) per worker, loaded before the worker claims anything: a worker whose editor
  cannot load (no GPU, a missing file) claims nothing, records why in `problem` (`/readyz` reports it) and stops;
  `i2edit worker` then exits non-zero. A worker runs one job at a time, so no model runs two edits at once.
- While a job runs, a heartbeat thread stamps `heartbeat_at` with the database's clock and watches
  `cancel_requested`; the optimiser's progress callback stores step / total and, every so often, a preview image.
- An error of the database (locked, unreachable) never ends a worker: the job it hit goes back to the queue when
  possible, and the worker tries again after a pause that grows to 30 s.
- A photo's inversion is cached in the image store under the weights' content hash, so workers on other machines
  (with the same weights at other paths) reuse it.
"""
from __future__ import annotations

import collections
import io
import logging
import os
import threading
import time
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError

from dialogue.ontology import BeliefState
from server.db import Database, db_now
from server.editing_setup import EditingSetup, EditorLike
from server.images import ImageStore
from server.jobs import MAX_ATTEMPTS, claim_job, mark_alive, new_worker_id, recover_stale_jobs
from server.models import Conversation, EditJob, Photo, Turn, utcnow
from server.settings import Settings

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 0.25  # at most this often a progress write
PREVIEW_EVERY_S = 0.75  # at most this often a stored preview
INVERSION_CACHE = 8  # inversions kept in memory per worker
MAX_PAUSE_S = 30.0  # longest pause after database errors


class JobCancelled(Exception):
    """Raised inside a job when its cancellation was requested."""


class EditorUnavailable(RuntimeError):
    """The worker's editor could not be built; the message says why."""


class Worker:
    """Runs edit jobs one at a time; `start()` in a thread, or `run()` in the calling thread."""

    def __init__(self, settings: Settings, db: Database, store: ImageStore, editing: EditingSetup,
                 wake: Any = None, name: str = "worker"):
        self.settings = settings
        self.db = db
        self.store = store
        self.editing = editing
        self.wake = wake or threading.Event()  # a JobSignal, or a plain Event
        self.nonce = os.urandom(4).hex()
        self.worker_id = new_worker_id(name, self.nonce)
        self.editor: EditorLike | None = None
        self.problem: str | None = None  # why this worker stopped taking jobs; None while it is healthy
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

    def load_editor(self) -> None:
        """Build this worker's editor (its own model instance); `EditorUnavailable` says why it cannot."""
        started = time.monotonic()
        try:
            self.editor = self.editing.factory()
        except Exception as exc:
            raise EditorUnavailable(f"the editor could not be loaded ({self.editing.detail}): "
                                    f"{type(exc).__name__}: {exc}") from exc
        log.info("worker %s loaded its editor in %.1f s", self.worker_id, time.monotonic() - started)

    def run(self, poll_s: float | None = None) -> None:
        """Load the editor, then run queued jobs until `stop()`.

        Without an editor it claims nothing: it sets `problem` and returns. `poll_s`: how long to wait for the
        wake-up before looking for jobs anyway (default: the wake signal's, 1 s without LISTEN/NOTIFY).
        """
        mark_alive(self.nonce, True)
        try:
            if self.editor is None:
                try:
                    self.load_editor()
                except EditorUnavailable as exc:
                    self.problem = str(exc)
                    log.error("worker %s takes no jobs: %s", self.worker_id, exc)
                    return
            try:
                recover_stale_jobs(self.db, self.settings.stale_after_s)
            except SQLAlchemyError as exc:  # the janitor tries again on its timer
                log.warning("worker %s could not look for abandoned jobs: %s", self.worker_id, exc)
            pause_s = 0.0
            while not self._stop.is_set():
                try:
                    ran = self.run_once()
                except Exception as exc:  # the database: locked past its timeout, unreachable, ...
                    pause_s = min(max(1.0, pause_s * 2), MAX_PAUSE_S)
                    log.warning("worker %s: %s: %s; trying again in %.0f s", self.worker_id, type(exc).__name__,
                                exc, pause_s)
                    self._stop.wait(pause_s)
                    continue
                pause_s = 0.0
                if not ran:
                    self.wake.wait(poll_s if poll_s is not None else getattr(self.wake, "poll_s", 1.0))
                    self.wake.clear()
        finally:
            mark_alive(self.nonce, False)

    # --- one job ------------------------------------------------------------------------------------
    def run_once(self) -> bool:
        """Claim and run one queued job; False when none was waiting. Database errors propagate (after the job
        went back to the queue where the database allowed it)."""
        job_id = claim_job(self.db, self.worker_id)
        if job_id is None:
            return False
        cancel = self._current_cancel = threading.Event()
        heartbeat = _Heartbeat(self.db, job_id, self.worker_id, cancel, interval_s=self.settings.stale_after_s / 6)
        heartbeat.start()
        try:
            self._run_job(job_id, cancel)
        except SQLAlchemyError as exc:
            self._give_back(job_id, f"re-queued: a database error interrupted it ({type(exc).__name__})")
            raise
        except Exception as exc:
            if self._stop.is_set() and self._requeue(job_id):
                pass
            elif cancel.is_set() or isinstance(exc, JobCancelled):
                self._finish_cancelled(job_id)
            else:
                log.exception("edit job %s failed", job_id)
                self._finish(job_id, status="failed", error=f"the edit failed: {exc}")
        finally:
            heartbeat.stop()
            self._current_cancel = None
        return True

    def _run_job(self, job_id: str, cancel: threading.Event) -> None:
        started = time.monotonic()
        with self.db.read() as session:
            job = session.get(EditJob, job_id)
            turn = session.get(Turn, job.turn_id)
            photo = session.scalar(select(Photo).join(Conversation, Conversation.photo_id == Photo.id)
                                   .where(Conversation.id == job.conversation_id))
            state = BeliefState.from_dict(turn.belief_state)
            turn_id, old_preview, effort = turn.id, job.preview_key, job.effort or 0
        if photo is None:
            raise RuntimeError("the conversation has no photo to edit")
        inversion = self._inversion(photo)
        if cancel.is_set():
            raise JobCancelled()
        progress = _Progress(self.db, self.store, job_id, self.worker_id, cancel, old_preview)
        result = self.editor.edit(inversion, state, mode="multi", steps=self.settings.edit_steps,
                                  progress=progress, cancel=cancel, effort=effort)
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
        if done:
            log.info("edit job %s done by %s in %.2f s", job_id, self.worker_id, time.monotonic() - started)
        progress.discard_preview()

    def _inversion(self, photo: Photo) -> Any:
        """The photo's inversion for these weights: from memory, the store's cache, or computed (and cached)."""
        weights = self.editing.weights_id
        cache_key = f"{photo.image_key}|{weights}"
        if cache_key in self._inversions:
            self._inversions.move_to_end(cache_key)
            return self._inversions[cache_key]
        inversion = None
        codec = self.editing.dump_inversion and self.editing.load_inversion
        if codec and photo.inversion_key and photo.inversion_weights == weights:
            try:
                inversion = self.editing.load_inversion(self.store.get_bytes(photo.inversion_key))
            except KeyError:
                log.info("cached inversion %s is not in the store; inverting again", photo.inversion_key)
            except Exception as exc:  # a damaged cache entry is recomputed, never fatal
                log.warning("cached inversion %s unreadable (%s); inverting again", photo.inversion_key, exc)
        if inversion is None:
            inversion = self.editor.invert(self.store.open(photo.image_key))
            if codec:
                key = self.store.put_bytes(self.editing.dump_inversion(inversion), "inv")
                with self.db.write() as session:
                    session.execute(update(Photo).where(Photo.id == photo.id)
                                    .values(inversion_key=key, inversion_weights=weights)
                                    .execution_options(synchronize_session=False))
        self._inversions[cache_key] = inversion
        while len(self._inversions) > INVERSION_CACHE:
            self._inversions.popitem(last=False)
        return inversion

    def _requeue(self, job_id: str, why: str = "interrupted by shutdown") -> bool:
        """Give an edit this worker stopped (at shutdown, or for a cancellation since withdrawn) back to the
        queue, without counting the attempt.

        False when the job's cancellation is requested (then the caller cancels it instead).
        """
        with self.db.write() as session:
            changed = session.execute(
                update(EditJob).where(EditJob.id == job_id, EditJob.worker_id == self.worker_id,
                                      EditJob.status == "running", EditJob.cancel_requested.is_(False))
                .values(status="queued", worker_id=None, step=0, total=0, attempts=EditJob.attempts - 1,
                        error=None)
                .execution_options(synchronize_session=False)).rowcount
        if changed:
            log.info("edit job %s %s; back in the queue", job_id, why)
            self.wake.set()  # on PostgreSQL: tells the other workers at once
        return bool(changed)

    def _give_back(self, job_id: str, reason: str) -> None:
        """After a database error: the job back to the queue (or failed after `MAX_ATTEMPTS` starts). When the
        database is still failing, the janitor does this once the heartbeat is stale."""
        mine = (EditJob.id == job_id, EditJob.worker_id == self.worker_id, EditJob.status == "running")
        try:
            with self.db.write() as session:
                requeued = session.execute(update(EditJob).where(*mine, EditJob.attempts < MAX_ATTEMPTS)
                                           .values(status="queued", worker_id=None, step=0, total=0, error=reason)
                                           .execution_options(synchronize_session=False)).rowcount
                session.execute(update(EditJob).where(*mine)
                                .values(status="failed", finished_at=db_now(),
                                        error=f"the edit failed twice on database errors ({reason}); send the "
                                              "turn again to retry")
                                .execution_options(synchronize_session=False))
        except SQLAlchemyError as exc:
            log.warning("edit job %s stays with worker %s until the janitor finds it stale: %s", job_id,
                        self.worker_id, exc)
            return
        if requeued:
            self.wake.set()

    def _finish_cancelled(self, job_id: str) -> None:
        """Record a cancellation this worker noticed, unless it was withdrawn meanwhile (an undo back to this
        turn resets `cancel_requested`): then the edit goes back to the queue."""
        if not self._requeue(job_id, "its cancellation was withdrawn"):
            self._finish(job_id, status="cancelled", error="cancelled: a newer turn superseded this edit")

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
                                    .values(heartbeat_at=db_now()).execution_options(synchronize_session=False))
                    job = session.get(EditJob, self.job_id)
                    if job is None or job.cancel_requested or job.worker_id != self.worker_id:
                        self.cancel.set()
            except Exception:  # a missed heartbeat is retried next interval
                log.warning("heartbeat of job %s failed", self.job_id, exc_info=True)


class _Progress:
    """The optimiser's `progress(step, total, losses, preview)` callback: throttled writes to the job row.

    Each write also stamps the heartbeat and reads back `cancel_requested`, so a superseded edit stops within a
    fraction of a second. A write the database refuses is skipped (the edit goes on; the next write catches up).
    `preview_key` is the preview an earlier, interrupted run of the job left, replaced by the first new one.
    """

    def __init__(self, db: Database, store: ImageStore, job_id: str, worker_id: str, cancel: threading.Event,
                 preview_key: str | None = None):
        self.db, self.store, self.job_id, self.worker_id, self.cancel = db, store, job_id, worker_id, cancel
        self.step = self.total = self.round = 0
        self._last_write = self._last_preview = 0.0
        self._preview_key = preview_key

    def __call__(self, step: int, total: int, losses: Any = None, preview: Any = None) -> None:
        self.step, self.total = int(step), int(total)
        now = time.monotonic()
        values: dict[str, Any] = {}
        refine_round = int((losses or {}).get("round", 0))  # the critic's refinement round (0: the first edit)
        if refine_round != self.round:
            self.round = values["round"] = refine_round
        if preview is not None and now - self._last_preview >= PREVIEW_EVERY_S:
            old = self._preview_key
            self._preview_key = self.store.put(_to_pil(preview), "jpg")
            values["preview_key"] = self._preview_key
            self._last_preview = now
            if old and old != self._preview_key:
                _drop_preview_if_unused(self.db, self.store, old, keep_job=self.job_id)
        if values or now - self._last_write >= PROGRESS_EVERY_S or step >= total:
            values.update(step=self.step, total=self.total, heartbeat_at=db_now())
            try:
                with self.db.write() as session:
                    wanted = session.execute(
                        update(EditJob).where(EditJob.id == self.job_id, EditJob.worker_id == self.worker_id)
                        .values(**values).returning(EditJob.cancel_requested)
                        .execution_options(synchronize_session=False)).scalar_one_or_none()
            except SQLAlchemyError as exc:
                log.warning("progress of edit job %s not stored: %s", self.job_id, exc)
                return
            if wanted is None or wanted:  # cancelled, or no longer this worker's job
                self.cancel.set()
            self._last_write = now

    def discard_preview(self) -> None:
        """Delete the last preview file once the job row no longer shows it (the job is done)."""
        if self._preview_key:
            _drop_preview_if_unused(self.db, self.store, self._preview_key, keep_job=None)


def _drop_preview_if_unused(db: Database, store: ImageStore, key: str, keep_job: str | None) -> None:
    """Delete a preview unless another job still shows it (identical edits give identical previews)."""
    with db.read() as session:
        query = select(EditJob.id).where(EditJob.preview_key == key)
        if keep_job is not None:
            query = query.where(EditJob.id != keep_job)
        unused = session.scalar(query.limit(1)) is None and session.scalar(
            select(Turn.id).where(Turn.image_key == key).limit(1)) is None
    if unused:  # outside the session: the database store needs a connection of its own
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
        elif isinstance(value, (list, tuple)):  # e.g. the critic's rounds
            out[str(name)] = [_jsonable(v) if isinstance(v, dict) else v for v in value]
        elif isinstance(value, (int, float, str, bool)) or value is None:
            out[str(name)] = value
        else:
            try:
                out[str(name)] = float(value)
            except (TypeError, ValueError):
                out[str(name)] = str(value)
    return out
