"""A Verifier given an ``http_client`` works with any httpx transport, including
``httpx.MockTransport`` answering ``httpx.Response(200, json=...)`` (issue 13, item 20)."""

from __future__ import annotations

import asyncio
import gzip
import json

import httpx
import pytest

from jwkit import KeySourceError, Verifier
from tests.verify.conftest import AUDIENCE, ISSUER, jwks_of, make_key, token_for

KEY = make_key("ES256", kid="mock-1")


def _handler(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/.well-known/openid-configuration":
        return httpx.Response(200, json={"issuer": ISSUER, "jwks_uri": f"{ISSUER}/jwks"})
    if request.url.path == "/jwks":
        return httpx.Response(200, json=jwks_of(KEY), headers={"cache-control": "max-age=60"})
    if request.url.path == "/jwks.gz":
        body = gzip.compress(json.dumps(jwks_of(KEY)).encode())
        return httpx.Response(200, content=body, headers={"content-encoding": "gzip"})
    if request.url.path == "/big":
        return httpx.Response(200, json={"keys": [], "pad": "x" * 5000})
    return httpx.Response(404)


@pytest.mark.parametrize("path", ["/jwks", "/jwks.gz"])
def test_sync_mock_transport(path: str) -> None:
    client = httpx.Client(transport=httpx.MockTransport(_handler))
    with client, Verifier.from_jwks_url(ISSUER + path, http_client=client,
                                        audience=AUDIENCE) as verifier:  # fmt: skip
        assert verifier.verify(token_for(KEY))["sub"] == "user-1"


def test_sync_mock_transport_discovery() -> None:
    client = httpx.Client(transport=httpx.MockTransport(_handler))
    with client, Verifier.from_issuer(ISSUER, http_client=client, audience=AUDIENCE) as v:
        assert v.verify(token_for(KEY))["iss"] == ISSUER


def test_async_mock_transport_discovery() -> None:
    async def main() -> str:
        client = httpx.AsyncClient(transport=httpx.MockTransport(_handler))
        async with client:
            verifier = Verifier.from_issuer(ISSUER, async_http_client=client, audience=AUDIENCE)
            async with verifier:
                claims = await verifier.verify_async(token_for(KEY))
                return str(claims["sub"])

    assert asyncio.run(main()) == "user-1"


def test_an_in_memory_body_keeps_the_size_limit() -> None:
    client = httpx.Client(transport=httpx.MockTransport(_handler))
    with client, Verifier.from_jwks_url(ISSUER + "/big", http_client=client, max_bytes=1024,
                                        audience=AUDIENCE) as verifier:  # fmt: skip
        with pytest.raises(KeySourceError, match="more than 1024 bytes"):
            verifier.verify(token_for(KEY))
