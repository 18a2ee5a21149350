"""RemoteJWKSource against a real local HTTP server: caching, cooldown, failures."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import threading
import time

import httpx
import pytest

from jwkit import JWK, KeySourceError
from jwkit.verify.remote import RemoteJWKSource, check_url
from tests.support.jwks_server import DISCOVERY_PATH, JWKS_PATH, JWKSServer, Reply
from tests.verify.conftest import jwks_of, make_key


class Mono:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def source(server: JWKSServer, **options: object) -> RemoteJWKSource:
    options.setdefault("allow_insecure_http", True)
    return RemoteJWKSource(server.jwks_url, **options)  # type: ignore[arg-type]


# -- caching --------------------------------------------------------------------------------------
def test_first_fetch_then_cached_for_max_age(served: JWKSServer, es_key: JWK) -> None:
    mono = Mono()
    with source(served, clock=mono) as src:
        keys = src.get_keys()
        assert [k.kid for k in keys] == ["k1"]
        assert not any(k.is_private for k in keys)
        mono.now += 599
        assert src.get_keys() is keys
        assert served.count(JWKS_PATH) == 1
        mono.now += 2
        src.get_keys()
        assert served.count(JWKS_PATH) == 2


def test_etag_sent_and_304_keeps_keys(served: JWKSServer) -> None:
    mono = Mono()
    with source(served, clock=mono) as src:
        keys = src.get_keys()
        etag = served.requests[0]
        assert "If-None-Match" not in etag.headers
        mono.now += 601
        assert src.get_keys() is keys  # 304: the very same set object
        assert served.requests[1].headers["If-None-Match"].startswith('"')
        health = src.health()
        assert health.ok and not health.stale and health.fetch_count == 2


@pytest.mark.parametrize(
    ("cache_control", "expected"),
    [
        ("max-age=5", 60.0),  # clamped up to min_ttl
        ("public, max-age=120", 120.0),
        ("max-age=999999999", 86400.0),  # clamped down to max_ttl
        ("no-store", 60.0),
        (None, 600.0),  # default_ttl when the server says nothing
        ("max-age=garbage", 600.0),
    ],
)
def test_ttl_from_cache_control(
    jwks_server: JWKSServer, es_key: JWK, cache_control: str | None, expected: float
) -> None:
    jwks_server.serve_jwks(jwks_of(es_key), max_age=None, cache_control=cache_control)
    mono = Mono()
    with source(jwks_server, clock=mono) as src:
        src.get_keys()
        assert src.health().expires_in == pytest.approx(expected)


def test_age_header_is_subtracted(jwks_server: JWKSServer, es_key: JWK) -> None:
    body = json.dumps(jwks_of(es_key)).encode()
    jwks_server.set(
        JWKS_PATH, Reply(body=body, headers={"Cache-Control": "max-age=300", "Age": "100"})
    )
    with source(jwks_server, clock=Mono()) as src:
        src.get_keys()
        assert src.health().expires_in == pytest.approx(200.0)


def test_gzip_body_is_decoded(jwks_server: JWKSServer, es_key: JWK) -> None:
    body = gzip.compress(json.dumps(jwks_of(es_key)).encode())
    jwks_server.set(JWKS_PATH, Reply(body=body, headers={"Content-Encoding": "gzip"}))
    with source(jwks_server) as src:
        assert [k.kid for k in src.get_keys()] == ["k1"]


def test_gzip_bomb_is_refused(jwks_server: JWKSServer) -> None:
    body = gzip.compress(b'{"keys": [' + b" " * (4 << 20) + b"]}")
    assert len(body) < 100_000
    jwks_server.set(JWKS_PATH, Reply(body=body, headers={"Content-Encoding": "gzip"}))
    with source(jwks_server) as src, pytest.raises(KeySourceError, match="more than"):
        src.get_keys()


# -- rotation and unknown kids --------------------------------------------------------------------
def test_rotation_picked_up_within_one_refetch(served: JWKSServer, es_key: JWK) -> None:
    mono = Mono()
    removed: list[list[str | None]] = []
    with source(served, clock=mono, cooldown=30) as src:
        src.subscribe(lambda keys: removed.append([k.kid for k in keys]))
        src.get_keys()
        new = make_key("ES256", "k2")
        served.serve_jwks(jwks_of(new))
        mono.now += 31
        keys = src.refresh_for_kid("k2")
        assert keys is not None and keys.get("k2") is not None and keys.get("k1") is None
        assert served.count(JWKS_PATH) == 2
        assert removed == [["k1"]]


def test_unknown_kid_waits_for_cooldown_and_is_remembered(served: JWKSServer) -> None:
    mono = Mono()
    with source(served, clock=mono, cooldown=30) as src:
        src.get_keys()
        assert src.refresh_for_kid("nope") is None
        assert served.count(JWKS_PATH) == 1  # within the cooldown of the first fetch
        mono.now += 31
        keys = src.refresh_for_kid("nope")
        assert keys is not None and keys.get("nope") is None
        assert served.count(JWKS_PATH) == 2
        mono.now += 10
        src.refresh_for_kid("nope")
        assert served.count(JWKS_PATH) == 2  # remembered as missing


def test_kid_flood_from_threads_costs_one_fetch_per_cooldown(served: JWKSServer) -> None:
    mono = Mono()
    with source(served, clock=mono, cooldown=30) as src:
        src.get_keys()
        mono.now += 31
        barrier = threading.Barrier(20)
        errors: list[BaseException] = []

        def flood(i: int) -> None:
            try:
                barrier.wait()
                for j in range(25):
                    src.refresh_for_kid(f"random-{i}-{j}")
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=flood, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert served.count(JWKS_PATH) == 2  # the first fetch and one refetch for 500 kids


def test_single_flight_in_threads(jwks_server: JWKSServer, es_key: JWK) -> None:
    jwks_server.serve_jwks(jwks_of(es_key), delay=0.3)
    with source(jwks_server) as src:
        barrier = threading.Barrier(20)
        results: list[object] = []

        def fetch() -> None:
            barrier.wait()
            results.append(src.get_keys())

        threads = [threading.Thread(target=fetch) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(results) == 20 and all(r is results[0] for r in results)
        assert jwks_server.count(JWKS_PATH) == 1


def test_single_flight_in_asyncio(jwks_server: JWKSServer, es_key: JWK) -> None:
    jwks_server.serve_jwks(jwks_of(es_key), delay=0.3)

    async def main() -> None:
        async with source(jwks_server) as src:
            results = await asyncio.gather(*(src.get_keys_async() for _ in range(50)))
            assert all(r is results[0] for r in results)
            assert [k.kid for k in results[0]] == ["k1"]
            mono_before = jwks_server.count(JWKS_PATH)
            kid_results = await asyncio.gather(
                *(src.refresh_for_kid_async(f"x{i}") for i in range(50))
            )
            assert kid_results == [None] * 50
            assert jwks_server.count(JWKS_PATH) == mono_before  # within the cooldown

    asyncio.run(main())
    assert jwks_server.count(JWKS_PATH) == 1


def test_a_cancelled_caller_does_not_cancel_the_shared_fetch(
    jwks_server: JWKSServer, es_key: JWK
) -> None:
    jwks_server.serve_jwks(jwks_of(es_key), delay=0.3)

    async def main() -> None:
        async with source(jwks_server, background_refresh=False) as src:
            first = asyncio.ensure_future(src.get_keys_async())
            second = asyncio.ensure_future(src.get_keys_async())
            await asyncio.sleep(0.05)
            first.cancel()
            keys = await second
            assert keys.get("k1") is not None

    asyncio.run(main())
    assert jwks_server.count(JWKS_PATH) == 1


# -- failures -------------------------------------------------------------------------------------
def test_slow_server_times_out_with_key_source_error(jwks_server: JWKSServer, es_key: JWK) -> None:
    jwks_server.serve_jwks(jwks_of(es_key), delay=5)
    with source(jwks_server, timeout=0.5) as src:
        started = time.monotonic()
        with pytest.raises(KeySourceError, match="timed out") as info:
            src.get_keys()
        assert time.monotonic() - started < 2.0
        assert info.value.code == "jwks_unavailable"
        assert info.value.url == jwks_server.jwks_url


def test_slow_server_times_out_async(jwks_server: JWKSServer, es_key: JWK) -> None:
    jwks_server.serve_jwks(jwks_of(es_key), delay=5)

    async def main() -> None:
        async with source(jwks_server, timeout=0.5) as src:
            started = time.monotonic()
            with pytest.raises(KeySourceError, match="timed out"):
                await src.get_keys_async()
            assert time.monotonic() - started < 2.0

    asyncio.run(main())


def test_slow_drip_body_is_cut_at_the_deadline(jwks_server: JWKSServer) -> None:
    body = b'{"keys": [' + b" " * 200 + b"]}"
    jwks_server.set(JWKS_PATH, Reply(body=body, chunk=10, chunk_delay=0.2))
    with source(jwks_server, timeout=0.6) as src:
        started = time.monotonic()
        with pytest.raises(KeySourceError, match="timed out"):
            src.get_keys()
        assert time.monotonic() - started < 2.0


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda s: s.fail(500), "HTTP 500"),
        (lambda s: s.fail(404), "HTTP 404"),
        (lambda s: s.serve_jwks(b"{not json"), "valid JSON"),
        (lambda s: s.serve_jwks(b"[1, 2]"), "JSON object"),
        (lambda s: s.serve_jwks(b'{"keys": "x"}'), "keys"),
        (lambda s: s.serve_jwks({"keys": []}), "no usable"),
        (lambda s: s.serve_jwks(b"\xff\xfe"), "valid JSON"),
        (lambda s: s.serve_huge(2 << 20), "more than"),
        (lambda s: s.serve_huge(2 << 20, content_length=False), "more than"),
        (lambda s: s.go_down(), "failed"),
        (lambda s: s.redirect("https://elsewhere.example/jwks"), "redirect"),
        (lambda s: s.serve_jwks({"keys": [{"kty": "EC"}] * 300}), "more than 256"),
    ],
    ids=[
        "500",
        "404",
        "bad-json",
        "array",
        "keys-not-list",
        "empty",
        "not-utf8",
        "huge",
        "huge-chunked",
        "down",
        "redirect",
        "too-many-keys",
    ],
)
def test_bad_answers_raise_key_source_error(jwks_server: JWKSServer, setup, message: str) -> None:
    setup(jwks_server)
    with source(jwks_server) as src, pytest.raises(KeySourceError, match=message):
        src.get_keys()
    health = src.health()
    assert not health.ok and health.consecutive_failures == 1 and health.last_error


def test_outage_keeps_old_keys_then_gives_up_after_max_stale(
    served: JWKSServer, caplog: pytest.LogCaptureFixture
) -> None:
    mono = Mono()
    with source(served, clock=mono, max_stale=3600) as src:
        keys = src.get_keys()
        served.fail(503)
        mono.now += 601
        with caplog.at_level(logging.WARNING, logger="jwkit"):
            assert src.get_keys() is keys  # stale-if-error
        assert "HTTP 503" in caplog.text and "serving the cached keys" in caplog.text
        health = src.health()
        assert health.ok and health.stale and health.consecutive_failures == 1
        # Backoff: the next second of requests does not hit the server again.
        for _ in range(50):
            assert src.get_keys() is keys
        assert served.count(JWKS_PATH) == 2
        mono.now += 1.5
        src.get_keys()
        assert served.count(JWKS_PATH) == 3  # retried after the 1 s backoff
        served.go_down()
        mono.now += 3600
        with pytest.raises(KeySourceError):
            src.get_keys()
        assert not src.health().ok and src.health().key_count == 0


def test_recovery_after_outage(served: JWKSServer, es_key: JWK) -> None:
    mono = Mono()
    with source(served, clock=mono) as src:
        src.get_keys()
        served.fail(500)
        mono.now += 601
        src.get_keys()
        served.serve_jwks(jwks_of(es_key))
        mono.now += 2
        src.get_keys()
        health = src.health()
        assert health.ok and not health.stale and health.consecutive_failures == 0
        assert health.last_error is not None  # the last error stays visible


def test_no_keys_and_down_fails_fast_during_backoff(jwks_server: JWKSServer) -> None:
    jwks_server.fail(500)
    mono = Mono()
    with source(jwks_server, clock=mono) as src:
        for _ in range(20):
            with pytest.raises(KeySourceError):
                src.get_keys()
        assert jwks_server.count(JWKS_PATH) == 1


def test_hostile_keys_are_skipped_with_a_warning(
    jwks_server: JWKSServer, caplog: pytest.LogCaptureFixture
) -> None:
    good = make_key("ES256", "good")
    private = make_key("ES256", "leaked").to_dict(private=True)
    secret = JWK.from_secret(b"s" * 32, kid="sym").to_dict(private=True)
    enc = {**make_key("RS256", "enc").public().to_dict(), "use": "enc"}
    broken = {"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA", "kid": "broken"}
    unknown = {"kty": "XYZ", "kid": "alien"}
    dup = {**make_key("ES256").public().to_dict(), "kid": "good"}
    jwks_server.serve_jwks(
        {"keys": [good.public().to_dict(), private, secret, enc, broken, unknown, dup]}
    )
    with caplog.at_level(logging.WARNING, logger="jwkit"), source(jwks_server) as src:
        keys = src.get_keys()
    assert [k.kid for k in keys] == ["good"]
    assert keys.get("good") == good.public()
    text = caplog.text
    assert "private key material" in text and "symmetric" in text
    assert "duplicate kid" in text and "cannot verify" in text
    assert "skipped key #4" in text and "skipped key #5" in text
    # nothing secret is logged
    assert private["d"] not in text and secret["k"] not in text


def test_redirect_followed_only_when_enabled(jwks_server: JWKSServer, es_key: JWK) -> None:
    jwks_server.serve_jwks(jwks_of(es_key), path="/real")
    jwks_server.redirect(jwks_server.url + "/real")
    with source(jwks_server, follow_redirects=True) as src:
        assert src.get_keys().get("k1") is not None


def test_https_only_unless_allowed() -> None:
    with pytest.raises(ValueError, match="https"):
        RemoteJWKSource("http://127.0.0.1/jwks")
    with pytest.raises(ValueError, match="https"):
        RemoteJWKSource("ftp://example.com/jwks")
    with pytest.raises(ValueError, match="no host"):
        check_url("https:///jwks", allow_insecure_http=False)
    assert check_url("https://a.example/jwks", allow_insecure_http=False)
    with pytest.raises(ValueError):
        RemoteJWKSource("https://a.example/jwks", timeout=0)
    with pytest.raises(ValueError):
        RemoteJWKSource(None)


def test_injected_clients_are_used_and_left_open(served: JWKSServer) -> None:
    client = httpx.Client(headers={"X-Test": "sync"})
    with source(served, http_client=client) as src:
        src.get_keys()
    assert served.requests[-1].headers["X-Test"] == "sync"
    assert not client.is_closed
    client.close()

    async def main() -> None:
        aclient = httpx.AsyncClient(headers={"X-Test": "async"})
        async with source(served, async_http_client=aclient, background_refresh=False) as src:
            await src.get_keys_async()
        assert served.requests[-1].headers["X-Test"] == "async"
        assert not aclient.is_closed
        await aclient.aclose()

    asyncio.run(main())


# -- discovery ------------------------------------------------------------------------------------
def test_discovery_finds_the_jwks(jwks_server: JWKSServer, es_key: JWK) -> None:
    jwks_server.serve_jwks(jwks_of(es_key), path="/keys")
    jwks_server.serve_discovery(jwks_uri=jwks_server.url + "/keys")
    src = RemoteJWKSource.from_issuer(jwks_server.url, allow_insecure_http=True)
    with src:
        assert src.get_keys().get("k1") is not None
        assert src.jwks_url == jwks_server.url + "/keys"
    assert jwks_server.count(DISCOVERY_PATH) == 1


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"issuer": "https://other.example"}, "another issuer"),
        ({"jwks_uri": 123}, "no jwks_uri"),
        ({"jwks_uri": "ftp://x.example/keys"}, "unusable jwks_uri"),
    ],
)
def test_bad_discovery_documents(jwks_server: JWKSServer, document, message: str) -> None:
    jwks_server.serve_discovery(**document)
    src = RemoteJWKSource.from_issuer(jwks_server.url, allow_insecure_http=True)
    with src, pytest.raises(KeySourceError, match=message):
        src.get_keys()


def test_discovery_jwks_uri_must_be_https(jwks_server: JWKSServer) -> None:
    jwks_server.serve_discovery(issuer="https://idp.example", jwks_uri="http://idp.example/k")
    client = httpx.Client(transport=httpx.HTTPTransport())
    src = RemoteJWKSource.from_issuer("https://idp.example", http_client=client)
    src.fetcher.discovery_url = jwks_server.discovery_url  # the document comes from here
    src.fetcher.allow_insecure_http = False
    with pytest.raises(KeySourceError):
        src.get_keys()
    client.close()


# -- background refresh ---------------------------------------------------------------------------
def test_background_refresh_ahead_of_expiry(jwks_server: JWKSServer, es_key: JWK) -> None:
    jwks_server.serve_jwks(jwks_of(es_key), max_age=1)

    async def main() -> None:
        async with source(jwks_server, min_ttl=1) as src:
            await src.get_keys_async()
            assert jwks_server.count(JWKS_PATH) == 1
            rotated = make_key("ES256", "k2")
            jwks_server.serve_jwks(jwks_of(rotated), max_age=1)
            deadline = time.monotonic() + 5
            while src.health().fetch_count < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            # Refreshed by the background task ahead of expiry: nobody asked for keys, and
            # the set is not stale.
            health = src.health()
            assert health.fetch_count >= 2 and not health.stale
            assert (await src.get_keys_async()).get("k2") is not None

    asyncio.run(main())


def test_aclose_cancels_the_background_task(served: JWKSServer) -> None:
    async def main() -> None:
        src = source(served)
        await src.get_keys_async()
        task = src._bg_task
        assert task is not None and not task.done()
        await src.aclose()
        assert task.done()

    asyncio.run(main())
