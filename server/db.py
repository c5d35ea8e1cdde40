"""Database engine, sessions, the database's clock and the schema upgrade.

SQLite (the default) runs in WAL mode with a busy timeout so the request threads, the in-process worker and
`i2edit worker` processes can share one file; transactions that write begin `IMMEDIATE` so two writers queue
instead of failing, and the threads of one process queue for writing on a lock of their own. PostgreSQL is the
database for several machines (tested); other SQLAlchemy URLs get the standard SQL of `db_now`.

`db_now(offset_s)` is the database server's clock (naive UTC, like every stored time) as an SQL expression:
heartbeats and staleness compare times written by different hosts, so they use one clock, not each host's.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import threading
from pathlib import Path
from typing import Iterator

from sqlalchemy import Connection, DateTime, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.functions import FunctionElement

log = logging.getLogger(__name__)
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # one line per plugin otherwise

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
POOL_SIZE, POOL_OVERFLOW = 20, 10  # connections one process keeps, and opens beyond them at a peak (not SQLite)
_PG_MIGRATION_LOCK = 0x6932_6564  # arbitrary advisory-lock key shared by every i2edit process


def make_engine(url: str) -> Engine:
    """An engine for `url`; for SQLite, creates the file's folder and sets WAL, busy timeout and foreign keys."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        # Connections beyond the pool are closed on return, and on PostgreSQL each new one is a new server process:
        # a small pool with a large overflow opened and closed dozens of them for every batch of turns, which made
        # two web processes markedly slower under 50 users (docs/experiments.md, server on PostgreSQL).
        return create_engine(url, pool_pre_ping=True, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, pool_size=10,
                           max_overflow=60)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        dbapi_conn.isolation_level = None  # pysqlite must not BEGIN on its own: `_on_begin` does
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: no corruption on a crash, far fewer fsyncs
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("writes") else "BEGIN")

    return engine


class db_now(FunctionElement):  # noqa: N801 (reads like the SQL function it compiles to)
    """The database's current UTC time plus `offset_s` seconds, as a naive `DateTime` SQL expression."""

    type = DateTime()
    inherit_cache = False  # the offset is rendered into the SQL text

    def __init__(self, offset_s: float = 0.0):
        self.offset_s = float(offset_s)
        super().__init__()


@compiles(db_now, "sqlite")
def _db_now_sqlite(element: db_now, compiler, **kw) -> str:
    # the text form SQLAlchemy stores for DateTime on SQLite, so that comparisons with stored times hold
    return f"(strftime('%Y-%m-%d %H:%M:%f', 'now', '{element.offset_s:+.3f} seconds') || '000')"


@compiles(db_now, "postgresql")
def _db_now_postgresql(element: db_now, compiler, **kw) -> str:
    return f"(timezone('UTC', statement_timestamp()) + interval '{element.offset_s:.3f} seconds')"


@compiles(db_now)
def _db_now_standard(element: db_now, compiler, **kw) -> str:
    return f"(CURRENT_TIMESTAMP + INTERVAL '{element.offset_s:.3f}' SECOND)"


class Database:
    """An engine with two session factories: `read()` for lookups and `write()` for transactions that write."""

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(self.engine.execution_options(writes=True), expire_on_commit=False)
        # SQLite has one writer at a time, and its busy handler sleeps up to 100 ms between retries, so many
        # threads of this process that wait for it take turns on a lock here instead (other processes still
        # wait in SQLite's busy handler).
        self._write_lock = threading.RLock() if self.engine.dialect.name == "sqlite" else contextlib.nullcontext()

    def read(self) -> Session:
        return self._read()

    def connect(self) -> Connection:
        """A plain connection for Core lookups (no ORM session: cheaper on the hot path of a turn)."""
        return self.engine.connect()

    @property
    def is_postgresql(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def ping(self) -> None:
        """One trivial query; raises the driver's error when the database cannot be reached."""
        with self.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on error."""
        with self._write_lock, self._write() as session, session.begin():
            yield session

    def upgrade(self) -> None:
        """Create or upgrade the schema to the newest migration (safe when several processes start at once)."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        with self._migration_lock(), self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    @contextlib.contextmanager
    def _migration_lock(self) -> Iterator[None]:
        parsed = make_url(self.url)
        if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
            yield
            return
        with open(f"{parsed.database}.migrate-lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def dispose(self) -> None:
        self.engine.dispose()
