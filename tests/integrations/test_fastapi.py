"""FastAPI: the BearerAuth dependency through TestClient, OpenAPI and a real uvicorn."""

from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, Request, Security, WebSocket
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from jwkit import Claims
from jwkit.integrations import ErrorResponses
from jwkit.integrations.fastapi import BearerAuth, install

from .conftest import ROOT, Tokens, bearer, check_five, expect, free_port, server_process


def make_app(verifier: Any, **options: Any) -> FastAPI:
    app = FastAPI()
    auth = BearerAuth(verifier, **options)
    admin = auth.with_scopes("admin")

    @app.get("/public")
    async def public() -> dict[str, str]:
        return {"hello": "world"}

    @app.get("/me")
    async def me(claims: Annotated[Claims, Depends(auth)], request: Request) -> dict[str, Any]:
        assert request.state.claims is claims
        assert request.scope["jwkit.claims"] is claims
        return {"sub": claims.sub, "scopes": sorted(claims.scopes)}

    @app.get("/admin")
    async def admin_only(claims: Annotated[Claims, Depends(admin)]) -> dict[str, Any]:
        return {"sub": claims.sub}

    @app.get("/security")
    async def by_security(
        claims: Annotated[Claims, Security(auth, scopes=["admin"])],
    ) -> dict[str, Any]:
        return {"sub": claims.sub}

    @app.get("/sync")
    def sync_view(claims: Annotated[Claims, Depends(auth)]) -> dict[str, Any]:
        return {"sub": claims.sub}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, claims: Annotated[Claims, Depends(auth)]) -> None:
        await websocket.accept()
        await websocket.send_json({"sub": claims.sub})
        await websocket.close()

    return app


@pytest.fixture
def client(verifier) -> TestClient:
    return TestClient(make_app(verifier))


def test_five_answers(client: TestClient, tokens: Tokens):
    expect(client.get("/public"), "ok")
    expect(client.get("/me"), "no_token")
    expect(client.get("/me", headers={"Authorization": "Basic YTpi"}), "no_token")
    expect(client.get("/me", headers={"Authorization": "Bearer"}), "no_token")
    expect(client.get("/me", headers=bearer("abc")), "invalid", "malformed")
    expect(client.get("/me", headers=bearer(tokens.expired)), "invalid", "expired")
    expect(client.get("/me", headers=bearer(tokens.forged)), "invalid", "invalid_signature")
    ok = expect(client.get("/me", headers=bearer(tokens.reader)), "ok")
    assert ok.body == {"sub": "alice", "scopes": ["read"]}
    expect(client.get("/sync", headers=bearer(tokens.reader)), "ok")


def test_scopes(client: TestClient, tokens: Tokens):
    for path in ("/admin", "/security"):
        expect(client.get(path, headers=bearer(tokens.reader)), "forbidden", scope="admin")
        expect(client.get(path, headers=bearer(tokens.admin)), "ok")
        expect(client.get(path), "no_token")


def test_two_authorization_headers_are_refused(client: TestClient, tokens: Tokens):
    headers = [("authorization", f"Bearer {tokens.reader}"), ("authorization", "Bearer x")]
    expect(client.get("/me", headers=headers), "invalid", "malformed")


def test_unavailable_keys_are_503(down_verifier, tokens: Tokens):
    client = TestClient(make_app(down_verifier))
    expect(client.get("/me", headers=bearer(tokens.reader)), "unavailable")
    expect(client.get("/me"), "no_token")


def test_jwks_server_answering_500_is_503(broken_jwks_url, tokens: Tokens):
    from jwkit.verify import Verifier

    verifier = Verifier.from_jwks_url(
        broken_jwks_url, allow_insecure_http=True, timeout=2.0, audience=None
    )
    client = TestClient(make_app(verifier))
    expect(client.get("/me", headers=bearer(tokens.reader)), "unavailable")


def test_remote_jwks(jwks_url, tokens: Tokens):
    from jwkit.verify import Verifier

    verifier = Verifier.from_jwks_url(
        jwks_url, allow_insecure_http=True, timeout=2.0, audience=None
    )
    client = TestClient(make_app(verifier))
    expect(client.get("/me", headers=bearer(tokens.reader)), "ok")


def test_configurable_texts(verifier, tokens: Tokens):
    responses = ErrorResponses(no_token_body={"message": "sign in"}, invalid_token_status=419)
    client = TestClient(make_app(verifier, realm="shop", responses=responses))
    r = client.get("/me")
    assert (r.status_code, r.json()) == (401, {"message": "sign in"})
    assert r.headers["www-authenticate"] == 'Bearer realm="shop"'
    r = client.get("/me", headers=bearer(tokens.expired))
    assert r.status_code == 419


def test_explicit_install_keeps_the_same_answers(verifier, tokens: Tokens):
    app = make_app(verifier)
    install(app)
    client = TestClient(app)
    expect(client.get("/me"), "no_token")
    expect(client.get("/me", headers=bearer(tokens.reader)), "ok")


def test_openapi_has_a_bearer_scheme(client: TestClient):
    doc = client.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["BearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    assert {"BearerAuth": []} in doc["paths"]["/me"]["get"]["security"]
    assert "security" not in doc["paths"]["/public"]["get"]


def test_websocket(client: TestClient, tokens: Tokens):
    with client.websocket_connect("/ws", headers=bearer(tokens.reader)) as ws:
        assert ws.receive_json() == {"sub": "alice"}
    with pytest.raises(WebSocketDisconnect) as info:
        with client.websocket_connect("/ws"):
            pass
    assert info.value.code == 1008


def test_example_app_through_uvicorn(jwk_file, tokens: Tokens):
    port = free_port()
    args = [
        "-m",
        "uvicorn",
        "--app-dir",
        str(ROOT / "examples"),
        "fastapi_app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    with server_process(args, port, {"JWKIT_EXAMPLE_JWK_FILE": str(jwk_file)}) as base:
        check_five(base, tokens)


def test_example_app_unavailable_through_uvicorn(dead_url, tokens: Tokens):
    import httpx

    port = free_port()
    args = [
        "-m",
        "uvicorn",
        "--app-dir",
        str(ROOT / "examples"),
        "fastapi_app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    with server_process(args, port, {"JWKIT_EXAMPLE_JWKS_URL": dead_url}) as base:
        expect(httpx.get(f"{base}/me", headers=bearer(tokens.reader), timeout=10), "unavailable")
