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
import time
import urllib.parse
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select

from jwkit.service.domain import logins
from jwkit.service.domain.logins import lock_delay
from jwkit.service.http.app import create_app
from jwkit.service.http.console.lockout import (
    ACCOUNT_FREE_ATTEMPTS,
    ADDRESS_FREE_ATTEMPTS,
    BASE_DELAY,
    FREE_ATTEMPTS,
    MAX_DELAY,
    PRUNE_INTERVAL,
    LoginThrottle,
    client_key,
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


def _delay(n: int, free: int = FREE_ATTEMPTS) -> int:
    """The lock the ``n``-th consecutive attempt on a counter starts."""
    return lock_delay(n, free)


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


def _rows(db: Database) -> list[tuple[str, str, int]]:
    """(address, user — "*" or "h" for a hash, attempts) of every counter, sorted."""
    with db.session() as s:
        return sorted(
            (r.address, r.user_hash if r.user_hash == "*" else "h", r.failures)
            for r in s.execute(select(LoginFailure)).scalars()
        )


def _fail(throttle: LoginThrottle, address: str, user: str = "admin") -> int:
    """One wrong password: reserve it (it must be allowed); the lock it leaves."""
    attempt = throttle.reserve(address, user)
    assert attempt.allowed
    return attempt.retry_after


# -- the throttle over SQLite and PostgreSQL --------------------------------------------------


def test_two_engines_share_one_count(open_db: Callable[[], Database]) -> None:
    clock = Clock()
    a, b = LoginThrottle(open_db(), clock), LoginThrottle(open_db(), clock)
    for n in range(1, FREE_ATTEMPTS):
        assert _fail(a if n % 2 else b, "10.0.0.1") == 0
    assert _fail(b, "10.0.0.1", "ADMIN") == BASE_DELAY  # user names are case-insensitive
    refused = a.reserve("10.0.0.1", "Admin")
    assert not refused.allowed and refused.retry_after == BASE_DELAY
    assert b.retry_after("10.0.0.1", "admin") == BASE_DELAY
    assert a.retry_after("10.0.0.2", "admin") == 0  # another address
    assert a.retry_after("10.0.0.1", "root") == 0  # another user
    clock.advance(BASE_DELAY)
    assert _fail(a, "10.0.0.1") == 2 * BASE_DELAY
    # Refused attempts counted nothing: the pair holds exactly the checked ones.
    assert ("10.0.0.1", "h", FREE_ATTEMPTS + 1) in _rows(a._db)


def _race(throttles: list[LoginThrottle], calls: list[tuple[str, str]]) -> list[Any]:
    """Run ``throttle.reserve(*call)`` for every call at once, one thread each."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = []
    errors: list[BaseException] = []

    def run(throttle: LoginThrottle, call: tuple[str, str]) -> None:
        try:
            barrier.wait(30)
            results.append(throttle.reserve(*call))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [
        threading.Thread(target=run, args=(throttles[i % len(throttles)], call))
        for i, call in enumerate(calls)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert len(results) == len(calls)
    return results


def test_concurrent_guesses_get_no_more_checks_than_the_limit(
    open_db: Callable[[], Database],
) -> None:
    """Every guess is reserved before its check: 24 at once, from two engines, get exactly
    ``FREE_ATTEMPTS`` checks, and the locks they leave are those of attempts 1..5."""
    throttles = [LoginThrottle(open_db(), Clock()) for _ in range(2)]
    results = _race(throttles, [("192.0.2.7", "admin")] * 24)
    allowed = [r for r in results if r.allowed]
    assert len(allowed) == FREE_ATTEMPTS
    assert sorted(r.retry_after for r in allowed) == [_delay(n) for n in range(1, 6)]
    assert all(r.retry_after == BASE_DELAY for r in results if not r.allowed)
    assert ("192.0.2.7", "h", FREE_ATTEMPTS) in _rows(throttles[0]._db)


def test_concurrent_attempts_from_many_addresses_lose_no_count(
    open_db: Callable[[], Database],
) -> None:
    throttles = [LoginThrottle(open_db(), Clock()) for _ in range(2)]
    n = 30
    results = _race(throttles, [(f"198.51.100.{i}", "admin") for i in range(n)])
    assert all(r.allowed for r in results)  # every address is fresh: each gets its check
    rows = _rows(throttles[0]._db)
    assert ("*", "h", n) in rows  # the account counter saw all of them, atomically
    # A lock from the account guard: each address's wrong password leaves the guard's wait.
    guard = sorted(r.retry_after for r in results)
    assert guard == [_delay(k, ACCOUNT_FREE_ATTEMPTS) for k in range(1, n + 1)]


def test_lockout_survives_a_restart_expires_and_success_clears_it(
    open_db: Callable[[], Database],
) -> None:
    clock = Clock()
    before = LoginThrottle(open_db(), clock)
    assert [_fail(before, "::1") for _ in range(FREE_ATTEMPTS)][-1] == BASE_DELAY
    before._db.dispose()

    after = LoginThrottle(open_db(), clock)  # a restarted process
    assert after.retry_after("::1", "admin") == BASE_DELAY
    clock.advance(BASE_DELAY - 0.5)
    assert after.retry_after("::1", "admin") == 1  # rounded up, never early
    assert not after.reserve("::1", "admin").allowed
    clock.advance(0.5)
    assert after.retry_after("::1", "admin") == 0
    assert _fail(after, "::1") == 2 * BASE_DELAY  # the count went on
    assert after.retry_after("::1", "admin") == 2 * BASE_DELAY

    clock.advance(2 * BASE_DELAY)
    assert after.reserve("::1", "admin").allowed  # the right password this time
    after.success("::1", "admin")
    assert after.retry_after("::1", "admin") == 0
    # The pair and address are forgotten; the account counter got the good attempt back.
    assert _rows(after._db) == [("*", "h", FREE_ATTEMPTS + 1)]
    assert [_fail(after, "::1") for _ in range(FREE_ATTEMPTS)] == [
        _delay(n) for n in range(1, FREE_ATTEMPTS + 1)
    ]


def test_the_cap_and_a_quiet_counter_starts_again(open_db: Callable[[], Database]) -> None:
    clock = Clock()
    throttle = LoginThrottle(open_db(), clock)
    delays = []
    for _ in range(FREE_ATTEMPTS + 8):
        delays.append(_fail(throttle, "198.51.100.1"))
        clock.advance(delays[-1])
    assert delays[-1] == MAX_DELAY and max(delays) == MAX_DELAY
    clock.advance(MAX_DELAY + 1)  # no attempt for MAX_DELAY, lock long over
    assert _fail(throttle, "198.51.100.1") == 0  # counted from one again
    assert ("198.51.100.1", "h", 1) in _rows(throttle._db)


def test_one_address_trying_many_names_is_limited(open_db: Callable[[], Database]) -> None:
    """Unknown names cost an argon2 hash too: the address counter bounds them all."""
    clock = Clock()
    throttle = LoginThrottle(open_db(), clock)
    waits = [_fail(throttle, "203.0.113.9", f"user{i}") for i in range(ADDRESS_FREE_ATTEMPTS)]
    assert waits == [0] * (ADDRESS_FREE_ATTEMPTS - 1) + [BASE_DELAY]
    refused = throttle.reserve("203.0.113.9", "yet-another-name")
    assert not refused.allowed and refused.retry_after == BASE_DELAY
    assert throttle.reserve("203.0.113.10", "yet-another-name").allowed  # another address
    clock.advance(BASE_DELAY)
    assert _fail(throttle, "203.0.113.9", "admin") == 2 * BASE_DELAY


def test_a_guarded_account_stays_open_to_an_address_that_has_not_failed(
    open_db: Callable[[], Database],
) -> None:
    """Guesses from many addresses guard the account: each failing address is held off for
    the guard's time, while an address with no recent failure (the real admin) gets its
    password checked; so no one can lock the admin out by guessing."""
    clock = Clock()
    throttle = LoginThrottle(open_db(), clock)
    for i in range(ACCOUNT_FREE_ATTEMPTS):
        _fail(throttle, f"198.51.100.{i}")
    attacker = throttle.reserve("198.51.100.0", "admin")  # failed once, far below its limit
    assert not attacker.allowed and attacker.retry_after == BASE_DELAY
    assert throttle.reserve("198.51.100.0", "root").allowed  # the guard is per account
    admin = throttle.reserve("192.0.2.1", "admin")  # never failed
    assert admin.allowed
    throttle.success("192.0.2.1", "admin")
    # The attacker keeps the guard up (each new address extends it, up to MAX_DELAY) ...
    for i in range(ACCOUNT_FREE_ATTEMPTS, ACCOUNT_FREE_ATTEMPTS + 10):
        clock.advance(5)
        _fail(throttle, f"198.51.100.{i}")
    assert throttle.retry_after("198.51.100.3", "admin") == MAX_DELAY
    # ... and the admin still logs in, any number of times.
    for _ in range(3):
        assert throttle.reserve("192.0.2.1", "admin").allowed
        throttle.success("192.0.2.1", "admin")
    # A failing address may try again once MAX_DELAY passed without its own failure.
    clock.advance(MAX_DELAY + 1)
    assert throttle.reserve("198.51.100.3", "admin").allowed


def test_pruning_removes_only_stale_rows(open_db: Callable[[], Database]) -> None:
    clock = Clock()
    throttle = LoginThrottle(open_db(), clock)
    for _ in range(FREE_ATTEMPTS):
        _fail(throttle, "203.0.113.1")  # locked for BASE_DELAY
    _fail(throttle, "203.0.113.2")
    clock.advance(MAX_DELAY)
    assert throttle.prune() == 0  # the last attempts are exactly MAX_DELAY old
    _fail(throttle, "203.0.113.3")  # fresh
    clock.advance(1)
    assert throttle.prune() == 4  # two pairs and two address counters
    assert _rows(throttle._db) == [
        ("*", "h", FREE_ATTEMPTS + 2),
        ("203.0.113.3", "*", 1),
        ("203.0.113.3", "h", 1),
    ]

    # Attempts sweep on their own, at most once per PRUNE_INTERVAL per process; a stale
    # counter (the account's) starts again from zero.
    clock.advance(MAX_DELAY + PRUNE_INTERVAL)
    _fail(throttle, "203.0.113.4")
    assert _rows(throttle._db) == [("*", "h", 1), ("203.0.113.4", "*", 1), ("203.0.113.4", "h", 1)]


@pytest.mark.postgres
def test_a_sweep_skips_counters_a_login_holds(pg_url: str) -> None:
    """PostgreSQL: a prune never waits on a login's row locks (so the two cannot deadlock);
    it leaves the held rows for the next sweep."""
    a, b = Database(pg_url), Database(pg_url)
    a.migrate()
    clock = Clock()
    try:
        sweeper = LoginThrottle(b, clock)
        _fail(LoginThrottle(a, clock), "203.0.113.1")
        _fail(LoginThrottle(a, clock), "203.0.113.2", "root")
        clock.advance(MAX_DELAY + 1)  # every counter is stale now
        with a.session() as held, held.begin():
            reservation = logins.reserve(held, "203.0.113.1", "admin", now=clock())
            assert reservation.allowed  # its three rows are locked until this commits
            # Without SKIP LOCKED this would wait for the commit below: a hang, in one thread.
            assert sweeper.prune() == 3  # the other login's three rows, not the held ones
        assert sweeper.prune() == 0  # the held rows were renewed by their login
        assert _rows(b) == [("*", "h", 1), ("203.0.113.1", "*", 1), ("203.0.113.1", "h", 1)]
    finally:
        a.dispose()
        b.dispose()


def test_long_or_odd_names_and_addresses_are_keyed_safely(
    open_db: Callable[[], Database],
) -> None:
    throttle = LoginThrottle(open_db(), Clock())
    name, address = "ADMİN\x00\ud800" + "x" * 2000, "fe80::1%" + "eth0" * 40
    for _ in range(FREE_ATTEMPTS):
        _fail(throttle, address, name)
    assert throttle.retry_after(address, name.lower()) == BASE_DELAY
    assert throttle.retry_after(address, "admin") == 0


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),  # the same subscriber's /64
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("fe80::1%eth0", "fe80::/64"),
        ("::1", "::/64"),
        (None, "unknown"),
        ("", "unknown"),
        ("not-an-ip", "name:not-an-ip"),
        ("*", "name:*"),  # never the account counters' address
    ],
)
def test_client_key(host: str | None, key: str) -> None:
    assert client_key(host) == key


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
    with db.engine.connect() as conn, warnings.catch_warnings():
        # SQLAlchemy does not reflect expression indexes (0004's ix_projects_name on lower(name))
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based")
        warnings.filterwarnings("ignore", "autogenerate skipping metadata-specified expression")
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d for d in diff if "login_failures" in repr(d)] == []  # the model matches


# -- over HTTP --------------------------------------------------------------------------------


def _login(
    client: SyncClient | httpx.Client,
    password: str,
    *,
    user: str = "admin",
    forwarded_for: str | None = None,
) -> httpx.Response:
    token = secrets.token_urlsafe(32)  # the login CSRF pair is a cookie that equals a field
    headers = {"Cookie": f"{LOGIN_CSRF_COOKIE}={token}"}
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    return client.post(
        "/console/login",
        data={"username": user, "password": password, "csrf_token": token},
        headers=headers,
    )


def _app(service: Service) -> SyncClient:
    return SyncClient(create_app(service.settings, service=service, background=False))


def test_two_apps_over_one_sqlite_file_share_the_lockout(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home")
    services = [Service.open(settings), Service.open(settings)]
    clients = [_app(s) for s in services]
    try:
        statuses = [_login(clients[n % 2], f"wrong {n}").status_code for n in range(FREE_ATTEMPTS)]
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
    service = Service.open(
        make_settings(tmp_path / "home", database_url=pg_url, master_key=MASTER_KEY)
    )
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


def _serving_pid(conn: http.client.HTTPConnection, server_port: int, pids: set[int]) -> int | None:
    """The worker process holding the server side of ``conn`` (from ``/proc``), or ``None``
    when none of ``pids`` does (a worker uvicorn replaced meanwhile: under load its health
    check restarts a slow starter)."""
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
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:  # that worker is gone
            continue
        for fd in fds:
            try:
                if os.readlink(fd) == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    return None


def _post_login(conn: http.client.HTTPConnection, password: str) -> http.client.HTTPResponse:
    token = secrets.token_urlsafe(32)
    body = urllib.parse.urlencode({"username": "admin", "password": password, "csrf_token": token})
    conn.request(
        "POST",
        "/console/login",
        body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"{LOGIN_CSRF_COOKIE}={token}",
        },
    )
    response = conn.getresponse()
    response.read()
    return response


def _ping(conn: http.client.HTTPConnection) -> bool:
    """Whether ``conn`` is still open (the server closes keep-alive connections idle 5 s)."""
    try:
        conn.request("GET", "/healthz")
        conn.getresponse().read()
    except (OSError, http.client.HTTPException):
        conn.close()
        return False
    return True


def _connections_per_worker(server: Any, each: int) -> list[list[http.client.HTTPConnection]]:
    """``each`` open keep-alive connections to each of the two workers of ``server``.

    The second worker may still be starting (or be restarted by uvicorn's health check on a
    loaded machine) when the first answers, so this tries for up to a minute, holding at most
    50 connections it does not need, and checks that the ones it returns are still open."""
    by_worker: dict[int, list[http.client.HTTPConnection]] = {}
    spare: list[http.client.HTTPConnection] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        live = _worker_pids(server.proc.pid)
        for pid in [p for p in by_worker if p not in live]:  # a worker that was replaced
            for conn in by_worker.pop(pid):
                conn.close()
        if len(by_worker) == 2 and all(len(c) >= each for c in by_worker.values()):
            for pid, conns in by_worker.items():
                by_worker[pid] = [c for c in conns if _ping(c)]
            if all(len(c) >= each for c in by_worker.values()):
                break
        if len(spare) > 50:
            spare.pop(0).close()
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        conn.request("GET", "/healthz")
        conn.getresponse().read()
        pid = _serving_pid(conn, server.port, live)
        if pid is None or len(by_worker.get(pid, [])) >= each:
            spare.append(conn)
        else:
            by_worker.setdefault(pid, []).append(conn)
    for conn in spare:
        conn.close()
    ok = len(by_worker) == 2 and all(len(c) >= each for c in by_worker.values())
    if not ok:
        for conns in by_worker.values():
            for conn in conns:
                conn.close()
    assert ok, "could not reach both workers"
    return list(by_worker.values())


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
def test_serve_with_two_workers_shares_the_lockout(spawn: Any) -> None:
    server = spawn(JWKIT_WORKERS="2")
    assert server.proc is not None
    first, second = (conns[0] for conns in _connections_per_worker(server, 1))
    try:
        statuses = [
            _post_login(first if n % 2 else second, f"wrong {n}").status
            for n in range(FREE_ATTEMPTS)
        ]
        # Per-process counters would give each worker at most 3 failures: no 429 yet.
        assert statuses == [401] * (FREE_ATTEMPTS - 1) + [429]
        for conn in (first, second):
            refused = _post_login(conn, ADMIN_PASSWORD)
            assert refused.status == 429
            assert 0 < int(refused.headers["retry-after"]) <= BASE_DELAY
    finally:
        first.close()
        second.close()


# -- concurrent guesses, forwarded addresses and the argon2 budget over real HTTP --------------


def _checks(server: Any) -> int:
    """Wrong passwords the server checked (each one logs a line; refusals do not)."""
    return server.log().count("console login failed for a user")


def _burst(
    url: str, n: int, login: Callable[[httpx.Client, int], httpx.Response]
) -> list[httpx.Response]:
    """``n`` logins at once, each on its own connection (so both workers get some)."""
    barrier = threading.Barrier(n)
    answers: list[httpx.Response] = []
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            with httpx.Client(base_url=url, timeout=60) as http:
                http.get("/healthz")  # connected before the start
                barrier.wait(30)
                answers.append(login(http, i))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    return answers


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
def test_concurrent_guesses_over_http_with_two_workers_get_no_extra_checks(
    spawn: Any, db_url: str
) -> None:
    """24 wrong passwords sent at the same moment to ``jwkit serve --workers 2``, 12 through
    each worker, on SQLite and on PostgreSQL: exactly FREE_ATTEMPTS of them are checked."""
    extra = {} if db_url.startswith("sqlite") else {"JWKIT_MASTER_KEY": MASTER_KEY}
    server = spawn(
        JWKIT_WORKERS="2", JWKIT_LOGIN_CONCURRENCY="32", JWKIT_DATABASE_URL=db_url, **extra
    )
    conns = [c for per_worker in _connections_per_worker(server, 12) for c in per_worker]
    barrier = threading.Barrier(len(conns))
    statuses: list[int] = []
    errors: list[BaseException] = []

    def guess(conn: http.client.HTTPConnection, n: int) -> None:
        try:
            barrier.wait(30)
            statuses.append(_post_login(conn, f"wrong {n}").status)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=guess, args=(c, n)) for n, c in enumerate(conns)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        for conn in conns:
            conn.close()
    assert errors == []
    # Checked once each: FREE_ATTEMPTS - 1 plain failures, the fifth locks (429 too).
    assert sorted(statuses) == [401] * (FREE_ATTEMPTS - 1) + [429] * (24 - FREE_ATTEMPTS + 1)
    assert _checks(server) == FREE_ATTEMPTS
    db = Database(db_url)
    try:
        assert ("127.0.0.1", "h", FREE_ATTEMPTS) in _rows(db)
    finally:
        db.dispose()
    with httpx.Client(base_url=server.url, timeout=30) as http:
        assert _login(http, ADMIN_PASSWORD).status_code == 429


def test_forwarded_for_is_not_believed_by_default(spawn: Any) -> None:
    server = spawn()
    with httpx.Client(base_url=server.url, timeout=30) as http:
        statuses = [
            _login(http, "wrong", forwarded_for=f"203.0.113.{n}").status_code
            for n in range(FREE_ATTEMPTS)
        ]
        assert statuses == [401] * (FREE_ATTEMPTS - 1) + [429]  # all one client: 127.0.0.1
        assert _login(http, ADMIN_PASSWORD, forwarded_for="198.51.100.1").status_code == 429


def test_a_configured_proxy_names_the_client_and_cannot_be_fooled(spawn: Any) -> None:
    """Behind a proxy that appends the client to X-Forwarded-For: each client has its own
    count, a client cannot choose its address by sending the header itself, and guesses from
    many addresses never lock out the admin at an address that has not failed."""
    server = spawn(JWKIT_FORWARDED_ALLOW_IPS="127.0.0.1")
    with httpx.Client(base_url=server.url, timeout=30) as http:
        statuses = [
            _login(http, "wrong", forwarded_for="203.0.113.5").status_code
            for _ in range(FREE_ATTEMPTS)
        ]
        assert statuses == [401] * (FREE_ATTEMPTS - 1) + [429]
        # The client's own header comes first; the proxy appends what it saw: still locked.
        spoofed = _login(http, ADMIN_PASSWORD, forwarded_for="192.0.2.200, 203.0.113.5")
        assert spoofed.status_code == 429
        assert _login(http, ADMIN_PASSWORD, forwarded_for="192.0.2.200").status_code == 303

        for n in range(ACCOUNT_FREE_ATTEMPTS):  # a guess from each of many addresses
            assert _login(http, "wrong", forwarded_for=f"198.51.100.{n}").status_code in (401, 429)
        refused = _login(http, ADMIN_PASSWORD, forwarded_for="198.51.100.3")
        assert refused.status_code == 429  # an address that guessed is held off unchecked
        for address in ("192.0.2.200", "192.0.2.201", "2001:db8:5::1"):  # never failed
            assert _login(http, ADMIN_PASSWORD, forwarded_for=address).status_code == 303
    assert _checks(server) == FREE_ATTEMPTS - 1 + 1 + ACCOUNT_FREE_ATTEMPTS


def test_password_checks_are_bounded_per_process(tmp_path: Path) -> None:
    """When every password slot is taken a login is turned away (503, Retry-After) before
    anything is counted or hashed, whoever sends it."""
    service = Service.open(make_settings(tmp_path / "home", login_concurrency=2))
    app = create_app(service.settings, service=service, background=False)
    client = SyncClient(app)
    slots = app.state.auth.password_slots
    try:
        assert slots.take() and slots.take() and not slots.take()
        for user, password in (("admin", ADMIN_PASSWORD), ("nobody", "x")):
            busy = _login(client, password, user=user)
            assert busy.status_code == 503
            assert busy.headers["retry-after"] == "1"
            assert "busy checking other logins" in busy.text
        assert _rows(service.db) == []  # nothing reserved
        slots.give_back()
        assert _login(client, "wrong", user="nobody").status_code == 401
        assert slots.take() and not slots.take()  # the login gave its slot back
        slots.give_back()
        slots.give_back()
        assert _login(client, ADMIN_PASSWORD).status_code == 303
    finally:
        client.close()
        service.close()


def test_unknown_names_spend_the_address_budget_over_http(spawn: Any) -> None:
    """A login for a user that does not exist costs a full argon2 hash: such attempts count
    against the client address like any other, and at most ``JWKIT_LOGIN_CONCURRENCY`` run
    at once; the rest are turned away with 503 and Retry-After."""
    server = spawn(JWKIT_LOGIN_CONCURRENCY="1")
    answers = _burst(server.url, 12, lambda http, i: _login(http, "x", user=f"ghost{i}"))
    assert {r.status_code for r in answers} <= {401, 503}
    assert all(r.headers["retry-after"] == "1" for r in answers if r.status_code == 503)
    checked = sum(r.status_code == 401 for r in answers)
    assert _checks(server) == checked
    with httpx.Client(base_url=server.url, timeout=30) as http:
        statuses = [
            _login(http, "x", user=f"other{i}").status_code
            for i in range(ADDRESS_FREE_ATTEMPTS - checked)
        ]
        assert statuses == [401] * (ADDRESS_FREE_ATTEMPTS - checked - 1) + [429]
        for i in range(5):  # the address is locked: no name gets a check
            assert _login(http, "x", user=f"more{i}").status_code == 429
            assert _login(http, ADMIN_PASSWORD).status_code == 429
    assert _checks(server) == ADDRESS_FREE_ATTEMPTS
