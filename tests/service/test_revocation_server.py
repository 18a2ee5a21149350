"""Token status against real ``jwkit serve`` processes: SQLite, and two replicas on PostgreSQL,
with the Server-Sent Events stream read over real HTTP."""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from jwkit.jose import jwt
from jwkit.jose.jwk import JWKSet
from jwkit.jose.statuslist import INVALID, VALID, StatusList

from .conftest import AUTH, MASTER_KEY, ServerProcess
from .test_wire import wire_only

pytestmark = pytest.mark.timeout(240)


def _api(server: ServerProcess, method: str, path: str, body: Any = None) -> Any:
    r = httpx.request(method, f"{server.url}/api/v1{path}", json=body, headers=AUTH, timeout=30)
    assert r.is_success, r.text
    return r.json() if r.content else None


def _client_token(server: ServerProcess, pid: str, cl: dict[str, Any]) -> str:
    r = httpx.post(
        f"{server.url}/p/{pid}/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(cl["client_id"], cl["client_secret"]),
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def _ref(token: str) -> tuple[str, int]:
    _, claims = jwt.decode_unverified(token)
    ref = claims["status"]["status_list"]
    return str(ref["uri"]), int(ref["idx"])


def _status(server: ServerProcess, project: dict[str, Any], token: str) -> int:
    uri, idx = _ref(token)
    path = uri[uri.index("/p/") :]
    r = httpx.get(server.url + path, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/statuslist+jwt"
    jwks = JWKSet.from_json(
        httpx.get(f"{server.url}/p/{project['id']}/.well-known/jwks.json", timeout=10).content
    )
    claims = jwt.decode(
        r.text, jwks, algorithms=["ES256"], typ="statuslist+jwt", issuer=project["issuer"]
    )
    assert claims["sub"] == uri
    return StatusList.decode(claims["status_list"])[idx]


class EventReader:
    """Reads ``GET {issuer}/events`` in a thread; events land in :attr:`events`."""

    def __init__(self, url: str) -> None:
        self.events: queue.Queue[tuple[str, str]] = queue.Queue()
        self.opened = threading.Event()
        self._stop = threading.Event()
        self.status_code: int | None = None
        self._thread = threading.Thread(target=self._run, args=(url,), daemon=True)
        self._thread.start()
        assert self.opened.wait(10), "the event stream did not open"

    def _run(self, url: str) -> None:
        with httpx.stream("GET", url, timeout=30) as r:
            self.status_code = r.status_code
            name = ""
            for line in r.iter_lines():
                if line.startswith(":"):
                    self.opened.set()
                elif line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    self.events.put((name, line[6:]))
                if self._stop.is_set():
                    return
            self.opened.set()

    def next(self, timeout: float) -> tuple[str, str]:
        return self.events.get(timeout=timeout)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


def test_revoke_on_a_real_server_with_push(spawn: Any) -> None:
    server = spawn(JWKIT_EVENTS_HEARTBEAT="0.5", JWKIT_EVENTS_MAX_LISTENERS="2")
    project = _api(server, "POST", "/projects", {"name": "live"})
    pid = project["id"]
    cl = _api(server, "POST", f"/projects/{pid}/clients", {"name": "svc"})
    token = _client_token(server, pid, cl)
    minted = _api(server, "POST", f"/projects/{pid}/tokens", {"sub": "erin", "sid": "web-1"})
    assert _status(server, project, token) == VALID
    reader = EventReader(f"{server.url}/p/{pid}/events")
    second = EventReader(f"{server.url}/p/{pid}/events")
    try:
        # Bounded: a third listener is told to come back later.
        r = httpx.get(f"{server.url}/p/{pid}/events", timeout=10)
        assert r.status_code == 503
        assert r.headers["retry-after"]
        out = _api(server, "POST", f"/projects/{pid}/revocations", {"sid": "web-1"})
        assert out["count"] == 1
        name, data = reader.next(timeout=5)
        assert name == "status"
        assert _ref(minted["access_token"])[0] in data
        assert _status(server, project, minted["access_token"]) == INVALID
        assert _status(server, project, token) == VALID
        assert second.next(timeout=5)[0] == "status"
        # The key set changing is pushed too.
        _api(
            server, "POST", f"/projects/{pid}/keys", {"mode": "replace", "confirm_invalidate": True}
        )
        name, data = reader.next(timeout=5)
        while name != "keys":
            name, data = reader.next(timeout=5)
        assert f"/p/{pid}/.well-known/jwks.json" in data
    finally:
        reader.close()
        second.close()
    # Disconnected listeners free their places.
    deadline = time.monotonic() + 10
    while True:
        third = EventReader(f"{server.url}/p/{pid}/events")
        ok = third.status_code == 200
        third.close()
        if ok:
            break
        assert time.monotonic() < deadline, "closed listeners were never released"
    # RFC 7009 over real HTTP: the client revokes its own token (one of the new key).
    token = _client_token(server, pid, cl)
    assert _status(server, project, token) == VALID
    r = httpx.post(
        f"{server.url}/p/{pid}/oauth2/revoke",
        data={"token": token},
        auth=(cl["client_id"], cl["client_secret"]),
        timeout=10,
    )
    assert r.status_code == 200
    assert _status(server, project, token) == INVALID


@pytest.mark.postgres
def test_two_replicas_on_postgres(spawn: Any, tmp_path: Path, pg_url: str) -> None:
    """A revocation on A reaches the list B serves within a second (NOTIFY), and a token B
    signed a moment before a revocation by ``sub`` on A is caught."""
    env = {
        "JWKIT_DATABASE_URL": pg_url,
        "JWKIT_MASTER_KEY": MASTER_KEY,
        "JWKIT_PUBLIC_URL": "http://replicas.test",
        "JWKIT_SYNC_INTERVAL": "30",
        "JWKIT_CHANGE_CHECK_INTERVAL": "30",  # NOTIFY alone
        "JWKIT_EVENTS_HEARTBEAT": "0.5",
    }
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = spawn(tmp_path / "a", **env)
    b = spawn(tmp_path / "b", **env)
    project = _api(a, "POST", "/projects", {"name": "rep"})
    pid = project["id"]
    cl = _api(a, "POST", f"/projects/{pid}/clients", {"name": "svc"})
    minted = _api(a, "POST", f"/projects/{pid}/tokens", {"sub": "frank"})["access_token"]
    deadline = time.monotonic() + 10
    while httpx.get(f"{b.url}/p/{pid}/.well-known/jwks.json").status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    reader = EventReader(f"{b.url}/p/{pid}/events")
    try:
        started = time.monotonic()
        _api(a, "POST", f"/projects/{pid}/revocations", {"sub": "frank"})
        name, _ = reader.next(timeout=5)
        assert name == "status"
        assert time.monotonic() - started < 1.0
        assert _status(b, project, minted) == INVALID

        # B signs (its record still in memory), A revokes by sub at once.
        early = _client_token(b, pid, cl)
        out = _api(a, "POST", f"/projects/{pid}/revocations", {"sub": cl["client_id"]})
        assert out["count"] in (0, 1)  # 0 unless B's batch was already written
        deadline = time.monotonic() + 5
        while _status(a, project, early) != INVALID or _status(b, project, early) != INVALID:
            assert time.monotonic() < deadline, "the token signed just before escaped"
            time.sleep(0.05)
    finally:
        reader.close()


def test_cli_revoke_and_list(spawn: Any) -> None:
    from click.testing import CliRunner

    from jwkit.cli import main

    from .conftest import ADMIN_TOKEN

    server = spawn()
    project = _api(server, "POST", "/projects", {"name": "cli"})
    pid = project["id"]
    base = ["admin", "--url", server.url, "--token", ADMIN_TOKEN]
    runner = CliRunner()
    minted = runner.invoke(main, [*base, "tokens", "mint", pid, "--sub", "gina", "--sid", "tab-9"])
    assert minted.exit_code == 0, minted.output
    token = minted.output.strip()
    assert jwt.decode_unverified(token)[1]["sid"] == "tab-9"
    bad = runner.invoke(main, [*base, "revoke", pid, "--sub", "gina", "--sid", "tab-9"])
    assert bad.exit_code != 0
    assert "exactly one" in bad.output
    done = runner.invoke(main, [*base, "revoke", pid, "--sid", "tab-9"])
    assert done.exit_code == 0, done.output
    assert "revoked 1 live token(s) with sid 'tab-9'" in done.output
    assert _status(server, project, token) == INVALID
    listed = runner.invoke(main, [*base, "revocations", "list", pid])
    assert listed.exit_code == 0, listed.output
    assert "tab-9" in listed.output.splitlines()[1]
    as_json = runner.invoke(main, [*base, "--json", "revocations", "list", pid])
    assert '"sid": "tab-9"' in as_json.output
    plain = runner.invoke(
        main, [*base, "--json", "projects", "create", "old-style", "--no-token-status"]
    )
    assert plain.exit_code == 0, plain.output
    assert '"token_status": false' in plain.output


@pytest.mark.postgres
def test_a_verifier_on_replica_b_rejects_a_token_revoked_on_a(tmp_path: Path, pg_url: str) -> None:
    """End to end with the SDK: a jwkit ``Verifier`` (status checking, push) that reads replica
    B refuses a token B signed a moment before a revocation by ``sub`` on replica A."""
    from jwkit import TokenRevoked, Verifier

    from .conftest import server_env

    b = ServerProcess(tmp_path / "b", {})
    env = {
        "JWKIT_DATABASE_URL": pg_url,
        "JWKIT_MASTER_KEY": MASTER_KEY,
        "JWKIT_PUBLIC_URL": b.url,
        "JWKIT_EVENTS_HEARTBEAT": "0.5",
    }
    b.env = server_env(tmp_path / "b", **env)
    a = ServerProcess(tmp_path / "a", server_env(tmp_path / "a", **env))
    try:
        a.start()
        b.start()
        project = _api(a, "POST", "/projects", {"name": "e2e"})
        pid, issuer = project["id"], project["issuer"]
        cl = _api(a, "POST", f"/projects/{pid}/clients", {"name": "svc"})
        deadline = time.monotonic() + 10
        while httpx.get(f"{b.url}/p/{pid}/.well-known/jwks.json").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with Verifier.from_issuer(
            issuer, audience=None, allow_insecure_http=True, status_events=True
        ) as v:
            token = _client_token(b, pid, cl)  # on B: its record is still in B's memory
            assert v.verify(token)["client_id"] == cl["client_id"]
            _api(a, "POST", f"/projects/{pid}/revocations", {"sub": cl["client_id"]})
            deadline = time.monotonic() + 5
            while True:
                try:
                    v.verify(token)
                except TokenRevoked:
                    break
                assert time.monotonic() < deadline, "the verifier still accepts the token"
                time.sleep(0.05)
            fresh = _client_token(b, pid, cl)  # issued after the revocation: accepted
            assert v.verify(fresh)["client_id"] == cl["client_id"]
    finally:
        a.stop()
        b.stop()


def test_open_event_streams_do_not_hold_up_shutdown(spawn: Any) -> None:
    """uvicorn waits for open connections before it exits; the streams end when it starts
    shutting down, so ``jwkit serve`` stops promptly with a listener connected."""
    server = spawn()
    project = _api(server, "POST", "/projects", {"name": "bye"})
    reader = EventReader(f"{server.url}/p/{project['id']}/events")
    assert server.proc is not None
    started = time.monotonic()
    server.proc.terminate()
    server.proc.wait(10)  # raises TimeoutExpired if the stream held the server up
    assert time.monotonic() - started < 10
    assert "Traceback" not in server.log()
    reader.close()


@wire_only
def test_status_lists_answer_alike_on_the_parser_path_and_the_asgi_route(spawn: Any) -> None:
    from .test_wire import _exchange, _get, _split, _wire_count

    server = spawn()
    project = _api(server, "POST", "/projects", {"name": "wire"})
    token = _api(server, "POST", f"/projects/{project['id']}/tokens", {"sub": "h"})
    uri, _ = _ref(token["access_token"])
    path = uri[uri.index("/p/") :]
    before = _wire_count(server)
    fast = _exchange(server, _get(path), 1)[0]
    assert _wire_count(server) == before + 1
    slow = _exchange(server, _get(path, 'If-None-Match: "nope"'), 1)[0]  # the ASGI route
    assert _wire_count(server) == before + 1
    (fs, fh, fb), (ss, sh, sb) = _split(fast), _split(slow)
    assert fs == ss == "HTTP/1.1 200 OK"
    assert fb == sb and fb.count(b".") == 2
    for name in (
        "etag",
        "cache-control",
        "content-type",
        "content-length",
        "access-control-allow-origin",
    ):
        assert fh[name] == sh[name], name
    assert fh["content-type"] == "application/statuslist+jwt"
    assert set(fh) == set(sh)
    missing = _exchange(server, _get(path[:-1] + "9"), 1)[0]
    assert _split(missing)[0] == "HTTP/1.1 404 Not Found"
