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
                        help="CPU threads per torch op (serve: 1 by default, its dialogue process 2 where "
                             "there are 2 cores; worker: torch's default)")
    parser.add_argument("--edit-steps", type=int, help="optimisation steps per edit (default: the editor's, 300)")


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

    from server.app import create_app, shutdown

    settings = _settings(args)
    # Many small model calls from many request threads: one thread per op avoids OpenMP oversubscription,
    # which on a busy 2-core machine made one dialogue step 80x slower (15 s instead of 0.17 s).
    _set_torch_threads(settings.torch_threads or 1)
    app = create_app(settings)
    rt = app.extensions["i2edit"]
    proxy = {}
    if settings.trust_proxy:  # else waitress drops X-Forwarded-* headers: nobody can fake a client address
        proxy = dict(trusted_proxy="*", trusted_proxy_count=1,
                     trusted_proxy_headers={"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"})
    server = create_server(app, host=args.host, port=args.port, threads=settings.threads, ident="i2edit",
                           clear_untrusted_proxy_headers=True, **proxy)
    host = args.host if args.host not in ("0.0.0.0", "::") else "127.0.0.1"
    print(f"dialogue: {rt.dialogue_status.detail}", flush=True)
    print(f"editing:  {rt.editing.detail}", flush=True)
    print(f"data:     {settings.data_dir} ({settings.db_url.split('://')[0]})", flush=True)
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
    from server.images import ImageStore
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
    worker = Worker(settings, db, ImageStore(settings.images_dir), editing, name="worker")
    print(f"{editing.detail} Worker {worker.worker_id} is waiting for jobs in {settings.db_url} (Ctrl-C stops it)",
          flush=True)

    def stop(signum, frame):
        print("stopping; a running edit goes back to the queue", flush=True)
        worker.request_stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        worker.run()  # in the main thread: torch work in a helper thread can abort the process at exit
    finally:
        db.dispose()
    return 0
