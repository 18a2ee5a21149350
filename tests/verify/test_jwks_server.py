"""The test server itself behaves as documented (other test packages rely on it)."""

from __future__ import annotations

import httpx

from tests.support.jwks_server import JWKS_PATH, JWKSServer


def test_serves_json_with_etag_and_304(jwks_server: JWKSServer) -> None:
    jwks_server.serve_jwks([{"kty": "oct"}], max_age=42)
    first = httpx.get(jwks_server.jwks_url)
    assert first.status_code == 200
    assert first.json() == {"keys": [{"kty": "oct"}]}
    assert first.headers["cache-control"] == "public, max-age=42"
    etag = first.headers["etag"]
    second = httpx.get(jwks_server.jwks_url, headers={"If-None-Match": etag})
    assert second.status_code == 304
    assert jwks_server.count(JWKS_PATH) == 2
    assert jwks_server.requests[1].headers["If-None-Match"] == etag


def test_unknown_path_is_404_and_failures(jwks_server: JWKSServer) -> None:
    assert httpx.get(jwks_server.url + "/nope").status_code == 404
    jwks_server.fail(503)
    assert httpx.get(jwks_server.jwks_url).status_code == 503
    jwks_server.go_down()
    try:
        httpx.get(jwks_server.jwks_url)
    except httpx.TransportError:
        pass
    else:
        raise AssertionError("a dropped connection must not produce a response")


def test_stop_refuses_connections() -> None:
    server = JWKSServer().start()
    url = server.jwks_url
    server.stop()
    try:
        httpx.get(url, timeout=2)
    except httpx.ConnectError:
        pass
    else:
        raise AssertionError("a stopped server must refuse connections")
