"""Engine and session factory, SQLite tuning, and automatic Alembic migrations.

SQLite runs in WAL mode with a busy timeout, foreign keys on, and every transaction opened
with ``BEGIN IMMEDIATE`` so read-then-write sequences from several processes serialise instead
of failing on lock upgrade. PostgreSQL serialises key transitions with ``SELECT … FOR UPDATE``
on the project row (see :mod:`jwkit.service.domain.keys`) and migrations with an advisory lock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from jwkit.service.files import private_sqlite_files

__all__ = ["Database", "create_db_engine", "run_migrations"]

_MIGRATIONS = Path(__file__).with_name("migrations")
_ADVISORY_LOCK_ID = 0x6A776B6974  # "jwkit"


def create_db_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite files get their directory, WAL and ``BEGIN IMMEDIATE``."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            private_sqlite_files(Path(database))  # 0600, so -wal and -shm are too
        engine = create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, pool_pre_ping=False
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    return cfg


def run_migrations(engine: Engine) -> None:
    """Bring the schema to the newest revision; safe when several replicas start at once."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_LOCK_ID})
        cfg = _alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


class Database:
    """The engine plus a session factory; the one object the domain receives."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_db_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def session(self) -> Session:
        return self.sessions()

    def migrate(self) -> None:
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
        self.engine.dispose()
