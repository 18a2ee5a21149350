"""Every framework integration answers a revoked, suspended or uncheckable token with 401
and the RFC 6750 ``error_description`` (issue 12), through a real verifier fetching real
Status List Tokens from a local issuer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from jwkit import JWK, StatusUnavailable, TokenRevoked, TokenSuspended, Verifier
from jwkit.integrations._common import Authenticator
from jwkit.jose import jwt
from jwkit.jose.statuslist import INVALID, SUSPENDED, StatusList
from tests.integrations.conftest import bearer, expect  # (imports Starlette's TestClient quietly)
from tests.support.status_server import StatusServer


@pytest.fixture(scope="module")
def key() -> JWK:
    return JWK.generate("ES256").replace(kid="k1")


@pytest.fixture(scope="module")
def server(key: JWK) -> Iterator[StatusServer]:
    with StatusServer() as srv:
        srv.serve_jwks({"keys": [key.public().to_dict()]})
        lst = StatusList(16, 2)
        lst[1], lst[2] = INVALID, SUSPENDED
        now = int(time.time())
        srv.serve_list(
            jwt.encode(
                {
                    "iss": srv.issuer,
                    "sub": srv.list_url(1),
                    "iat": now,
                    "exp": now + 3600,
                    "ttl": 300,
                    "status_list": lst.encode(),
                },
                key,
                headers={"typ": "statuslist+jwt"},
            )
        )
        yield srv


@pytest.fixture
def verifier(server: StatusServer) -> Iterator[Verifier]:
    with Verifier.from_jwks_url(
        server.jwks_url, issuer=server.issuer, allow_insecure_http=True
    ) as v:
        yield v


def token(key: JWK, server: StatusServer, idx: int, n: int = 1) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": server.issuer,
        "sub": "alice",
        "scope": "read admin",
        "iat": now,
        "exp": now + 600,
        "status": {"status_list": {"idx": idx, "uri": server.list_url(n)}},
    }
    return jwt.encode(claims, key)


CASES = [(0, None), (1, "revoked"), (2, "suspended"), (None, "status_unavailable")]


def check(get: Any, path: str, key: JWK, server: StatusServer) -> None:
    for idx, code in CASES:
        # idx None: list 2 is not served (404), so the status cannot be had: fail closed.
        tok = token(key, server, 0, 2) if idx is None else token(key, server, idx)
        response = get(path, headers=bearer(tok))
        if code is None:
            expect(response, "ok")
        else:
            expect(response, "invalid", code)


def test_authenticator_maps_the_status_errors(verifier):
    auth = Authenticator(verifier, realm="api")
    for exc, code in (
        (TokenRevoked(), "revoked"),
        (TokenSuspended(), "suspended"),
        (StatusUnavailable(), "status_unavailable"),
    ):
        denial = auth.deny(exc)
        assert denial.status == 401
        assert denial.www_authenticate == (
            f'Bearer realm="api", error="invalid_token", error_description="{code}"'
        )


@pytest.mark.parametrize("path", ["/me", "/async"])
def test_flask(verifier, key, server, path):
    from tests.integrations.test_flask import make_app

    check(make_app(verifier).test_client().get, path, key, server)


def test_fastapi(verifier, key, server):
    from starlette.testclient import TestClient

    from tests.integrations.test_fastapi import make_app

    with TestClient(make_app(verifier)) as client:
        check(client.get, "/me", key, server)


def test_starlette(verifier, key, server):
    from starlette.testclient import TestClient

    from tests.integrations.test_starlette import middleware_app

    with TestClient(middleware_app(verifier)) as client:
        check(client.get, "/me", key, server)


@pytest.mark.parametrize("path", ["/me", "/me-async"])
def test_django(verifier, key, server, path):
    from django.test import Client, override_settings

    import tests.integrations.test_django  # noqa: F401  (configures settings and the URLs)

    with override_settings(JWKIT={"VERIFIER": verifier}):
        check(Client().get, path, key, server)
