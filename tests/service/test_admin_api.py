"""The admin JSON API over ASGI: auth on every route, validation, 404/409, no private keys."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from fastapi.routing import APIRoute

from jwkit.jose import jwt
from jwkit.jose.jwk import JWKSet
from jwkit.service.http import admin
from jwkit.service.runtime import Service

from .conftest import ADMIN_PASSWORD, AUTH, FakeClock, SyncClient


def _routers() -> list[Any]:
    from jwkit.service.http import migration

    routers = [admin.router, migration.router]
    try:  # the console's admin API additions, when installed
        from jwkit.service.http import inspect
    except ImportError:
        return routers
    return [*routers, inspect.router]


ROUTES = sorted(
    (method, route.path_format)
    for router in _routers()
    for route in router.routes
    if isinstance(route, APIRoute)
    for method in route.methods
)
PRIVATE_MEMBERS = ('"d"', '"p"', '"q"', '"dp"', '"dq"', '"qi"', '"k"', "PRIVATE KEY")


def _fill(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def test_route_table_is_the_admin_router(client: SyncClient, service: Service) -> None:
    from jwkit.service.http.app import create_app

    # The app's own route table, as its OpenAPI document publishes it.
    app = create_app(service.settings, service=service, background=False)
    api = {
        (m.upper(), path)
        for path, ops in app.openapi()["paths"].items()
        if path.startswith("/api/")
        for m in ops
    }
    assert api == set(ROUTES) and len(ROUTES) >= 15


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic YWRtaW46eA=="},
        {"Authorization": "Bearer"},
        {"Cookie": "jwkit_session=forged"},
    ],
    ids=["missing", "wrong", "basic", "empty", "forged-cookie"],
)
def test_every_admin_route_rejects_missing_or_wrong_credentials(
    client: SyncClient, method: str, path: str, headers: dict[str, str]
) -> None:
    r = client.request(
        method,
        _fill(path),
        headers=headers | {"content-type": "application/json"},
        content=b"{not json",
    )
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "unauthorized"
    assert r.headers["www-authenticate"].startswith("Bearer")


def test_project_crud(client: SyncClient) -> None:
    r = client.post(
        "/api/v1/projects",
        json={"name": "Shop", "algorithm": "EdDSA", "rotation_days": 30},
        headers=AUTH,
    )
    assert r.status_code == 201
    p = r.json()
    assert p["id"].startswith("proj_") and p["audience"] == p["id"]
    assert p["issuer"] == f"http://testserver/p/{p['id']}"
    assert p["jwks_uri"] == p["issuer"] + "/.well-known/jwks.json"
    assert p["discovery_url"] == p["issuer"] + "/.well-known/openid-configuration"
    assert (
        p["algorithm"],
        p["token_ttl"],
        p["max_token_ttl"],
        p["jwks_max_age"],
        p["rotation_days"],
    ) == ("EdDSA", 900, 86400, 300, 30)
    assert client.get(f"/api/v1/projects/{p['id']}", headers=AUTH).json()["name"] == "Shop"
    listed = client.get("/api/v1/projects", headers=AUTH).json()["projects"]
    assert [x["id"] for x in listed] == [p["id"]]
    r = client.patch(
        f"/api/v1/projects/{p['id']}", json={"name": "Shop 2", "rotation_days": None}, headers=AUTH
    )
    assert r.status_code == 200
    assert (r.json()["name"], r.json()["rotation_days"]) == ("Shop 2", None)
    assert client.delete(f"/api/v1/projects/{p['id']}", headers=AUTH).status_code == 204
    assert client.get(f"/api/v1/projects/{p['id']}", headers=AUTH).status_code == 404
    assert client.get(f"/p/{p['id']}/.well-known/jwks.json").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{broken", None),
        (b"[]", None),
        (b'"name"', None),
        (json.dumps({}).encode(), "name"),
        (json.dumps({"name": 5}).encode(), "name"),
        (json.dumps({"name": ""}).encode(), "name"),
        (json.dumps({"name": "x", "algorithm": "none"}).encode(), "algorithm"),
        (json.dumps({"name": "x", "algorithm": "HS512x"}).encode(), "algorithm"),
        (json.dumps({"name": "x", "token_ttl": "900"}).encode(), "token_ttl"),
        (json.dumps({"name": "x", "token_ttl": 1.5}).encode(), "token_ttl"),
        (json.dumps({"name": "x", "token_ttl": True}).encode(), "token_ttl"),
        (json.dumps({"name": "x", "token_ttl": -1}).encode(), "token_ttl"),
        (json.dumps({"name": "x", "token_ttl": 10**30}).encode(), "token_ttl"),
        (json.dumps({"name": "x", "rotation_days": 0}).encode(), "rotation_days"),
        (json.dumps({"name": "x", "unknown": 1}).encode(), "unknown"),
        (json.dumps({"name": "x", "token_ttl": 7200, "max_token_ttl": 3600}).encode(), "token_ttl"),
    ],
)
def test_invalid_project_bodies_are_422(client: SyncClient, body: bytes, field: str | None) -> None:
    r = client.post(
        "/api/v1/projects", content=body, headers=AUTH | {"content-type": "application/json"}
    )
    assert r.status_code == 422, r.text
    data = r.json()
    assert data["detail"]
    if field is not None:
        assert any(d["loc"][-1] == field for d in data["detail"]), data


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("POST", "/keys", {"mode": "sideways"}),
        ("POST", "/keys", {"mode": "next", "alg": "RS1"}),
        ("POST", "/keys", {"mode": "replace", "confirm_invalidate": "yes"}),
        ("POST", "/keys/rotate", {"emergency": 1}),
        ("POST", "/keys/rotate", {"force": True}),
        ("POST", "/tokens", {"sub": ""}),
        ("POST", "/tokens", {"sub": "u", "ttl": 0}),
        ("POST", "/tokens", {"sub": "u", "ttl": 86401}),
        ("POST", "/tokens", {"sub": "u", "claims": []}),
        ("POST", "/tokens", {"sub": "u", "claims": {"exp": 1}}),
        ("POST", "/tokens", {"sub": "u", "claims": {"iss": "evil"}}),
        ("POST", "/tokens", {"sub": "u", "claims": {"aud": 5}}),
        ("POST", "/clients", {"name": "c", "scopes": ["has space"]}),
        ("POST", "/clients", {"name": "c", "scopes": "read"}),
        ("PATCH", "", {"token_ttl": None}),
        ("PATCH", "", {"max_token_ttl": 60}),
        ("PATCH", "", {"id": "proj_other"}),
    ],
)
def test_invalid_nested_bodies_are_422(
    client: SyncClient, project: dict[str, Any], method: str, suffix: str, body: Any
) -> None:
    r = client.request(method, f"/api/v1/projects/{project['id']}{suffix}", json=body, headers=AUTH)
    assert r.status_code == 422, r.text
    assert r.json()["detail"]


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("PATCH", "", {"name": "x"}),
        ("DELETE", "", None),
        ("GET", "/keys", None),
        ("GET", "/keys/latest", None),
        ("POST", "/keys", {"mode": "next"}),
        ("POST", "/keys/rotate", None),
        ("POST", "/keys/somekid/revoke", None),
        ("POST", "/tokens", {"sub": "u"}),
        ("POST", "/clients", {"name": "c"}),
        ("GET", "/clients", None),
        ("DELETE", "/clients/cli_x", None),
        ("GET", "/events", None),
    ],
)
def test_unknown_project_is_404(client: SyncClient, method: str, suffix: str, body: Any) -> None:
    r = client.request(method, f"/api/v1/projects/proj_missing{suffix}", json=body, headers=AUTH)
    assert r.status_code == 404, r.text
    assert r.json()["error"] in ("not_found", "no_active_key")


def test_unknown_key_and_client_are_404(client: SyncClient, project: dict[str, Any]) -> None:
    pid = project["id"]
    assert client.post(f"/api/v1/projects/{pid}/keys/nope/revoke", headers=AUTH).status_code == 404
    assert client.delete(f"/api/v1/projects/{pid}/clients/cli_x", headers=AUTH).status_code == 404


def test_key_endpoints(client: SyncClient, project: dict[str, Any], clock: FakeClock) -> None:
    pid = project["id"]
    listed = client.get(f"/api/v1/projects/{pid}/keys", headers=AUTH).json()["keys"]
    assert sorted(k["state"] for k in listed) == ["active", "next"]
    r = client.post(f"/api/v1/projects/{pid}/keys/rotate", headers=AUTH)
    assert r.status_code == 409
    assert r.json()["error"] == "rotation_too_early" and r.json()["earliest_safe_at"]
    r = client.post(f"/api/v1/projects/{pid}/keys", json={"mode": "replace"}, headers=AUTH)
    assert r.status_code == 409 and r.json()["error"] == "confirmation_required"
    r = client.post(
        f"/api/v1/projects/{pid}/keys",
        json={"mode": "replace", "confirm_invalidate": True, "alg": "RS256"},
        headers=AUTH,
    )
    assert r.status_code == 201
    created = r.json()
    assert set(created) >= {"kid", "created_at", "public_jwk"}
    assert created["public_jwk"]["kty"] == "RSA" and "d" not in created["public_jwk"]
    latest = client.get(f"/api/v1/projects/{pid}/keys/latest", headers=AUTH).json()
    assert set(latest) >= {"kid", "created_at"}
    clock.advance(306)  # jwks_max_age + 1 + SYNC_MARGIN
    r = client.post(f"/api/v1/projects/{pid}/keys/rotate", json={}, headers=AUTH)
    assert r.status_code == 200
    assert r.json()["retiring"] == created["kid"]
    r = client.post(f"/api/v1/projects/{pid}/keys/{created['kid']}/revoke", headers=AUTH)
    assert r.status_code == 409 and r.json()["error"] == "key_still_in_use"
    r = client.post(
        f"/api/v1/projects/{pid}/keys/{created['kid']}/revoke",
        json={"emergency": True},
        headers=AUTH,
    )
    assert r.status_code == 200 and r.json()["state"] == "revoked"
    everything = client.get(f"/api/v1/projects/{pid}/keys", headers=AUTH).text
    for member in PRIVATE_MEMBERS:
        assert member not in everything


def test_mint_token_and_events(client: SyncClient, project: dict[str, Any]) -> None:
    pid = project["id"]
    r = client.post(
        f"/api/v1/projects/{pid}/tokens",
        json={"sub": "user-1", "ttl": 60, "claims": {"role": "admin", "aud": "api"}},
        headers=AUTH,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 60
    jwks = JWKSet.from_json(client.get(f"/p/{pid}/.well-known/jwks.json").text)
    claims = jwt.decode(
        body["access_token"], jwks, algorithms=["ES256"], issuer=project["issuer"], audience="api"
    )
    assert claims["sub"] == "user-1" and claims["role"] == "admin"
    assert claims["exp"] - claims["iat"] == 60 and claims["jti"]
    assert claims.header["typ"] == "at+jwt"
    events = client.get(f"/api/v1/projects/{pid}/events", headers=AUTH).json()["events"]
    actions = [e["action"] for e in events]
    assert actions[0] == "project.created" and "token.minted" in actions
    assert all(e["actor"] == "admin" for e in events)
    after = events[1]["seq"]
    page = client.get(f"/api/v1/projects/{pid}/events?after={after}&limit=1", headers=AUTH)
    assert [e["seq"] for e in page.json()["events"]] == [events[2]["seq"]]
    assert client.get(f"/api/v1/projects/{pid}/events?limit=0", headers=AUTH).status_code == 422


def test_clients_secret_shown_once(client: SyncClient, project: dict[str, Any]) -> None:
    pid = project["id"]
    r = client.post(
        f"/api/v1/projects/{pid}/clients", json={"name": "svc", "scopes": ["a"]}, headers=AUTH
    )
    assert r.status_code == 201
    created = r.json()
    assert len(created["client_secret"]) >= 43  # 256 bits in base64url
    listed = client.get(f"/api/v1/projects/{pid}/clients", headers=AUTH)
    assert created["client_secret"] not in listed.text
    assert [c["client_id"] for c in listed.json()["clients"]] == [created["client_id"]]
    r = client.delete(f"/api/v1/projects/{pid}/clients/{created['client_id']}", headers=AUTH)
    assert r.status_code == 204
    assert client.get(f"/api/v1/projects/{pid}/clients", headers=AUTH).json()["clients"] == []


def test_openapi_document_is_served(client: SyncClient) -> None:
    doc = client.get("/api/v1/openapi.json", headers=AUTH).json()
    assert "/api/v1/projects/{project_id}/keys/rotate" in doc["paths"]
    assert not any(p.startswith("/p/") for p in doc["paths"])


def test_console_session_cookie_and_csrf(client: SyncClient, service: Service) -> None:
    from jwkit.service.http.auth import AdminAuth

    auth = AdminAuth(service)
    assert auth.authenticate_password("admin", ADMIN_PASSWORD)
    assert not auth.authenticate_password("admin", "wrong")
    assert not auth.authenticate_password("nobody", ADMIN_PASSWORD)
    sid, csrf = auth.create_session("admin")
    assert auth.get_session(sid) is not None and auth.get_session("other") is None
    cookie = {"Cookie": f"jwkit_session={sid}"}
    assert client.get("/api/v1/projects", headers=cookie).status_code == 200
    r = client.post("/api/v1/projects", json={"name": "x"}, headers=cookie)
    assert r.status_code == 403 and r.json()["error"] == "csrf_failed"
    r = client.post(
        "/api/v1/projects", json={"name": "x"}, headers=cookie | {"X-CSRF-Token": "wrong"}
    )
    assert r.status_code == 403
    r = client.post("/api/v1/projects", json={"name": "x"}, headers=cookie | {"X-CSRF-Token": csrf})
    assert r.status_code == 201
    events = client.get(f"/api/v1/projects/{r.json()['id']}/events", headers=cookie).json()
    assert events["events"][0]["actor"] == "admin"
    auth.delete_session(sid)
    assert client.get("/api/v1/projects", headers=cookie).status_code == 401


def test_bug_becomes_json_500_without_secrets(
    client: SyncClient,
    project: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A genuine bug is simulated by breaking the renderer; the handler must answer JSON 500.
    from jwkit.service.domain import projects

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(projects, "project_to_json", broken)
    r = client.get("/api/v1/projects", headers=AUTH)
    assert r.status_code == 500
    assert r.json() == {"error": "internal_error", "message": "an unexpected error occurred"}
    assert "test-admin-token" not in caplog.text


def test_oversized_body_is_413(client: SyncClient) -> None:
    body = json.dumps({"name": "x" * (2 << 20)}).encode()
    r = client.post(
        "/api/v1/projects", content=body, headers=AUTH | {"content-type": "application/json"}
    )
    assert r.status_code == 413 and r.json()["error"] == "payload_too_large"


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/audit/events?before=99999999999999999999999",
        "/api/v1/audit/events?before=9223372036854775808",
        "/api/v1/projects/{pid}/events?after=99999999999999999999999",
    ],
)
def test_huge_integers_in_queries_are_422_not_500(
    client: SyncClient, project: dict[str, Any], url: str
) -> None:
    # Found by schemathesis: SQLite cannot bind integers past 64 bits.
    r = client.get(url.format(pid=project["id"]), headers=AUTH)
    assert r.status_code == 422, r.text


def test_the_schema_offers_exactly_the_supported_algorithms() -> None:
    """The admin API's ``Algorithm`` type and the domain's list are written twice (a Literal
    must be spelled out for the OpenAPI document): this holds them together."""
    from typing import get_args

    from jwkit.service.domain.projects import SUPPORTED_ALGORITHMS
    from jwkit.service.http.schemas import Algorithm

    assert get_args(Algorithm) == SUPPORTED_ALGORITHMS
