"""The whole flow against real ``jwkit serve`` processes on SQLite."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from jwkit.errors import KeyNotFound
from jwkit.jose.b64 import b64url_decode
from jwkit.service.domain import keys as key_domain
from jwkit.service.store.db import Database
from jwkit.service.store.models import Key
from jwkit.service.vault import Vault, load_master_key
from jwkit.verify.verifier import Verifier

from .conftest import AUTH, ServerProcess, server_env

pytestmark = pytest.mark.timeout(240)


def _api(server: ServerProcess, method: str, path: str, body: Any = None) -> Any:
    r = httpx.request(method, f"{server.url}/api/v1{path}", json=body, headers=AUTH, timeout=30)
    assert r.is_success, r.text
    return r.json() if r.content else None


def _client_token(server: ServerProcess, project: dict[str, Any], cl: dict[str, Any]) -> str:
    r = httpx.post(
        f"{server.url}/p/{project['id']}/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(cl["client_id"], cl["client_secret"]),
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def _verifier(project: dict[str, Any], **options: Any) -> Verifier:
    options.setdefault("token_cache", False)
    return Verifier.from_jwks_url(
        project["jwks_uri"],
        allow_insecure_http=True,
        issuer=project["issuer"],
        audience=project["audience"],
        **options,
    )


def test_replace_now_is_seen_by_a_running_verifier_with_its_token_cache(spawn: Any) -> None:
    """The same long-lived verifier (token cache on) rejects tokens of a replaced key as soon
    as its JWKS cache expires: the service advertises max-age 0 here, and min_ttl=0 lets the
    verifier honour it."""
    server = spawn()
    project = _api(server, "POST", "/projects", {"name": "live", "jwks_max_age": 0})
    cl = _api(server, "POST", f"/projects/{project['id']}/clients", {"name": "svc"})
    before = _client_token(server, project, cl)
    verifier = _verifier(project, token_cache=True, min_ttl=0)
    try:
        assert verifier.verify(before)["client_id"] == cl["client_id"]
        assert verifier.verify(before)  # now a token-cache hit
        replaced = _api(
            server,
            "POST",
            f"/projects/{project['id']}/keys",
            {"mode": "replace", "confirm_invalidate": True},
        )
        after = _client_token(server, project, cl)
        assert verifier.verify(after).header["kid"] == replaced["kid"]
        time.sleep(1.1)  # cache hits re-poll the key source at most once per second
        with pytest.raises(KeyNotFound):
            verifier.verify(before)
    finally:
        verifier.close()


def test_whole_flow_rotation_and_replace_now(spawn: Any, tmp_path: Path) -> None:
    server = spawn()
    project = _api(server, "POST", "/projects", {"name": "e2e", "jwks_max_age": 0})
    assert project["issuer"] == f"{server.url}/p/{project['id']}"
    cl = _api(server, "POST", f"/projects/{project['id']}/clients", {"name": "svc"})
    old_token = _client_token(server, project, cl)
    minted = _api(server, "POST", f"/projects/{project['id']}/tokens", {"sub": "user-7"})
    verifier = _verifier(project)
    try:
        assert verifier.verify(old_token)["client_id"] == cl["client_id"]
        assert verifier.verify(minted["access_token"])["sub"] == "user-7"

        rotated = _api(server, "POST", f"/projects/{project['id']}/keys/rotate")
        new_token = _client_token(server, project, cl)
        assert verifier.verify(old_token).header["kid"] == rotated["retiring"]
        assert verifier.verify(new_token).header["kid"] == rotated["active"]
        assert rotated["active"] != rotated["retiring"]

        replaced = _api(
            server,
            "POST",
            f"/projects/{project['id']}/keys",
            {"mode": "replace", "confirm_invalidate": True},
        )
        newest = _client_token(server, project, cl)
    finally:
        verifier.close()
    refreshed = _verifier(project)
    try:
        assert refreshed.verify(newest).header["kid"] == replaced["kid"]
        with pytest.raises(KeyNotFound):
            refreshed.verify(new_token)  # signed by the key that replace-now revoked
        assert refreshed.verify(old_token)  # the retiring key is still published
    finally:
        refreshed.close()

    # Nothing on disk holds a private key in the clear.
    home = tmp_path / ".jwkit"
    master = load_master_key(None, home)
    database = Database(f"sqlite:///{home / 'jwkit.db'}")
    with database.session() as session:
        rows = list(session.query(Key))
        privates = [key_domain.open_key(row, Vault(master)).to_dict(private=True) for row in rows]
    database.dispose()
    raw = b"".join(p.read_bytes() for p in home.iterdir() if p.name.startswith("jwkit.db"))
    assert len(privates) >= 4
    for private in privates:
        d = private["d"]
        assert d.encode() not in raw
        assert b64url_decode(d) not in raw
    for marker in (b"PRIVATE KEY", b'"d":', b"BEGIN"):
        assert marker not in raw
    assert all(p["d"] not in server.log() for p in privates)


def _active_counts(url: str) -> tuple[dict[str, int], set[str]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            counts = {
                r[0]: r[1]
                for r in conn.execute(
                    text(
                        "SELECT p.id, (SELECT count(*) FROM keys k WHERE k.project_id = p.id "
                        "AND k.state = 'active') FROM projects p"
                    )
                )
            }
            kids = {r[0] for r in conn.execute(text("SELECT kid FROM keys"))}
    finally:
        engine.dispose()
    return counts, kids


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_sigkill_during_rotations_loses_nothing(
    spawn: Any, tmp_path: Path, database: str, request: pytest.FixtureRequest
) -> None:
    if database == "postgres":
        url = request.getfixturevalue("pg_url")
        env = {"JWKIT_DATABASE_URL": url}
    else:
        url, env = f"sqlite:///{tmp_path / '.jwkit' / 'jwkit.db'}", {}
    server = spawn(**env)
    projects = [
        _api(server, "POST", "/projects", {"name": f"k{i}", "jwks_max_age": 0}) for i in range(3)
    ]
    for round_ in range(3):
        stop = threading.Event()
        acknowledged: set[str] = set()

        def hammer(
            p: dict[str, Any], url: str, stop: threading.Event, acknowledged: set[str]
        ) -> None:
            while not stop.is_set():
                try:
                    r = httpx.post(
                        f"{url}/api/v1/projects/{p['id']}/keys/rotate",
                        json={"emergency": True},
                        headers=AUTH,
                        timeout=5,
                    )
                except httpx.HTTPError:
                    return
                if r.status_code == 200:
                    acknowledged.update(v for v in r.json().values() if v)

        threads = [
            threading.Thread(target=hammer, args=(p, server.url, stop, acknowledged))
            for p in projects
        ]
        for t in threads:
            t.start()
        time.sleep(0.7 + 0.3 * round_)
        server.kill()
        stop.set()
        for t in threads:
            t.join(10)
        assert acknowledged, "no rotation completed before the kill"
        counts, kids = _active_counts(url)
        assert counts == {p["id"]: 1 for p in projects}
        assert acknowledged <= kids  # every acknowledged key survived
        server = spawn(**env)
        for p in projects:
            jwks = httpx.get(f"{server.url}/p/{p['id']}/.well-known/jwks.json").json()
            assert len(jwks["keys"]) >= 2
            minted = _api(server, "POST", f"/projects/{p['id']}/tokens", {"sub": "after-kill"})
            assert minted["access_token"]


def test_worker_processes_share_one_sqlite_database(spawn: Any) -> None:
    server = spawn(JWKIT_WORKERS="2")
    project = _api(server, "POST", "/projects", {"name": "workers"})
    url = f"{server.url}/p/{project['id']}/.well-known/jwks.json"
    deadline = time.monotonic() + 10
    while True:  # each worker polls the version row once per second
        # New connections are spread over the workers by whichever accepts first, so a
        # batch can miss one worker: wait until a whole batch agrees on status and ETag.
        replies = [httpx.get(url, headers={"Connection": "close"}) for _ in range(24)]
        statuses = {r.status_code for r in replies}
        etags = {r.headers.get("etag") for r in replies}
        if statuses == {200} and len(etags) == 1:
            break
        assert time.monotonic() < deadline, (statuses, etags)
        time.sleep(0.2)


def test_admin_cli_against_a_server(spawn: Any) -> None:
    from click.testing import CliRunner

    from jwkit.cli import main

    server = spawn()
    runner = CliRunner()
    base = ["admin", "--url", server.url, "--token", AUTH["Authorization"][7:]]

    def run(*args: str) -> Any:
        result = runner.invoke(main, [*base, "--json", *args])
        assert result.exit_code == 0, result.output
        return json.loads(result.output) if result.output.strip() else None

    project = run("projects", "create", "cli-proj", "--jwks-max-age", "0")
    pid = project["id"]
    assert run("projects", "show", pid)["name"] == "cli-proj"
    assert [p["id"] for p in run("projects", "list")["projects"]] == [pid]
    assert len(run("keys", "list", pid)["keys"]) == 2
    generated = run("keys", "generate", pid, "--mode", "next", "--alg", "EdDSA", "--replace-next")
    assert generated["public_jwk"]["crv"] == "Ed25519"
    rotated = run("keys", "rotate", pid)
    assert rotated["active"] == generated["kid"]
    # A kid may start with "-" (base64url), so it goes after "--".
    revoked = run("keys", "revoke", "--emergency", pid, "--", rotated["retiring"])
    assert revoked["state"] == "revoked"
    token = run("tokens", "mint", pid, "--sub", "svc", "--claims", '{"role": "x"}')
    assert token["token_type"] == "Bearer"
    cl = run("clients", "create", pid, "--name", "c1", "--scope", "read")
    assert cl["client_secret"]
    assert [c["client_id"] for c in run("clients", "list", pid)["clients"]] == [cl["client_id"]]
    run("clients", "delete", pid, cl["client_id"])
    # Human output and errors.
    table = runner.invoke(main, [*base, "keys", "list", pid])
    assert table.exit_code == 0 and "STATE" in table.output and "revoked" in table.output
    refused = runner.invoke(main, [*base, "keys", "rotate", pid, "--emergency"])
    assert refused.exit_code == 0
    conflict = runner.invoke(main, [*base, "keys", "generate", pid, "--mode", "replace"])
    assert conflict.exit_code == 1 and "confirmation_required" in conflict.output
    wrong = runner.invoke(
        main, ["admin", "--url", server.url, "--token", "nope", "projects", "list"]
    )
    assert wrong.exit_code == 1 and "401" in wrong.output


def test_first_start_prints_credentials_once(tmp_path: Path) -> None:
    env = server_env(tmp_path)
    del env["JWKIT_ADMIN_TOKEN"], env["JWKIT_ADMIN_PASSWORD"]
    server = ServerProcess(tmp_path, env)
    try:
        server.start()
        log = server.log()
        token = re.search(r"admin API token:\s+(\S+)", log)
        assert token is not None and re.search(r"console login:\s+admin / \S+", log)
        assert f"console at {server.url}/console" in log
        r = httpx.get(
            f"{server.url}/api/v1/projects", headers={"Authorization": f"Bearer {token.group(1)}"}
        )
        assert r.status_code == 200
    finally:
        server.stop()
    again = ServerProcess(tmp_path, env, port=server.port)
    try:
        again.start()
        assert again.log().count("admin API token:") == 1  # same log file: printed only once
    finally:
        again.stop()


def test_background_scheduler_retires_keys(spawn: Any) -> None:
    # the retiring key stays until its reserved exp mark: token_ttl + JWKIT_EXP_HEADROOM
    server = spawn(JWKIT_SCHEDULER_INTERVAL="1", JWKIT_CLOCK_SKEW="0", JWKIT_EXP_HEADROOM="10")
    project = _api(
        server, "POST", "/projects", {"name": "sched", "jwks_max_age": 0, "token_ttl": 1}
    )
    rotated = _api(server, "POST", f"/projects/{project['id']}/keys/rotate")
    deadline = time.monotonic() + 60
    jwks_url = f"{server.url}/p/{project['id']}/.well-known/jwks.json"
    while time.monotonic() < deadline:
        kids = {k["kid"] for k in httpx.get(jwks_url).json()["keys"]}
        if rotated["retiring"] not in kids:
            break
        time.sleep(0.5)
    assert rotated["retiring"] not in kids and rotated["active"] in kids
    states = {
        k["kid"]: k["state"] for k in _api(server, "GET", f"/projects/{project['id']}/keys")["keys"]
    }
    assert states[rotated["retiring"]] == "revoked"
    events = _api(server, "GET", f"/projects/{project['id']}/events")["events"]
    assert any(e["actor"] == "scheduler" and e["action"] == "key.revoked" for e in events)
