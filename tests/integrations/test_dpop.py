"""DPoP (RFC 9449 §7) through every integration: FastAPI, Starlette (middleware and
backend), Flask and Django answer ``Authorization: DPoP`` with a ``DPoP`` proof, and refuse
with the RFC's ``WWW-Authenticate: DPoP`` errors (and ``DPoP-Nonce``)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import pytest
from django.http import HttpRequest, JsonResponse
from django.test import Client, override_settings
from django.urls import path
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from flask import Flask, g
from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from jwkit import JWK, Claims, Verifier
from jwkit.integrations.django import require_token as django_require_token
from jwkit.integrations.fastapi import BearerAuth
from jwkit.integrations.flask import JWKit
from jwkit.integrations.starlette import BearerAuthMiddleware, authentication_middleware
from jwkit.verify.dpop import DPoPVerifier, RotatingNonces

# Django is configured once per process, by test_django.py (its ROOT_URLCONF); the Django
# requests here override ROOT_URLCONF for themselves.
from tests.integrations import test_django  # noqa: F401
from tests.support.dpop import make_proof

from .conftest import Tokens, answer

ALGS = 'algs="ES256 ES384 ES512 Ed25519 EdDSA PS256 PS384 PS512 RS256 RS384 RS512"'

Send = Callable[[str, dict[str, str]], Any]


# -- one app per integration, each at /me, as (send, base URL) -------------------------------


def fastapi_app(verifier: Any) -> tuple[Send, str]:
    app = FastAPI()
    auth = BearerAuth(verifier)

    @app.get("/me")
    async def me(claims: Claims = Depends(auth)) -> dict[str, Any]:  # noqa: B008
        return {"sub": claims.sub}

    client = TestClient(app)
    return lambda p, h: client.get(p, headers=h), "http://testserver"


async def _me(request: Request) -> JSONResponse:
    return JSONResponse({"sub": request.scope["jwkit.claims"].sub})


def starlette_middleware_app(verifier: Any) -> tuple[Send, str]:
    app = Starlette(routes=[Route("/me", _me)])
    client = TestClient(BearerAuthMiddleware(app, verifier))
    return lambda p, h: client.get(p, headers=h), "http://testserver"


@requires("read")
async def _me_backend(request: Request) -> JSONResponse:
    return JSONResponse({"sub": request.user.identity})


def starlette_backend_app(verifier: Any) -> tuple[Send, str]:
    app = Starlette(
        routes=[Route("/me", _me_backend)], middleware=[authentication_middleware(verifier)]
    )
    client = TestClient(app)
    return lambda p, h: client.get(p, headers=h), "http://testserver"


def flask_app(verifier: Any) -> tuple[Send, str]:
    app = Flask(__name__)
    ext = JWKit(app, verifier)

    @app.get("/me")
    @ext.require_token
    def me() -> dict[str, Any]:
        return {"sub": g.claims.sub}

    client = app.test_client()
    return lambda p, h: client.get(p, headers=h), "http://localhost"


@django_require_token
def django_me(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"sub": request.claims.sub})


urlpatterns = [path("me", django_me)]


def django_app(verifier: Any) -> tuple[Send, str]:
    def send(p: str, h: dict[str, str]) -> Any:
        with override_settings(ROOT_URLCONF=__name__, JWKIT={"VERIFIER": verifier}):
            return Client().get(p, headers=h)

    return send, "http://testserver"


APPS = {
    "fastapi": fastapi_app,
    "starlette-middleware": starlette_middleware_app,
    "starlette-backend": starlette_backend_app,
    "flask": flask_app,
    "django": django_app,
}


@pytest.fixture
def client_key() -> JWK:
    return JWK.generate("ES256")


@pytest.fixture
def bound(tokens: Tokens, client_key: JWK) -> str:
    return tokens.make(scope="read", cnf={"jkt": client_key.thumbprint()})


def _dpop(verifier: Verifier, **options: Any) -> DPoPVerifier:
    return DPoPVerifier(verifier, **options)


@pytest.mark.parametrize("name", list(APPS))
def test_dpop_answers(name: str, verifier: Verifier, bound: str, client_key: JWK) -> None:
    send, base = APPS[name](_dpop(verifier))
    url = base + "/me"

    ok = answer(
        send(
            "/me",
            {
                "Authorization": f"DPoP {bound}",
                "DPoP": make_proof(client_key, htu=url, access_token=bound),
            },
        )
    )
    assert (ok.status, ok.body) == (200, {"sub": "alice"}), ok

    # a thief with the token alone, as a bearer token or as DPoP with its own key
    stolen = answer(send("/me", {"Authorization": f"Bearer {bound}"}))
    assert stolen.status == 401
    assert stolen.headers["www-authenticate"] == (
        f'DPoP realm="api", error="invalid_token", error_description="dpop_required", {ALGS}'
    )
    thief = JWK.generate("ES256")
    proof = make_proof(thief, htu=url, access_token=bound)
    wrong_key = answer(send("/me", {"Authorization": f"DPoP {bound}", "DPoP": proof}))
    assert wrong_key.status == 401
    assert wrong_key.headers["www-authenticate"] == (
        f'DPoP realm="api", error="invalid_dpop_proof", '
        f'error_description="dpop_key_mismatch", {ALGS}'
    )

    no_proof = answer(send("/me", {"Authorization": f"DPoP {bound}"}))
    assert no_proof.status == 401
    assert 'error="invalid_dpop_proof"' in no_proof.headers["www-authenticate"]

    other_url = make_proof(client_key, htu=base + "/other", access_token=bound)
    moved = answer(send("/me", {"Authorization": f"DPoP {bound}", "DPoP": other_url}))
    assert 'error="invalid_dpop_proof"' in moved.headers["www-authenticate"]

    replay = make_proof(client_key, htu=url, access_token=bound)
    first = answer(send("/me", {"Authorization": f"DPoP {bound}", "DPoP": replay}))
    again = answer(send("/me", {"Authorization": f"DPoP {bound}", "DPoP": replay}))
    assert (first.status, again.status) == (200, 401)
    assert 'error_description="dpop_replayed"' in again.headers["www-authenticate"]

    if name != "starlette-backend":  # the backend leaves anonymous requests to @requires
        none = answer(send("/me", {}))
        assert none.status == 401
        assert none.headers["www-authenticate"] == f'Bearer realm="api", DPoP realm="api", {ALGS}'


@pytest.mark.parametrize("name", list(APPS))
def test_invalid_bound_token_is_invalid_token_in_dpop_terms(
    name: str, verifier: Verifier, tokens: Tokens, client_key: JWK
) -> None:
    send, base = APPS[name](_dpop(verifier))
    forged = tokens.make(JWK.generate("ES256"), cnf={"jkt": client_key.thumbprint()})
    proof = make_proof(client_key, htu=base + "/me", access_token=forged)
    a = answer(send("/me", {"Authorization": f"DPoP {forged}", "DPoP": proof}))
    assert a.status == 401
    assert a.headers["www-authenticate"].startswith('DPoP realm="api", error="invalid_token"')


@pytest.mark.parametrize("name", list(APPS))
def test_use_dpop_nonce(name: str, verifier: Verifier, bound: str, client_key: JWK) -> None:
    nonces = RotatingNonces(secrets.token_bytes(32))
    send, base = APPS[name](_dpop(verifier, nonces=nonces))
    url = base + "/me"
    first = answer(
        send(
            "/me",
            {
                "Authorization": f"DPoP {bound}",
                "DPoP": make_proof(client_key, htu=url, access_token=bound),
            },
        )
    )
    assert first.status == 401
    assert first.headers["www-authenticate"] == (
        f'DPoP realm="api", error="use_dpop_nonce", error_description="use_dpop_nonce", {ALGS}'
    )
    nonce = first.headers["dpop-nonce"]
    proof = make_proof(client_key, htu=url, access_token=bound, nonce=nonce)
    second = answer(send("/me", {"Authorization": f"DPoP {bound}", "DPoP": proof}))
    assert second.status == 200, second


@pytest.mark.parametrize("name", list(APPS))
def test_require_dpop_refuses_bearer(name: str, verifier: Verifier, tokens: Tokens) -> None:
    send, _ = APPS[name](_dpop(verifier, require_dpop=True))
    a = answer(send("/me", {"Authorization": f"Bearer {tokens.reader}"}))
    assert a.status == 401
    assert 'error_description="dpop_required"' in a.headers["www-authenticate"]


@pytest.mark.parametrize("name", list(APPS))
def test_plain_verifier_refuses_a_bound_token_as_bearer(
    name: str, verifier: Verifier, bound: str, tokens: Tokens
) -> None:
    """Without DPoP configured, a DPoP-bound token is still worth nothing without its key."""
    send, _ = APPS[name](verifier)
    a = answer(send("/me", {"Authorization": f"Bearer {bound}"}))
    assert a.status == 401
    assert a.headers["www-authenticate"] == (
        'Bearer realm="api", error="invalid_token", error_description="dpop_required"'
    )
    ok = answer(send("/me", {"Authorization": f"Bearer {tokens.reader}"}))
    assert ok.status == 200


def test_django_dpop_setting(verifier: Verifier, bound: str, client_key: JWK) -> None:
    conf = {"VERIFIER": verifier, "DPOP": {"max_age": 30}}
    proof = make_proof(client_key, htu="http://testserver/me", access_token=bound)
    with override_settings(ROOT_URLCONF=__name__, JWKIT=conf):
        response = Client().get("/me", headers={"Authorization": f"DPoP {bound}", "DPoP": proof})
    assert response.status_code == 200
