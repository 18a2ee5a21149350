"""The key service keeps serving while its PostgreSQL database is unreachable, and recovers.

The outage is real: the test database stops accepting connections and every open one is
terminated (``ALLOW_CONNECTIONS false`` + ``pg_terminate_backend``), on the suite's own server.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from jwkit.verify.verifier import Verifier

from .conftest import AUTH, MASTER_KEY, PostgresServer, ServerProcess

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(240)]


def _set_reachable(server: PostgresServer, database: str, reachable: bool) -> None:
    engine = create_engine(server.url(), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            flag = "true" if reachable else "false"
            conn.execute(text(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS {flag}'))
            if not reachable:
                conn.execute(
                    text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = :d AND pid <> pg_backend_pid()"),
                    {"d": database},
                )  # fmt: skip
    finally:
        engine.dispose()


def _token(
    server: ServerProcess, project: dict[str, Any], client: dict[str, Any]
) -> httpx.Response:
    return httpx.post(
        f"{server.url}/p/{project['id']}/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(client["client_id"], client["client_secret"]),
        timeout=30,
    )


def test_public_endpoints_survive_a_database_outage(
    spawn: Any, pg_url: str, postgres_server: PostgresServer
) -> None:
    database = pg_url.rsplit("/", 1)[1]
    server = spawn(JWKIT_DATABASE_URL=pg_url)
    with httpx.Client(base_url=f"{server.url}/api/v1", headers=AUTH, timeout=30) as api:
        _outage_and_recovery(server, api, database, postgres_server)


def _outage_and_recovery(
    server: ServerProcess, api: httpx.Client, database: str, postgres_server: PostgresServer
) -> None:
    project = api.post("/projects", json={"name": "outage"}).json()
    client = api.post(f"/projects/{project['id']}/clients", json={"name": "svc"}).json()
    unseen = api.post(f"/projects/{project['id']}/clients", json={"name": "new"}).json()
    jwks_url = f"{server.url}/p/{project['id']}/.well-known/jwks.json"
    before = httpx.get(jwks_url)
    assert _token(server, project, client).status_code == 200  # the client is now cached
    gone = api.post(f"/projects/{project['id']}/clients", json={"name": "gone"}).json()
    assert _token(server, project, gone).status_code == 200
    # Unrelated changes elsewhere, and one client deleted: every change rebuilds the replica's
    # snapshot, which must keep the clients it knew (re-read, not forgotten) but the deleted one.
    other = api.post("/projects", json={"name": "unrelated"}).json()
    assert api.post(f"/projects/{other['id']}/clients", json={"name": "x"}).status_code == 201
    assert api.delete(f"/projects/{project['id']}/clients/{gone['client_id']}").status_code == 204
    assert _token(server, project, gone).status_code == 401

    _set_reachable(postgres_server, database, False)
    try:
        time.sleep(1.5)  # let the replica's background sync hit the dead database
        during = httpx.get(jwks_url)
        assert during.status_code == 200 and during.content == before.content
        assert during.headers["etag"] == before.headers["etag"]
        assert httpx.get(f"{server.url}/p/{project['id']}/.well-known/openid-configuration"
                         ).status_code == 200  # fmt: skip
        issued = _token(server, project, client)
        assert issued.status_code == 200, issued.text
        with Verifier.from_jwks_url(
            jwks_url,
            allow_insecure_http=True,
            issuer=project["issuer"],
            audience=project["audience"],
        ) as v:
            assert v.verify(issued.json()["access_token"])["client_id"] == client["client_id"]
        assert _token(server, project, gone).status_code == 401  # its miss is remembered
        first_time = _token(server, project, unseen)  # its secret hash is not cached yet
        assert first_time.status_code == 503, first_time.text
        assert first_time.json()["error"] == "temporarily_unavailable"
        ready = httpx.get(f"{server.url}/readyz", timeout=30)
        assert ready.status_code == 503
        refused = api.post("/projects", json={"name": "while down"})
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"] == "database_unavailable"
        assert refused.headers["retry-after"] == "5"
    finally:
        _set_reachable(postgres_server, database, True)

    deadline = time.monotonic() + 20
    while httpx.get(f"{server.url}/readyz", timeout=30).status_code != 200:
        assert time.monotonic() < deadline, "the service did not recover"
        time.sleep(0.2)
    assert api.post("/projects", json={"name": "after"}).status_code == 201
    assert "d" not in httpx.get(jwks_url).json()["keys"][0]


def _ready(server: ServerProcess) -> None:
    deadline = time.monotonic() + 60
    while httpx.get(f"{server.url}/readyz", timeout=30).status_code != 200:
        assert time.monotonic() < deadline, "the replica did not become ready"
        time.sleep(0.1)


def test_a_fresh_replica_serves_every_project_through_an_outage(
    spawn: Any, pg_url: str, postgres_server: PostgresServer, tmp_path: Any
) -> None:
    """Start-up loads only project ids, but a replica is ready only once it has built every
    project's documents (up to ``JWKIT_STATE_CACHE``): a replica that never served a project
    still serves it through an outage. A project it could not keep answers 503, never the
    404 of a project that does not exist."""
    database = pg_url.rsplit("/", 1)[1]
    shared = {"JWKIT_DATABASE_URL": pg_url, "JWKIT_MASTER_KEY": MASTER_KEY}
    writer = spawn(tmp_path / "a", **shared)
    with httpx.Client(base_url=f"{writer.url}/api/v1", headers=AUTH, timeout=30) as api:
        made = [api.post("/projects", json={"name": f"p{i}"}).json() for i in range(3)]
    fresh = spawn(tmp_path / "b", **shared)
    small = spawn(tmp_path / "c", JWKIT_STATE_CACHE="1", **shared)
    _ready(fresh)
    _ready(small)
    path = "/p/{}/.well-known/jwks.json"
    expected = {p["id"]: httpx.get(writer.url + path.format(p["id"])).content for p in made}
    _set_reachable(postgres_server, database, False)
    try:
        for pid, body in expected.items():
            r = httpx.get(fresh.url + path.format(pid), timeout=30)
            assert r.status_code == 200 and r.content == body
        answers = [httpx.get(small.url + path.format(pid), timeout=30) for pid in expected]
        assert sorted(a.status_code for a in answers) == [200, 503, 503]
        busy = next(a for a in answers if a.status_code == 503)
        assert busy.json()["error"] == "temporarily_unavailable"
        assert busy.headers["retry-after"] == "1"
        assert httpx.get(small.url + path.format("proj_nope"), timeout=30).status_code == 404
    finally:
        _set_reachable(postgres_server, database, True)
