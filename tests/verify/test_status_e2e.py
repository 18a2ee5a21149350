"""End to end against a real ``jwkit serve`` (SQLite): the service issues tokens with a
``status`` claim, a jwkit ``Verifier`` checks them, an admin revokes a session, and the
verifier refuses the token (a verified-token cache hit) as soon as the push event arrives; a
second verifier that only polls refuses it once the list's ttl has run out; ``jwkit status
inspect`` reads the served list and checks its signature with the issuer's keys."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from jwkit import TokenRevoked, Verifier
from jwkit.cli import main
from jwkit.jose import jwt
from tests.support import serve

# Verifiers built without audience= on purpose: token status, not the audience, is what these
# tests check (tests/verify/test_audience.py holds the AudienceWarning itself).
pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.filterwarnings("ignore::jwkit.verify.verifier.AudienceWarning"),
]

ADMIN_TOKEN = "e2e-admin-token-0123456789abcdef"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[serve.ServerProcess]:
    env = serve.server_env(
        tmp_path,
        admin_token=ADMIN_TOKEN,
        admin_password="correct horse battery staple",
        JWKIT_EVENTS_HEARTBEAT="0.5",
    )
    process = serve.ServerProcess(tmp_path, env).start()
    try:
        yield process
    finally:
        process.stop()


def api(server: serve.ServerProcess, method: str, path: str, body: Any = None) -> Any:
    with server.api() as client:
        response = client.request(method, f"/api/v1{path}", json=body)
    assert response.is_success, response.text
    return response.json()


def refused_after_events(verify: Any, listener: Any, handled: int) -> None:
    """Wait for events until ``verify()`` raises ``TokenRevoked`` (the service may also send
    other events, such as a list being re-signed, before the one that matters)."""
    for _ in range(20):
        handled += 1
        assert listener.wait_handled(handled), "no event arrived"
        try:
            verify()
        except TokenRevoked:
            return
    raise AssertionError("still accepted after 20 events")


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def test_revoking_a_session_reaches_the_verifier(server: serve.ServerProcess) -> None:
    project = api(server, "POST", "/projects", {"name": "e2e"})
    pid, issuer = project["id"], project["issuer"]
    minted = api(server, "POST", f"/projects/{pid}/tokens", {"sub": "erin", "sid": "web-1"})
    other = api(server, "POST", f"/projects/{pid}/tokens", {"sub": "finn", "sid": "web-2"})
    token, kept = minted["access_token"], other["access_token"]
    _, claims = jwt.decode_unverified(token)
    uri = claims["status"]["status_list"]["uri"]
    assert uri.startswith(issuer + "/statuslists/")

    clock = Clock()
    pushed = Verifier.from_issuer(issuer, allow_insecure_http=True, status_events=True)
    polling = Verifier.from_issuer(issuer, allow_insecure_http=True, clock=clock)
    with pushed, polling:
        for v in (pushed, polling):
            assert v.verify(token)["sub"] == "erin"
            assert v.verify(token)["sub"] == "erin"  # a cache hit
        listener = pushed._events
        assert listener is not None and listener.wait_handled(2)  # connect resync, opening frame
        handled = listener.handled

        revoked_at = time.monotonic()
        out = api(server, "POST", f"/projects/{pid}/revocations", {"sid": "web-1"})
        assert out["count"] == 1
        # A verified-token cache hit, refused from the refetched list.
        refused_after_events(lambda: pushed.verify(token), listener, handled)
        seen_after = time.monotonic() - revoked_at
        assert pushed.verify(kept)["sub"] == "finn"

        # Without push: still accepted from the cached list until its ttl runs out.
        assert polling.verify(token)["sub"] == "erin"
        state = polling.status._lists[uri] if polling.status is not None else None
        assert state is not None
        clock.offset = state.fresh_until - time.time() + 1
        with pytest.raises(TokenRevoked):
            polling.verify(token)
        assert polling.verify(kept)["sub"] == "finn"
    assert seen_after < 5  # generous for a shared CI machine; typically milliseconds
    assert not listener.running

    result = CliRunner().invoke(main, ["status", "inspect", uri, "--allow-insecure-http", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["signature"]["valid"] is True
    assert report["list"]["counts"]["INVALID"] >= 1
    assert report["claims"]["iss"] == issuer


def test_async_verifier_with_push(server: serve.ServerProcess) -> None:
    import asyncio

    project = api(server, "POST", "/projects", {"name": "e2e-async"})
    pid, issuer = project["id"], project["issuer"]
    token = api(server, "POST", f"/projects/{pid}/tokens", {"sub": "gus"})["access_token"]
    jti = jwt.decode_unverified(token)[1]["jti"]

    async def main_() -> None:
        async with Verifier.from_issuer(issuer, allow_insecure_http=True, status_events=True) as v:
            assert (await v.verify_async(token))["sub"] == "gus"
            listener = v._events
            assert listener is not None
            assert await asyncio.to_thread(listener.wait_handled, 2)  # resync, opening frame
            handled = listener.handled
            await asyncio.to_thread(
                api, server, "POST", f"/projects/{pid}/revocations", {"jti": jti}
            )
            for _ in range(20):
                handled += 1
                assert await asyncio.to_thread(listener.wait_handled, handled)
                try:
                    await v.verify_async(token)
                except TokenRevoked:
                    break
            else:
                raise AssertionError("still accepted after 20 events")

    asyncio.run(main_())
    assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200
