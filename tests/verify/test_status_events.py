"""Push (issue 12): a verifier listening to its issuer's ``/events`` stream refetches a
status list or the key set as soon as an event says it changed, over real HTTP and real
Server-Sent Events (``tests/support/status_server.py``). Events are hints only.

Time is frozen by an injected clock, so a list is refetched only because of an event, never
because its ttl ran out; the tests wait on conditions (requests seen, events handled)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from jwkit import JWK, TokenRevoked, Verifier
from jwkit.jose import jwt
from jwkit.jose.statuslist import INVALID, StatusList
from tests.support.status_server import PREFIX, StatusServer

# Verifiers built without audience= on purpose: token status, not the audience, is what these
# tests check (tests/verify/test_audience.py holds the AudienceWarning itself).
pytestmark = pytest.mark.filterwarnings("ignore::jwkit.verify.verifier.AudienceWarning")

LIST = PREFIX + "/statuslists/1"
JWKS = PREFIX + "/jwks.json"
EVENTS = PREFIX + "/events"


class Clock:
    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def key() -> JWK:
    return JWK.generate("ES256").replace(kid="k1")


@pytest.fixture
def server(key: JWK) -> Iterator[StatusServer]:
    with StatusServer() as srv:
        srv.serve_jwks({"keys": [key.public().to_dict()]})
        yield srv


def publish_list(server: StatusServer, key: JWK, iat: int, *revoked: int) -> None:
    lst = StatusList(32)
    for index in revoked:
        lst[index] = INVALID
    claims = {
        "iss": server.issuer,
        "sub": server.list_url(1),
        "iat": iat,
        "exp": iat + 3600,
        "ttl": 3600,
        "status_list": lst.encode(),
    }
    server.serve_list(jwt.encode(claims, key, headers={"typ": "statuslist+jwt"}))


def access_token(key: JWK, server: StatusServer, idx: int, **extra: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": server.issuer,
        "sub": "user-1",
        "iat": now,
        "exp": now + 3600,
        "status": {"status_list": {"idx": idx, "uri": server.list_url(1)}},
        **extra,
    }
    return jwt.encode(claims, key)


def listening(server: StatusServer, clock: Clock) -> Verifier:
    return Verifier.from_jwks_url(
        server.jwks_url,
        issuer=server.issuer,
        allow_insecure_http=True,
        clock=clock,
        status_events=True,
    )


def test_an_event_revokes_at_once_and_close_stops_the_thread(server, key):
    clock = Clock()
    publish_list(server, key, int(clock.now) - 10)
    token = access_token(key, server, 5)
    v = listening(server, clock)
    try:
        v.verify(token)  # starts the listener, fetches and caches the list
        listener = v._events
        assert listener is not None
        # the resync on connecting (events sent before it were missed) and the opening frame
        assert listener.wait_handled(2)
        publish_list(server, key, int(clock.now), 5)  # revoke index 5
        server.publish("status", {"uri": server.list_url(1)})
        assert listener.wait_handled(3)
        with pytest.raises(TokenRevoked):
            v.verify(token)  # a cache hit, answered from the refetched list
        # the first fetch, the event's refetch, and the connect resync's when the list was
        # cached before the stream opened (the verifier starts listening as it verifies)
        assert server.count(LIST) in (2, 3)
    finally:
        v.close()
    assert not listener.running
    server.wait_for(lambda: server.streams() == 0)


def test_events_are_only_hints(server, key):
    clock = Clock()
    publish_list(server, key, int(clock.now) - 10)
    token = access_token(key, server, 5)
    with listening(server, clock) as v:
        v.verify(token)
        listener = v._events
        assert listener is not None and listener.wait_handled(2)  # connect resync, opening
        # A forged "revocation" (nothing changed on the server), an unknown URI, garbage:
        # each at most causes a conditional refetch of a list already cached.
        server.publish("status", {"uri": server.list_url(1), "revoked": [5]})
        server.publish("status", {"uri": "https://evil.example/list"})
        server.publish("status", {"nonsense": True})
        server.publish("unknown", {"uri": server.list_url(1)})
        assert listener.wait_handled(6)
        assert v.verify(token)["sub"] == "user-1"
        # one fetch, three hints (304s) and maybe the connect resync; "unknown" is ignored
        assert server.count(LIST) in (4, 5)
        assert all(r.path != "/list" for r in server.requests)  # never the evil URL


def test_reconnects_and_resyncs_after_a_drop(server, key):
    clock = Clock()
    publish_list(server, key, int(clock.now) - 10)
    token = access_token(key, server, 5)
    with listening(server, clock) as v:
        v.verify(token)
        listener = v._events
        assert listener is not None and listener.wait_handled(2)  # connect resync, opening
        publish_list(server, key, int(clock.now), 5)
        server.drop_streams()  # the revocation event is lost with the connection ...
        assert listener.wait_handled(3)  # ... so the reconnect refetches what it holds
        with pytest.raises(TokenRevoked):
            v.verify(token)
        assert server.count(EVENTS) >= 2


def test_a_keys_event_refetches_the_jwks(server, key):
    clock = Clock()
    publish_list(server, key, int(clock.now) - 10)
    with listening(server, clock) as v:
        v.verify(access_token(key, server, 1))
        listener = v._events
        assert listener is not None and listener.wait_handled(2)  # connect resync, opening
        before = server.count(JWKS)
        server.publish("keys", {"jwks_uri": server.jwks_url})
        assert listener.wait_handled(3)
        assert server.count(JWKS) == before + 1


def test_async_listener_is_a_task_closed_by_aclose(server, key):
    clock = Clock()
    publish_list(server, key, int(clock.now) - 10)
    token = access_token(key, server, 7)

    async def main() -> None:
        v = listening(server, clock)
        await v.verify_async(token)
        listener = v._events
        assert listener is not None and listener._task is not None
        assert await asyncio.to_thread(listener.wait_handled, 2)  # connect resync, opening
        publish_list(server, key, int(clock.now), 7)
        server.publish("status", {"uri": server.list_url(1)})
        assert await asyncio.to_thread(listener.wait_handled, 3)
        with pytest.raises(TokenRevoked):
            await v.verify_async(token)
        await v.aclose()
        assert listener._task.done()

    asyncio.run(main())
    server.wait_for(lambda: server.streams() == 0)


def test_status_events_needs_one_issuer(server):
    with pytest.raises(ValueError, match="one issuer"):
        Verifier.from_jwks_url(server.jwks_url, allow_insecure_http=True, status_events=True)
