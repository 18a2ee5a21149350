"""Starlette / ASGI: the middleware and the AuthenticationBackend, TestClient and uvicorn."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket, WebSocketDisconnect

from jwkit.integrations.starlette import (
    BearerAuthMiddleware,
    TokenUser,
    authentication_middleware,
)

from .conftest import ROOT, Tokens, bearer, check_five, expect, free_port, server_process


async def me(request: Request) -> JSONResponse:
    claims = request.state.claims
    assert request.scope["jwkit.claims"] is claims
    return JSONResponse({"sub": claims.sub, "scopes": sorted(claims.scopes)})


async def public(request: Request) -> JSONResponse:
    return JSONResponse({"claims": "claims" in request.scope.get("state", {})})


async def ws(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json({"sub": websocket.scope["jwkit.claims"].sub})
    await websocket.close()


def middleware_app(verifier: Any, **options: Any) -> Starlette:
    return Starlette(
        routes=[
            Route("/me", me),
            Route("/admin", me),
            Route("/public", public),
            Route("/static/{name}", public),
            Route("/health", public, methods=["GET", "OPTIONS"]),
            WebSocketRoute("/ws", ws),
        ],
        middleware=[
            Middleware(
                BearerAuthMiddleware,
                verifier=verifier,
                exclude_paths=["/public", "/me", "/static/", "/ws", "/health"],
                scopes="admin",
            ),
            Middleware(BearerAuthMiddleware, verifier=verifier, **options),
        ],
    )


@pytest.fixture
def client(verifier) -> TestClient:
    return TestClient(middleware_app(verifier, exclude_paths=["/public", "/static/"]))


def test_five_answers(client: TestClient, tokens: Tokens):
    expect(client.get("/me"), "no_token")
    expect(client.get("/me", headers={"Authorization": "Basic YTpi"}), "no_token")
    expect(client.get("/me", headers=bearer("a.b.c")), "invalid", "malformed")
    expect(client.get("/me", headers=bearer(tokens.expired)), "invalid", "expired")
    expect(client.get("/me", headers=bearer(tokens.forged)), "invalid", "invalid_signature")
    ok = expect(client.get("/me", headers=bearer(tokens.reader)), "ok")
    assert ok.body == {"sub": "alice", "scopes": ["read"]}


def test_scopes(client: TestClient, tokens: Tokens):
    expect(client.get("/admin", headers=bearer(tokens.reader)), "forbidden", scope="admin")
    expect(client.get("/admin", headers=bearer(tokens.admin)), "ok")


def test_unavailable(down_verifier, tokens: Tokens):
    client = TestClient(middleware_app(down_verifier))
    expect(client.get("/me", headers=bearer(tokens.reader)), "unavailable")


def test_exclusions(client: TestClient):
    expect(client.get("/public"), "ok")
    expect(client.get("/static/app.js"), "ok")
    # exact match only, unless the entry ends with "/"
    expect(client.get("/public/"), "no_token")
    expect(client.get("/publicity"), "no_token")
    expect(client.get("/static"), "no_token")
    expect(client.get("/health"), "no_token")


def test_excluded_methods(verifier):
    client = TestClient(middleware_app(verifier, exclude_methods=["options"]))
    expect(client.options("/health"), "ok")
    expect(client.get("/health"), "no_token")


def test_root_path(verifier, tokens: Tokens):
    client = TestClient(middleware_app(verifier, exclude_paths=["/public"]), root_path="/api")
    expect(client.get("/api/public"), "ok")
    expect(client.get("/api/me"), "no_token")
    expect(client.get("/api/me", headers=bearer(tokens.reader)), "ok")


def test_bad_exclusions(verifier):
    with pytest.raises(ValueError):
        BearerAuthMiddleware(public, verifier, exclude_paths=["health"])


def test_websocket(client: TestClient, tokens: Tokens):
    with client.websocket_connect("/ws", headers=bearer(tokens.reader)) as conn:
        assert conn.receive_json() == {"sub": "alice"}
    with pytest.raises(WebSocketDisconnect) as info:
        with client.websocket_connect("/ws", headers=bearer(tokens.expired)):
            pass
    assert info.value.code == 1008


def test_lifespan_passes_through(verifier):
    started = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        started.append(True)
        yield

    app = Starlette(
        routes=[Route("/me", me)],
        middleware=[Middleware(BearerAuthMiddleware, verifier=verifier)],
        lifespan=lifespan,
    )
    with TestClient(app) as c:
        expect(c.get("/me"), "no_token")
    assert started == [True]


@pytest.mark.anyio
async def test_plain_asgi_claims_state_and_app_errors(verifier, tokens: Tokens):
    seen: list[dict[str, Any]] = []

    async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope)
        if scope["path"] == "/boom":
            raise RuntimeError("a bug in the app")

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    middleware = BearerAuthMiddleware(inner, verifier=verifier)
    auth = [(b"Authorization", f"Bearer {tokens.reader}".encode())]

    def scope(path: str, **extra: Any) -> dict[str, Any]:
        return {"type": "http", "method": "GET", "path": path, "headers": auth, **extra}

    # no "state" in the scope: the middleware makes one; a server's state keeps its entries
    await middleware(scope("/me"), receive, send)
    await middleware(scope("/me", state={"db": 1}), receive, send)
    claims = seen[0]["jwkit.claims"]
    assert claims.sub == "alice" and seen[0]["state"] == {"claims": claims}
    assert seen[1]["state"] == {"db": 1, "claims": seen[1]["jwkit.claims"]}
    assert sent == []
    # the app's own exceptions are not authentication failures: they are not turned into 401
    with pytest.raises(RuntimeError, match="a bug in the app"):
        await middleware(scope("/boom"), receive, send)
    assert sent == []


# -- the AuthenticationBackend -------------------------------------------------------------


async def whoami(request: Request) -> JSONResponse:
    user = request.user
    return JSONResponse(
        {
            "authenticated": user.is_authenticated,
            "name": user.display_name,
            "scopes": sorted(request.auth.scopes),
            "same": isinstance(user, TokenUser) and request.state.claims is user.claims,
        }
    )


@requires("admin")
async def admin(request: Request) -> JSONResponse:
    return JSONResponse({"sub": request.user.identity})


def backend_app(verifier: Any, **options: Any) -> Starlette:
    return Starlette(
        routes=[Route("/whoami", whoami), Route("/admin", admin)],
        middleware=[authentication_middleware(verifier, **options)],
    )


def test_backend(verifier, tokens: Tokens):
    client = TestClient(backend_app(verifier))
    anonymous = client.get("/whoami").json()
    assert anonymous == {"authenticated": False, "name": "", "scopes": [], "same": False}
    body = client.get("/whoami", headers=bearer(tokens.admin)).json()
    assert body == {
        "authenticated": True,
        "name": "alice",
        "scopes": ["admin", "read"],
        "same": True,
    }
    expect(client.get("/whoami", headers=bearer(tokens.expired)), "invalid", "expired")
    expect(client.get("/whoami", headers=bearer("x")), "invalid", "malformed")
    # Starlette's own @requires answers 403 for a missing scope
    assert client.get("/admin", headers=bearer(tokens.reader)).status_code == 403
    assert client.get("/admin", headers=bearer(tokens.admin)).json() == {"sub": "alice"}


def test_backend_scopes_and_outage(verifier, down_verifier, tokens: Tokens):
    client = TestClient(backend_app(verifier, scopes="admin"))
    expect(client.get("/whoami", headers=bearer(tokens.reader)), "forbidden", scope="admin")
    client = TestClient(backend_app(down_verifier))
    expect(client.get("/whoami", headers=bearer(tokens.reader)), "unavailable")


def test_example_app_through_uvicorn(jwk_file, tokens: Tokens):
    port = free_port()
    args = [
        "-m",
        "uvicorn",
        "--app-dir",
        str(ROOT / "examples"),
        "starlette_app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    with server_process(args, port, {"JWKIT_EXAMPLE_JWK_FILE": str(jwk_file)}) as base:
        check_five(base, tokens)
