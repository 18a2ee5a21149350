"""The key service on a real PostgreSQL server: locking, replicas, convergence."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import IntegrityError

from jwkit.service import scheduler
from jwkit.service.domain import keys, projects
from jwkit.service.domain.common import Conflict
from jwkit.service.runtime import Service
from jwkit.service.store.models import Key
from tests.support.postgres import fresh_database, own_postgres_server

from .conftest import AUTH, MASTER_KEY, FakeClock, ServerProcess, make_settings, server_env

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(240)]


def _open(tmp_path: Path, url: str, clock: FakeClock, name: str = "a") -> Service:
    return Service.open(
        make_settings(tmp_path / name, database_url=url, master_key=MASTER_KEY), clock=clock
    )


def _active_count(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT p.id, count(k.id) FROM projects p LEFT JOIN keys k "
                    "ON k.project_id = p.id AND k.state = 'active' GROUP BY p.id"
                )
            ).all()
    finally:
        engine.dispose()
    return {r[0]: r[1] for r in rows}


def test_lifecycle_and_unique_active_on_postgres(tmp_path: Path, pg_url: str) -> None:
    clock = FakeClock()
    svc = _open(tmp_path, pg_url, clock)
    try:
        with svc.write() as s:
            project = projects.create_project(
                s, projects.ProjectSpec(name="pg"), now=clock(), actor="t"
            )
            keys.bootstrap_keys(s, project, svc.vault, now=clock(), actor="t")
            pid = project.id
        with pytest.raises(Conflict), svc.write() as s:
            keys.rotate(s, pid, svc.vault, now=clock(), actor="t")
        clock.advance(306)  # jwks_max_age + 1 + SYNC_MARGIN
        with svc.write() as s:
            keys.rotate(s, pid, svc.vault, now=clock(), actor="t")
        with svc.read() as s:
            active = s.execute(select(Key).where(Key.state == "active")).scalar_one()
            values = {c.name: getattr(active, c.name) for c in Key.__table__.columns}
        values.pop("id")
        values["kid"] = "second-active"
        with pytest.raises(IntegrityError), svc.write() as s:
            s.add(Key(**values))
            s.flush()
        svc.db.migrate()  # idempotent
    finally:
        svc.close()


def test_concurrent_rotations_and_schedulers_keep_one_active(tmp_path: Path, pg_url: str) -> None:
    clock = FakeClock()
    replicas = [_open(tmp_path, pg_url, clock, name) for name in ("a", "b", "c")]
    try:
        with replicas[0].write() as s:
            project = projects.create_project(
                s,
                projects.ProjectSpec(name="race", jwks_max_age=0, rotation_days=1),
                now=clock(),
                actor="t",
            )
            keys.bootstrap_keys(s, project, replicas[0].vault, now=clock(), actor="t")
            pid = project.id
        errors: list[BaseException] = []

        def rotate_many(svc: Service) -> None:
            try:
                for _ in range(5):
                    with svc.write() as s:
                        keys.rotate(s, pid, svc.vault, now=clock(), actor="t", emergency=True)
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=rotate_many, args=(svc,)) for svc in replicas]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert errors == []
        assert _active_count(pg_url) == {pid: 1}
        with replicas[0].read() as s:
            rows = keys.list_keys(s, pid)
        assert len(rows) == 2 + 15  # every rotation added exactly one next key
        assert sum(k.state == "next" for k in rows) == 1

        clock.advance(86400)
        results: list[list[str]] = []
        sched = [
            threading.Thread(target=lambda s=svc: results.append(scheduler.run_once(s)))
            for svc in replicas
        ]
        for t in sched:
            t.start()
        for t in sched:
            t.join(120)
        rotations = [a for r in results for a in r if "rotated" in a]
        assert len(rotations) == 1  # one replica did it; the others found nothing due
        assert _active_count(pg_url) == {pid: 1}
    finally:
        for svc in replicas:
            svc.close()


def test_two_servers_on_one_database(spawn: Any, tmp_path: Path, pg_url: str) -> None:
    env = {"JWKIT_DATABASE_URL": pg_url, "JWKIT_MASTER_KEY": MASTER_KEY}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = spawn(tmp_path / "a", **env)
    b = spawn(tmp_path / "b", **env)
    created = httpx.post(
        f"{a.url}/api/v1/projects",
        json={"name": "rep", "jwks_max_age": 0},
        headers=AUTH,
        timeout=30,
    )
    assert created.status_code == 201
    pid = created.json()["id"]
    statuses: list[int] = []

    def rotate(url: str) -> None:
        for _ in range(4):
            r = httpx.post(f"{url}/api/v1/projects/{pid}/keys/rotate", headers=AUTH, timeout=60)
            statuses.append(r.status_code)

    threads = [threading.Thread(target=rotate, args=(s.url,)) for s in (a, b, a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert statuses and set(statuses) <= {200, 409}
    assert statuses.count(200) >= 1
    assert _active_count(pg_url) == {pid: 1}
    done = time.monotonic()
    path = f"/p/{pid}/.well-known/jwks.json"
    while True:
        ra, rb = httpx.get(a.url + path), httpx.get(b.url + path)
        if ra.headers["etag"] == rb.headers["etag"]:
            break
        # Replicas poll once per second; allow scheduling slack on a busy test machine.
        assert time.monotonic() - done < 2.5, "replicas did not converge"
        time.sleep(0.05)
    assert ra.content == rb.content
    engine = create_engine(pg_url)
    with engine.connect() as conn:
        kids = {
            r[0]
            for r in conn.execute(
                text("SELECT kid FROM keys WHERE project_id = :p AND state <> 'revoked'"),
                {"p": pid},
            )
        }
    engine.dispose()
    assert {k["kid"] for k in ra.json()["keys"]} == kids
    # A token from one replica verifies against the other's JWKS.
    token = httpx.post(
        f"{b.url}/api/v1/projects/{pid}/tokens", json={"sub": "x"}, headers=AUTH, timeout=30
    ).json()["access_token"]
    from jwkit.jose import jwt
    from jwkit.jose.jwk import JWKSet

    claims = jwt.decode(token, JWKSet.from_json(ra.text), algorithms=["ES256"])
    assert claims["iss"] == f"{b.url}/p/{pid}"


def test_no_plaintext_private_key_in_postgres(tmp_path: Path, pg_url: str) -> None:
    """Every row of every table, as PostgreSQL renders it, holds no private key material."""
    from jwkit.jose.b64 import b64url_decode

    clock = FakeClock()
    svc = _open(tmp_path, pg_url, clock)
    try:
        with svc.write() as s:
            for alg in ("ES256", "RS256", "EdDSA", "HS256"):
                project = projects.create_project(
                    s, projects.ProjectSpec(name=alg.lower(), algorithm=alg), now=clock(), actor="t"
                )
                keys.bootstrap_keys(s, project, svc.vault, now=clock(), actor="t")
        with svc.read() as s:
            rows = list(s.execute(select(Key)).scalars())
            secrets = [keys.open_key(row, svc.vault).to_dict(private=True) for row in rows]
    finally:
        svc.close()
    assert len(secrets) == 8
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            tables = [
                r[0]
                for r in conn.execute(
                    text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                )
            ]
            dump = "\n".join(
                str(r[0])
                for t in tables
                for r in conn.execute(text(f'SELECT row_to_json(t)::text FROM "{t}" t'))
            )
            raw = b"".join(bytes(r[0]) for r in conn.execute(text("SELECT ciphertext FROM keys")))
    finally:
        engine.dispose()
    assert "keys" in tables and len(dump) > 1000
    for secret in secrets:
        member = secret.get("d") or secret["k"]
        assert member not in dump
        assert b64url_decode(member) not in raw
        assert member.encode() not in raw
        assert b64url_decode(member).hex() not in dump  # bytea renders as hex
        assert member.encode().hex() not in dump
    for marker in ("PRIVATE KEY", '\\"d\\":', '\\"k\\":', "BEGIN"):
        assert marker not in dump


def test_replicas_learn_of_changes_through_notify(spawn: Any, tmp_path: Path, pg_url: str) -> None:
    """With the sync and the change check slowed to 30 s, only LISTEN/NOTIFY can make B see
    A's change quickly."""
    env = {"JWKIT_DATABASE_URL": pg_url, "JWKIT_MASTER_KEY": MASTER_KEY,
           "JWKIT_SYNC_INTERVAL": "30", "JWKIT_CHANGE_CHECK_INTERVAL": "30"}  # fmt: skip
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = spawn(tmp_path / "a", **env)
    b = spawn(tmp_path / "b", **env)
    time.sleep(1.0)  # both listeners connected
    created = httpx.post(f"{a.url}/api/v1/projects", json={"name": "n", "jwks_max_age": 0},
                         headers=AUTH, timeout=30)  # fmt: skip
    assert created.status_code == 201
    pid = created.json()["id"]
    path = f"/p/{pid}/.well-known/jwks.json"
    for change in ("create", "replace"):
        if change == "replace":
            r = httpx.post(f"{a.url}/api/v1/projects/{pid}/keys",
                           json={"mode": "replace", "confirm_invalidate": True},
                           headers=AUTH, timeout=30)  # fmt: skip
            assert r.status_code == 201
        expected = httpx.get(a.url + path).headers["etag"]
        changed_at = time.monotonic()
        while httpx.get(b.url + path).headers.get("etag") != expected:
            # Generous for a loaded CI machine, yet far below the 30 s poll.
            assert time.monotonic() - changed_at < 5, f"B missed the {change} notification"
            time.sleep(0.02)


def test_replicas_started_together_on_a_fresh_database(tmp_path: Path, pg_url: str) -> None:
    """Three replicas started at the same moment on an empty database: one migrates and
    creates the admin, the others wait for the setup lock and find both done (the chaos run
    saw "cannot open the database: IntegrityError" here)."""
    env = {"JWKIT_DATABASE_URL": pg_url, "JWKIT_MASTER_KEY": MASTER_KEY}
    replicas = [ServerProcess(tmp_path / n, server_env(tmp_path / n, **env)) for n in "abc"]
    errors: list[BaseException] = []

    def start(replica: ServerProcess) -> None:
        try:
            replica.start(timeout=60)
        except BaseException as exc:  # reported below, with the replica's log
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(r,)) for r in replicas]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        assert not errors, errors
        for replica in replicas:
            r = httpx.get(f"{replica.url}/api/v1/projects", headers=AUTH, timeout=10)
            assert r.status_code == 200
        engine = create_engine(pg_url)
        try:
            with engine.connect() as conn:
                admins = conn.execute(text("SELECT count(*) FROM admin_credentials")).scalar()
        finally:
            engine.dispose()
        assert admins == 1
    finally:
        for replica in replicas:
            replica.stop()


def _timed(method: str, url: str, **kwargs: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    r = httpx.request(method, url, timeout=30, **kwargs)
    return r, time.monotonic() - started


def test_frozen_database_gives_503_in_seconds_and_recovers(spawn: Any, tmp_path: Path) -> None:
    """PostgreSQL under SIGSTOP (the postmaster and every backend) accepts connections and
    ACKs data but answers nothing: the admin API answers 503 with Retry-After within its
    deadline, /readyz at once, the public documents from memory; after SIGCONT everything
    works again without a restart."""
    timeout = 2.0
    with own_postgres_server() as cluster:
        url = fresh_database(cluster.server)
        server = spawn(tmp_path / "a", JWKIT_DATABASE_URL=url, JWKIT_MASTER_KEY=MASTER_KEY,
                       JWKIT_DB_TIMEOUT=str(timeout))  # fmt: skip
        api = f"{server.url}/api/v1"
        pid = httpx.post(f"{api}/projects", json={"name": "f"}, headers=AUTH,
                         timeout=30).json()["id"]  # fmt: skip
        assert httpx.get(f"{server.url}/readyz", timeout=5).status_code == 200
        assert cluster.freeze() >= 2
        try:
            for method, path in (("GET", "/projects"), ("POST", f"/projects/{pid}/keys/rotate"),
                                 ("GET", f"/projects/{pid}/keys")):  # fmt: skip
                r, took = _timed(method, api + path, headers=AUTH)
                print(f"frozen: {method} {path} -> {r.status_code} in {took:.2f}s")
                assert r.status_code == 503 and r.headers["retry-after"]
                assert r.json()["error"] == "database_unavailable"
                assert took < 2 * timeout + 2  # a ping, then at most one connection attempt
            r, took = _timed("GET", f"{server.url}/readyz")
            print(f"frozen: /readyz -> {r.status_code} in {took:.2f}s")
            assert r.status_code == 503 and took < 1.5
            r, took = _timed("GET", f"{server.url}/p/{pid}/.well-known/jwks.json")
            assert r.status_code == 200 and took < 1
        finally:
            cluster.thaw()
        thawed = time.monotonic()
        while True:
            r = httpx.get(f"{api}/projects", headers=AUTH, timeout=30)
            if r.status_code == 200:
                break
            assert r.status_code == 503
            assert time.monotonic() - thawed < 10, "the admin API did not come back"
            time.sleep(0.1)
        print(f"thawed: admin API back after {time.monotonic() - thawed:.2f}s")
        while httpx.get(f"{server.url}/readyz", timeout=5).status_code != 200:
            # /readyz reuses its answer for a second
            assert time.monotonic() - thawed < 10, "/readyz did not come back"
            time.sleep(0.1)
        r = httpx.post(f"{api}/projects", json={"name": "after"}, headers=AUTH, timeout=30)
        assert r.status_code == 201


def test_a_notification_applies_the_change_and_leaves_the_periodic_sync_alone(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every change notifies every replica, which applies it with the change check's read;
    the sync's periodic work (expiry marks, the safety net's slice of projects) keeps its
    interval however many changes are made a second (it used to run once per notification:
    with 100,000 projects, project creations on PostgreSQL ran at half their rate)."""
    import asyncio

    from jwkit.service.http.app import _background

    slow = {"sync_interval": 30, "change_check_interval": 30, "master_key": MASTER_KEY}
    replica = Service.open(make_settings(tmp_path / "a", database_url=pg_url, **slow))
    writer = Service.open(make_settings(tmp_path / "b", database_url=pg_url, **slow))
    calls = {"sync": 0, "check": 0}
    checked = threading.Condition()
    sync, check = replica.state.sync, replica.state.check

    def counted_sync() -> bool:
        calls["sync"] += 1
        return sync()

    def counted_check() -> None:
        check()
        with checked:
            calls["check"] += 1
            checked.notify_all()

    monkeypatch.setattr(replica.state, "sync", counted_sync)
    monkeypatch.setattr(replica.state, "check", counted_check)

    def until(predicate: Any) -> None:
        with checked:
            assert checked.wait_for(predicate, timeout=20), (calls, replica.state.version)

    async def run() -> None:
        task = asyncio.create_task(_background(replica))
        try:
            # the listener's first connection wakes the loop once
            await asyncio.to_thread(until, lambda: calls["check"] >= 1)
            made = []
            for n in range(5):
                with writer.write() as s:
                    project = projects.create_project(
                        s, projects.ProjectSpec(name=f"n{n}"), now=writer.clock(), actor="t"
                    )
                    keys.bootstrap_keys(s, project, writer.vault, now=writer.clock(), actor="t")
                made.append(project.id)
                version = writer.state.version
                await asyncio.to_thread(until, lambda v=version: replica.state.version >= v)
            assert all(replica.state.projects.get(pid) is not None for pid in made)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    try:
        asyncio.run(run())
    finally:
        replica.close()
        writer.close()
    assert calls["check"] >= 6  # the connection, then each change
    assert calls["sync"] == 0  # the first periodic sync is 30 s away
