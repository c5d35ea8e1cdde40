"""`i2edit serve` (the chat server under waitress) and `i2edit worker` (extra edit workers)."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    serve = subparsers.add_parser(
        "serve", help="run the chat server (web page + JSON API + one edit worker)",
        description="Run the i2edit chat server under waitress. Settings come from I2EDIT_* variables "
                    "(see server/settings.py); these flags override them.")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    _add_common(serve)
    serve.add_argument("--dialogue-model", help="dialogue model directory (default: the shipped model)")
    serve.add_argument("--workers", type=int, help="in-process edit workers (default 1; 0: only `i2edit worker`)")
    serve.add_argument("--threads", type=int, help="request threads (default 64)")
    serve.add_argument("--rate-limit", help="state-changing requests per client, e.g. 60/minute, or 0 (off)")
    serve.add_argument("--trust-proxy", type=int, metavar="HOPS",
                       help="proxies in front of the server whose X-Forwarded-* headers count (default 0)")
    serve.set_defaults(func=_serve)

    worker = subparsers.add_parser(
        "worker", help="run an extra edit worker against the server's database",
        description="Run edit jobs from the database that `i2edit serve` uses (e.g. one worker per GPU: "
                    "--device cuda:1). Stops on Ctrl-C, handing its running job back to the queue.")
    _add_common(worker)
    worker.set_defaults(func=_worker)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", help="data dir for the database, images and caches (default ./var)")
    parser.add_argument("--database-url", help="SQLAlchemy URL (default: SQLite file in the data dir)")
    parser.add_argument("--weights", help="editing weight set name or directory: auto (default), ffhq, demo, none")
    parser.add_argument("--device", help="torch device for editing: auto (default), cpu, cuda, cuda:1, ...")
    parser.add_argument("--align", choices=("auto", "on", "off"),
                        help="face alignment before inversion (default auto: on, except for the demo set)")
    parser.add_argument("--torch-threads", type=int,
                        help="CPU threads per torch op (serve and its dialogue process: 1 by default; worker: "
                             "torch's default)")
    parser.add_argument("--edit-steps", type=int, help="optimisation steps per edit (default: the editor's, 300)")
    parser.add_argument("--store", choices=("local", "database"),
                        help="where images and cached inversions live: local (the data dir, default) or "
                             "database (shared by every machine that uses the database)")


def _settings(args: argparse.Namespace):
    from pathlib import Path

    from server.settings import RateLimit, Settings

    return Settings.from_env(
        data_dir=Path(args.data_dir) if args.data_dir else None,
        database_url=args.database_url,
        weights=args.weights,
        device=args.device,
        align=args.align,
        edit_steps=args.edit_steps,
        torch_threads=args.torch_threads,
        dialogue_model=getattr(args, "dialogue_model", None),
        workers=getattr(args, "workers", None),
        threads=getattr(args, "threads", None),
        rate_limit=RateLimit.parse(args.rate_limit) if getattr(args, "rate_limit", None) else None,
        trust_proxy=getattr(args, "trust_proxy", None),
        store=args.store,
    )


def _set_torch_threads(count: int) -> None:
    """Use `count` CPU threads per torch op (through OMP_NUM_THREADS when torch is not imported yet)."""
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(count)
    else:
        os.environ["OMP_NUM_THREADS"] = str(count)


def _interrupt_on_sigterm() -> None:
    def handler(signum, frame):
        raise KeyboardInterrupt()

    signal.signal(signal.SIGTERM, handler)


def _serve(args: argparse.Namespace) -> int:
    from waitress import create_server

    from server.app import create_app, shutdown, start

    settings = _settings(args)
    # Many small model calls from many request threads: one thread per op avoids OpenMP oversubscription,
    # which on a busy 2-core machine made one dialogue step 80x slower (15 s instead of 0.17 s).
    _set_torch_threads(settings.torch_threads or 1)
    app = create_app(settings)
    rt = start(app)
    # Forwarded headers pass through to the app, whose ProxyFix believes only the trusted hops; without a proxy
    # waitress drops them, so nobody can fake a client address.
    server = create_server(app, host=args.host, port=args.port, threads=settings.threads, ident="i2edit",
                           clear_untrusted_proxy_headers=not settings.trust_proxy)
    host = args.host if args.host not in ("0.0.0.0", "::") else "127.0.0.1"
    print(f"dialogue: {rt.dialogue_status.detail}", flush=True)
    print(f"editing:  {rt.editing.detail}", flush=True)
    print(f"data:     {settings.data_dir} ({settings.db_url.split('://')[0]}; images: {settings.store} store; "
          f"{len(rt.workers)} in-process edit worker(s))", flush=True)
    print(f"i2edit is running at http://{host}:{server.effective_port}/  (Ctrl-C stops it)", flush=True)
    _interrupt_on_sigterm()
    try:
        server.run()  # returns on Ctrl-C or SIGTERM (waitress catches the KeyboardInterrupt)
    except KeyboardInterrupt:
        pass
    finally:
        print("stopping; a running edit goes back to the queue", flush=True)
        server.close()
        shutdown(app)
    return 0


def _worker(args: argparse.Namespace) -> int:
    from server.db import Database
    from server.editing_setup import probe_editing
    from server.images import open_store
    from server.job_signal import JobSignal
    from server.jobs import Janitor
    from server.worker import Worker

    settings = _settings(args)
    if settings.torch_threads:
        _set_torch_threads(settings.torch_threads)
    editing = probe_editing(settings.weights, settings.device, settings.align)
    if not editing.available:
        raise RuntimeError(f"this worker cannot edit: {editing.detail}")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.db_url)
    db.upgrade()
    signal_ = JobSignal(db)
    worker = Worker(settings, db, open_store(settings, db), editing, wake=signal_, name="worker")
    worker.load_editor()  # EditorUnavailable: the CLI says why and exits 1, having claimed nothing
    janitor = Janitor(db, settings.stale_after_s, settings.queue_expiry_s, signal_.set)
    janitor.start()
    signal_.listen()
    how = "woken by LISTEN/NOTIFY" if db.is_postgresql else f"polling every {signal_.poll_s:g} s"
    print(f"{editing.detail} Worker {worker.worker_id} is waiting for jobs in {db.engine.url!r} ({how}; "
          "Ctrl-C stops it)", flush=True)

    def stop(signum, frame):
        print("stopping; a running edit goes back to the queue", flush=True)
        worker.request_stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        worker.run()  # in the main thread: torch work in a helper thread can abort the process at exit
    finally:
        janitor.stop()
        signal_.close()
        db.dispose()
    if worker.problem:
        raise RuntimeError(f"worker {worker.worker_id} stopped: {worker.problem}")
    return 0
