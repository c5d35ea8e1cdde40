"""The Flask application factory.

`create_app(settings)` migrates the database, loads the dialogue model, finds the editing weights and starts
`settings.workers` in-process edit workers. Tests and embedders can inject a dialogue model and an
`EditingSetup` instead. `shutdown(app)` stops the workers and releases the database.
"""
from __future__ import annotations

import logging

from flask import Flask, Response

from server.db import Database
from server.dialogue_service import DialogueModelLike, DialogueService, DialogueStatus, load_dialogue
from server.editing_setup import EditingSetup, probe_editing
from server.errors import register_error_handlers
from server.images import ImageStore
from server.runtime import Runtime
from server.security import RateLimiter
from server.settings import MAX_UPLOAD_BYTES, Settings
from server.worker import Worker, recover_stale_jobs

log = logging.getLogger(__name__)

_CSP = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


def create_app(settings: Settings | None = None, *, dialogue: DialogueModelLike | None = None,
               editing: EditingSetup | None = None, start_workers: bool = True) -> Flask:
    """The i2edit app for `settings` (default: from `I2EDIT_*`), with optional injected models."""
    settings = settings or Settings.from_env()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.db_url)
    db.upgrade()
    recover_stale_jobs(db, settings.stale_after_s)
    if dialogue is None:
        dialogue_service, dialogue_status = load_dialogue(settings.dialogue_model, settings.torch_threads)
    else:
        dialogue_service = DialogueService(dialogue)
        dialogue_status = DialogueStatus(True, f"dialogue model: {type(dialogue).__name__}")
    if editing is None:
        editing = probe_editing(settings.weights, settings.device, settings.align)
    rt = Runtime(settings=settings, db=db, store=ImageStore(settings.images_dir), dialogue=dialogue_service,
                 dialogue_status=dialogue_status, editing=editing, limiter=RateLimiter(settings.rate_limit))
    rt.import_samples()

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_UPLOAD_BYTES + 256 * 1024  # the photo plus multipart overhead
    app.config["TEMPLATES_AUTO_RELOAD"] = False
    app.extensions["i2edit"] = rt
    from server import api, pages

    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    register_error_handlers(app)

    @app.after_request
    def _security_headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", _CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response

    workers = []
    if start_workers and editing.available:
        for number in range(settings.workers):
            worker = Worker(settings, db, rt.store, editing, wake=rt.jobs_waiting, name=f"serve-{number}")
            worker.start()
            workers.append(worker)
    app.extensions["i2edit_workers"] = workers
    log.info("%s; %s", dialogue_status.detail, editing.detail)
    return app


def shutdown(app: Flask) -> None:
    """Stop the app's workers and dialogue runner and close its database connections."""
    for worker in app.extensions.get("i2edit_workers", []):
        worker.stop()
    rt: Runtime = app.extensions["i2edit"]
    if rt.dialogue is not None:
        rt.dialogue.close()
    rt.db.dispose()
