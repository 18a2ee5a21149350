"""Foreign keys: another issuer's public keys in a project's JWKS for a stated period.

The "old issuer" is a key generated here that jwkit never holds; its token verifies against the
project's JWKS with a jwkit :class:`~jwkit.Verifier` during the period and is refused after it
(the service's clock is injected; no sleeps). Kid collisions and private members are refused;
a JWKS URL is fetched once from a real local HTTP server, and a hostile one (huge body, not
JSON, private keys, a redirect) is refused.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from jwkit.errors import KeyNotFound
from jwkit.jose.jwk import JWK, JWKSet
from jwkit.service.runtime import Service
from jwkit.verify.verifier import Verifier
from tests.support.byok import old_issuer_token
from tests.support.fixtures import jwks_server  # noqa: F401
from tests.support.jwks_server import JWKS_PATH, JWKSServer, Reply

from .conftest import AUTH, FakeClock, ServerProcess, SyncClient, make_settings

OLD_ISSUER = "https://old-tenant.example.com/"


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _project(client: SyncClient, algorithm: str = "ES256") -> dict[str, Any]:
    body = {"name": "move", "algorithm": algorithm, "token_status": False}
    r = client.post("/api/v1/projects", json=body, headers=AUTH)
    assert r.status_code == 201, r.text
    return dict(r.json())


def _add(client: SyncClient, pid: str, **body: Any) -> httpx.Response:
    return client.post(f"/api/v1/projects/{pid}/foreign-keys", json=body, headers=AUTH)


def _jwks(client: SyncClient, pid: str) -> httpx.Response:
    r = client.get(f"/p/{pid}/.well-known/jwks.json")
    assert r.status_code == 200
    return r


def _max_age(r: httpx.Response) -> int:
    return int(r.headers["cache-control"].split("max-age=")[1].split(",")[0])


def _old_keys() -> tuple[JWK, JWK]:
    """The old issuer's signing key and an encryption key it also publishes (Keycloak does)."""
    return JWK.generate("RS256", kid="old-rsa-1"), JWK.generate("ES256", kid="old-enc", use="enc")


def test_old_issuer_tokens_verify_during_the_period_and_not_after(
    client: SyncClient, service: Service, clock: FakeClock
) -> None:
    project = _project(client)
    pid = project["id"]
    old, enc = _old_keys()
    old_jwks = {"keys": [old.public().to_dict(), enc.public().to_dict()]}
    until = clock() + 3 * 3600
    r = _add(client, pid, jwks=old_jwks, until=_iso(until))
    assert r.status_code == 201, r.text
    out = r.json()
    assert [k["kid"] for k in out["foreign_keys"]] == ["old-rsa-1"]
    assert out["skipped"] and "old-enc" in out["skipped"][0]
    assert out["foreign_keys"][0]["public_jwk"] == old.public().to_dict()

    token = old_issuer_token(
        old, OLD_ISSUER, project["audience"], exp=clock() + 4 * 3600, iat=clock()
    )
    published = _jwks(client, pid)
    kids = [k["kid"] for k in published.json()["keys"]]
    assert "old-rsa-1" in kids and len(kids) == 3  # active, next, foreign
    assert _max_age(published) <= project["jwks_max_age"]

    def verifier(doc: httpx.Response) -> Verifier:
        return Verifier(
            JWKSet.from_dict(doc.json()),
            issuer=[project["issuer"], OLD_ISSUER],
            audience=project["audience"],
            algorithms=["ES256", "RS256"],  # the API's allow-list covers both issuers
            clock=clock,
        )

    assert verifier(published).verify(token)["iss"] == OLD_ISSUER

    # close to the end, max-age never reaches past it (like a retiring key's)
    clock.advance(3 * 3600 - 20)
    service.state.sync()
    near = _jwks(client, pid)
    assert "old-rsa-1" in near.text
    assert _max_age(near) <= 20
    assert verifier(near).verify(token)

    # past the end: the JWKS drops it without any write, on this replica's own clock
    clock.advance(21)
    assert service.state.sync() is True
    after = _jwks(client, pid)
    assert "old-rsa-1" not in after.text
    assert len(after.json()["keys"]) == 2
    later = old_issuer_token(old, OLD_ISSUER, project["audience"], exp=clock() + 600, iat=clock())
    with pytest.raises(KeyNotFound):
        verifier(after).verify(later)
    listed = client.get(f"/api/v1/projects/{pid}/foreign-keys", headers=AUTH).json()
    assert listed["foreign_keys"][0]["published"] is False


def test_collisions_private_members_and_periods_are_refused(
    client: SyncClient, service: Service, clock: FakeClock
) -> None:
    project = _project(client)
    pid = project["id"]
    until = _iso(clock() + 86400)
    own = client.get(f"/api/v1/projects/{pid}/keys", headers=AUTH).json()["keys"]
    active_kid = next(k["kid"] for k in own if k["state"] == "active")
    stranger = JWK.generate("ES256", kid=active_kid).public().to_dict()
    r = _add(client, pid, jwks={"keys": [stranger]}, until=until)
    assert (r.status_code, r.json()["error"]) == (409, "kid_conflict")

    priv = JWK.generate("ES256", kid="leaky")
    r = _add(client, pid, jwks={"keys": [priv.to_dict(private=True)]}, until=until)
    assert (r.status_code, r.json()["error"]) == (422, "private_key_material")
    assert priv.to_dict(private=True)["d"] not in r.text
    secret = {"kty": "oct", "kid": "s", "k": "A" * 43}
    r = _add(client, pid, jwks={"keys": [secret]}, until=until)
    assert (r.status_code, r.json()["error"]) == (422, "private_key_material")
    weak = JWK.generate("RS256", kid="w").public().to_dict()
    weak["n"] = weak["n"][:170]  # a 1008-bit modulus
    r = _add(client, pid, jwks={"keys": [weak]}, until=until)
    assert r.status_code == 422 and r.json()["error"] in ("invalid_key", "weak_key")
    no_kid = JWK.generate("ES256").public().replace(kid=None).to_dict()
    r = _add(client, pid, jwks={"keys": [no_kid]}, until=until)
    assert (r.status_code, r.json()["error"]) == (422, "missing_kid")
    twice = JWK.generate("ES256", kid="dup").public().to_dict()
    r = _add(
        client,
        pid,
        jwks={"keys": [twice, JWK.generate("ES256", kid="dup").public().to_dict()]},
        until=until,
    )
    assert (r.status_code, r.json()["error"]) == (422, "duplicate_kid")

    good = JWK.generate("ES256", kid="old-1").public().to_dict()
    for bad_until, what in [
        (_iso(clock() - 1), "past"),
        (_iso(clock() + 367 * 86400), "beyond a year"),
        ("tomorrow", "not a time"),
        ("2030-01-01T00:00:00", "no time zone"),
    ]:
        r = _add(client, pid, jwks={"keys": [good]}, until=bad_until)
        assert r.status_code == 422, what
        assert r.json()["detail"][0]["loc"] == ["body", "until"], what
    r = _add(client, pid, jwks={"keys": [good]}, url="https://x.example/jwks", until=until)
    assert r.status_code == 422
    assert client.get(f"/api/v1/projects/{pid}/foreign-keys", headers=AUTH).json() == {
        "foreign_keys": []
    }

    # the same key again renews its period; a different key under its kid is refused
    assert _add(client, pid, jwks={"keys": [good]}, until=until).status_code == 201
    later = _iso(clock() + 2 * 86400)
    renewed = _add(client, pid, jwks={"keys": [good]}, until=later)
    assert renewed.status_code == 201 and renewed.json()["foreign_keys"][0]["until"] == later
    other = JWK.generate("ES256", kid="old-1").public().to_dict()
    r = _add(client, pid, jwks={"keys": [other]}, until=until)
    assert (r.status_code, r.json()["error"]) == (409, "kid_conflict")
    # and a key imported as our own may not take a foreign key's kid
    mine = JWK.generate("ES256", kid="old-1").to_dict(private=True)
    r = client.post(f"/api/v1/projects/{pid}/keys/import", json={"jwk": mine}, headers=AUTH)
    assert (r.status_code, r.json()["error"]) == (409, "kid_conflict")

    hs = _project(client, "HS256")
    r = _add(client, hs["id"], jwks={"keys": [good]}, until=until)
    assert (r.status_code, r.json()["error"]) == (409, "no_jwks")

    # removal takes it out of the JWKS now, and is audited
    assert "old-1" in _jwks(client, pid).text
    gone = client.delete(f"/api/v1/projects/{pid}/foreign-keys/old-1", headers=AUTH)
    assert gone.status_code == 204
    assert "old-1" not in _jwks(client, pid).text
    again = client.delete(f"/api/v1/projects/{pid}/foreign-keys/old-1", headers=AUTH)
    assert again.status_code == 404
    events = client.get(f"/api/v1/projects/{pid}/events", headers=AUTH).json()["events"]
    actions = [e["action"] for e in events if e["kid"] == "old-1"]
    assert actions == ["foreign_key.added", "foreign_key.renewed", "foreign_key.removed"]
    put = client.request("PUT", f"/api/v1/projects/{pid}/foreign-keys", headers=AUTH)
    assert (put.status_code, put.headers["allow"]) == (405, "GET, POST")
    get = client.get(f"/api/v1/projects/{pid}/keys/import", headers=AUTH)
    assert (get.status_code, get.headers["allow"]) == (405, "POST")
    # an ADFS-style kid (standard base64, with "/") can be removed too
    slashed = JWK.generate("ES256", kid="adfs/Ab+c=").public().to_dict()
    assert _add(client, pid, jwks={"keys": [slashed]}, until=until).status_code == 201
    r = client.delete(f"/api/v1/projects/{pid}/foreign-keys/adfs%2FAb%2Bc%3D", headers=AUTH)
    assert r.status_code == 204
    assert "adfs/Ab+c=" not in _jwks(client, pid).text


def test_http_jwks_url_needs_the_setting(client: SyncClient, service: Service) -> None:
    pid = _project(client)["id"]
    r = _add(client, pid, url="http://127.0.0.1:9/jwks.json", until=_iso(service.clock() + 60))
    assert (r.status_code, r.json()["error"]) == (422, "invalid_url")
    assert "JWKIT_FOREIGN_JWKS_ALLOW_HTTP" in r.json()["message"]
    r = _add(client, pid, url="ftp://example.com/jwks", until=_iso(service.clock() + 60))
    assert (r.status_code, r.json()["error"]) == (422, "invalid_url")


# -- a JWKS URL, fetched once by a real server ------


def test_jwks_url_import_from_a_real_server(spawn: Any, jwks_server: JWKSServer) -> None:  # noqa: F811
    server: ServerProcess = spawn(JWKIT_FOREIGN_JWKS_ALLOW_HTTP="true")
    old, enc = _old_keys()
    leaked = JWK.generate("ES256", kid="leaked")
    with server.api() as api:
        project = api.post("/api/v1/projects", json={"name": "url", "token_status": False}).json()
        pid = project["id"]
        until = _iso(int(datetime.now(UTC).timestamp()) + 3600)

        def add(url: str) -> httpx.Response:
            return api.post(
                f"/api/v1/projects/{pid}/foreign-keys", json={"url": url, "until": until}
            )

        jwks_server.serve_jwks({"keys": [old.public().to_dict(), enc.public().to_dict()]})
        r = add(jwks_server.jwks_url)
        assert r.status_code == 201, r.text
        assert [k["kid"] for k in r.json()["foreign_keys"]] == ["old-rsa-1"]
        assert r.json()["foreign_keys"][0]["source"] == jwks_server.jwks_url
        for _ in range(3):  # served from jwkit's JWKS, never proxied
            jwks = httpx.get(f"{server.url}/p/{pid}/.well-known/jwks.json").json()
            assert "old-rsa-1" in [k["kid"] for k in jwks["keys"]]
        assert jwks_server.count(JWKS_PATH) == 1
        token = old_issuer_token(
            old, OLD_ISSUER, project["audience"], exp=int(datetime.now(UTC).timestamp()) + 600
        )
        with Verifier.from_jwks_url(
            project["jwks_uri"],
            allow_insecure_http=True,
            issuer=[project["issuer"], OLD_ISSUER],
            audience=project["audience"],
        ) as v:
            assert v.verify(token)["iss"] == OLD_ISSUER

        hostile: list[tuple[str, Any]] = [
            ("huge", lambda: jwks_server.serve_huge(200_000)),
            ("huge-chunked", lambda: jwks_server.serve_huge(200_000, content_length=False)),
            ("not-json", lambda: jwks_server.set(JWKS_PATH, Reply(body=b"<html>hi</html>"))),
            (
                "private-only",
                lambda: jwks_server.serve_jwks({"keys": [leaked.to_dict(private=True)]}),
            ),
            ("redirect-away", lambda: jwks_server.redirect("https://evil.example/jwks.json")),
            ("redirect-same-host", lambda: jwks_server.redirect(jwks_server.url + "/other")),
            ("server-error", lambda: jwks_server.fail(500)),
        ]
        for name, arrange in hostile:
            arrange()
            r = add(jwks_server.jwks_url)
            assert (r.status_code, r.json()["error"]) == (422, "jwks_unusable"), (name, r.text)
            assert r.json()["message"], name
            assert leaked.to_dict(private=True)["d"] not in r.text
        # a JWKS that also carries a private key: only the public entry can get in
        mixed = JWK.generate("ES256", kid="pub-ok")
        jwks_server.serve_jwks({"keys": [mixed.public().to_dict(), leaked.to_dict(private=True)]})
        r = add(jwks_server.jwks_url)
        assert r.status_code == 201 and [k["kid"] for k in r.json()["foreign_keys"]] == ["pub-ok"]
        text = httpx.get(f"{server.url}/p/{pid}/.well-known/jwks.json").text
        assert "leaked" not in text and leaked.to_dict(private=True)["d"] not in text
        listed = api.get(f"/api/v1/projects/{pid}/foreign-keys").json()["foreign_keys"]
        assert sorted(k["kid"] for k in listed) == ["old-rsa-1", "pub-ok"]
    assert leaked.to_dict(private=True)["d"] not in server.log()


def test_cli_adds_lists_and_removes_foreign_keys(spawn: Any, tmp_path: Path) -> None:
    import subprocess
    import sys

    from .conftest import ADMIN_TOKEN

    server: ServerProcess = spawn()
    with server.api() as api:
        pid = api.post("/api/v1/projects", json={"name": "cli"}).json()["id"]
    old = JWK.generate("ES256", kid="old-cli")
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"keys": [old.public().to_dict()]}))
    env = {"JWKIT_ADMIN_URL": server.url, "JWKIT_ADMIN_TOKEN": ADMIN_TOKEN, "PATH": "/usr/bin:/bin"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "jwkit.cli", "admin", "foreign-keys", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )

    added = cli("add", pid, "--jwks-file", str(path), "--for", "30d")
    assert added.returncode == 0, added.stderr
    assert "old-cli" in added.stdout
    listed = cli("list", pid)
    assert "old-cli" in listed.stdout and "True" in listed.stdout
    too_long = cli("add", pid, "--jwks-file", str(path), "--for", "400d")
    assert too_long.returncode == 1 and "until may be at most 366 days" in too_long.stderr
    removed = cli("remove", pid, "old-cli")
    assert removed.returncode == 0 and "removed" in removed.stdout
    assert "old-cli" not in httpx.get(f"{server.url}/p/{pid}/.well-known/jwks.json").text


# -- PostgreSQL: two replicas, one database ------


@pytest.mark.postgres
@pytest.mark.timeout(240)
def test_foreign_keys_and_import_on_postgres_with_two_replicas(tmp_path: Path, pg_url: str) -> None:
    from jwkit.service.domain import foreign, imports

    from .conftest import MASTER_KEY

    clock = FakeClock()
    replicas = [
        Service.open(
            make_settings(tmp_path / n, database_url=pg_url, master_key=MASTER_KEY), clock=clock
        )
        for n in ("a", "b")
    ]
    a, b = replicas
    try:
        from jwkit.service.domain import keys, projects

        with a.write() as s:
            project = projects.create_project(
                s, projects.ProjectSpec(name="pg"), now=clock(), actor="t"
            )
            keys.bootstrap_keys(s, project, a.vault, now=clock(), actor="t")
            pid = project.id
        mine = JWK.generate("ES256", kid="byok-pg")
        with a.write() as s:
            row = imports.import_key(s, pid, a.vault, mine, now=clock(), actor="t", source="jwk")
            assert row.state == "next"
        old = JWK.generate("ES256", kid="old-pg")
        with a.write() as s:
            foreign.add_foreign_keys(
                s, pid, [old.public()], until=clock() + 600, source="body", now=clock(), actor="t"
            )
        assert b.state.sync() is True  # replica b learns of both from the database
        kids = [k["kid"] for k in json.loads(b.state.projects[pid].jwks.body)["keys"]]
        assert "byok-pg" in kids and "old-pg" in kids
        with pytest.raises(Exception, match="kid"), a.write() as s:
            foreign.add_foreign_keys(
                s,
                pid,
                [JWK.generate("ES256", kid="byok-pg").public()],
                until=clock() + 600,
                source="body",
                now=clock(),
                actor="t",
            )
        clock.advance(601)
        for replica in replicas:  # each drops it on its own clock, with no database change
            assert replica.state.sync() is True
            kids = [k["kid"] for k in json.loads(replica.state.projects[pid].jwks.body)["keys"]]
            assert "old-pg" not in kids and "byok-pg" in kids
        # the imported key is sealed: opened only through the vault
        with a.read() as s:
            stored = next(k for k in keys.list_keys(s, pid) if k.kid == "byok-pg")
            assert mine.to_dict(private=True)["d"].encode() not in stored.ciphertext
            assert (
                keys.open_key(stored, a.vault).to_dict(private=True)["d"]
                == mine.to_dict(private=True)["d"]
            )
    finally:
        for replica in replicas:
            replica.close()


def test_migration_0004_upgrades_downgrades_and_matches_the_model(tmp_path: Path) -> None:
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import inspect

    from jwkit.service.store.db import Database, _alembic_config
    from jwkit.service.store.models import Base

    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        db.migrate()
        cfg = _alembic_config()
        with db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0003")
        assert "foreign_keys" not in inspect(db.engine).get_table_names()
        db.migrate()
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert [d for d in diff if "foreign_keys" in repr(d)] == []
    finally:
        db.dispose()
