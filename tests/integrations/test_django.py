"""Django: JWKitMiddleware from settings.JWKIT and @require_token, sync and async."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import django
import pytest
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["testserver", "127.0.0.1"],
        ROOT_URLCONF=__name__,
        SECRET_KEY="tests-only",
        MIDDLEWARE=[],
        JWKIT={},
        USE_TZ=True,
    )
    django.setup()

from django.core.exceptions import ImproperlyConfigured
from django.core.handlers.wsgi import WSGIHandler
from django.http import HttpRequest, JsonResponse
from django.test import AsyncClient, Client, override_settings
from django.urls import path
from django.utils.decorators import method_decorator
from django.views import View
from werkzeug.serving import make_server

from jwkit.integrations.django import JWKitConfig, get_config, require_token

from .conftest import ROOT, Tokens, bearer, check_five, expect, free_port, server_process

MIDDLEWARE = ["jwkit.integrations.django.JWKitMiddleware"]


def _body(request: HttpRequest) -> JsonResponse:
    claims = request.claims
    if claims is None:
        return JsonResponse({"sub": None})
    return JsonResponse({"sub": claims.sub, "scopes": sorted(claims.scopes)})


def public(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"claims": getattr(request, "claims", None) is not None})


def plain(request: HttpRequest) -> JsonResponse:
    return _body(request)


@require_token
def me(request: HttpRequest) -> JsonResponse:
    return _body(request)


@require_token
async def me_async(request: HttpRequest) -> JsonResponse:
    return _body(request)


@require_token(scopes="admin")
def admin(request: HttpRequest) -> JsonResponse:
    return _body(request)


@require_token(scopes=["admin"])
async def admin_async(request: HttpRequest) -> JsonResponse:
    return _body(request)


@require_token
class MeView(View):
    def get(self, request: HttpRequest) -> JsonResponse:
        return _body(request)


@require_token(scopes="admin")
class AdminAsyncView(View):
    async def get(self, request: HttpRequest) -> JsonResponse:
        return _body(request)


class MethodView(View):
    @method_decorator(require_token(scopes="admin"))
    def get(self, request: HttpRequest) -> JsonResponse:
        return _body(request)


urlpatterns = [
    path("public", public),
    path("plain", plain),
    path("me", me),
    path("me-async", me_async),
    path("admin", admin),
    path("admin-async", admin_async),
    path("cbv", MeView.as_view()),
    path("cbv-admin-async", AdminAsyncView.as_view()),
    path("method-admin", MethodView.as_view()),
]

ME_PATHS = ["/me", "/me-async", "/cbv"]
ADMIN_PATHS = ["/admin", "/admin-async", "/cbv-admin-async", "/method-admin"]


@pytest.fixture
def jwkit_settings(verifier) -> Iterator[None]:
    with override_settings(JWKIT={"VERIFIER": verifier, "EXCLUDE_PATHS": ["/public"]}):
        yield


def check_client(client: Any, tokens: Tokens, paths: list[str]) -> None:
    for p in paths:
        expect(client.get(p), "no_token")
        expect(client.get(p, headers={"Authorization": "Basic YTpi"}), "no_token")
        expect(client.get(p, headers=bearer("a.b.c")), "invalid", "malformed")
        expect(client.get(p, headers=bearer(tokens.expired)), "invalid", "expired")
        expect(client.get(p, headers=bearer(tokens.forged)), "invalid", "invalid_signature")
        assert expect(client.get(p, headers=bearer(tokens.admin)), "ok").body["sub"] == "alice"


def check_scopes(client: Any, tokens: Tokens) -> None:
    for p in ADMIN_PATHS:
        expect(client.get(p, headers=bearer(tokens.reader)), "forbidden", scope="admin")
        expect(client.get(p, headers=bearer(tokens.admin)), "ok")


@pytest.mark.usefixtures("jwkit_settings")
def test_decorators_without_middleware(tokens: Tokens):
    client = Client()
    check_client(client, tokens, ME_PATHS + ADMIN_PATHS)
    check_scopes(client, tokens)
    expect(client.get("/public"), "ok")


@pytest.mark.usefixtures("jwkit_settings")
def test_middleware(tokens: Tokens):
    with override_settings(MIDDLEWARE=MIDDLEWARE):
        client = Client()
        check_client(client, tokens, ["/plain", *ME_PATHS])
        check_scopes(client, tokens)
        expect(client.get("/public"), "ok")
        expect(client.get("/public/"), "no_token")


@pytest.mark.usefixtures("jwkit_settings")
def test_middleware_optional(verifier, tokens: Tokens):
    conf = {"VERIFIER": verifier, "REQUIRED": False}
    with override_settings(MIDDLEWARE=MIDDLEWARE, JWKIT=conf):
        client = Client()
        assert client.get("/plain").json() == {"sub": None}
        assert client.get("/plain", headers=bearer(tokens.reader)).json()["sub"] == "alice"
        expect(client.get("/plain", headers=bearer(tokens.expired)), "invalid", "expired")
        expect(client.get("/me"), "no_token")


@pytest.mark.anyio
@pytest.mark.usefixtures("jwkit_settings")
async def test_async_middleware(tokens: Tokens):
    with override_settings(MIDDLEWARE=MIDDLEWARE):
        client = AsyncClient()
        for p in ["/plain", *ME_PATHS]:
            expect(await client.get(p), "no_token")
            expect(await client.get(p, headers=bearer(tokens.expired)), "invalid", "expired")
            expect(await client.get(p, headers=bearer(tokens.reader)), "ok")
        for p in ADMIN_PATHS:
            r = await client.get(p, headers=bearer(tokens.reader))
            expect(r, "forbidden", scope="admin")
        expect(await client.get("/public"), "ok")


@pytest.mark.anyio
@pytest.mark.usefixtures("jwkit_settings")
async def test_async_decorators_without_middleware(tokens: Tokens):
    client = AsyncClient()
    for p in ["/me-async", "/cbv-admin-async"]:
        expect(await client.get(p), "no_token")
        expect(await client.get(p, headers=bearer("x")), "invalid", "malformed")
        expect(await client.get(p, headers=bearer(tokens.admin)), "ok")


def test_unavailable(down_verifier, tokens: Tokens):
    with override_settings(JWKIT={"VERIFIER": down_verifier}, MIDDLEWARE=MIDDLEWARE):
        client = Client()
        for p in ["/plain", "/me", "/admin-async"]:
            expect(client.get(p, headers=bearer(tokens.reader)), "unavailable")
    with override_settings(JWKIT={"VERIFIER": down_verifier}):
        for p in ["/me", "/me-async", "/cbv-admin-async"]:
            expect(Client().get(p, headers=bearer(tokens.reader)), "unavailable")


def test_settings_from_jwk_file_and_url(jwk_file, jwks_url, tokens: Tokens):
    for conf in (
        {"JWK_FILE": str(jwk_file), "VERIFIER_OPTIONS": {"audience": None}},
        {"JWKS_URL": jwks_url, "VERIFIER_OPTIONS": {"allow_insecure_http": True, "audience": None}},
    ):
        with override_settings(JWKIT=conf, MIDDLEWARE=MIDDLEWARE):
            expect(Client().get("/plain", headers=bearer(tokens.reader)), "ok")
        # async views without the middleware: verify_async, each request in its own loop
        with override_settings(JWKIT=conf):
            for _ in range(2):
                expect(Client().get("/me-async", headers=bearer(tokens.reader)), "ok")
            expect(
                Client().get("/me-async", headers=bearer(tokens.forged)),
                "invalid",
                "invalid_signature",
            )


def test_settings_custom_texts(verifier, tokens: Tokens):
    conf = {
        "VERIFIER": lambda: verifier,
        "REALM": "shop",
        "SCOPES": "read",
        "RESPONSES": {"no_token_body": {"message": "sign in"}, "insufficient_scope_status": 401},
    }
    with override_settings(JWKIT=conf, MIDDLEWARE=MIDDLEWARE):
        r = Client().get("/plain")
        assert (r.status_code, r.json()) == (401, {"message": "sign in"})
        assert r.headers["WWW-Authenticate"] == 'Bearer realm="shop"'
        r = Client().get("/plain", headers=bearer(tokens.make(scope="other")))
        assert r.status_code == 401
        assert 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]


@pytest.mark.parametrize(
    "conf",
    [
        {},
        {"VERIFIER": object()},
        {"JWKS_URL": "x", "SPELLING": True},
        {"VERIFIER": "no.such.module.verifier"},
        {"VERIFIER": "GOOD", "EXCLUDE_PATHS": ["relative"]},
        {"VERIFIER": "GOOD", "REALM": 'a"b'},
        {"VERIFIER": "GOOD", "SCOPES": ['bad"scope']},
        {"VERIFIER": "GOOD", "RESPONSES": {"no_token_status": 200}},
        [],
    ],
)
def test_bad_settings_are_improperly_configured(conf, verifier):
    if isinstance(conf, dict) and conf.get("VERIFIER") == "GOOD":
        conf = {**conf, "VERIFIER": verifier}
    with pytest.raises((ImproperlyConfigured, ImportError)):
        JWKitConfig(conf)


def test_config_follows_setting_changes(verifier, down_verifier):
    with override_settings(JWKIT={"VERIFIER": verifier}):
        assert get_config().authenticator.verifier is verifier
        with override_settings(JWKIT={"VERIFIER": down_verifier}):
            assert get_config().authenticator.verifier is down_verifier
        assert get_config().authenticator.verifier is verifier


def test_decorator_rejects_non_views():
    with pytest.raises(TypeError):
        require_token(42)  # type: ignore[call-overload]


@pytest.fixture
def wsgi_server(verifier) -> Iterator[str]:
    with override_settings(JWKIT={"VERIFIER": verifier}, MIDDLEWARE=MIDDLEWARE):
        server = make_server("127.0.0.1", 0, WSGIHandler(), threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_port}"
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5)


def test_real_wsgi_server(wsgi_server: str, tokens: Tokens):
    check_five(wsgi_server, tokens, me="/plain", admin="/admin")
    check_five(wsgi_server, tokens, me="/cbv", admin="/cbv-admin-async")


def test_example_app_runserver(jwk_file, tokens: Tokens):
    port = free_port()
    args = [
        str(ROOT / "examples" / "django_app.py"),
        "runserver",
        "--noreload",
        f"127.0.0.1:{port}",
    ]
    with server_process(args, port, {"JWKIT_EXAMPLE_JWK_FILE": str(jwk_file)}) as base:
        check_five(base, tokens)


def test_an_http_jwks_url_is_refused_in_django_words():
    with pytest.raises(ImproperlyConfigured) as info:
        JWKitConfig({"JWKS_URL": "http://127.0.0.1:9/jwks.json"})
    assert "must use https" in str(info.value)
    assert "JWKIT['VERIFIER_OPTIONS'] = {'allow_insecure_http': True}" in str(info.value)
    assert "pass allow_insecure_http=True" not in str(info.value)
