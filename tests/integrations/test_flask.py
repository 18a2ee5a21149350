"""Flask: the extension and @require_token, sync and async, test client and a real server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, g
from werkzeug.serving import make_server

from jwkit.integrations.flask import JWKit, require_token

from .conftest import ROOT, Tokens, bearer, check_five, expect, free_port, server_process


def make_app(verifier: Any, **options: Any) -> Flask:
    app = Flask(__name__)
    ext = JWKit(app, verifier, **options)

    @app.get("/public")
    def public() -> dict[str, Any]:
        return {"hello": "world"}

    @app.get("/me")
    @ext.require_token
    def me() -> dict[str, Any]:
        return {"sub": g.claims.sub, "scopes": sorted(g.claims.scopes)}

    @app.get("/async")
    @require_token
    async def me_async() -> dict[str, Any]:
        return {"sub": g.claims.sub}

    @app.get("/admin")
    @ext.require_token(scopes=["admin"])
    def admin() -> dict[str, Any]:
        return {"sub": g.claims.sub}

    @app.get("/admin-async")
    @require_token(scopes="admin")
    async def admin_async() -> dict[str, Any]:
        return {"sub": g.claims.sub}

    return app


@pytest.fixture
def client(verifier):
    return make_app(verifier).test_client()


@pytest.mark.parametrize("path", ["/me", "/async"])
def test_five_answers(client, tokens: Tokens, path: str):
    expect(client.get("/public"), "ok")
    expect(client.get(path), "no_token")
    expect(client.get(path, headers={"Authorization": "Basic YTpi"}), "no_token")
    expect(client.get(path, headers=bearer("a.b.c")), "invalid", "malformed")
    expect(client.get(path, headers=bearer(tokens.expired)), "invalid", "expired")
    expect(client.get(path, headers=bearer(tokens.forged)), "invalid", "invalid_signature")
    ok = expect(client.get(path, headers=bearer(tokens.reader)), "ok")
    assert ok.body["sub"] == "alice"


@pytest.mark.parametrize("path", ["/admin", "/admin-async"])
def test_scopes(client, tokens: Tokens, path: str):
    expect(client.get(path, headers=bearer(tokens.reader)), "forbidden", scope="admin")
    expect(client.get(path, headers=bearer(tokens.admin)), "ok")


def test_extension_scopes_apply_to_every_view(verifier, tokens: Tokens):
    client = make_app(verifier, scopes="read").test_client()
    expect(client.get("/me", headers=bearer(tokens.make(scope="other"))), "forbidden", scope="read")
    expect(client.get("/admin", headers=bearer(tokens.reader)), "forbidden", scope="admin read")


@pytest.mark.parametrize("path", ["/me", "/async"])
def test_unavailable(down_verifier, tokens: Tokens, path: str):
    client = make_app(down_verifier).test_client()
    expect(client.get(path, headers=bearer(tokens.reader)), "unavailable")


def test_app_factory(verifier, tokens: Tokens):
    ext = JWKit()
    app = Flask(__name__)

    @app.get("/me")
    @require_token
    def me() -> dict[str, Any]:
        return {"sub": g.claims.sub}

    with pytest.raises(ValueError):
        ext.init_app(app)
    ext.init_app(app, verifier)
    expect(app.test_client().get("/me", headers=bearer(tokens.reader)), "ok")


def test_missing_extension_is_a_setup_error(tokens: Tokens):
    app = Flask(__name__)

    @app.get("/me")
    @require_token
    def me() -> str:
        return "never"

    app.testing = True
    with pytest.raises(RuntimeError):
        app.test_client().get("/me", headers=bearer(tokens.reader))


@pytest.fixture
def real_server(verifier) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, make_app(verifier), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_real_wsgi_server(real_server: str, tokens: Tokens):
    check_five(real_server, tokens)
    check_five(real_server, tokens, me="/async", admin="/admin-async")


def test_example_app(jwk_file, tokens: Tokens):
    port = free_port()
    env = {"JWKIT_EXAMPLE_JWK_FILE": str(jwk_file), "PORT": str(port)}
    with server_process([str(ROOT / "examples" / "flask_app.py")], port, env) as base:
        check_five(base, tokens)


def test_example_app_unavailable(dead_url, tokens: Tokens):
    import httpx

    port = free_port()
    env = {"JWKIT_EXAMPLE_JWKS_URL": dead_url, "PORT": str(port)}
    with server_process([str(ROOT / "examples" / "flask_app.py")], port, env) as base:
        expect(httpx.get(f"{base}/me", headers=bearer(tokens.reader), timeout=10), "unavailable")
        expect(httpx.get(f"{base}/admin", headers=bearer(tokens.reader), timeout=10), "unavailable")
