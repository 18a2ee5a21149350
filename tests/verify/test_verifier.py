"""Verifier: the full flow with static, file and remote keys, and the verified-token cache."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from jwkit import (
    JWK,
    AlgorithmNotAllowed,
    ClaimError,
    Claims,
    ExpiredToken,
    InvalidIssuer,
    InvalidSignature,
    JWKError,
    JWKSet,
    KeyNotFound,
    KeySourceError,
    MalformedToken,
    MissingClaim,
    NotYetValid,
    TokenTooLarge,
    UnsupportedAlgorithm,
)
from jwkit.jose import jws
from jwkit.verify import StaticKeySource, Verifier
from jwkit.verify.offload import OffloadPool
from jwkit.verify.providers import SAFE_ALGORITHMS
from tests.conftest import FrozenClock
from tests.support.jwks_server import DISCOVERY_PATH, JWKS_PATH, JWKSServer
from tests.verify.conftest import AUDIENCE, ISSUER, jwks_of, make_key, token_for

# Verifiers built without audience= on purpose: the audience is not what these tests check
# (tests/verify/test_audience.py holds the AudienceWarning itself).
pytestmark = pytest.mark.filterwarnings("ignore::jwkit.verify.verifier.AudienceWarning")


def remote(server: JWKSServer, **options: object) -> Verifier:
    options.setdefault("allow_insecure_http", True)
    options.setdefault("issuer", ISSUER)
    return Verifier.from_jwks_url(server.jwks_url, **options)


# -- local keys -----------------------------------------------------------------------------------
@pytest.mark.parametrize("alg", ["ES256", "ES384", "RS256", "PS256", "EdDSA"])
def test_from_jwk_and_jwks_and_pem(alg: str) -> None:
    key = make_key(alg, "a")
    token = token_for(key)
    for verifier in (
        Verifier.from_jwk(key.public().to_dict()),
        Verifier.from_jwk(key.public().to_json()),
        Verifier.from_jwks(jwks_of(key)),
        Verifier.from_jwks(json.dumps(jwks_of(key))),
        Verifier.from_pem(key.to_pem(), alg),
        Verifier(key.public(), issuer=ISSUER, audience=AUDIENCE),
    ):
        with verifier:
            claims = verifier.verify(token)
            assert claims["sub"] == "user-1" and claims.sub == "user-1"
            assert alg in verifier.algorithms and not any(
                a.startswith("HS") for a in verifier.algorithms
            )


def test_from_secret_allows_only_its_alg() -> None:
    secret = b"k" * 32
    key = JWK.from_secret(secret, "HS256")
    verifier = Verifier.from_secret(secret)
    assert verifier.algorithms == {"HS256"}
    assert verifier.verify(token_for(key))["sub"] == "user-1"
    with pytest.raises(InvalidSignature):
        Verifier.from_secret(b"x" * 32).verify(token_for(key))


def test_from_jwk_file_single_key_jwks_and_replacement(tmp_path: Path) -> None:
    old, new = make_key("ES256", "old"), make_key("ES256", "new")
    path = tmp_path / "public_key.json"
    path.write_text(old.public().to_json())
    clock = FrozenClock(time.time())
    verifier = Verifier.from_jwk_file(path, check_interval=0, clock=clock)
    old_token = token_for(old)
    assert verifier.verify(old_token)["sub"] == "user-1"
    assert old_token in verifier.cache  # type: ignore[operator]
    path.write_text(json.dumps(jwks_of(new)))
    assert verifier.verify(old_token)["sub"] == "user-1"  # a hit within the poll interval
    # The replaced file drops the cached token made with the old key on the next poll.
    clock.advance(1.5)
    with pytest.raises(KeyNotFound):
        verifier.verify(old_token)
    assert verifier.verify(token_for(new))["sub"] == "user-1"
    # a broken file keeps the last good keys
    path.write_text("{broken")
    assert verifier.verify(token_for(new))["sub"] == "user-1"
    assert "JWKError" in (verifier.health().last_error or "")


def test_jwk_file_rejects_garbage(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    path.write_text('{"kty": "EC"}')
    with pytest.raises(JWKError):
        Verifier.from_jwk_file(path)


def test_duplicate_kids_in_local_keys_are_refused() -> None:
    a, b = make_key("ES256", "same"), make_key("ES256", "same")
    with pytest.raises(JWKError, match="kid"):
        StaticKeySource(JWKSet([a.public(), b.public()]))


def test_option_mistakes_are_type_and_value_errors(es_key: JWK) -> None:
    with pytest.raises(TypeError):
        Verifier(es_key.public(), algorithms="ES256")
    with pytest.raises(ValueError):
        Verifier(es_key.public(), algorithms=[])
    with pytest.raises(ValueError, match="unsupported"):
        Verifier(es_key.public(), algorithms=["none"])
    with pytest.raises(TypeError):
        Verifier(es_key.public(), token_cache="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Verifier("not a source")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unexpected"):
        Verifier.from_jwk(es_key.public(), bogus=1)


# -- rejection ------------------------------------------------------------------------------------
def test_rejections(es_key: JWK) -> None:
    verifier = Verifier(es_key.public(), issuer=ISSUER, audience=AUDIENCE, token_cache=False)
    good = token_for(es_key)
    header, payload, _ = good.split(".")
    with pytest.raises(MalformedToken):
        verifier.verify("not.a.token!")
    with pytest.raises(TokenTooLarge):
        verifier.verify("a" * 20000)
    other_signature = token_for(es_key, {"jti": "x"}).split(".")[2]
    with pytest.raises(InvalidSignature):
        verifier.verify(f"{header}.{payload}.{other_signature}")
    with pytest.raises(InvalidIssuer):
        verifier.verify(token_for(es_key, {"iss": "https://evil.example"}))
    with pytest.raises(MissingClaim):
        verifier.verify(token_for(es_key, {"iss": None}))
    with pytest.raises(ExpiredToken):
        verifier.verify(token_for(es_key, {"exp": int(time.time()) - 10}))
    with pytest.raises(ClaimError):
        verifier.verify(token_for(es_key, {"aud": "someone-else"}))
    other = make_key("ES256", "k1")
    with pytest.raises(InvalidSignature):
        verifier.verify(token_for(other))
    none_header = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    with pytest.raises(UnsupportedAlgorithm):
        verifier.verify(f"{none_header}.{payload}.")
    with pytest.raises(TypeError):
        verifier.verify(12345)  # type: ignore[arg-type]


def test_hmac_with_a_public_key_is_refused(jwks_server: JWKSServer) -> None:
    rsa = make_key("RS256", "r1")
    jwks_server.serve_jwks(jwks_of(rsa))
    # The classic confusion: an HS256 token naming the RSA key's kid.
    header = {"alg": "HS256", "kid": "r1", "typ": "JWT"}
    segment = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
    body = token_for(rsa).split(".")[1]
    with remote(jwks_server) as verifier:
        assert not any(a.startswith("HS") for a in verifier.algorithms)
        with pytest.raises(AlgorithmNotAllowed):
            verifier.verify(f"{segment}.{body}.AAAA")
    assert jwks_server.count() == 0  # refused before any key was fetched


def test_key_alg_binding(es_key: JWK) -> None:
    # A key that says ES256 cannot verify an ES384 token even when both are allowed.
    es384 = make_key("ES384", "k1")
    verifier = Verifier(
        es_key.public(), algorithms=["ES256", "ES384"], issuer=ISSUER, audience=AUDIENCE
    )
    with pytest.raises((AlgorithmNotAllowed, InvalidSignature)):
        verifier.verify(token_for(es384))


def test_token_without_kid(es_key: JWK) -> None:
    bare = es_key.replace(kid=None)
    token = token_for(bare)
    assert jws.parse(token).kid is None
    assert Verifier.from_jwks(jwks_of(es_key)).verify(token)["sub"] == "user-1"
    two = Verifier.from_jwks(jwks_of(es_key, make_key("ES256", "k2")))
    with pytest.raises(KeyNotFound):
        two.verify(token)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_remembered_route_follows_the_key_set(mode: str) -> None:
    # Two keys with the same kid sign tokens with the same header (one cached header object),
    # so the key and checker the verifier remembers for a header must follow the key set.
    old, new = make_key("ES256", "same"), make_key("ES256", "same")
    t_old, t_new = token_for(old), token_for(new)
    assert t_old.split(".")[0] == t_new.split(".")[0]
    source = StaticKeySource(old.public())
    verifier = Verifier(source, issuer=ISSUER, audience=AUDIENCE, token_cache=False)

    def run(token: str) -> Claims:
        if mode == "sync":
            return verifier.verify(token)
        return asyncio.run(verifier.verify_async(token))

    assert run(t_old)["sub"] == "user-1"
    with pytest.raises(InvalidSignature):
        run(t_new)
    source.replace(new.public())
    with pytest.raises(InvalidSignature):
        run(t_old)
    assert run(t_new)["sub"] == "user-1"
    assert run(t_new)["sub"] == "user-1"  # and again along the remembered route


def test_algorithms_are_fixed_at_construction(es_key: JWK) -> None:
    verifier = Verifier(es_key.public(), issuer=ISSUER, audience=AUDIENCE)
    assert verifier.verify(token_for(es_key))["sub"] == "user-1"
    with pytest.raises(AttributeError):
        verifier.algorithms = frozenset({"HS256"})  # type: ignore[misc]
    assert verifier.algorithms == {"ES256"}


def test_claims_shortcuts(es_key: JWK) -> None:
    verifier = Verifier(es_key.public(), audience=AUDIENCE)
    claims = verifier.verify(token_for(es_key, {"scope": "read write", "exp": 2_000_000_000}))
    assert claims.scopes == {"read", "write"}
    assert claims.expires_at is not None and claims.expires_at.year == 2033
    assert claims.header["kid"] == "k1"
    claims = verifier.verify(token_for(es_key, {"scp": ["a", "b"]}))
    assert claims.scopes == {"a", "b"}


def test_azp(es_key: JWK) -> None:
    verifier = Verifier(es_key.public(), audience=AUDIENCE, azp="client-1")
    assert verifier.verify(token_for(es_key, {"azp": "client-1"}))
    assert verifier.verify(token_for(es_key))  # absent azp with a single audience is fine
    with pytest.raises(ClaimError) as info:
        verifier.verify(token_for(es_key, {"azp": "client-2"}))
    assert info.value.claim == "azp"
    with pytest.raises(MissingClaim):
        verifier.verify(token_for(es_key, {"aud": [AUDIENCE, "other"]}))


# -- the verified-token cache ---------------------------------------------------------------------
def test_cache_hit_returns_the_same_claims_and_rechecks_time(es_key: JWK) -> None:
    clock = FrozenClock(time.time())
    verifier = Verifier(es_key.public(), audience=AUDIENCE, clock=clock)
    token = token_for(es_key, {"exp": int(clock.now) + 60})
    first = verifier.verify(token)
    assert verifier.verify(token) is first
    assert len(verifier.cache) == 1  # type: ignore[arg-type]
    clock.advance(61)
    with pytest.raises(ExpiredToken):
        verifier.verify(token)
    assert token not in verifier.cache  # type: ignore[operator]


def test_cache_respects_leeway_nbf_and_max_age(es_key: JWK) -> None:
    now = float(int(time.time()))
    clock = FrozenClock(now)
    verifier = Verifier(es_key.public(), audience=AUDIENCE, leeway=5, max_age=100, clock=clock)
    token = token_for(es_key, {"iat": int(now), "nbf": int(now), "exp": int(now) + 1000})
    claims = verifier.verify(token)
    clock.now = now + 104
    assert verifier.verify(token) is claims  # within max_age + leeway
    clock.now = now + 105.5
    with pytest.raises(ExpiredToken):
        verifier.verify(token)
    clock.now = now - 6  # before nbf - leeway: not yet valid, even from the cache
    verifier2 = Verifier(es_key.public(), audience=AUDIENCE, leeway=5, clock=clock)
    clock.now = now
    verifier2.verify(token)
    clock.now = now - 6
    with pytest.raises(NotYetValid):
        verifier2.verify(token)
    clock.now = now - 4
    assert verifier2.verify(token)["sub"] == "user-1"


def test_cache_entries_dropped_when_the_key_leaves(es_key: JWK) -> None:
    source = StaticKeySource(es_key.public())
    verifier = Verifier(source, audience=AUDIENCE)
    token = token_for(es_key)
    verifier.verify(token)
    source.replace(make_key("ES256", "k2").public())
    assert token not in verifier.cache  # type: ignore[operator]
    with pytest.raises(KeyNotFound):
        verifier.verify(token)
    # unchanged keys keep their entries
    source2 = StaticKeySource(JWKSet([es_key.public(), make_key("ES256", "x").public()]))
    verifier2 = Verifier(source2, audience=AUDIENCE)
    verifier2.verify(token)
    source2.replace(JWK.from_dict(es_key.public().to_dict()))
    assert token in verifier2.cache  # type: ignore[operator]


def test_cache_is_bounded(es_key: JWK) -> None:
    verifier = Verifier(es_key.public(), audience=AUDIENCE, token_cache=3)
    tokens = [token_for(es_key, {"jti": str(i)}) for i in range(5)]
    for t in tokens:
        verifier.verify(t)
    cache = verifier.cache
    assert cache is not None and len(cache) == 3
    assert tokens[0] not in cache and tokens[4] in cache


def test_failed_tokens_are_never_cached(es_key: JWK) -> None:
    verifier = Verifier(es_key.public(), audience=AUDIENCE)
    token = token_for(es_key, {"aud": "other"})
    for _ in range(2):
        with pytest.raises(ClaimError):
            verifier.verify(token)
    assert len(verifier.cache) == 0  # type: ignore[arg-type]


def test_cache_disabled(es_key: JWK) -> None:
    verifier = Verifier(es_key.public(), audience=AUDIENCE, token_cache=False)
    token = token_for(es_key)
    assert verifier.cache is None
    assert verifier.verify(token) is not verifier.verify(token)


# -- remote keys ----------------------------------------------------------------------------------
def test_remote_rotation_and_revocation_drop_cached_tokens(served: JWKSServer, es_key: JWK) -> None:
    with remote(served, audience=AUDIENCE, cooldown=0) as verifier:
        old_token = token_for(es_key)
        assert verifier.verify(old_token)["sub"] == "user-1"
        new = make_key("ES256", "k2")
        served.serve_jwks(jwks_of(new))
        # A token signed with the new key: unknown kid -> one refetch -> accepted.
        assert verifier.verify(token_for(new))["sub"] == "user-1"
        assert served.count(JWKS_PATH) == 2
        # The old key left the JWKS: its cached token is gone, and it no longer verifies.
        assert old_token not in verifier.cache  # type: ignore[operator]
        with pytest.raises(KeyNotFound):
            verifier.verify(old_token)


def test_garbage_never_causes_network_traffic(served: JWKSServer, es_key: JWK) -> None:
    with remote(served, audience=AUDIENCE) as verifier:
        verifier.verify(token_for(es_key))
        assert served.count() == 1
        stranger = make_key("ES256", "unknown-kid")
        for bad in (
            "garbage",
            "a.b.c",
            token_for(stranger, {"iss": "https://evil.example"}),  # wrong iss
            token_for(stranger, {"iss": None}),  # no iss
            token_for(make_key("HS256", "unknown-kid")),  # alg not allowed
        ):
            with pytest.raises((MalformedToken, InvalidIssuer, MissingClaim, AlgorithmNotAllowed)):
                verifier.verify(bad)
        assert served.count() == 1
        # a kid flood from the right issuer: at most one refetch per cooldown
        for i in range(30):
            with pytest.raises(KeyNotFound):
                verifier.verify(token_for(make_key("ES256", f"flood-{i}")))
        assert served.count() == 1  # the cooldown (30 s) has not passed since the first fetch


def test_outage_keeps_old_keys_working(served: JWKSServer, es_key: JWK) -> None:
    with remote(served, audience=AUDIENCE, token_cache=False, min_ttl=0) as verifier:
        served.serve_jwks(jwks_of(es_key), max_age=0)
        verifier.verify(token_for(es_key))
        served.go_down()
        for _ in range(5):
            assert verifier.verify(token_for(es_key))["sub"] == "user-1"
        health = verifier.health()
        assert health.ok and health.stale and health.last_error


def test_no_keys_at_all_is_key_source_error(jwks_server: JWKSServer, es_key: JWK) -> None:
    jwks_server.fail(502)
    with remote(jwks_server) as verifier, pytest.raises(KeySourceError) as info:
        verifier.verify(token_for(es_key))
    assert info.value.code == "jwks_unavailable"


def test_threads_verify_a_rotated_key_with_one_refetch(served: JWKSServer, es_key: JWK) -> None:
    with remote(served, audience=AUDIENCE, cooldown=0) as verifier:
        verifier.verify(token_for(es_key))
        new = make_key("ES256", "k2")
        served.serve_jwks(jwks_of(new), delay=0.2)
        token = token_for(new)
        barrier = threading.Barrier(20)
        results: list[object] = []

        def run() -> None:
            barrier.wait()
            try:
                results.append(verifier.verify(token)["sub"])
            except Exception as exc:  # pragma: no cover - shows up in the assert
                results.append(exc)

        threads = [threading.Thread(target=run) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == ["user-1"] * 20
        assert served.count(JWKS_PATH) == 2


def test_async_verify_with_gather(served: JWKSServer, es_key: JWK) -> None:
    async def main() -> None:
        async with remote(served, audience=AUDIENCE) as verifier:
            tokens = [token_for(es_key, {"jti": str(i)}) for i in range(30)]
            results = await asyncio.gather(*(verifier.verify_async(t) for t in tokens))
            assert [c["jti"] for c in results] == [str(i) for i in range(30)]
            assert await verifier.verify_async(tokens[0]) is results[0]  # cache hit
            with pytest.raises(KeyNotFound):
                await verifier.verify_async(token_for(make_key("ES256", "nope")))

    asyncio.run(main())
    assert served.count(JWKS_PATH) == 1


def test_cache_hits_poll_the_source(served: JWKSServer, es_key: JWK) -> None:
    clock = FrozenClock(time.time())
    verifier = remote(served, audience=AUDIENCE, clock=clock)
    with verifier:
        token = token_for(es_key)
        verifier.verify(token)
        served.serve_jwks(jwks_of(make_key("ES256", "other")))
        verifier.source._expires_at = float("-inf")  # type: ignore[attr-defined]
        # within the poll interval the hit is served without asking the source
        assert verifier.verify(token)["sub"] == "user-1"
        clock.advance(1.5)
        with pytest.raises(KeyNotFound):
            verifier.verify(token)  # the poll refreshed the set; the key is gone


def test_from_issuer_uses_discovery(jwks_server: JWKSServer, es_key: JWK) -> None:
    issuer = jwks_server.url
    jwks_server.serve_jwks(jwks_of(es_key))
    jwks_server.serve_discovery()
    with Verifier.from_issuer(issuer, allow_insecure_http=True, audience=AUDIENCE) as verifier:
        assert verifier.issuer == issuer
        with pytest.raises(InvalidIssuer):
            verifier.verify(token_for(es_key))  # iss is ISSUER, not the server
        assert jwks_server.count() == 0
        assert verifier.verify(token_for(es_key, {"iss": issuer}))["sub"] == "user-1"
    assert jwks_server.count(DISCOVERY_PATH) == 1 and jwks_server.count(JWKS_PATH) == 1


def test_from_provider_jwkit_and_oidc(jwks_server: JWKSServer, es_key: JWK) -> None:
    issuer = jwks_server.url + "/p/proj1"
    jwks_server.serve_jwks(jwks_of(es_key), path="/p/proj1/.well-known/jwks.json")
    with Verifier.from_provider(
        "jwkit",
        base_url=jwks_server.url,
        project_id="proj1",
        allow_insecure_http=True,
        audience=AUDIENCE,
        cooldown=5,
    ) as verifier:
        assert verifier.issuer == issuer
        assert verifier.source.cooldown == 5  # type: ignore[attr-defined]
        assert verifier.verify(token_for(es_key, {"iss": issuer}))["sub"] == "user-1"
    jwks_server.serve_json(
        {"issuer": issuer, "jwks_uri": jwks_server.url + "/p/proj1/.well-known/jwks.json"},
        path="/p/proj1/.well-known/openid-configuration",
    )
    with Verifier.from_provider(
        "oidc", issuer=issuer, allow_insecure_http=True, audience=AUDIENCE
    ) as verifier:
        assert verifier.verify(token_for(es_key, {"iss": issuer}))["sub"] == "user-1"


def test_from_provider_clerk_jwt_key_needs_no_network(es_key: JWK) -> None:
    rsa = make_key("RS256", "ins_1")
    pem = rsa.public().to_pem().decode()
    one_line = "".join(line for line in pem.splitlines() if "-----" not in line)
    for jwt_key in (pem, one_line):
        verifier = Verifier.from_provider("clerk", jwt_key=jwt_key, audience=AUDIENCE)
        assert verifier.source.remote is False
        assert verifier.verify(token_for(rsa))["sub"] == "user-1"
    verifier = Verifier.from_provider(
        "clerk", jwt_key=one_line, issuer="https://clerk.example.com", audience=AUDIENCE
    )
    with pytest.raises(InvalidIssuer):
        verifier.verify(token_for(rsa))


def test_from_provider_transcodes(tmp_path: Path) -> None:
    rsa = make_key("RS256", "tc")
    path = tmp_path / "public_key.json"
    path.write_text(rsa.public().to_json())
    verifier = Verifier.from_provider("transcodes", public_key_file=str(path), audience=AUDIENCE)
    assert verifier.algorithms == {"RS256"}
    assert verifier.verify(token_for(rsa))["sub"] == "user-1"


def test_from_provider_entra_common_points_to_multiverifier() -> None:
    with pytest.raises(ValueError, match="MultiVerifier"):
        Verifier.from_provider("entra", tenant_id="common")


def test_remote_default_algorithms_are_asymmetric(served: JWKSServer) -> None:
    with remote(served) as verifier:
        assert verifier.algorithms == set(SAFE_ALGORITHMS)
        assert served.count() == 0  # building a remote verifier does no I/O


@pytest.mark.parametrize("leeway", [0, 7])
@pytest.mark.parametrize("max_age", [None, 50])
def test_cached_and_uncached_agree_at_every_time_boundary(
    es_key: JWK, leeway: float, max_age: float | None
) -> None:
    base = float(int(time.time()))
    clock = FrozenClock(base)
    options = {"audience": AUDIENCE, "leeway": leeway, "max_age": max_age, "clock": clock}
    cached = Verifier(es_key.public(), **options)
    uncached = Verifier(es_key.public(), token_cache=False, **options)
    iat, nbf, exp = int(base), int(base) + 10, int(base) + 100
    token = token_for(es_key, {"iat": iat, "nbf": nbf, "exp": exp})
    clock.now = nbf + 1.0
    cached.verify(token)
    edges = [nbf - leeway, iat - leeway, exp + leeway]
    if max_age is not None:
        edges.append(iat + max_age + leeway)
    moments = sorted({e + d for e in edges for d in (-1.0, -0.002, -0.0005, 0.0, 0.0005, 0.002)})
    for moment in moments:
        clock.now = moment
        outcomes = []
        for verifier in (uncached, cached):
            try:
                verifier.verify(token)
                outcomes.append("ok")
            except (ExpiredToken, NotYetValid) as exc:
                outcomes.append(exc.code)
        assert outcomes[0] == outcomes[1], (moment - base, outcomes)
        if token not in cached.cache:  # type: ignore[operator]
            clock.now = nbf + 1.0
            cached.verify(token)  # put it back for the next moment


def test_bytes_tokens_verify_but_are_not_cached(es_key: JWK) -> None:
    verifier = Verifier(es_key.public(), audience=AUDIENCE)
    token = token_for(es_key).encode()
    assert verifier.verify(token)["sub"] == "user-1"
    assert verifier.verify(bytearray(token))["sub"] == "user-1"
    assert len(verifier.cache) == 0  # type: ignore[arg-type]


def test_sync_verify_inside_the_loop_never_deadlocks(jwks_server: JWKSServer, es_key: JWK) -> None:
    jwks_server.serve_jwks(jwks_of(es_key), delay=0.5)
    token = token_for(es_key)

    async def main() -> None:
        async with remote(jwks_server, audience=AUDIENCE) as verifier:
            pending = asyncio.ensure_future(verifier.verify_async(token))
            await asyncio.sleep(0.1)  # the async fetch is now in flight on this thread
            started = time.monotonic()
            with pytest.raises(KeySourceError):
                verifier.verify(token)  # would deadlock if it waited for the async fetch
            assert time.monotonic() - started < 0.3
            assert (await pending)["sub"] == "user-1"
            assert verifier.verify(token)["sub"] == "user-1"

    asyncio.run(main())


def test_keys_older_than_max_stale_drop_cached_tokens(served: JWKSServer, es_key: JWK) -> None:
    from jwkit.verify import RemoteJWKSource

    mono = [1000.0]
    src = RemoteJWKSource(
        served.jwks_url, allow_insecure_http=True, max_stale=60, clock=lambda: mono[0]
    )
    clock = FrozenClock(time.time())
    with src, Verifier(src, audience=AUDIENCE, clock=clock) as verifier:
        token = token_for(es_key)
        verifier.verify(token)
        served.go_down()
        mono[0] += 600 + 30  # expired, but within max_stale: the cached token still works
        clock.advance(1.5)
        assert verifier.verify(token)["sub"] == "user-1"
        mono[0] += 60  # past max_stale: the keys (and the tokens they vouched for) are gone
        clock.advance(1.5)
        with pytest.raises(KeySourceError):
            verifier.verify(token)
        assert len(verifier.cache) == 0  # type: ignore[arg-type]
        assert not verifier.health().ok


def test_cache_invalidation_while_other_threads_read() -> None:
    """drop_keys must not trip over readers reordering the LRU at the same time."""
    import threading

    from jwkit import Claims
    from jwkit.verify.cache import CacheEntry, TokenCache

    key, other = JWK.generate("ES256"), JWK.generate("ES256")
    cache = TokenCache(50_000)
    claims = Claims({"sub": "x"})
    tokens = [f"t{i}" for i in range(20_000)]
    for i, token in enumerate(tokens):
        cache.put(token, CacheEntry(claims, key if i % 2 else other, 0.0, 1e12))
    stop = threading.Event()
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            while not stop.is_set():
                for token in tokens[::97]:
                    cache.get(token)
        except BaseException as exc:  # pragma: no cover - the failure being tested for
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for _ in range(6):
            cache.drop_keys([other])
            for i in range(0, len(tokens), 2):
                cache.put(tokens[i], CacheEntry(claims, other, 0.0, 1e12))
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert not errors
    assert cache.get(tokens[1]) is not None


# -- verify() and verify_async() share one flow and differ in how they fetch (and, with
# offload, where the signature check runs): they must give the same answers
def _matrix(key: JWK) -> dict[str, str | bytes]:
    """One token per way a token can fail (and a few that pass), for the verifier below."""
    good = token_for(key)
    header, payload, signature = good.split(".")
    other_signature = token_for(key, {"jti": "x"}).split(".")[2]

    def segment(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    now = int(time.time())
    claims = f'"iss":"{ISSUER}","aud":"{AUDIENCE}","iat":{now},"exp":{now + 60}'
    twice = f'{{{claims},"sub":"a","sub":"b"}}'
    nested_twice = f'{{{claims},"cnf":{{"a":1,"a":2}}}}'
    return {
        "good": good,
        "good bytes": good.encode(),
        "no kid": token_for(key.replace(kid=None)),
        "malformed": "not.a.token!",
        "two segments": f"{header}.{payload}",
        "too large": "a" * 20000,
        "not ascii": good + "é",
        "bad signature": f"{header}.{payload}.{other_signature}",
        "truncated signature": f"{header}.{payload}.{signature[:-4]}",
        "alg none": f"{segment({'alg': 'none'})}.{payload}.",
        "alg not allowed": f"{segment({'alg': 'RS256', 'kid': 'k1'})}.{payload}.{signature}",
        "alg unknown": f"{segment({'alg': 'ES257', 'kid': 'k1'})}.{payload}.{signature}",
        "crit": f"{segment({'alg': 'ES256', 'kid': 'k1', 'crit': ['x'], 'x': 1})}.{payload}.AA",
        "b64 false": f"{segment({'alg': 'ES256', 'kid': 'k1', 'b64': False})}.{payload}.AA",
        "kid not a string": f"{segment({'alg': 'ES256', 'kid': 7})}.{payload}.{signature}",
        "unknown kid": token_for(key.replace(kid="elsewhere")),
        "other key": token_for(make_key("ES256", "k1")),
        "foreign issuer": token_for(key, {"iss": "https://evil.example"}),
        "issuer not a string": token_for(key, {"iss": ["https://issuer.example"]}),
        "no issuer": token_for(key, {"iss": None}),
        "expired": token_for(key, {"exp": now - 10}),
        "no exp": token_for(key, {"exp": None}),
        "exp a string": token_for(key, {"exp": "soon"}),
        "exp true": token_for(key, {"exp": True}),
        "exp a float": token_for(key, {"exp": now + 60.5}),
        "nbf future": token_for(key, {"nbf": now + 600}),
        "nbf past": token_for(key, {"nbf": now - 600}),
        "iat future": token_for(key, {"iat": now + 600}),
        "iat missing": token_for(key, {"iat": None}),
        "wrong audience": token_for(key, {"aud": "someone-else"}),
        "audience list": token_for(key, {"aud": ["x", AUDIENCE]}),
        "duplicate claim": f"{header}.{_b64(twice)}.{signature}",
        "duplicate in nested": f"{header}.{_b64(nested_twice)}.{signature}",
        "payload not an object": f"{header}.{segment([1, 2])}.{signature}",
        "nested payload": token_for(key, {"cnf": {"jkt": "x"}, "roles": ["a", "b"]}),
    }


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


def _outcome(run: Callable[[], Mapping[str, object]]) -> tuple[str, str] | dict[str, object]:
    try:
        claims = run()
    except Exception as exc:  # the outcome is the point
        return type(exc).__name__, str(exc)
    return dict(claims)


@pytest.mark.parametrize("offload", ["default pool", "own pool", "executor", "off"])
@pytest.mark.parametrize("cached", [False, True])
def test_sync_and_async_give_the_same_answer_to_every_token(
    es_key: JWK, cached: bool, offload: str
) -> None:
    verifier = Verifier(
        es_key.public(), issuer=ISSUER, audience=AUDIENCE, azp=None, token_cache=cached
    )
    matrix = _matrix(es_key)
    sync = {name: _outcome(lambda t=token: verifier.verify(t)) for name, token in matrix.items()}
    where: bool | OffloadPool | ThreadPoolExecutor = {
        "default pool": True,
        "own pool": OffloadPool(1),
        "executor": ThreadPoolExecutor(1),
        "off": False,
    }[offload]
    fresh = Verifier(
        es_key.public(), issuer=ISSUER, audience=AUDIENCE, token_cache=cached, offload=where
    )

    async def run_all() -> dict[str, object]:
        answers: dict[str, object] = {}
        for name, token in matrix.items():
            try:
                answers[name] = dict(await fresh.verify_async(token))
            except Exception as exc:
                answers[name] = (type(exc).__name__, str(exc))
        return answers

    try:
        assert asyncio.run(run_all()) == sync
    finally:
        if isinstance(where, OffloadPool):
            where.close()
        elif isinstance(where, ThreadPoolExecutor):
            where.shutdown()
    # The matrix really exercises the refusals, and the passes pass.
    assert sync["good"] == sync["good bytes"] == sync["no kid"]
    accepted = {name for name, outcome in sync.items() if isinstance(outcome, dict)}
    assert accepted == {
        "good", "good bytes", "no kid", "exp a float", "nbf past", "iat missing",
        "audience list", "nested payload",
    }  # fmt: skip
    assert sync["other key"][0] == sync["bad signature"][0] == "InvalidSignature"
    assert sync["alg none"][0] == "UnsupportedAlgorithm"
    assert sync["unknown kid"][0] == "KeyNotFound"
    assert sync["duplicate claim"][0] == sync["duplicate in nested"][0] == "MalformedToken"
