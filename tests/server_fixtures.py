"""Shared pieces for the server tests: fake dialogue model and editor, app factory, tiny images."""
from __future__ import annotations

import io
import json
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from dialogue.ontology import BeliefState, normalize_value
from server.editing_setup import EditingSetup
from server.settings import RateLimit, Settings


def png_bytes(size: tuple[int, int] = (32, 32), color=(200, 120, 90), fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format=fmt)
    return buffer.getvalue()


class FakeDialogue:
    """Keyword tracker: every ontology value (or synonym) named in a user turn is added, "no X"/"remove X" removes.

    Deterministic and instant; counts calls and can be slowed down (`delay_s`) to hold a turn open.
    """

    def __init__(self, delay_s: float = 0.0):
        self.delay_s = delay_s
        self.calls = 0
        self.histories: list[list[tuple[str, str]]] = []
        self.states: list = []  # the state given with each step (None when none was)
        self._lock = threading.Lock()

    @staticmethod
    def _track(state: BeliefState, text: str) -> BeliefState:
        words = re.findall(r"[a-z]+", text.lower())
        i = 0
        while i < len(words):
            for n in (3, 2, 1):  # longest match first, left to right
                value = normalize_value(" ".join(words[i:i + n]))
                if value is not None:
                    removing = i > 0 and words[i - 1] in ("remove", "without")
                    state = state.remove(value, missing_ok=True) if removing else state.add(value)
                    i += n
                    break
            else:
                i += 1
        return state

    def step(self, history, user_text, state=None):
        if not user_text.strip():
            raise ValueError("user text is empty")
        with self._lock:
            self.calls += 1
            self.histories.append(list(history))
            self.states.append(state)
        if self.delay_s:
            time.sleep(self.delay_s)
        if state is not None:  # the state the user sees, as the server passes it
            state = state if isinstance(state, BeliefState) else BeliefState.from_dict(state)
        else:
            state = BeliefState()
            for user, _ in history:
                state = self._track(state, user)
        state = self._track(state, user_text)
        return state, f"Done: {state.to_text() or 'nothing yet'}. What else?"


@dataclass
class FakeInversion:
    photo_size: tuple[int, int]
    color: tuple[int, int, int]

    def to_bytes(self) -> bytes:
        return json.dumps({"size": self.photo_size, "color": self.color}).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> "FakeInversion":
        raw = json.loads(data)
        return cls(tuple(raw["size"]), tuple(raw["color"]))


@dataclass
class FakeResult:
    image: Image.Image
    metrics: dict[str, Any] = field(default_factory=dict)


class FakeEditor:
    """Stands in for `editing.Editor`: 'edits' by colouring the image by the state; reports progress and previews.

    `gate` (an Event) makes `edit` wait before finishing, so tests can observe a running job; `fail` raises.
    `hard`: values the fake critic judges absent unless the edit is pushed harder (None: no verdicts at all).
    Records concurrent use so tests can check that one editor never runs two edits at once, and each edit's effort.
    """

    instances: list["FakeEditor"] = []

    def __init__(self, steps: int = 6, step_s: float = 0.0, gate: threading.Event | None = None,
                 fail: str | None = None, hard: tuple[str, ...] | None = None):
        self.steps, self.step_s, self.gate, self.fail, self.hard = steps, step_s, gate, fail, hard
        self.efforts: list[int] = []
        self.inverted = 0
        self.edits = 0
        self.active = 0
        self.max_active = 0
        FakeEditor.instances.append(self)

    def invert(self, photo: Image.Image) -> FakeInversion:
        self.inverted += 1
        return FakeInversion(photo.size, photo.resize((1, 1)).getpixel((0, 0)))

    def edit(self, inversion, state, mode="multi", previous=None, steps=None, progress=None, cancel=None,
             effort=0):
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        self.efforts.append(effort)
        try:
            base = steps or self.steps
            total = base * (1 + effort)
            for step in range(1, total + 1):
                if cancel is not None and cancel.is_set():
                    raise RuntimeError("cancelled")
                if self.step_s:
                    time.sleep(self.step_s)
                preview = Image.new("RGB", (16, 16), (step * 10 % 256, 0, 0)) if step % 2 == 0 else None
                if progress is not None:  # steps past the first `base` are the critic's refinement rounds
                    progress(step, total, {"clip": 1.0 / step, "round": float((step - 1) // base)}, preview)
            if self.gate is not None:
                while not self.gate.wait(0.05):
                    if cancel is not None and cancel.is_set():
                        raise RuntimeError("cancelled")
            if self.fail:
                raise RuntimeError(self.fail)
            self.edits += 1
            shade = hash(tuple(state.values)) % 200
            metrics = {"avg_rel": 0.25, "min_rel": 0.2, "per_attribute": {v: 0.25 for v in state.values}}
            if self.hard is not None:  # a critic that finds `hard` values only when pushed harder
                metrics["verdicts"] = {v: effort > 0 or v not in self.hard for v in state.values}
                metrics["critique"] = {"kept_round": 0, "rounds": [{"round": 0, "verdicts": metrics["verdicts"]}]}
            return FakeResult(Image.new("RGB", (24, 24), (shade, 255 - shade, 40 + 60 * effort)), metrics)
        finally:
            self.active -= 1


def fake_editing(samples: dict[str, Path] | None = None, real_photos: bool = True, **editor_kwargs) -> EditingSetup:
    return EditingSetup(
        factory=lambda: FakeEditor(**editor_kwargs), weights_id="fake", detail="Editing with fake weights.",
        samples=samples or {}, real_photos=real_photos,
        real_photo_note=None if real_photos else "The fake set edits only its sample faces.",
        dump_inversion=lambda inv: inv.to_bytes(), load_inversion=FakeInversion.from_bytes)


def make_settings(tmp_path: Path, **changes) -> Settings:
    base = Settings(data_dir=tmp_path / "data", rate_limit=RateLimit(1000, 60.0), stale_after_s=30.0,
                    max_queued_per_owner=100)  # tests of one client with many conversations; the cap's own test sets it
    return base.replace(**changes)


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05):
    """Poll `predicate` until it returns something truthy; returns it, or raises after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


class LiveServer:
    """`app` served by waitress on 127.0.0.1 in a background thread (`url`; `stop()` closes it)."""

    def __init__(self, app, threads: int = 8):
        from waitress import create_server

        self._server = create_server(app, host="127.0.0.1", port=0, threads=threads)
        self.url = f"http://127.0.0.1:{self._server.effective_port}"
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._server.run()
        except OSError:  # the loop's select() on sockets that stop() just closed
            if not self._stopping.is_set():
                raise

    def stop(self) -> None:
        from waitress.wasyncore import close_all

        self._stopping.set()
        self._server.close()
        close_all(self._server._map)  # keep-alive connections (a browser's) would keep the loop running
        self._thread.join(10)
