"""`JobSignal`: tells edit workers that a job is waiting, in this process and, on PostgreSQL, in every other one.

`set()` wakes the workers of this process (a `threading.Event`) and, on PostgreSQL, sends `NOTIFY i2edit_jobs`,
which PostgreSQL delivers to every connection that runs `LISTEN i2edit_jobs`: `listen()` starts a thread that
holds such a connection and wakes this process's workers on each notification. So a worker on another machine
starts a new job within a round trip instead of at its next poll. Workers still poll now and then (`poll_s`: 1 s
without a listener, as on SQLite; 30 s with one, in case a notification was lost while the connection was down).
"""
from __future__ import annotations

import logging
import select
import threading

from server.db import Database

log = logging.getLogger(__name__)

CHANNEL = "i2edit_jobs"
POLL_S = 1.0  # how often workers look for jobs when nothing tells them
LISTENING_POLL_S = 30.0  # ... and when LISTEN/NOTIFY does


class JobSignal:
    """An Event-like bell (`set`, `wait`, `clear`) that also rings across processes on PostgreSQL."""

    def __init__(self, db: Database | None = None):
        self.db = db
        self._event = threading.Event()
        self._listening = threading.Event()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def poll_s(self) -> float:
        """Seconds a worker waits for the bell before it looks for jobs anyway."""
        return LISTENING_POLL_S if self._listening.is_set() else POLL_S

    @property
    def listening(self) -> bool:
        return self._listening.is_set()

    def set(self) -> None:
        """A job is waiting: wake this process's workers and, on PostgreSQL, every listening process."""
        self._event.set()
        if self.db is not None and self.db.is_postgresql:
            try:
                with self.db.engine.connect() as conn:
                    conn.exec_driver_sql(f"NOTIFY {CHANNEL}")
                    conn.commit()
            except Exception as exc:  # the others still find the job at their next poll
                log.warning("could not notify the edit workers (they will find the job by polling): %s", exc)

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)

    def clear(self) -> None:
        self._event.clear()

    def is_set(self) -> bool:
        return self._event.is_set()

    def listen(self) -> None:
        """On PostgreSQL, start the thread that turns notifications into wake-ups (no-op elsewhere)."""
        if self.db is None or not self.db.is_postgresql or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._listen_loop, name="job-listener", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop listening (the thread ends within a second)."""
        self._closed.set()
        if self._thread is not None:
            self._thread.join(5)

    def _listen_loop(self) -> None:
        backoff_s = 1.0
        while not self._closed.is_set():
            conn = None
            try:
                engine = self.db.engine
                cargs, cparams = engine.dialect.create_connect_args(engine.url)
                conn = engine.dialect.connect(*cargs, **cparams)  # outside the pool: it stays in LISTEN mode
                conn.autocommit = True
                with conn.cursor() as cursor:
                    cursor.execute(f"LISTEN {CHANNEL}")
                self._listening.set()
                self._event.set()  # jobs may have been queued while nobody listened
                backoff_s = 1.0
                while not self._closed.is_set():
                    readable, _, _ = select.select([conn], [], [], 1.0)
                    if readable:
                        conn.poll()
                        if conn.notifies:
                            conn.notifies.clear()
                            self._event.set()
            except Exception as exc:  # connection lost: poll meanwhile, and listen again
                log.warning("listening for new edit jobs failed (%s); retrying in %.0f s", exc, backoff_s)
                self._listening.clear()
                self._closed.wait(backoff_s)
                backoff_s = min(backoff_s * 2, 30.0)
            finally:
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:  # already broken
                        pass
        self._listening.clear()
