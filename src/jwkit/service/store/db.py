"""Engine and session factory, database deadlines, SQLite tuning, and automatic migrations.

SQLite runs in WAL mode with a busy timeout, foreign keys on, and every transaction opened
with ``BEGIN IMMEDIATE`` so read-then-write sequences from several processes serialise instead
of failing on lock upgrade. PostgreSQL serialises key transitions with ``SELECT … FOR UPDATE``
on the project row (see :mod:`jwkit.service.domain.keys`), and migrations and the first-start
admin with an advisory lock (:meth:`Database.setup_lock`).

Every database call has a deadline (``timeout``, ``JWKIT_DB_TIMEOUT``, 5 s by default), so a
database that is down or frozen yields an :class:`~sqlalchemy.exc.OperationalError` (HTTP 503)
instead of a hang:

* connecting: libpq's ``connect_timeout``; waiting for a pooled connection: ``pool_timeout``;
* PostgreSQL's own ``statement_timeout`` and ``lock_timeout`` for a slow or blocked statement;
* a frozen server (``SIGSTOP``, a hung host) answers nothing, so its own timeouts cannot fire:
  a watchdog thread shuts down the socket of any connection checked out for longer than the
  deadline, which ends the blocked call at once with a disconnection error;
* SQLite: ``busy_timeout`` bounds the wait for another writer's lock.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, exc, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from jwkit.service.files import private_sqlite_files

__all__ = ["DEFAULT_TIMEOUT", "STARTUP_TIMEOUT", "Database", "create_db_engine", "run_migrations"]

_MIGRATIONS = Path(__file__).with_name("migrations")
_ADVISORY_LOCK_ID = 0x6A776B6974  # "jwkit"
#: Seconds any one database call may take before it is abandoned.
DEFAULT_TIMEOUT = 5.0
#: Start-up work (migrations, the first admin) may wait for another replica's, and take longer
#: than a request.
STARTUP_TIMEOUT = 120.0


#: A per-thread longer deadline (seconds), set by :meth:`Database.extended_deadline`.
_extended = threading.local()


class _Watchdog:
    """Ends database calls that outlive their deadline by shutting their socket down.

    A connection is watched from checkout to checkin; :meth:`Database.extended_deadline`
    raises the deadline of the calling thread's checkouts (start-up work). One daemon thread
    per engine checks four times a second.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._watched: dict[int, tuple[float, Any]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, dbapi_conn: Any) -> None:
        limit = getattr(_extended, "seconds", None) or self.timeout
        with self._lock:
            self._watched[id(dbapi_conn)] = (time.monotonic() + limit, dbapi_conn)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="jwkit-db-watchdog", daemon=True
                )
                self._thread.start()

    def release(self, dbapi_conn: Any) -> None:
        with self._lock:
            self._watched.pop(id(dbapi_conn), None)

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            now = time.monotonic()
            with self._lock:
                late = [
                    (key, conn)
                    for key, (deadline, conn) in self._watched.items()
                    if deadline <= now
                ]
                for key, _ in late:
                    del self._watched[key]
            for _, conn in late:
                _shut_down(conn)

    def close(self) -> None:
        self._stop.set()


def _shut_down(dbapi_conn: Any) -> None:
    """Shut the socket of a psycopg connection down (its blocked call then fails at once)."""
    try:
        fd = dbapi_conn.pgconn.socket  # raises once the connection is closed
    except Exception:  # closed meanwhile: nothing to end
        return
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.close()


def create_db_engine(url: str, *, timeout: float = DEFAULT_TIMEOUT) -> Engine:
    """An engine for ``url`` whose calls give up after ``timeout`` seconds (see above);
    SQLite files get their directory, WAL and ``BEGIN IMMEDIATE``."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            private_sqlite_files(Path(database))  # 0600, so -wal and -shm are too
        engine = create_engine(
            url,
            connect_args={"timeout": timeout, "check_same_thread": False},
            pool_pre_ping=False,
        )
        busy_ms = int(timeout * 1000)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={busy_ms}")
            cur.close()
            _record.info["busy_ms"] = busy_ms

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            extended = getattr(_extended, "seconds", None)
            wait_ms = int(extended * 1000) if extended else busy_ms
            if conn.info.get("busy_ms") != wait_ms:  # set once per connection and value
                conn.exec_driver_sql(f"PRAGMA busy_timeout={wait_ms}")
                conn.info["busy_ms"] = wait_ms
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return _postgres_engine(url, timeout)[0]


def _postgres_engine(url: str, timeout: float) -> tuple[Engine, _Watchdog]:
    millis = int(timeout * 1000)
    connect_args: dict[str, Any] = {
        # libpq counts whole seconds, and at least 2
        "connect_timeout": max(2, math.ceil(timeout / 2)),
        "options": f"-c statement_timeout={millis} -c lock_timeout={millis}",
    }
    parsed = make_url(url)
    if "connect_timeout" in parsed.query:
        connect_args.pop("connect_timeout")
    engine = create_engine(
        url,
        connect_args=connect_args,
        pool_size=5,
        max_overflow=10,
        pool_timeout=timeout,
    )
    watchdog = _Watchdog(timeout)

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        # A ping under the deadline (``pool_pre_ping`` would run before the watch starts).
        # A connection that fails at once (the server restarted) is replaced by a fresh one,
        # for every pooled connection at once; one that hung until the watchdog ended it
        # means the server does not answer: fail now rather than wait again for a new one.
        watchdog.watch(dbapi_conn)
        started = time.monotonic()
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as error:
            watchdog.release(dbapi_conn)
            if time.monotonic() - started >= watchdog.timeout * 0.9:
                raise exc.OperationalError("SELECT 1", None, error) from error
            raise exc.InvalidatePoolError(str(error)) from error

    @event.listens_for(engine, "checkin")
    def _on_checkin(dbapi_conn: Any, _record: Any) -> None:
        if dbapi_conn is not None:
            watchdog.release(dbapi_conn)

    @event.listens_for(engine, "close")
    def _on_close(dbapi_conn: Any, _record: Any) -> None:
        watchdog.release(dbapi_conn)

    return engine, watchdog


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    return cfg


def _lock_setup(conn: Any) -> None:
    """Take the start-up lock, with start-up timeouts for the rest of the transaction."""
    if conn.dialect.name == "postgresql":
        millis = int(STARTUP_TIMEOUT * 1000)
        conn.execute(text(f"SET LOCAL statement_timeout = {millis}"))
        conn.execute(text(f"SET LOCAL lock_timeout = {millis}"))
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_LOCK_ID})


def run_migrations(engine: Engine) -> None:
    """Bring the schema to the newest revision; safe when several replicas start at once."""
    with engine.begin() as conn:
        _lock_setup(conn)
        cfg = _alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


class Database:
    """The engine plus a session factory; the one object the domain receives."""

    def __init__(self, url: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.url = url
        self.timeout = timeout
        self._watchdog: _Watchdog | None = None
        if make_url(url).get_backend_name() == "postgresql":
            self.engine, self._watchdog = _postgres_engine(url, timeout)
        else:
            self.engine = create_db_engine(url, timeout=timeout)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def session(self) -> Session:
        return self.sessions()

    @contextmanager
    def extended_deadline(self, seconds: float) -> Iterator[None]:
        """Let this thread's database calls run (and wait for locks) for up to ``seconds``:
        start-up work, which may wait for another replica's."""
        previous = getattr(_extended, "seconds", None)
        _extended.seconds = seconds
        try:
            yield
        finally:
            _extended.seconds = previous

    def setup_lock(self, session: Session) -> None:
        """Serialise start-up work (migrations, first admin) across replicas: PostgreSQL's
        transaction-scoped advisory lock; SQLite's ``BEGIN IMMEDIATE`` already does it."""
        _lock_setup(session.connection())

    def migrate(self) -> None:
        with self.extended_deadline(STARTUP_TIMEOUT):
            run_migrations(self.engine)

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
                conn.rollback()
        except Exception:  # any database failure means "not ready"
            return False
        return True

    def dispose(self) -> None:
        if self._watchdog is not None:
            self._watchdog.close()
        self.engine.dispose()
