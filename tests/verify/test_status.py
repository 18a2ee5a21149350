"""Token status checking (issue 12) against a real local issuer: Status List Tokens over
real HTTP, verified with the verifier's own JWKS, cached for their ttl, with the outage
policy and the no-SSRF rule. Time is an injected clock; the server records every request."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from jwkit import (
    JWK,
    ClaimError,
    MissingClaim,
    StatusUnavailable,
    TokenRevoked,
    TokenSuspended,
    Verifier,
)
from jwkit.jose import jwt
from jwkit.jose.statuslist import INVALID, SUSPENDED, StatusList
from jwkit.verify.status import uri_is_under
from tests.support.status_server import PREFIX, StatusServer

AUDIENCE = "api://status"


class Clock:
    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def key() -> JWK:
    return JWK.generate("ES256").replace(kid="k1")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def server(key: JWK) -> Iterator[StatusServer]:
    with StatusServer() as srv:
        srv.serve_jwks({"keys": [key.public().to_dict()]})
        yield srv


def list_token(
    key: JWK,
    uri: str,
    lst: StatusList,
    clock: Clock,
    *,
    ttl: Any = 60,
    typ: str = "statuslist+jwt",
    omit: tuple[str, ...] = (),
    **extra: Any,
) -> str:
    issuer = uri.split("/statuslists/")[0]
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": uri,
        "iat": int(clock.now),
        "exp": int(clock.now) + 3600,
        "ttl": ttl,
        "status_list": lst.encode(),
        **extra,
    }
    for name in omit:
        claims.pop(name, None)
    return jwt.encode(claims, key, headers={"typ": typ})


def access_token(
    key: JWK, server: StatusServer, clock: Clock, idx: int | None, **extra: Any
) -> str:
    claims: dict[str, Any] = {
        "iss": server.issuer,
        "sub": "user-1",
        "aud": AUDIENCE,
        "iat": int(clock.now),
        "exp": int(clock.now) + 3600,
        **extra,
    }
    if idx is not None and "status" not in extra:
        claims["status"] = {"status_list": {"idx": idx, "uri": server.list_url(1)}}
    return jwt.encode(claims, key)


def verifier(server: StatusServer, clock: Clock, **options: Any) -> Verifier:
    return Verifier.from_jwks_url(
        server.jwks_url,
        issuer=server.issuer,
        audience=AUDIENCE,
        allow_insecure_http=True,
        clock=clock,
        **options,
    )


LIST = PREFIX + "/statuslists/1"


def publish(server: StatusServer, key: JWK, clock: Clock, **statuses: int) -> StatusList:
    lst = StatusList(64, 2)
    for index, value in statuses.items():
        lst[int(index[1:])] = value
    server.serve_list(list_token(key, server.list_url(1), lst, clock))
    return lst


def test_valid_revoked_and_suspended_tokens(server, key, clock):
    publish(server, key, clock, i3=INVALID, i4=SUSPENDED)
    with verifier(server, clock) as v:
        assert v.verify(access_token(key, server, clock, 0))["sub"] == "user-1"
        with pytest.raises(TokenRevoked) as revoked:
            v.verify(access_token(key, server, clock, 3))
        assert revoked.value.code == "revoked"
        with pytest.raises(TokenSuspended) as suspended:
            v.verify(access_token(key, server, clock, 4))
        assert suspended.value.code == "suspended"
        with pytest.raises(ClaimError, match="outside the status list"):
            v.verify(access_token(key, server, clock, 64))
    assert server.count(LIST) == 1  # one fetch, then the cached list answered


def test_a_cache_hit_rechecks_the_status_bit(server, key, clock):
    publish(server, key, clock)
    token = access_token(key, server, clock, 7)
    with verifier(server, clock) as v:
        v.verify(token)
        v.verify(token)
        assert token in v.cache
        publish(server, key, clock, i7=INVALID)
        clock.now += 61  # past the list's ttl: the next check refetches
        with pytest.raises(TokenRevoked):
            v.verify(token)
        assert token in v.cache  # kept: a suspension may be lifted; each hit re-checks
        publish(server, key, clock)
        clock.now += 61
        assert v.verify(token)["sub"] == "user-1"


def test_async_paths_answer_the_same(server, key, clock):
    publish(server, key, clock, i3=INVALID)
    token = access_token(key, server, clock, 3)

    async def main() -> None:
        async with verifier(server, clock) as v:
            ok = await v.verify_async(access_token(key, server, clock, 1))
            assert ok["sub"] == "user-1"
            for _ in range(2):  # the full path, then a cache hit: both re-check the bit
                with pytest.raises(TokenRevoked):
                    await v.verify_async(token)
            assert token in v.cache

    asyncio.run(main())


def test_check_status_modes(server, key, clock):
    publish(server, key, clock, i3=INVALID)
    plain = access_token(key, server, clock, None)
    revoked = access_token(key, server, clock, 3)
    with verifier(server, clock, check_status="required") as v:
        with pytest.raises(MissingClaim) as missing:
            v.verify(plain)
        assert missing.value.claim == "status"
        with pytest.raises(TokenRevoked):
            v.verify(revoked)
    with verifier(server, clock, check_status=False) as v:
        v.verify(revoked)
    with verifier(server, clock) as v:
        v.verify(plain)
    assert server.count(LIST) == 1  # only the "required" verifier fetched
    with pytest.raises(ValueError, match="check_status"):
        verifier(server, clock, check_status="yes")
    with pytest.raises(TypeError, match="status_max_stal"):
        verifier(server, clock, status_max_stal=1)


@pytest.mark.parametrize(
    "status",
    [
        "x",
        {"other_mechanism": {}},
        {"status_list": {"idx": -1, "uri": "U"}},
        {"status_list": {"idx": True, "uri": "U"}},
        {"status_list": {"idx": 1}},
    ],
)
def test_malformed_status_claims_are_refused(server, key, clock, status):
    with verifier(server, clock) as v:
        with pytest.raises(ClaimError) as refused:
            v.verify(access_token(key, server, clock, None, status=status))
        assert refused.value.claim == "status"
    assert server.count(LIST) == 0


# -- no SSRF ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("uri", "ok"),
    [
        ("https://a.example/p/1/statuslists/1", True),
        ("https://a.example:443/p/1/statuslists/1", True),
        ("https://A.example/p/1/x", True),
        ("https://a.example/p/1", True),
        ("https://a.example/p/10/statuslists/1", False),
        ("https://a.example/p/1/../2/statuslists/1", False),
        ("https://a.example/p/1/%2e%2e/2/statuslists/1", False),
        ("https://a.example:8443/p/1/statuslists/1", False),
        ("http://a.example/p/1/statuslists/1", False),
        ("https://b.example/p/1/statuslists/1", False),
        ("https://user@a.example/p/1/statuslists/1", False),
        ("https://a.example/p/1/statuslists/1#frag", False),
        ("https://a.example.evil.example/p/1/statuslists/1", False),
        ("not a url", False),
    ],
)
def test_uri_is_under(uri, ok):
    assert uri_is_under(uri, "https://a.example/p/1") is ok


def test_foreign_status_uris_cause_no_traffic(server, key, clock):
    publish(server, key, clock)
    with StatusServer() as elsewhere:
        lst = StatusList(8)
        elsewhere.serve_list(list_token(key, elsewhere.list_url(1), lst, clock))
        foreign = [
            elsewhere.list_url(1),  # another port
            server.origin + "/p/other/statuslists/1",  # same origin, outside the issuer
            server.issuer + "/../other/statuslists/1",
            server.list_url(1).replace("http://", "https://"),  # another scheme (port)
        ]
        with verifier(server, clock) as v:
            for uri in foreign:
                token = access_token(
                    key, server, clock, None, status={"status_list": {"idx": 0, "uri": uri}}
                )
                with pytest.raises(ClaimError, match="not under the issuer"):
                    v.verify(token)
        assert elsewhere.count() == 0
        assert server.count() == server.count(PREFIX + "/jwks.json")  # keys only
        # An explicit allow-list opens exactly that prefix.
        with verifier(server, clock, status_uris=[elsewhere.issuer]) as v:
            token = access_token(
                key,
                server,
                clock,
                None,
                status={"status_list": {"idx": 0, "uri": elsewhere.list_url(1)}},
            )
            with pytest.raises(StatusUnavailable, match="invalid_issuer"):
                v.verify(token)  # fetched, but its iss is not this verifier's issuer
        assert elsewhere.count() == 1


def test_plain_http_needs_allow_insecure_http(server, key, clock):
    publish(server, key, clock)
    v = Verifier(
        JWK.from_dict(key.public().to_dict()),
        issuer=server.issuer,
        audience=AUDIENCE,
        clock=clock,
    )
    with v, pytest.raises(ClaimError, match="not under the issuer"):
        v.verify(access_token(key, server, clock, 0))
    assert server.count() == 0
    with pytest.raises(ValueError, match="https"):
        Verifier(key.public(), issuer=server.issuer, status_uris=["http://x.example/"])


# -- the Status List Token itself ---------------------------------------------------------------
def _bad_lists(key: JWK, server: StatusServer, clock: Clock) -> dict[str, str]:
    uri = server.list_url(1)
    lst = StatusList(8)
    other = JWK.generate("ES256").replace(kid="k1")
    hs = JWK.from_secret(b"s" * 32, "HS256").replace(kid="k1")
    return {
        "invalid_type": list_token(key, uri, lst, clock, typ="JWT"),
        "invalid_claim": list_token(key, uri, lst, clock, sub=uri + "0"),
        "invalid_signature": list_token(other, uri, lst, clock),
        "algorithm_not_allowed": list_token(hs, uri, lst, clock),
        "expired": list_token(key, uri, lst, clock, exp=int(clock.now) - 10),
        "missing_claim": list_token(key, uri, lst, clock, omit=("exp",)),
        "invalid_issuer": list_token(key, uri, lst, clock, iss="https://elsewhere.example"),
        "ttl": list_token(key, uri, lst, clock, ttl=-5),
        "malformed": list_token(key, uri, lst, clock, status_list={"bits": 3, "lst": "eNo"}),
    }


@pytest.mark.parametrize(
    "case",
    [
        "invalid_type",
        "invalid_claim",
        "invalid_signature",
        "algorithm_not_allowed",
        "expired",
        "missing_claim",
        "invalid_issuer",
        "ttl",
        "malformed",
    ],
)
def test_bad_status_list_tokens_fail_closed(server, key, clock, case):
    server.serve_list(_bad_lists(key, server, clock)[case])
    with verifier(server, clock) as v:
        with pytest.raises(StatusUnavailable) as refused:
            v.verify(access_token(key, server, clock, 0))
        assert refused.value.code == "status_unavailable"
        assert refused.value.uri == server.list_url(1)
        assert (case if case != "ttl" else "invalid_claim") in str(refused.value)


def test_an_older_list_never_replaces_a_newer_one(server, key, clock):
    publish(server, key, clock, i2=INVALID)
    token = access_token(key, server, clock, 2)
    with verifier(server, clock) as v:
        with pytest.raises(TokenRevoked):
            v.verify(token)
        older = StatusList(64, 2)
        server.serve_list(list_token(key, server.list_url(1), older, clock_at(clock.now - 100)))
        clock.now += 61
        with pytest.raises(TokenRevoked):  # the replayed, older list is refused
            v.verify(token)


def clock_at(now: float) -> Clock:
    c = Clock()
    c.now = now
    return c


def test_etag_and_ttl_bounds(server, key, clock):
    publish(server, key, clock)
    token = access_token(key, server, clock, 0)
    with verifier(server, clock, status_min_ttl=10, status_max_ttl=100) as v:
        v.verify(token)
        clock.now += 59  # inside ttl 60
        v.verify(token)
        assert server.count(LIST) == 1
        clock.now += 2
        v.verify(token)
        assert server.count(LIST) == 2
        assert server.requests[-1].headers.get("If-None-Match")  # answered 304
        assert server.requests[-1].headers.get("Accept") == "application/statuslist+jwt"
    server.serve_list(list_token(key, server.list_url(1), StatusList(8), clock, ttl=1))
    with verifier(server, clock, status_min_ttl=10) as v:
        v.verify(token)
        clock.now += 5  # ttl 1, but at least 10 s
        v.verify(token)
        assert server.count(LIST) == 3
    server.serve_list(list_token(key, server.list_url(1), StatusList(8), clock, ttl=10**6))
    with verifier(server, clock, status_max_ttl=100) as v:
        v.verify(token)
        clock.now += 101
        v.verify(token)
        assert server.count(LIST) == 5


# -- outage policy ------------------------------------------------------------------------------
def test_outage_uses_the_last_good_list_up_to_max_stale(server, key, clock):
    publish(server, key, clock, i3=INVALID)
    good, revoked = access_token(key, server, clock, 0), access_token(key, server, clock, 3)
    with verifier(server, clock, status_max_stale=300) as v:
        v.verify(good)
        server.down = True
        clock.now += 60 + 299  # ttl over, within max_stale
        assert v.verify(good)["sub"] == "user-1"
        with pytest.raises(TokenRevoked):
            v.verify(revoked)  # the stale list still revokes
        clock.now += 1  # past max_stale: fail closed
        with pytest.raises(StatusUnavailable):
            v.verify(good)
        server.down = False
        clock.now += 120  # past the backoff: recovers on the next check
        assert v.verify(good)["sub"] == "user-1"


def test_fail_open_accepts_when_no_list_can_be_had(server, key, clock, caplog):
    good = access_token(key, server, clock, 0)
    with verifier(server, clock, status_fail_open=True) as v, verifier(server, clock) as closed:
        v.source.get_keys()
        closed.source.get_keys()
        server.down = True  # the keys are cached; no list can be had
        with caplog.at_level("WARNING", logger="jwkit"):
            assert v.verify(good)["sub"] == "user-1"
        assert "status_fail_open" in caplog.text
        with pytest.raises(StatusUnavailable):
            closed.verify(good)


def test_an_expired_list_is_never_served_stale(server, key, clock):
    lst = StatusList(8)
    server.serve_list(list_token(key, server.list_url(1), lst, clock, exp=int(clock.now) + 100))
    good = access_token(key, server, clock, 0)
    with verifier(server, clock, status_max_stale=10_000) as v:
        v.verify(good)
        server.down = True
        clock.now += 101
        with pytest.raises(StatusUnavailable):
            v.verify(good)


# -- single flight ------------------------------------------------------------------------------
def test_threads_share_one_fetch(server, key, clock):
    publish(server, key, clock)
    server.delay = 0.2
    tokens = [access_token(key, server, clock, i) for i in range(8)]
    with verifier(server, clock) as v:
        v.source.get_keys()
        barrier = threading.Barrier(len(tokens))
        errors: list[BaseException] = []

        def run(token: str) -> None:
            barrier.wait()
            try:
                v.verify(token)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(t,)) for t in tokens]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    assert server.count(LIST) == 1


def test_tasks_share_one_fetch(server, key, clock):
    publish(server, key, clock)
    tokens = [access_token(key, server, clock, i) for i in range(8)]

    async def main() -> int:
        async with verifier(server, clock) as v:
            await v.source.get_keys_async()
            server.delay = 0.2
            results = await asyncio.gather(*(v.verify_async(t) for t in tokens))
        return len(results)

    assert asyncio.run(main()) == 8
    assert server.count(LIST) == 1


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_the_hot_path_reads_the_same_bits_as_the_list(bits, key):
    """The cached-list fast path of ``quick`` agrees with ``StatusList`` for every entry."""
    import random

    from jwkit.verify.status import StatusChecker, _State, _Verified

    checker = StatusChecker(
        JWK.from_dict(key.public().to_dict()), algorithms=["ES256"], issuers=("https://i.example",)
    )
    uri = "https://i.example/statuslists/1"
    lst = StatusList(200, bits)
    rng = random.Random(bits)
    for index in range(len(lst)):
        lst[index] = rng.choice([0, 0, 0, 1, min(2, (1 << bits) - 1), (1 << bits) - 1])
    state = _State(uri, None)  # type: ignore[arg-type]
    checker._lists[uri] = state
    checker._apply_success(state, _Verified(lst, 60, time.time() + 3600, time.time()))
    now = time.time()
    expected = {0: None, 1: TokenRevoked, 2: TokenSuspended}
    for index in range(len(lst) + 9):
        claims = {"status": {"status_list": {"idx": index, "uri": uri}}}
        if index >= len(lst):
            with pytest.raises(ClaimError, match="outside"):
                checker.quick(claims, now)
            continue
        want = expected.get(lst[index], TokenRevoked)
        if want is None:
            assert checker.quick(claims, now) is True
        else:
            with pytest.raises(want):
                checker.quick(claims, now)


def test_an_issuer_that_is_not_a_url_has_no_lists(key, clock):
    v = Verifier(key.public(), issuer="not a url [", clock=clock)
    claims = {
        "iss": "not a url [",
        "iat": int(clock.now),
        "exp": int(clock.now) + 60,
        "status": {"status_list": {"idx": 0, "uri": "https://x.example/statuslists/1"}},
    }
    with pytest.raises(ClaimError, match="not under the issuer"):
        v.verify(jwt.encode(claims, key))
    assert v.verify(jwt.encode({k: c for k, c in claims.items() if k != "status"}, key))


def test_async_outage_policy(server, key, clock):
    publish(server, key, clock)
    good = access_token(key, server, clock, 0)

    async def main() -> None:
        async with (
            verifier(server, clock, status_max_stale=100) as v,
            verifier(server, clock, status_max_stale=100, status_fail_open=True) as open_,
        ):
            await v.verify_async(good)
            await open_.verify_async(good)
            server.down = True
            clock.now += 60 + 99  # within max_stale: the last good list answers
            assert (await v.verify_async(good))["sub"] == "user-1"
            clock.now += 2
            with pytest.raises(StatusUnavailable):
                await v.verify_async(good)
            assert (await open_.verify_async(good))["sub"] == "user-1"

    asyncio.run(main())
