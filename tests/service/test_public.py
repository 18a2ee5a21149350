"""The public hot path over ASGI: JWKS, discovery, token endpoint, health, metrics."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

import pytest

from jwkit.errors import InvalidSignature, KeyNotFound
from jwkit.jose import jwt
from jwkit.jose.jwk import JWKSet

from .conftest import AUTH, FakeClock, SyncClient

FORM = {"content-type": "application/x-www-form-urlencoded"}


def _basic(client_id: str, secret: str) -> dict[str, str]:
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def test_jwks_document(client: SyncClient, project: dict[str, Any]) -> None:
    r = client.get(f"/p/{project['id']}/.well-known/jwks.json")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/jwk-set+json"
    # max-age + stale window end before a key published now may sign (test_cdn_cache.py)
    assert r.headers["cache-control"] == (
        "public, max-age=300, stale-while-revalidate=2, stale-if-error=2"
    )
    etag = r.headers["etag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    keys = r.json()["keys"]
    assert len(keys) == 2
    for key in keys:
        assert key["use"] == "sig" and key["alg"] == "ES256" and key["kid"]
        assert "d" not in key
    again = client.get(f"/p/{project['id']}/.well-known/jwks.json", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    weak = client.get(
        f"/p/{project['id']}/.well-known/jwks.json", headers={"If-None-Match": f'"other", W/{etag}'}
    )
    assert weak.status_code == 304
    other = client.get(
        f"/p/{project['id']}/.well-known/jwks.json", headers={"If-None-Match": '"other"'}
    )
    assert other.status_code == 200


def test_etag_changes_when_keys_change(client: SyncClient, project: dict[str, Any]) -> None:
    url = f"/p/{project['id']}/.well-known/jwks.json"
    before = client.get(url)
    r = client.post(f"/api/v1/projects/{project['id']}/keys", json={"mode": "next"}, headers=AUTH)
    assert r.status_code == 201
    after = client.get(url, headers={"If-None-Match": before.headers["etag"]})
    assert after.status_code == 200 and after.headers["etag"] != before.headers["etag"]
    assert r.json()["kid"] in {k["kid"] for k in after.json()["keys"]}


def test_cache_max_age_never_outlives_the_next_change(
    client: SyncClient, project: dict[str, Any], clock: FakeClock, service: Any
) -> None:
    pid = project["id"]
    client.patch(f"/api/v1/projects/{pid}", json={"rotation_days": 1}, headers=AUTH)
    clock.advance(86400 - 42)
    service.state.sync()  # as the background does every second (an unconfirmed one shrinks)
    # The stale windows take what the rotation rules leave: 2 + 300 - 42 (test_cdn_cache.py).
    fields = "public, max-age=42, stale-while-revalidate=260, stale-if-error=260"
    r = client.get(f"/p/{pid}/.well-known/jwks.json")
    assert r.headers["cache-control"] == fields
    d = client.get(f"/p/{pid}/.well-known/openid-configuration")
    assert d.headers["cache-control"] == fields


def test_discovery_document(client: SyncClient, project: dict[str, Any]) -> None:
    r = client.get(f"/p/{project['id']}/.well-known/openid-configuration")
    assert r.status_code == 200 and r.headers["etag"]
    d = r.json()
    assert d["issuer"] == project["issuer"]
    assert d["jwks_uri"] == project["jwks_uri"]
    assert d["token_endpoint"] == project["issuer"] + "/oauth2/token"
    assert d["grant_types_supported"] == ["client_credentials"]
    assert set(d["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
    }
    assert d["id_token_signing_alg_values_supported"] == ["ES256"]
    schedule = {s["state"]: s for s in d["jwkit_key_schedule"]}
    assert set(schedule) == {"active", "next"}
    assert set(schedule["next"]) == {"kid", "state", "activates_at", "retires_at"}


def test_unknown_project_is_404(client: SyncClient) -> None:
    for path in ("/.well-known/jwks.json", "/.well-known/openid-configuration"):
        assert client.get(f"/p/proj_nope{path}").status_code == 404
    r = client.post(
        "/p/proj_nope/oauth2/token", content=b"grant_type=client_credentials", headers=FORM
    )
    assert r.status_code == 404


def _decode(
    client: SyncClient, project: dict[str, Any], token: str, now: float | None = None
) -> Any:
    jwks = JWKSet.from_json(client.get(f"/p/{project['id']}/.well-known/jwks.json").text)
    return jwt.decode(
        token,
        jwks,
        algorithms=["ES256"],
        issuer=project["issuer"],
        audience=project["audience"],
        typ="at+jwt",
        now=now,
    )


def test_client_secret_basic(
    client: SyncClient, project: dict[str, Any], oauth_client: dict[str, Any]
) -> None:
    r = client.post(
        f"/p/{project['id']}/oauth2/token",
        content=b"grant_type=client_credentials",
        headers=FORM | _basic(oauth_client["client_id"], oauth_client["client_secret"]),
    )
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store" and r.headers["pragma"] == "no-cache"
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    assert body["scope"] == "read write"
    claims = _decode(client, project, body["access_token"])
    assert claims["sub"] == claims["client_id"] == oauth_client["client_id"]
    assert claims["scope"] == "read write" and claims["jti"]
    assert claims["exp"] - claims["iat"] == 900


def test_client_secret_post_with_scope(
    client: SyncClient, project: dict[str, Any], oauth_client: dict[str, Any]
) -> None:
    r = client.post(
        f"/p/{project['id']}/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": oauth_client["client_id"],
            "client_secret": oauth_client["client_secret"],
            "scope": "read",
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["scope"] == "read"
    assert _decode(client, project, r.json()["access_token"])["scope"] == "read"


@pytest.mark.parametrize(
    ("form", "auth", "status", "error"),
    [
        ("grant_type=password", "basic", 400, "unsupported_grant_type"),
        ("", "basic", 400, "invalid_request"),
        (
            "grant_type=client_credentials&grant_type=client_credentials",
            "basic",
            400,
            "invalid_request",
        ),
        ("grant_type=client_credentials&scope=admin", "basic", 400, "invalid_scope"),
        ("grant_type=client_credentials&scope=read%20%20write", "basic", 400, "invalid_scope"),
        ("grant_type=client_credentials", "wrong", 401, "invalid_client"),
        ("grant_type=client_credentials", "none", 401, "invalid_client"),
        ("grant_type=client_credentials", "garbage", 401, "invalid_client"),
        ("grant_type=client_credentials&client_secret=x", "basic", 400, "invalid_request"),
        ("grant_type=client_credentials&client_id=cli_other", "basic", 400, "invalid_request"),
        (
            "grant_type=client_credentials&client_id=cli_nope&client_secret=x",
            "none",
            401,
            "invalid_client",
        ),
        ("%zz=1&&", "basic", 400, "invalid_request"),
    ],
)
def test_token_errors(
    client: SyncClient,
    project: dict[str, Any],
    oauth_client: dict[str, Any],
    form: str,
    auth: str,
    status: int,
    error: str,
) -> None:
    headers = dict(FORM)
    if auth == "basic":
        headers |= _basic(oauth_client["client_id"], oauth_client["client_secret"])
    elif auth == "wrong":
        headers |= _basic(oauth_client["client_id"], "not-the-secret")
    elif auth == "garbage":
        headers["Authorization"] = "Basic !!!"
    r = client.post(f"/p/{project['id']}/oauth2/token", content=form.encode(), headers=headers)
    assert r.status_code == status, r.text
    assert r.json()["error"] == error
    assert r.headers["cache-control"] == "no-store"
    if status == 401:
        assert r.headers["www-authenticate"].startswith("Basic")


def test_token_endpoint_rejects_other_media_and_huge_bodies(
    client: SyncClient, project: dict[str, Any], oauth_client: dict[str, Any]
) -> None:
    url = f"/p/{project['id']}/oauth2/token"
    r = client.post(url, json={"grant_type": "client_credentials"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = client.post(url, content=b"grant_type=client_credentials&x=" + b"a" * 10000, headers=FORM)
    assert r.status_code == 400
    r = client.post(url, content=b"grant_type=\xff\xfe", headers=FORM)
    assert r.status_code == 400


def test_client_of_another_project_is_rejected(
    client: SyncClient, project: dict[str, Any], oauth_client: dict[str, Any]
) -> None:
    other = client.post("/api/v1/projects", json={"name": "other"}, headers=AUTH).json()
    r = client.post(
        f"/p/{other['id']}/oauth2/token",
        content=b"grant_type=client_credentials",
        headers=FORM | _basic(oauth_client["client_id"], oauth_client["client_secret"]),
    )
    assert r.status_code == 401


def test_deleted_client_stops_working(
    client: SyncClient, project: dict[str, Any], oauth_client: dict[str, Any]
) -> None:
    url = f"/p/{project['id']}/oauth2/token"
    headers = FORM | _basic(oauth_client["client_id"], oauth_client["client_secret"])
    assert client.post(url, content=b"grant_type=client_credentials", headers=headers).is_success
    r = client.delete(
        f"/api/v1/projects/{project['id']}/clients/{oauth_client['client_id']}", headers=AUTH
    )
    assert r.status_code == 204
    r = client.post(url, content=b"grant_type=client_credentials", headers=headers)
    assert r.status_code == 401


def test_rotation_old_token_valid_new_token_new_kid(
    client: SyncClient, project: dict[str, Any], oauth_client: dict[str, Any], clock: FakeClock
) -> None:
    url = f"/p/{project['id']}/oauth2/token"
    headers = FORM | _basic(oauth_client["client_id"], oauth_client["client_secret"])
    old = client.post(url, content=b"grant_type=client_credentials", headers=headers).json()
    clock.advance(306)  # jwks_max_age + 1 + SYNC_MARGIN
    rotated = client.post(f"/api/v1/projects/{project['id']}/keys/rotate", headers=AUTH).json()
    new = client.post(url, content=b"grant_type=client_credentials", headers=headers).json()
    old_claims = _decode(client, project, old["access_token"], now=clock())
    assert old_claims.header["kid"] == rotated["retiring"]
    new_claims = _decode(client, project, new["access_token"], now=clock())
    assert new_claims.header["kid"] == rotated["active"]


def test_replace_now_invalidates_old_tokens(
    client: SyncClient, project: dict[str, Any], oauth_client: dict[str, Any]
) -> None:
    url = f"/p/{project['id']}/oauth2/token"
    headers = FORM | _basic(oauth_client["client_id"], oauth_client["client_secret"])
    old = client.post(url, content=b"grant_type=client_credentials", headers=headers).json()
    r = client.post(
        f"/api/v1/projects/{project['id']}/keys",
        json={"mode": "replace", "confirm_invalidate": True},
        headers=AUTH,
    )
    assert r.status_code == 201
    with pytest.raises((KeyNotFound, InvalidSignature)):
        _decode(client, project, old["access_token"])
    new = client.post(url, content=b"grant_type=client_credentials", headers=headers).json()
    assert _decode(client, project, new["access_token"]).header["kid"] == r.json()["kid"]


def test_hs256_project_hands_its_secrets_over_once(client: SyncClient) -> None:
    created = client.post(
        "/api/v1/projects", json={"name": "hmac", "algorithm": "HS256"}, headers=AUTH
    ).json()
    pid = created["id"]
    secrets = created["secret_jwks"]  # active + next, shown in this response only
    assert len(secrets["keys"]) == 2 and all(k["kty"] == "oct" for k in secrets["keys"])
    jwks = client.get(f"/p/{pid}/.well-known/jwks.json")
    assert jwks.json() == {"keys": []}
    listed = client.get(f"/api/v1/projects/{pid}/keys", headers=AUTH).json()["keys"]
    assert all(k["public_jwk"] is None for k in listed)
    for response in (
        client.get(f"/api/v1/projects/{pid}", headers=AUTH),
        client.get(f"/api/v1/projects/{pid}/keys", headers=AUTH),
    ):
        assert all(k["k"] not in response.text for k in secrets["keys"])
    r = client.post(f"/api/v1/projects/{pid}/tokens", json={"sub": "u"}, headers=AUTH)
    assert r.status_code == 200
    claims = jwt.decode(
        r.json()["access_token"],
        JWKSet.from_dict(secrets),
        algorithms=["HS256"],
        issuer=created["issuer"],
        audience=created["audience"],
    )
    assert claims["sub"] == "u"
    new = client.post(f"/api/v1/projects/{pid}/keys", json={"mode": "next"}, headers=AUTH)
    assert new.status_code == 201 and new.json()["secret_jwk"]["kid"] == new.json()["kid"]
    assert new.json()["public_jwk"] is None


def test_health_ready_metrics(
    client: SyncClient, project: dict[str, Any], oauth_client: dict[str, Any]
) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    client.get(f"/p/{project['id']}/.well-known/jwks.json")
    client.post(
        f"/p/{project['id']}/oauth2/token",
        content=b"grant_type=client_credentials",
        headers=FORM | _basic(oauth_client["client_id"], oauth_client["client_secret"]),
    )
    text = client.get("/metrics", headers=AUTH).text
    assert 'jwkit_tokens_issued_total{grant="client_credentials"}' in text
    assert 'jwkit_document_requests_total{document="jwks",status="200"}' in text
    assert "jwkit_key_transitions_total" in text and "jwkit_errors_total" in text


def test_token_endpoint_records_the_latest_exp(
    client: SyncClient, project: dict[str, Any], oauth_client: dict[str, Any], service: Any
) -> None:
    from sqlalchemy import select

    from jwkit.service.store.models import Key

    r = client.post(
        f"/p/{project['id']}/oauth2/token",
        content=b"grant_type=client_credentials",
        headers=FORM | _basic(oauth_client["client_id"], oauth_client["client_secret"]),
    )
    claims = _decode(client, project, r.json()["access_token"])
    with service.read() as s:  # recorded before signing: no flush to wait for
        max_exp = s.execute(select(Key.max_exp).where(Key.kid == claims.header["kid"])).scalar()
    assert max_exp is not None and max_exp >= claims["exp"]


def test_readyz_fails_when_the_database_is_unreachable(tmp_path: Any) -> None:
    from jwkit.service.http.app import create_app
    from jwkit.service.runtime import Service
    from jwkit.service.store.db import Database
    from jwkit.service.vault import Vault

    from .conftest import make_settings

    settings = make_settings(tmp_path)
    dead = Database("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    service = Service(settings, dead, Vault(b"k" * 32))
    c = SyncClient(create_app(settings, service=service, background=False))
    try:
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json() == {"status": "not_ready"}
        assert c.get("/healthz").status_code == 200
    finally:
        c.close()
        dead.dispose()


def test_head_and_odd_paths(client: SyncClient, project: dict[str, Any]) -> None:
    url = f"/p/{project['id']}/.well-known/jwks.json"
    get, head = client.get(url), client.request("HEAD", url)
    assert head.status_code == 200 and head.headers["etag"] == get.headers["etag"]
    assert client.get(f"/p/{project['id']}/x/.well-known/jwks.json").status_code == 404
    assert client.get("/p//.well-known/jwks.json").status_code == 404
    assert client.post(url).status_code == 405
