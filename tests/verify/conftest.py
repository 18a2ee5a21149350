"""Fixtures for the verifier SDK tests: the real local JWKS server and token helpers."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from jwkit import JWK
from jwkit.jose import jwt
from tests.support.fixtures import jwks_server  # noqa: F401  (re-exported fixture)
from tests.support.jwks_server import JWKSServer

ISSUER = "https://issuer.example"
AUDIENCE = "api://test"


def make_key(alg: str = "ES256", kid: str | None = None) -> JWK:
    key = JWK.generate(alg)
    return key.replace(kid=kid) if kid is not None else key


def token_for(key: JWK, claims: Mapping[str, Any] | None = None, **headers: Any) -> str:
    now = int(time.time())
    body: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "user-1",
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 600,
    }
    body.update(claims or {})
    for name in [k for k, v in body.items() if v is None]:
        del body[name]
    return jwt.encode(body, key, headers=headers or None)


def jwks_of(*keys: JWK) -> dict[str, Any]:
    return {"keys": [k.public().to_dict() for k in keys]}


@pytest.fixture
def es_key() -> JWK:
    return make_key("ES256", "k1")


@pytest.fixture
def served(jwks_server: JWKSServer, es_key: JWK) -> Iterator[JWKSServer]:  # noqa: F811
    """The server with a JWKS of ``es_key``, max-age 600."""
    jwks_server.serve_jwks(jwks_of(es_key), max_age=600)
    yield jwks_server
