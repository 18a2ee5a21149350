"""``timeout`` bounds the whole fetch, sync and async, whatever the server does.

A real local server (``Reply.script``) stalls or drips at each point of the exchange — before
the status line, inside the headers, inside the body — on the JWKS request or on the discovery
request before it. Stalls start *late* (just before the deadline), which is what used to make
a fetch overrun: httpx's timeout restarts with every read, and discovery plus JWKS each had
their own. The fetch must end within ``timeout`` plus a small margin with the usual
``KeySourceError``, and leave no connection or watchdog thread behind.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from pathlib import Path

import httpx
import pytest

from jwkit import JWK, KeySourceError
from jwkit.verify.fetch import JWKSFetcher
from jwkit.verify.remote import RemoteJWKSource
from tests.support.jwks_server import DISCOVERY_PATH, JWKS_PATH, JWKSServer, Reply
from tests.verify.conftest import jwks_of

TIMEOUT = 0.4
MARGIN = 0.25
LATE = 0.3  # a stall that starts this late used to restart httpx's read timeout
STALL = 30.0  # "forever": cut short when the server stops
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n"

STALL_BEFORE_HEADERS = Reply(script=(STALL,))
LATE_STALL_MID_HEADERS = Reply(script=(LATE, b"HTTP/1.1 200 OK\r\nContent-Ty", STALL))
DRIP_HEADERS = Reply(script=(b"HTTP/1.1 200 OK\r\nX-Drip: ", *(0.1, b"a") * 60))
LATE_STALL_MID_BODY = Reply(script=(LATE, HEAD + b'{"keys": [', STALL))
DRIP_BODY = Reply(script=(HEAD, LATE, b" ", *(0.39, b" ") * 20))  # each byte inside a read timeout

# (id, discovery reply or None for a JWKS URL given directly, JWKS reply or None for a good one)
SCENARIOS = [
    ("jwks-late-stall-mid-headers", None, LATE_STALL_MID_HEADERS),
    ("jwks-drip-headers", None, DRIP_HEADERS),
    ("jwks-late-stall-mid-body", None, LATE_STALL_MID_BODY),
    ("jwks-drip-body", None, DRIP_BODY),
    ("slow-discovery-then-jwks-stall-before-headers", "slow", STALL_BEFORE_HEADERS),
    ("slow-discovery-then-jwks-stall-mid-body", "slow", Reply(script=(HEAD, STALL))),
    ("discovery-late-stall-mid-headers", LATE_STALL_MID_HEADERS, None),
    ("discovery-drip-headers", DRIP_HEADERS, None),
    ("discovery-late-stall-mid-body", LATE_STALL_MID_BODY, None),
]


def make_fetcher(
    server: JWKSServer,
    *,
    discover: bool,
    http_client: httpx.Client | None = None,
    async_http_client: httpx.AsyncClient | None = None,
) -> JWKSFetcher:
    return JWKSFetcher(
        None if discover else server.jwks_url,
        issuer=server.url if discover else None,
        timeout=TIMEOUT,
        max_bytes=1 << 20,
        allow_insecure_http=True,
        follow_redirects=False,
        http_client=http_client,
        async_http_client=async_http_client,
    )


def established_to(port: int) -> int:
    """Client sockets still connected to 127.0.0.1:``port`` (Linux ``/proc/net/tcp``)."""
    table = Path("/proc/net/tcp")
    if not table.exists():
        pytest.skip("needs /proc/net/tcp")
    count = 0
    for line in table.read_text().splitlines()[1:]:
        fields = line.split()
        remote, state = fields[2], fields[3]
        if state == "01" and int(remote.rsplit(":", 1)[1], 16) == port:  # 01: ESTABLISHED
            count += 1
    return count


def watchdogs() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("jwkit-fetch")]


def timed_fetch(fetcher: JWKSFetcher, mode: str) -> tuple[float, KeySourceError]:
    # The margin is a quarter of a second, and a full collection in a test worker that has
    # run thousands of tests can pause it about that long: the collector runs before the
    # clock starts, not during the fetch. (CI once saw a fetch here take 0.91 s, under a
    # full suite's load; it could not be made to happen alone or under busy loops.)
    gc.collect()
    gc.disable()
    try:
        started = time.monotonic()
        with pytest.raises(KeySourceError) as info:
            if mode == "sync":
                fetcher.fetch()
            else:
                asyncio.run(fetcher.fetch_async())
        return time.monotonic() - started, info.value
    finally:
        gc.enable()


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(
    ("discovery", "jwks"), [s[1:] for s in SCENARIOS], ids=[s[0] for s in SCENARIOS]
)
def test_fetch_ends_at_the_deadline(
    jwks_server: JWKSServer,
    es_key: JWK,
    mode: str,
    discovery: Reply | str | None,
    jwks: Reply | None,
) -> None:
    if discovery is not None:
        jwks_server.serve_discovery()
        if discovery == "slow":
            jwks_server.answer_slowly(LATE, path=DISCOVERY_PATH)
        else:
            assert isinstance(discovery, Reply)
            jwks_server.set(DISCOVERY_PATH, discovery)
    if jwks is None:
        jwks_server.serve_jwks(jwks_of(es_key))
    else:
        jwks_server.set(JWKS_PATH, jwks)
    fetcher = make_fetcher(jwks_server, discover=discovery is not None)
    try:
        elapsed, error = timed_fetch(fetcher, mode)
        assert TIMEOUT - 0.05 < elapsed < TIMEOUT + MARGIN, f"took {elapsed:.3f} s"
        assert error.message == fetcher.timeout_message()
        assert error.code == "jwks_unavailable"
        assert established_to(jwks_server.port) == 0  # the stalled connection was closed
        assert watchdogs() == []
    finally:
        fetcher.close()


def test_client_is_usable_after_a_timeout(jwks_server: JWKSServer, es_key: JWK) -> None:
    jwks_server.set(JWKS_PATH, LATE_STALL_MID_BODY)
    fetcher = make_fetcher(jwks_server, discover=False)
    try:
        elapsed, _ = timed_fetch(fetcher, "sync")
        assert elapsed < TIMEOUT + MARGIN
        jwks_server.serve_jwks(jwks_of(es_key))
        fetched = fetcher.fetch()
        assert fetched.keys is not None and [k.kid for k in fetched.keys] == ["k1"]
        assert watchdogs() == []
    finally:
        fetcher.close()


@pytest.mark.parametrize(
    "jwks",
    [LATE_STALL_MID_HEADERS, DRIP_HEADERS, LATE_STALL_MID_BODY],
    ids=["late-stall-mid-headers", "drip-headers", "late-stall-mid-body"],
)
def test_injected_client_is_bounded_and_left_open(
    jwks_server: JWKSServer, es_key: JWK, jwks: Reply
) -> None:
    jwks_server.set(JWKS_PATH, jwks)
    with httpx.Client() as client:
        fetcher = make_fetcher(jwks_server, discover=False, http_client=client)
        elapsed, error = timed_fetch(fetcher, "sync")
        assert elapsed < TIMEOUT + MARGIN, f"took {elapsed:.3f} s"
        assert error.message == fetcher.timeout_message()
        assert established_to(jwks_server.port) == 0
        jwks_server.serve_jwks(jwks_of(es_key))
        assert fetcher.fetch().keys is not None  # the caller's client still works


def test_injected_async_client_is_bounded(jwks_server: JWKSServer) -> None:
    jwks_server.set(JWKS_PATH, DRIP_HEADERS)

    async def main() -> tuple[float, KeySourceError]:
        async with httpx.AsyncClient() as client:
            fetcher = make_fetcher(jwks_server, discover=False, async_http_client=client)
            started = time.monotonic()
            with pytest.raises(KeySourceError) as info:
                await fetcher.fetch_async()
            return time.monotonic() - started, info.value

    elapsed, error = asyncio.run(main())
    assert elapsed < TIMEOUT + MARGIN, f"took {elapsed:.3f} s"
    assert "timed out after 0.4 s" in error.message


def test_remote_source_with_discovery_keeps_one_deadline(jwks_server: JWKSServer) -> None:
    jwks_server.serve_discovery()
    jwks_server.answer_slowly(LATE, path=DISCOVERY_PATH)
    jwks_server.set(JWKS_PATH, LATE_STALL_MID_HEADERS)
    with RemoteJWKSource(issuer=jwks_server.url, timeout=TIMEOUT, allow_insecure_http=True) as src:
        started = time.monotonic()
        with pytest.raises(KeySourceError, match=r"timed out after 0\.4 s"):
            src.get_keys()
        assert time.monotonic() - started < TIMEOUT + MARGIN
