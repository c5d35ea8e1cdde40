"""`Runtime`: the long-lived parts one server process shares between requests and its in-process workers."""
from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator

from PIL import Image

from server.db import Database
from server.dialogue_service import DialogueModelLike, DialogueService, DialogueStatus
from server.editing_setup import EditingSetup
from server.errors import ApiError
from server.images import ImageStore
from server.job_signal import JobSignal
from server.security import RateLimiter
from server.settings import Settings

if TYPE_CHECKING:
    from server.jobs import Janitor
    from server.worker import Worker

log = logging.getLogger(__name__)


def busy_error() -> ApiError:
    return ApiError(409, "turn_in_progress",
                    "another turn of this conversation is still being processed; wait for its answer")


class TurnLocks:
    """One non-blocking lock per conversation: a second turn (or undo) while one runs is refused, not queued."""

    def __init__(self) -> None:
        self._held: set[str] = set()
        self._guard = threading.Lock()

    @contextlib.contextmanager
    def hold(self, conversation_id: str) -> Iterator[None]:
        """Hold the conversation's lock for the block; raise 409 when another request holds it."""
        with self._guard:
            if conversation_id in self._held:
                raise busy_error()
            self._held.add(conversation_id)
        try:
            yield
        finally:
            with self._guard:
                self._held.discard(conversation_id)


@dataclass
class Runtime:
    """Built by `create_app`; `server.app.start` fills in the dialogue service, samples, workers and janitor."""

    settings: Settings
    db: Database
    store: ImageStore
    editing: EditingSetup
    limiter: RateLimiter
    jobs_waiting: JobSignal  # rung when a job is queued: wakes the workers here and, on PostgreSQL, elsewhere
    dialogue_model: DialogueModelLike | None = None  # injected model, else `start` loads settings.dialogue_model
    dialogue: DialogueService | None = None
    dialogue_status: DialogueStatus = DialogueStatus(False, "the server has not been started (server.app.start)")
    sample_keys: dict[str, str] = field(default_factory=dict)  # sample name -> image key
    turn_locks: TurnLocks = field(default_factory=TurnLocks)
    workers: list[Worker] = field(default_factory=list)  # in-process edit workers
    janitor: Janitor | None = None
    started: bool = False

    def import_samples(self) -> None:
        """Copy the weight set's sample photos into the image store (re-encoded) so the API can serve them."""
        for name, path in self.editing.samples.items():
            try:
                with Image.open(path) as image:
                    self.sample_keys[name] = self.store.put(image.convert("RGB"))
            except OSError as exc:
                log.warning("sample photo %s could not be read and is left out: %s", path, exc)

    def can_edit(self, photo_source: str | None) -> bool:
        """Whether a photo from `photo_source` ("upload", "sample:NAME") can be edited with these weights."""
        if photo_source is None or not self.editing.available:
            return False
        return photo_source.startswith("sample:") or self.editing.real_photos
