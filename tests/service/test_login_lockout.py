"""The console's login lockout lives in the database: shared by workers, kept over restarts.

Everything is real: SQLite files and the suite's PostgreSQL server, one engine per "process",
threads racing on one counter, a database outage, and ``jwkit serve --workers 2``.
"""

from __future__ import annotations

import http.client
import os
import secrets
import sqlite3
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select

from jwkit.service.http.app import create_app
from jwkit.service.http.console.lockout import (
    BASE_DELAY,
    FREE_ATTEMPTS,
    MAX_DELAY,
    PRUNE_INTERVAL,
    LoginThrottle,
)
from jwkit.service.http.console.pages import LOGIN_CSRF_COOKIE
from jwkit.service.runtime import Service
from jwkit.service.store.db import Database, _alembic_config
from jwkit.service.store.models import Base, LoginFailure
from tests.support.postgres import PostgresServer

from .conftest import ADMIN_PASSWORD, MASTER_KEY, SyncClient, make_settings
from .test_outage import _set_reachable

pytestmark = pytest.mark.timeout(240)


class Clock:
    """Float wall-clock seconds, moved by hand."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.25

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _delay(n: int) -> int:
    """The lockout the ``n``-th consecutive failure starts."""
    return 0 if n < FREE_ATTEMPTS else min(MAX_DELAY, BASE_DELAY << (n - FREE_ATTEMPTS))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jwkit.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def open_db(db_url: str) -> Iterator[Callable[[], Database]]:
    """``open_db()``: a new engine on the test database (as another process would have)."""
    opened: list[Database] = []

    def _open() -> Database:
        db = Database(db_url)
        if not opened:
            db.migrate()
        opened.append(db)
        return db

    try:
        yield _open
    finally:
        for db in opened:
            db.dispose()


def _rows(db: Database) -> list[tuple[str, int]]:
    with db.session() as s:
        return [(r.address, r.failures) for r in s.execute(select(LoginFailure)).scalars()]


# -- the throttle over SQLite and PostgreSQL --------------------------------------------------


def test_two_engines_share_one_count(open_db: Callable[[], Database]) -> None:
    clock = Clock()
    a, b = LoginThrottle(open_db(), clock), LoginThrottle(open_db(), clock)
    for n in range(1, FREE_ATTEMPTS):
        assert (a if n % 2 else b).failure("10.0.0.1", "admin") == 0
    assert b.failure("10.0.0.1", "ADMIN") == BASE_DELAY  # user names are case-insensitive
    assert a.retry_after("10.0.0.1", "Admin") == BASE_DELAY
    assert b.retry_after("10.0.0.1", "admin") == BASE_DELAY
    assert a.retry_after("10.0.0.2", "admin") == 0  # another address
    assert a.retry_after("10.0.0.1", "root") == 0  # another user
    assert a.failure("10.0.0.1", "admin") == 2 * BASE_DELAY


def test_concurrent_failures_lose_no_count(open_db: Callable[[], Database]) -> None:
    clock = Clock()
    threads_n, each = 8, 5
    throttles = [LoginThrottle(open_db(), clock) for _ in range(2)]
    barrier = threading.Barrier(threads_n)
    delays: list[int] = []
    errors: list[BaseException] = []

    def fail_many(throttle: LoginThrottle) -> None:
        try:
            barrier.wait(30)
            for _ in range(each):  # every call opens its own session and transaction
                delays.append(throttle.failure("192.0.2.7", "admin"))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=fail_many, args=(throttles[i % 2],))
               for i in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    total = threads_n * each
    assert _rows(throttles[0]._db) == [("192.0.2.7", total)]
    # Each failure saw its own count: the lockouts are exactly those of failures 1..total.
    assert sorted(delays) == sorted(_delay(n) for n in range(1, total + 1))


def test_lockout_survives_a_restart_expires_and_success_clears_it(
    open_db: Callable[[], Database],
) -> None:
    clock = Clock()
    before = LoginThrottle(open_db(), clock)
    assert [before.failure("::1", "admin") for _ in range(FREE_ATTEMPTS)][-1] == BASE_DELAY
    before._db.dispose()

    after = LoginThrottle(open_db(), clock)  # a restarted process
    assert after.retry_after("::1", "admin") == BASE_DELAY
    clock.advance(BASE_DELAY - 0.5)
    assert after.retry_after("::1", "admin") == 1  # rounded up, never early
    clock.advance(0.5)
    assert after.retry_after("::1", "admin") == 0
    assert after.failure("::1", "admin") == 2 * BASE_DELAY  # the count went on
    assert after.retry_after("::1", "admin") == 2 * BASE_DELAY

    after.success("::1", "admin")
    assert after.retry_after("::1", "admin") == 0
    assert _rows(after._db) == []
    assert [after.failure("::1", "admin") for _ in range(FREE_ATTEMPTS)] == [
        _delay(n) for n in range(1, FREE_ATTEMPTS + 1)]


def test_the_cap_and_a_quiet_counter_starts_again(open_db: Callable[[], Database]) -> None:
    clock = Clock()
    throttle = LoginThrottle(open_db(), clock)
    delays = []
    for _ in range(FREE_ATTEMPTS + 8):
        delays.append(throttle.failure("198.51.100.1", "admin"))
        clock.advance(delays[-1])
    assert delays[-1] == MAX_DELAY and max(delays) == MAX_DELAY
    clock.advance(MAX_DELAY + 1)  # no failure for MAX_DELAY, lock long over
    assert throttle.failure("198.51.100.1", "admin") == 0  # counted from one again


def test_pruning_removes_only_stale_rows(open_db: Callable[[], Database]) -> None:
    clock = Clock()
    throttle = LoginThrottle(open_db(), clock)
    for _ in range(FREE_ATTEMPTS):
        throttle.failure("203.0.113.1", "admin")  # locked for BASE_DELAY
    throttle.failure("203.0.113.2", "admin")
    clock.advance(MAX_DELAY)
    assert throttle.prune() == 0  # the last failures are exactly MAX_DELAY old
    throttle.failure("203.0.113.3", "admin")  # fresh
    clock.advance(1)
    assert throttle.prune() == 2
    assert _rows(throttle._db) == [("203.0.113.3", 1)]

    # Failures sweep on their own, at most once per PRUNE_INTERVAL per process.
    clock.advance(MAX_DELAY + PRUNE_INTERVAL)
    throttle.failure("203.0.113.4", "admin")
    assert _rows(throttle._db) == [("203.0.113.4", 1)]


def test_long_or_odd_names_and_addresses_are_keyed_safely(
    open_db: Callable[[], Database],
) -> None:
    throttle = LoginThrottle(open_db(), Clock())
    name, address = "ADMİN\x00" + "x" * 2000, "fe80::1%" + "eth0" * 40
    for _ in range(FREE_ATTEMPTS):
        throttle.failure(address, name)
    assert throttle.retry_after(address, name.lower()) == BASE_DELAY
    assert throttle.retry_after(address, "admin") == 0


def test_migration_0002_upgrades_and_downgrades(open_db: Callable[[], Database]) -> None:
    db = open_db()
    cfg = _alembic_config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")
    assert "login_failures" not in inspect(db.engine).get_table_names()
    db.migrate()
    indexes = {i["name"] for i in inspect(db.engine).get_indexes("login_failures")}
    assert "ix_login_failures_last_failure" in indexes
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d for d in diff if "login_failures" in repr(d)] == []  # the model matches


# -- over HTTP --------------------------------------------------------------------------------


def _login(client: SyncClient | httpx.Client, password: str) -> httpx.Response:
    token = secrets.token_urlsafe(32)  # the login CSRF pair is a cookie that equals a field
    return client.post("/console/login",
                       data={"username": "admin", "password": password, "csrf_token": token},
                       headers={"Cookie": f"{LOGIN_CSRF_COOKIE}={token}"})


def _app(service: Service) -> SyncClient:
    return SyncClient(create_app(service.settings, service=service, background=False))


def test_two_apps_over_one_sqlite_file_share_the_lockout(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home")
    services = [Service.open(settings), Service.open(settings)]
    clients = [_app(s) for s in services]
    try:
        statuses = [_login(clients[n % 2], f"wrong {n}").status_code
                    for n in range(FREE_ATTEMPTS)]
        assert statuses == [401] * (FREE_ATTEMPTS - 1) + [429]
        refused = _login(clients[1], ADMIN_PASSWORD)  # right password, other app: not checked
        assert refused.status_code == 429
        assert 0 < int(refused.headers["retry-after"]) <= BASE_DELAY
        assert "Too many failed attempts" in refused.text
        assert "jwkit_session" not in refused.headers.get("set-cookie", "")
    finally:
        for c in clients:
            c.close()
        for s in services:
            s.close()

    restarted = Service.open(settings)  # a restart forgets nothing
    client = _app(restarted)
    try:
        assert _login(client, ADMIN_PASSWORD).status_code == 429
    finally:
        client.close()
        restarted.close()


def test_a_database_error_fails_the_login_closed(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home")
    service = Service.open(settings)
    client = _app(service)
    try:
        conn = sqlite3.connect(tmp_path / "home" / "jwkit.db")
        conn.execute("DROP TABLE login_failures")
        conn.commit()
        conn.close()
        r = _login(client, ADMIN_PASSWORD)
        assert r.status_code == 503
        assert r.headers["retry-after"] == "5"
        assert "cannot reach its database" in r.text
        assert "jwkit_session" not in r.headers.get("set-cookie", "")
    finally:
        client.close()
        service.close()


@pytest.mark.postgres
def test_login_fails_closed_during_a_postgres_outage(
    tmp_path: Path, pg_url: str, postgres_server: PostgresServer
) -> None:
    service = Service.open(make_settings(tmp_path / "home", database_url=pg_url,
                                         master_key=MASTER_KEY))
    client = _app(service)
    database = pg_url.rsplit("/", 1)[1]
    try:
        _set_reachable(postgres_server, database, False)
        try:
            for password in ("wrong", ADMIN_PASSWORD):
                r = _login(client, password)
                assert r.status_code == 503, r.text
                assert "cannot reach its database" in r.text
                assert "jwkit_session" not in r.headers.get("set-cookie", "")
        finally:
            _set_reachable(postgres_server, database, True)
        ok = _login(client, ADMIN_PASSWORD)
        assert ok.status_code == 303 and "jwkit_session=" in ok.headers["set-cookie"]
    finally:
        client.close()
        service.close()


# -- jwkit serve --workers 2 -------------------------------------------------------------------


def _worker_pids(parent: int) -> set[int]:
    pids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[1]) == parent:  # field 4 of proc_pid_stat(5): the parent's pid
            pids.add(int(stat.parent.name))
    return pids


def _serving_pid(conn: http.client.HTTPConnection, server_port: int, pids: set[int]) -> int:
    """The worker process holding the server side of ``conn`` (from ``/proc``)."""
    assert conn.sock is not None
    client_port = conn.sock.getsockname()[1]
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1].split(":")[1], fields[2].split(":")[1]
        if int(local, 16) == server_port and int(remote, 16) == client_port:
            inode = fields[9]
    assert inode is not None
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(fd) == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    raise AssertionError("no worker holds the connection")


def _post_login(conn: http.client.HTTPConnection, password: str) -> http.client.HTTPResponse:
    token = secrets.token_urlsafe(32)
    body = urllib.parse.urlencode({"username": "admin", "password": password,
                                   "csrf_token": token})
    conn.request("POST", "/console/login", body, headers={
        "Content-Type": "application/x-www-form-urlencoded",
        "Cookie": f"{LOGIN_CSRF_COOKIE}={token}"})
    response = conn.getresponse()
    response.read()
    return response


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
def test_serve_with_two_workers_shares_the_lockout(spawn: Any) -> None:
    server = spawn(JWKIT_WORKERS="2")
    assert server.proc is not None
    pids: set[int] = set()
    by_worker: dict[int, http.client.HTTPConnection] = {}
    spare: list[http.client.HTTPConnection] = []
    for _ in range(200):  # keep-alive connections until both workers hold one
        pids = pids or _worker_pids(server.proc.pid)
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        conn.request("GET", "/healthz")
        conn.getresponse().read()
        pid = _serving_pid(conn, server.port, pids)
        if pid in by_worker:
            spare.append(conn)
        else:
            by_worker[pid] = conn
        if len(by_worker) == 2:
            break
    for conn in spare:
        conn.close()
    assert len(by_worker) == 2, "the connections all went to one worker"
    first, second = by_worker.values()
    try:
        statuses = [_post_login(first if n % 2 else second, f"wrong {n}").status
                    for n in range(FREE_ATTEMPTS)]
        # Per-process counters would give each worker at most 3 failures: no 429 yet.
        assert statuses == [401] * (FREE_ATTEMPTS - 1) + [429]
        for conn in (first, second):
            refused = _post_login(conn, ADMIN_PASSWORD)
            assert refused.status == 429
            assert 0 < int(refused.headers["retry-after"]) <= BASE_DELAY
    finally:
        first.close()
        second.close()
