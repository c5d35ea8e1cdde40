"""An i2edit deployment on this machine, for tests and benchmarks: a throwaway PostgreSQL cluster, `i2edit serve`
web processes and `i2edit worker` processes, each started in a working directory of its own.

    with postgres_cluster() as server_url:          # PostgresUnavailable(reason) when it cannot start one
        url = create_database(server_url)
        web = start_web(url, tmp / "web-1", "--workers", "0", "--store", "database")   # waits until it serves
        worker = start_worker(url, tmp / "worker-1", "--weights", DIR, "--store", "database")
        ... web.url ..., worker.pid, worker.log_text() ...
        web.stop(); worker.stop()

`I2EDIT_TEST_POSTGRES_URL` names a server to use instead of starting one. As root, the cluster runs as the
`postgres` user (PostgreSQL refuses root), on a Unix socket only.
"""
from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Iterator

I2EDIT = [sys.executable, "-m", "server.cli"]


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL cluster can be started here; the message says why."""


def pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@contextlib.contextmanager
def postgres_cluster(max_connections: int = 300) -> Iterator[str]:
    """A running PostgreSQL server for the block; yields the SQLAlchemy URL of its `postgres` database."""
    if importlib.util.find_spec("psycopg2") is None:
        raise PostgresUnavailable("psycopg2 is not installed (pip install -e '.[postgres]')")
    if os.environ.get("I2EDIT_TEST_POSTGRES_URL"):
        yield os.environ["I2EDIT_TEST_POSTGRES_URL"]
        return
    initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        raise PostgresUnavailable("no PostgreSQL server: set I2EDIT_TEST_POSTGRES_URL or install postgresql "
                                  "(initdb, pg_ctl)")
    root = Path(tempfile.mkdtemp(prefix="i2edit-pg-"))  # directly in /tmp: pytest's tmp is private to root
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            raise PostgresUnavailable("running as root without runuser: cannot start a PostgreSQL cluster")
        if subprocess.run(["id", "postgres"], capture_output=True).returncode != 0:
            raise PostgresUnavailable("running as root and there is no 'postgres' user to run PostgreSQL as")
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    options = (f"-c listen_addresses='' -c unix_socket_directories={sock} -c fsync=off "
               f"-c max_connections={max_connections}")
    try:
        subprocess.run([*as_user, initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync"],
                       check=True, capture_output=True, text=True)
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-o", options, "-w", "-l", str(root / "log"), "start"],
                       check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(root, ignore_errors=True)
        raise PostgresUnavailable(f"could not start a throwaway PostgreSQL cluster: "
                                  f"{(exc.stderr or exc.stdout).strip()}") from None
    try:
        yield f"postgresql+psycopg2://postgres@/postgres?host={sock}"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def create_database(server_url: str) -> str:
    """A new empty database on the server; returns its URL."""
    from sqlalchemy import create_engine, text

    name = f"i2edit_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    base, _, query = server_url.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")


def drop_database(server_url: str, database_url: str) -> None:
    from sqlalchemy import create_engine, text

    name = database_url.partition("?")[0].rsplit("/", 1)[1]
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any `I2EDIT_*` setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("I2EDIT_")}
    env.update(extra)
    return env


class Process:
    """One i2edit command in `workdir` (its working directory and data dir), output to `workdir/output.log`."""

    def __init__(self, command: list[str], workdir: Path, ready: str, env: dict[str, str] | None = None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / "output.log"
        self._log = open(self.log_path, "a")
        self._start_offset = self.log_path.stat().st_size  # a restart appends: look only at this run's output
        self._ready = ready
        self.url = ""  # a web process's base URL, once ready
        self.proc = subprocess.Popen(command, cwd=self.workdir, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=env or clean_env())

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_text(self) -> str:
        """Everything this working directory's processes wrote (a restarted one appends)."""
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout_s: float = 180.0) -> "Process":
        """Wait until the process says it is ready (a web process: its URL); raises if it exits first."""
        match = self._wait_for(self._ready, timeout_s)
        if match.groups():
            self.url = match.group(1)
        return self

    def _wait_for(self, pattern: str, timeout_s: float) -> re.Match:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with open(self.log_path, errors="replace") as handle:
                handle.seek(self._start_offset)
                match = re.search(pattern, handle.read())
            if match:
                return match
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.workdir.name} exited ({self.proc.returncode}):\n{self.log_text()[-3000:]}")
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"{self.workdir.name} did not start in {timeout_s:.0f} s:\n{self.log_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no clean-up at all, like a crash or a lost machine."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)
        self._log.close()

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self._log.close()
        return self.proc.returncode


def start_web(database_url: str, workdir: Path, *args: str, env: dict[str, str] | None = None,
              wait: bool = True) -> Process:
    """`i2edit serve` on a free port of 127.0.0.1 (`.url`, no trailing slash, once ready)."""
    process = Process([*I2EDIT, "serve", "--port", "0", "--data-dir", str(Path(workdir) / "data"),
                       "--database-url", database_url, *args], workdir, r"running at (http://127\.0\.0\.1:\d+)/",
                      env=env)
    return process.wait_ready() if wait else process


def start_worker(database_url: str, workdir: Path, *args: str, env: dict[str, str] | None = None,
                 wait: bool = True, prefix: list[str] | tuple[str, ...] = ()) -> Process:
    """`i2edit worker`, ready once it waits for jobs; `prefix` runs it through another command (e.g. `unshare`)."""
    process = Process([*prefix, *I2EDIT, "worker", "--data-dir", str(Path(workdir) / "data"), "--database-url",
                       database_url, *args], workdir, r"is waiting for jobs", env=env)
    return process.wait_ready() if wait else process
