"""The Flask application factory, and the explicit start and stop of what a server process runs beside it.

`create_app(settings)` builds the app and its `Runtime` and nothing else: it does not touch the database, start a
process or a thread. `start(app)` migrates the database, re-queues jobs a dead worker left running, loads the
dialogue model (in its child process), imports the sample photos and starts the job janitor and
`settings.workers` in-process edit workers. `shutdown(app)` stops all of that. `i2edit serve` calls the three;
other WSGI servers call `started_app()` (e.g. `waitress-serve --call server.app:started_app`). Tests and
embedders can inject a dialogue model and an `EditingSetup`.

Behind proxies (`settings.trust_proxy` hops), Werkzeug's `ProxyFix` takes the client address, scheme and host
from the `X-Forwarded-*` entries the trusted proxies added, so this holds under any WSGI server.
"""
from __future__ import annotations

import logging

from flask import Flask, Response
from werkzeug.middleware.proxy_fix import ProxyFix

from server.db import Database
from server.dialogue_service import DialogueModelLike, DialogueService, DialogueStatus, load_dialogue
from server.editing_setup import EditingSetup, probe_editing
from server.errors import register_error_handlers
from server.images import open_store
from server.job_signal import JobSignal
from server.jobs import Janitor, recover_stale_jobs
from server.runtime import Runtime
from server.security import RateLimiter
from server.settings import MAX_UPLOAD_BYTES, Settings
from server.worker import Worker

log = logging.getLogger(__name__)

_CSP = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


def create_app(settings: Settings | None = None, *, dialogue: DialogueModelLike | None = None,
               editing: EditingSetup | None = None) -> Flask:
    """The i2edit app for `settings` (default: from `I2EDIT_*`), with optional injected models; call `start`."""
    settings = settings or Settings.from_env()
    db = Database(settings.db_url)
    if editing is None:
        editing = probe_editing(settings.weights, settings.device, settings.align)
    rt = Runtime(settings=settings, db=db, store=open_store(settings, db), editing=editing,
                 limiter=RateLimiter(db, settings.rate_limit), jobs_waiting=JobSignal(db), dialogue_model=dialogue)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_UPLOAD_BYTES + 256 * 1024  # the photo plus multipart overhead
    app.config["TEMPLATES_AUTO_RELOAD"] = False
    app.extensions["i2edit"] = rt
    from server import api, health, pages

    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(health.bp)
    register_error_handlers(app)

    @app.after_request
    def _security_headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", _CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response

    if settings.trust_proxy:
        hops = settings.trust_proxy
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    return app


def start(app: Flask) -> Runtime:
    """Migrate the database and start the dialogue model, the janitor and the in-process workers (once)."""
    rt: Runtime = app.extensions["i2edit"]
    if rt.started:
        return rt
    settings = rt.settings
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    rt.db.upgrade()
    recover_stale_jobs(rt.db, settings.stale_after_s)
    if rt.dialogue_model is None:
        rt.dialogue, rt.dialogue_status = load_dialogue(settings.dialogue_model, settings.torch_threads,
                                                        call_timeout_s=settings.dialogue_timeout_s)
    else:
        rt.dialogue = DialogueService(rt.dialogue_model)
        rt.dialogue_status = DialogueStatus(True, f"dialogue model: {type(rt.dialogue_model).__name__}")
    rt.import_samples()
    rt.janitor = Janitor(rt.db, settings.stale_after_s, settings.queue_expiry_s, rt.jobs_waiting.set,
                         chores=(rt.limiter.forget_old,))
    rt.janitor.start()
    if rt.editing.available and settings.workers:
        rt.jobs_waiting.listen()
        for number in range(settings.workers):
            worker = Worker(settings, rt.db, rt.store, rt.editing, wake=rt.jobs_waiting, name=f"serve-{number}")
            worker.start()
            rt.workers.append(worker)
    rt.started = True
    log.info("%s; %s", rt.dialogue_status.detail, rt.editing.detail)
    return rt


def started_app() -> Flask:
    """`create_app()` from the `I2EDIT_*` environment, started: the entry point for WSGI servers that call a
    factory (`waitress-serve --call server.app:started_app`)."""
    app = create_app()
    start(app)
    return app


def shutdown(app: Flask) -> None:
    """Stop the app's workers (their running edits go back to the queue), janitor and dialogue model, and close
    its database connections."""
    rt: Runtime = app.extensions["i2edit"]
    for worker in rt.workers:
        worker.stop()
    rt.workers.clear()
    if rt.janitor is not None:
        rt.janitor.stop()
    rt.jobs_waiting.close()
    if rt.dialogue is not None:
        rt.dialogue.close()
        rt.dialogue = None
    rt.started = False
    rt.db.dispose()
