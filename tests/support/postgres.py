"""A throwaway PostgreSQL server for the tests (``initdb`` + ``pg_ctl``).

Use the ``postgres_server`` fixture (session scope) and :func:`fresh_database` for an empty
database per test. Tests that break the server on purpose (stop it with ``-m immediate``,
freeze it with ``SIGSTOP``) start their own with :func:`own_postgres_server` and drive it
through :class:`PostgresCluster`. Binaries come from ``PATH`` or ``/usr/lib/postgresql/*/bin``;
when running as root the server runs as the ``postgres`` OS user (``runuser``) in a directory
it owns. Tests skip, with the reason, only when no binaries exist. The server is always
stopped (and thawed first) at the end.

Register in a conftest with ``from tests.support.postgres import postgres_server  # noqa: F401``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

__all__ = [
    "PostgresCluster",
    "PostgresServer",
    "find_pg_binary",
    "fresh_database",
    "own_postgres_server",
    "postgres_server",
]


def find_pg_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class PostgresServer:
    port: int
    datadir: Path
    user: str = "postgres"

    def url(self, database: str = "postgres", driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://{self.user}@127.0.0.1:{self.port}/{database}"


def fresh_database(server: PostgresServer, prefix: str = "t") -> str:
    """Create an empty database and return its SQLAlchemy URL."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.url(driver="postgresql"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server.url(name)


def _runner() -> list[str]:
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("running as root but there is no 'postgres' OS user to run PostgreSQL")
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.skip("running as root but runuser is missing")
    return [runuser, "-u", "postgres", "--"]


@dataclass
class PostgresCluster:
    """One ``initdb``'d data directory and the server on it: start, stop, freeze, thaw."""

    base: Path
    port: int
    pg_ctl: str
    prefix: list[str]
    frozen: list[int] = field(default_factory=list)

    @property
    def server(self) -> PostgresServer:
        return PostgresServer(port=self.port, datadir=self.base / "data")

    @property
    def _env(self) -> dict[str, str]:
        return {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
        )
        log = str(self.base / "server.log")
        command = [*self.prefix, self.pg_ctl, "-D", str(self.base / "data"), "-l", log,
                   "-o", options, "-w", "-t", "60", "start"]  # fmt: skip
        try:
            subprocess.run(command, check=True, capture_output=True, env=self._env, timeout=90)
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(
                f"could not start PostgreSQL: {exc.stderr.decode(errors='replace')[-2000:]}"
            ) from exc

    def stop(self, mode: str = "immediate") -> None:
        """``pg_ctl stop -m mode``: ``immediate`` is a crash (no checkpoint, recovery on start)."""
        self.thaw()
        subprocess.run(
            [*self.prefix, self.pg_ctl, "-D", str(self.base / "data"), "-m", mode, "-w", "stop"],
            capture_output=True, env=self._env, timeout=60, check=False,
        )  # fmt: skip

    def processes(self) -> list[int]:
        """The postmaster and every process it started (backends, background workers)."""
        pidfile = self.base / "data" / "postmaster.pid"
        try:
            postmaster = int(pidfile.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return []
        children: list[int] = []
        for stat in glob.glob("/proc/[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = Path(stat).read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == postmaster:
                    children.append(int(stat.split("/")[2]))
        return [postmaster, *children]

    def freeze(self) -> int:
        """``SIGSTOP`` the postmaster first (no new backends), then every child; returns how
        many processes were stopped. The kernel still accepts connections and ACKs data."""
        pids = self.processes()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
                self.frozen.append(pid)
        return len(pids)

    def thaw(self) -> None:
        for pid in reversed(self.frozen):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.frozen.clear()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


def _new_cluster() -> PostgresCluster:
    initdb, pg_ctl = find_pg_binary("initdb"), find_pg_binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found")
    prefix = _runner()
    base = Path(tempfile.mkdtemp(prefix="jwkit-pg-"))
    if prefix:
        entry = pwd.getpwnam("postgres")
        os.chown(base, entry.pw_uid, entry.pw_gid)
    cluster = PostgresCluster(base=base, port=_free_port(), pg_ctl=pg_ctl, prefix=prefix)
    command = [*prefix, initdb, "-D", str(base / "data"), "-A", "trust", "-U", "postgres",
               "-E", "UTF8", "--no-sync"]  # fmt: skip
    try:
        subprocess.run(command, check=True, capture_output=True, env=cluster._env, timeout=120)
        cluster.start()
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(base, ignore_errors=True)
        raise RuntimeError(
            f"could not initialise PostgreSQL: {exc.stderr.decode(errors='replace')[-2000:]}"
        ) from exc
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise
    return cluster


@contextlib.contextmanager
def own_postgres_server() -> Iterator[PostgresCluster]:
    """A private server for a test that stops or freezes it; removed afterwards."""
    cluster = _new_cluster()
    try:
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with own_postgres_server() as cluster:
        yield cluster.server
