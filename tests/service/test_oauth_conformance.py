"""What the service's OAuth metadata and endpoints claim, held to the RFCs (issue 13, item 19):

* RFC 6749 §3.1: a parameter sent without a value is treated as omitted;
* RFC 9068 §2.2: every ``at+jwt`` carries iss, exp, aud, sub, client_id, iat and jti, minted
  tokens included;
* RFC 8414 §3.1: the metadata at ``/.well-known/oauth-authorization-server/p/{id}``, with the
  fields §2 makes REQUIRED, and nothing it cannot honour (no authorization endpoint, so no
  response type).
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from jwkit import JWKSet
from jwkit.jose import jwt

from .conftest import AUTH, SyncClient

FORM = {"content-type": "application/x-www-form-urlencoded"}
RFC9068_CLAIMS = {"iss", "exp", "aud", "sub", "client_id", "iat", "jti"}


def _basic(client_id: str, secret: str) -> dict[str, str]:
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def _claims(client: SyncClient, project: dict[str, Any], token: str) -> dict[str, Any]:
    keys = JWKSet.from_json(client.get(f"/p/{project['id']}/.well-known/jwks.json").text)
    return dict(jwt.decode(token, keys, algorithms=["ES256"], issuer=project["issuer"],
                           audience=project["audience"], typ="at+jwt"))  # fmt: skip


@pytest.mark.parametrize(
    "form",
    [
        "grant_type=client_credentials&scope=",
        "grant_type=client_credentials&client_id=",
        "grant_type=client_credentials&client_secret=&scope=",
    ],
)
def test_empty_parameters_count_as_omitted(
    client: SyncClient, project: dict[str, Any], oauth_client: dict[str, Any], form: str
) -> None:
    headers = FORM | _basic(oauth_client["client_id"], oauth_client["client_secret"])
    r = client.post(f"/p/{project['id']}/oauth2/token", content=form.encode(), headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["scope"] == "read write"  # no scope asked: every scope of the client


def test_empty_client_credentials_in_the_body_are_no_credentials(
    client: SyncClient, project: dict[str, Any]
) -> None:
    form = b"grant_type=client_credentials&client_id=&client_secret="
    r = client.post(f"/p/{project['id']}/oauth2/token", content=form, headers=FORM)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_issued_and_minted_tokens_carry_the_rfc9068_claims(
    client: SyncClient, project: dict[str, Any], oauth_client: dict[str, Any]
) -> None:
    issued = client.post(
        f"/p/{project['id']}/oauth2/token", content=b"grant_type=client_credentials",
        headers=FORM | _basic(oauth_client["client_id"], oauth_client["client_secret"]),
    ).json()["access_token"]  # fmt: skip
    minted = client.post(
        f"/api/v1/projects/{project['id']}/tokens",
        json={"sub": "user-1", "scope": "orders:read"},
        headers=AUTH,
    )
    assert minted.status_code == 200, minted.text
    for token in (issued, minted.json()["access_token"]):
        claims = _claims(client, project, token)
        assert set(claims) >= RFC9068_CLAIMS, sorted(claims)
    assert _claims(client, project, minted.json()["access_token"])["scope"] == "orders:read"


def test_minted_scope_is_validated_like_a_clients(
    client: SyncClient, project: dict[str, Any]
) -> None:
    for bad in ("", "a  b", 'say"hi', "x" * 101, " lead"):
        r = client.post(f"/api/v1/projects/{project['id']}/tokens",
                        json={"sub": "u", "scope": bad}, headers=AUTH)  # fmt: skip
        assert r.status_code == 422, bad
        assert "a scope is 1 to 100 printable ASCII characters" in r.json()["message"]


def test_rfc8414_metadata_at_the_well_known_location(
    client: SyncClient, project: dict[str, Any]
) -> None:
    issuer = project["issuer"]
    path = urlsplit(issuer).path  # /p/{id}
    inserted = client.get(f"/.well-known/oauth-authorization-server{path}")
    appended = client.get(f"{path}/.well-known/oauth-authorization-server")
    legacy = client.get(f"{path}/.well-known/openid-configuration")
    assert inserted.status_code == appended.status_code == legacy.status_code == 200
    assert inserted.content == appended.content == legacy.content
    meta = inserted.json()
    assert meta["issuer"] == issuer  # RFC 8414 §3.3: identical to the issuer it was found by
    for name in (
        "jwks_uri",
        "token_endpoint",
        "response_types_supported",
        "grant_types_supported",
        "token_endpoint_auth_methods_supported",
    ):
        assert name in meta, name
    assert "authorization_endpoint" not in meta  # no grant of ours uses one (RFC 8414 §2)
    assert meta["response_types_supported"] == []
    assert meta["grant_types_supported"] == ["client_credentials"]
    assert client.get("/.well-known/oauth-authorization-server/p/proj_nope").status_code == 404


@pytest.mark.parametrize(
    ("path", "body", "plain"),
    [
        ("/clients", {"name": "c", "scopes": ["bad scope"]}, "a scope is 1 to 100 printable"),
        ("", {"token_ttl": 99_999_999}, "token_ttl must be at most 2592000 seconds (30 days)"),
        ("/tokens", {"sub": "u", "ttl": "15m"}, "ttl must be a whole number of seconds"),
        ("/keys", {"mode": "later"}, "mode must be one of 'replace' or 'next'"),
        ("/clients", {"name": "c", "colour": "red"}, "colour is not a known field; remove it"),
    ],
)
def test_validation_messages_are_plain_words(
    client: SyncClient, project: dict[str, Any], path: str, body: dict[str, Any], plain: str
) -> None:
    """What the console and the CLI show: never pydantic's text (patterns, "Input should")."""
    url = f"/api/v1/projects/{project['id']}{path}"
    r = client.request("PATCH" if not path else "POST", url, json=body, headers=AUTH)
    assert r.status_code == 422, r.text
    data = r.json()
    assert plain in data["message"]
    assert all(plain in d["msg"] for d in data["detail"])
    assert "should" not in r.text and "^[" not in r.text
