"""DPoP (RFC 9449 §5) at the service's token endpoint: proofs give DPoP-bound tokens
(``token_type: DPoP``, ``cnf.jkt``), a project can require them, discovery lists the proof
algorithms, and both serving modes (``JWKIT_FAST_PATH`` on and off) answer alike."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jwkit import JWK, Verifier
from jwkit.jose.jwt import decode_unverified
from jwkit.verify.dpop import DPoPVerifier
from tests.support.dpop import make_proof

from .conftest import AUTH, ServerProcess, SyncClient, server_env


def _token_url(project: dict[str, Any]) -> str:
    return f"{project['issuer']}/oauth2/token"


def _basic(client: dict[str, Any]) -> dict[str, str]:
    raw = f"{client['client_id']}:{client['client_secret']}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def _request(
    client: SyncClient, project: dict[str, Any], oauth: dict[str, Any], **headers: str
) -> httpx.Response:
    return client.post(
        f"/p/{project['id']}/oauth2/token",
        content=b"grant_type=client_credentials",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            **_basic(oauth),
            **headers,
        },
    )


def test_discovery_lists_dpop_algorithms(client: SyncClient, project: dict[str, Any]) -> None:
    doc = client.get(f"/p/{project['id']}/.well-known/openid-configuration").json()
    algs = doc["dpop_signing_alg_values_supported"]
    assert "ES256" in algs and "EdDSA" in algs
    assert not [a for a in algs if a.startswith("HS")]


def test_proof_gives_a_bound_token(
    client: SyncClient, project: dict[str, Any], oauth_client: dict[str, Any]
) -> None:
    key = JWK.generate("ES256")
    proof = make_proof(key, htm="POST", htu=_token_url(project))
    r = _request(client, project, oauth_client, DPoP=proof)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "DPoP"
    _, claims = decode_unverified(body["access_token"])
    assert claims["cnf"] == {"jkt": key.thumbprint()}
    # a resource server verifies it with the holder's next proof, and refuses it as bearer
    jwks = client.get(f"/p/{project['id']}/.well-known/jwks.json").json()
    dpop = DPoPVerifier(
        Verifier.from_jwks(jwks, issuer=project["issuer"], audience=None, check_status=False)
    )
    token = body["access_token"]
    resource = make_proof(key, htu="https://api.example/x", access_token=token)
    dpop.verify_request(f"DPoP {token}", resource, method="GET", url="https://api.example/x")
    # the same proof again: a replay
    again = _request(client, project, oauth_client, DPoP=proof)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_dpop_proof"
    # no proof: a bearer token, as before
    plain = _request(client, project, oauth_client)
    assert plain.json()["token_type"] == "Bearer"
    assert "cnf" not in decode_unverified(plain.json()["access_token"])[1]


@pytest.mark.parametrize(
    "case",
    ["htm", "htu-host", "old", "private-jwk", "hs256", "typ", "garbage", "oversized"],
)
def test_hostile_proofs_are_invalid_dpop_proof(
    client: SyncClient, project: dict[str, Any], oauth_client: dict[str, Any], case: str
) -> None:
    key = JWK.generate("ES256")
    url = _token_url(project)
    proof = {
        "htm": lambda: make_proof(key, htm="GET", htu=url),
        # the URL the request reached, not the one the service publishes
        "htu-host": lambda: make_proof(key, htm="POST", htu="http://evil.example/oauth2/token"),
        "old": lambda: make_proof(key, htm="POST", htu=url, iat=1_000_000_000),
        "private-jwk": lambda: make_proof(key, htm="POST", htu=url, jwk=key.to_dict(True)),
        "hs256": lambda: make_proof(JWK.generate("HS256"), htm="POST", htu=url, jwk=None),
        "typ": lambda: make_proof(key, htm="POST", htu=url, typ="JWT"),
        "garbage": lambda: "not.a.proof",
        "oversized": lambda: make_proof(key, htm="POST", htu=url, extra_claims={"pad": "x" * 9000}),
    }[case]()
    r = _request(client, project, oauth_client, DPoP=proof)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_dpop_proof"


def test_two_proofs_are_refused(
    client: SyncClient, project: dict[str, Any], oauth_client: dict[str, Any]
) -> None:
    key = JWK.generate("ES256")
    url = _token_url(project)
    r = client.post(
        f"/p/{project['id']}/oauth2/token",
        content=b"grant_type=client_credentials",
        headers=[
            ("Content-Type", "application/x-www-form-urlencoded"),
            *_basic(oauth_client).items(),
            ("DPoP", make_proof(key, htm="POST", htu=url)),
            ("DPoP", make_proof(key, htm="POST", htu=url)),
        ],
    )
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_dpop_proof"


def test_project_can_require_dpop(
    client: SyncClient, project: dict[str, Any], oauth_client: dict[str, Any]
) -> None:
    assert project["dpop_required"] is False
    r = client.patch(
        f"/api/v1/projects/{project['id']}", json={"dpop_required": True}, headers=AUTH
    )
    assert r.status_code == 200 and r.json()["dpop_required"] is True
    assert client.get(f"/api/v1/projects/{project['id']}", headers=AUTH).json()["dpop_required"]
    refused = _request(client, project, oauth_client)
    assert refused.status_code == 400
    assert refused.json() == {
        "error": "invalid_dpop_proof",
        "error_description": "this project issues DPoP-bound tokens only",
    }
    # the client must still authenticate first
    wrong = dict(oauth_client, client_secret="wrong")
    assert _request(client, project, wrong).json()["error"] == "invalid_client"
    proof = make_proof(JWK.generate("ES256"), htm="POST", htu=_token_url(project))
    assert _request(client, project, oauth_client, DPoP=proof).json()["token_type"] == "DPoP"
    null = client.patch(
        f"/api/v1/projects/{project['id']}", json={"dpop_required": None}, headers=AUTH
    )
    assert null.status_code == 422


def test_new_project_with_dpop_required(client: SyncClient) -> None:
    r = client.post("/api/v1/projects", json={"name": "d", "dpop_required": True}, headers=AUTH)
    assert r.status_code == 201 and r.json()["dpop_required"] is True


def test_admin_cannot_mint_a_cnf(client: SyncClient, project: dict[str, Any]) -> None:
    """cnf is the service's to set, from a verified proof only."""
    r = client.post(
        f"/api/v1/projects/{project['id']}/tokens",
        json={"sub": "x", "claims": {"cnf": {"jkt": "a" * 43}}},
        headers=AUTH,
    )
    assert r.status_code in (400, 422), r.text


# -- real servers: fast path on and off, behind a "proxy" (public URL != listening URL) -------


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, ...]]:
    home: Path = tmp_path_factory.mktemp("dpop")
    servers: list[ServerProcess] = []
    try:
        for fast in ("true", "false"):
            env = server_env(
                home,
                JWKIT_FAST_PATH=fast,
                JWKIT_SYNC_INTERVAL="0.2",
                JWKIT_PUBLIC_URL="https://issuer.example",
            )
            servers.append(ServerProcess(home, env).start())
        yield tuple(servers)
    finally:
        for server in servers:
            server.stop()


@pytest.fixture(scope="module")
def setup(pair: tuple[ServerProcess, ...]) -> dict[str, Any]:
    with pair[0].api() as api:
        open_ = api.post("/api/v1/projects", json={"name": "open"}).json()
        strict = api.post("/api/v1/projects", json={"name": "s", "dpop_required": True}).json()
        clients = {
            p["id"]: api.post(
                f"/api/v1/projects/{p['id']}/clients", json={"name": "c", "scopes": ["read"]}
            ).json()
            for p in (open_, strict)
        }
    for server in pair:  # until the other replica has synced the new projects
        for p in (open_, strict):
            path = f"/p/{p['id']}/.well-known/jwks.json"
            for _ in range(100):
                if httpx.get(server.url + path).status_code == 200:
                    break
            assert httpx.get(server.url + path).status_code == 200
    return {"open": open_, "strict": strict, "clients": clients}


def _post(server: ServerProcess, project: dict[str, Any], oauth: dict[str, Any], **h: str) -> Any:
    """One token request; without a proof, sent twice: the first warms the replica's client
    cache, so that in fast mode the second is answered by the parser-level path."""
    headers = {"Content-Type": "application/x-www-form-urlencoded", **_basic(oauth), **h}
    url = f"{server.url}/p/{project['id']}/oauth2/token"
    body = b"grant_type=client_credentials"
    if "DPoP" not in h:
        httpx.post(url, content=body, headers=headers)
    return httpx.post(url, content=body, headers=headers)


@pytest.mark.parametrize("mode", ["fast", "plain"])
def test_both_modes_bind_tokens_at_the_public_url(
    pair: tuple[ServerProcess, ...], setup: dict[str, Any], mode: str
) -> None:
    server = pair[0] if mode == "fast" else pair[1]
    key = JWK.generate("ES256")
    for name in ("open", "strict"):
        project, oauth = setup[name], setup["clients"][setup[name]["id"]]
        assert project["issuer"].startswith("https://issuer.example/")
        proof = make_proof(key, htm="POST", htu=_token_url(project))
        r = _post(server, project, oauth, DPoP=proof)
        assert r.status_code == 200, r.text
        assert r.json()["token_type"] == "DPoP"
        assert decode_unverified(r.json()["access_token"])[1]["cnf"]["jkt"] == key.thumbprint()
        replay = _post(server, project, oauth, DPoP=proof)
        assert replay.status_code == 400 and replay.json()["error"] == "invalid_dpop_proof"
        # the URL this request really reached is not the token endpoint the service publishes
        local = f"{server.url}/p/{project['id']}/oauth2/token"
        wrong = _post(server, project, oauth, DPoP=make_proof(key, htm="POST", htu=local))
        assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_dpop_proof"
    strict = setup["strict"]
    bare = _post(server, strict, setup["clients"][strict["id"]])
    assert bare.status_code == 400, bare.text
    assert bare.json()["error"] == "invalid_dpop_proof"
    open_ = setup["open"]
    plain = _post(server, open_, setup["clients"][open_["id"]])
    assert plain.json()["token_type"] == "Bearer"


def test_migration_keeps_existing_projects_without_dpop(tmp_path: Path) -> None:
    """0005_dpop: projects made before it keep issuing bearer tokens (dpop_required false)."""
    from alembic import command
    from sqlalchemy import create_engine, text

    from jwkit.service.store.db import Database, _alembic_config

    url = f"sqlite:///{tmp_path / 'm.db'}"
    db = Database(url)
    with db.engine.begin() as conn:
        cfg = _alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0003")
        conn.execute(
            text(
                "INSERT INTO projects (id, name, audience, algorithm, token_ttl, max_token_ttl, "
                "jwks_max_age, created_at) VALUES ('p_old', 'old', 'a', 'ES256', 60, 60, 60, 0)"
            )
        )
    db.migrate()
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT dpop_required FROM projects")).scalar_one() in (0, False)
    engine.dispose()
    db.dispose()
