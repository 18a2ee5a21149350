"""DPoP (RFC 9449) at the resource server: the RFC's examples, hostile proofs, the replay
cache, server nonces and the request flow around a real :class:`~jwkit.Verifier`."""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path
from typing import Any

import pytest

from jwkit import JWK, Verifier
from jwkit.errors import (
    DPoPKeyMismatch,
    DPoPProofReplayed,
    DPoPRequired,
    InvalidDPoPProof,
    InvalidToken,
    UseDPoPNonce,
)
from jwkit.verify.dpop import (
    DPoPVerifier,
    MemoryReplayCache,
    NoCredentials,
    RotatingNonces,
    access_token_hash,
    normalize_htu,
)
from tests.support.dpop import make_proof, unsigned_proof
from tests.verify.conftest import AUDIENCE, ISSUER, token_for

RFC = json.loads(
    (Path(__file__).parents[1] / "vectors" / "rfc" / "rfc9449_dpop.json").read_text("utf-8")
)
NOW = 1_800_000_000.0
URL = "https://api.example/resource"


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- the RFC's examples -------------------------------------------------------------------


@pytest.mark.parametrize("case", RFC["proofs"], ids=lambda c: c["id"])
def test_rfc9449_example_proofs_verify_at_their_iat(case: dict[str, Any]) -> None:
    dpop = DPoPVerifier(clock=Clock(case["iat"]))
    options: dict[str, Any] = {"method": case["method"], "url": case["url"]}
    if case["with_access_token"]:
        options.update(access_token=RFC["access_token"], jkt=RFC["jkt"])
    proof = dpop.verify_proof(case["proof"], **options)
    assert proof.jkt == RFC["jkt"]
    assert proof.jti == case["jti"]
    assert proof.alg == "ES256"
    assert proof.jwk == JWK.from_dict(RFC["jwk"])
    # the same proof again is a replay
    with pytest.raises(DPoPProofReplayed):
        dpop.verify_proof(case["proof"], **options)


@pytest.mark.parametrize("case", RFC["proofs"], ids=lambda c: c["id"])
def test_rfc9449_example_proofs_are_refused_today(case: dict[str, Any]) -> None:
    """Their iat is in 2019: with the real clock they are far too old."""
    with pytest.raises(InvalidDPoPProof, match="too old"):
        DPoPVerifier().verify_proof(case["proof"], method=case["method"], url=case["url"])


def test_rfc9449_jkt_and_ath() -> None:
    assert JWK.from_dict(RFC["jwk"]).thumbprint() == RFC["jkt"]
    assert access_token_hash(RFC["access_token"]) == RFC["ath"]


def test_rfc9449_resource_proof_refused_for_another_token_or_key() -> None:
    case = RFC["proofs"][1]
    opts = {"method": "GET", "url": case["url"]}
    with pytest.raises(DPoPKeyMismatch, match="ath"):
        DPoPVerifier(clock=Clock(case["iat"])).verify_proof(
            case["proof"], access_token="another-token", jkt=RFC["jkt"], **opts
        )
    with pytest.raises(DPoPKeyMismatch, match="another key"):
        DPoPVerifier(clock=Clock(case["iat"])).verify_proof(
            case["proof"], access_token=RFC["access_token"], jkt="x" * 43, **opts
        )


# -- htu normalisation (RFC 9449 §4.3, RFC 3986 §6.2) --------------------------------------


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("https://server.example.com/token", "https://server.example.com/token"),
        ("HTTPS://Server.Example.COM/token", "https://server.example.com/token"),
        ("https://server.example.com:443/token", "https://server.example.com/token"),
        ("http://server.example.com:80/token", "http://server.example.com/token"),
        ("http://server.example.com:8080/token", "http://server.example.com:8080/token"),
        ("https://server.example.com/token?a=1#frag", "https://server.example.com/token"),
        ("https://server.example.com", "https://server.example.com/"),
        ("https://server.example.com/a%2fb%7E", "https://server.example.com/a%2Fb~"),
        ("https://[::1]:8443/x", "https://[::1]:8443/x"),
    ],
)
def test_htu_normalisation(url: str, normal: str) -> None:
    assert normalize_htu(url) == normal


@pytest.mark.parametrize(
    "url",
    ["/token", "ftp://h/x", "https://user@h/x", "https://h:99999/x", "https:///x", "https://h/a b"],
)
def test_htu_that_is_no_http_url(url: str) -> None:
    with pytest.raises(ValueError):
        normalize_htu(url)


def test_htu_matches_after_normalisation_only() -> None:
    key = JWK.generate("ES256")
    dpop = DPoPVerifier(clock=Clock())
    proof = make_proof(key, htu="HTTPS://API.example:443/resource?x=1", iat=NOW)
    assert dpop.verify_proof(proof, method="GET", url=URL + "?y=2").jkt == key.thumbprint()
    with pytest.raises(InvalidDPoPProof, match="htu"):
        dpop.verify_proof(make_proof(key, htu=URL + "/", iat=NOW), method="GET", url=URL)


def test_base_url_replaces_what_a_proxy_hid() -> None:
    key = JWK.generate("ES256")
    dpop = DPoPVerifier(clock=Clock(), base_url="https://api.example")
    proof = make_proof(key, htu=URL, iat=NOW)
    assert dpop.verify_proof(proof, method="GET", url="http://10.0.0.7:8000/resource")


# -- hostile proofs -------------------------------------------------------------------------


def _refused(proof: str, **options: Any) -> InvalidDPoPProof:
    dpop = DPoPVerifier(clock=Clock())
    call: dict[str, Any] = {"method": "GET", "url": URL}
    call.update(options)
    with pytest.raises(InvalidDPoPProof) as info:
        dpop.verify_proof(proof, **call)
    return info.value


def test_wrong_htm() -> None:
    proof = make_proof(JWK.generate("ES256"), htm="POST", iat=NOW)
    assert "htm" in _refused(proof).message


def test_htm_is_case_sensitive() -> None:
    proof = make_proof(JWK.generate("ES256"), htm="get", iat=NOW)
    assert "htm" in _refused(proof).message


def test_wrong_htu() -> None:
    proof = make_proof(JWK.generate("ES256"), htu="https://evil.example/resource", iat=NOW)
    assert "htu" in _refused(proof).message


@pytest.mark.parametrize("age", [60 + 5 + 1, 3600])
def test_old_iat(age: float) -> None:
    proof = make_proof(JWK.generate("ES256"), iat=NOW - age)
    assert "too old" in _refused(proof).message


def test_future_iat() -> None:
    proof = make_proof(JWK.generate("ES256"), iat=NOW + 6)
    assert "future" in _refused(proof).message


def test_iat_window_edges_and_configuration() -> None:
    key = JWK.generate("ES256")
    DPoPVerifier(clock=Clock()).verify_proof(make_proof(key, iat=NOW - 65), method="GET", url=URL)
    DPoPVerifier(clock=Clock()).verify_proof(make_proof(key, iat=NOW + 5), method="GET", url=URL)
    strict = DPoPVerifier(clock=Clock(), max_age=10, leeway=0)
    with pytest.raises(InvalidDPoPProof):
        strict.verify_proof(make_proof(key, iat=NOW - 11), method="GET", url=URL)


@pytest.mark.parametrize("iat", ["1800000000", True, None])
def test_iat_not_a_number(iat: Any) -> None:
    proof = make_proof(JWK.generate("ES256"), extra_claims={"iat": iat})
    assert "iat" in _refused(proof).message


@pytest.mark.parametrize("jti", [None, "", 7, "x" * 257])
def test_bad_jti(jti: Any) -> None:
    proof = make_proof(JWK.generate("ES256"), iat=NOW, jti=jti)
    assert "jti" in _refused(proof).message


def test_replayed_jti_same_verifier() -> None:
    key = JWK.generate("ES256")
    dpop = DPoPVerifier(clock=Clock())
    proof = make_proof(key, iat=NOW, jti="once")
    dpop.verify_proof(proof, method="GET", url=URL)
    with pytest.raises(DPoPProofReplayed):
        dpop.verify_proof(proof, method="GET", url=URL)
    # a new proof that reuses the jti is a replay too
    with pytest.raises(DPoPProofReplayed):
        dpop.verify_proof(make_proof(key, iat=NOW, jti="once"), method="GET", url=URL)


def test_replay_cache_shared_between_verifiers() -> None:
    key = JWK.generate("ES256")
    shared = MemoryReplayCache(clock=Clock())
    proof = make_proof(key, iat=NOW)
    DPoPVerifier(clock=Clock(), replay_cache=shared).verify_proof(proof, method="GET", url=URL)
    with pytest.raises(DPoPProofReplayed):
        DPoPVerifier(clock=Clock(), replay_cache=shared).verify_proof(proof, method="GET", url=URL)


def test_replay_cache_is_bounded_and_forgets_expired_entries() -> None:
    clock = Clock()
    cache = MemoryReplayCache(3, clock=clock)
    assert all(cache.add(f"k{i}", NOW + 10) for i in range(5))
    assert len(cache) == 3
    assert not cache.add("k4", NOW + 10)
    clock.now += 11
    assert cache.add("k4", NOW + 30)  # expired: accepted again
    assert len(cache) == 1


def test_private_jwk_refused() -> None:
    key = JWK.generate("ES256")
    proof = make_proof(key, iat=NOW, jwk=key.to_dict(private=True))
    assert "private" in _refused(proof).message


def test_symmetric_proof_refused() -> None:
    key = JWK.generate("HS256")
    proof = make_proof(key, iat=NOW, jwk=None)
    error = _refused(proof)
    assert "HS256" in error.message or "jwk" in error.message
    oct_jwk = make_proof(key, iat=NOW, jwk={"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQ"})
    assert _refused(oct_jwk).code == "invalid_dpop_proof"


def test_hs256_proof_refused_even_when_listed() -> None:
    with pytest.raises(ValueError, match="asymmetric"):
        DPoPVerifier(algorithms=["ES256", "HS256"])


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_refused(alg: str) -> None:
    key = JWK.generate("ES256")
    header = {"typ": "dpop+jwt", "alg": alg, "jwk": key.public().to_dict()}
    claims = {"jti": "j", "htm": "GET", "htu": URL, "iat": NOW}
    assert "not supported" in _refused(unsigned_proof(header, claims)).message


def test_jwk_and_alg_mismatch_refused() -> None:
    signer = JWK.generate("ES256")
    rsa_public = JWK.generate("RS256").public().to_dict()
    proof = make_proof(signer, iat=NOW, jwk=rsa_public)
    assert "may not verify ES256" in _refused(proof).message
    p384 = JWK.generate("ES384").public().to_dict()
    assert "may not verify" in _refused(make_proof(signer, iat=NOW, jwk=p384)).message
    with_alg = dict(signer.public().to_dict(), alg="ES384")
    assert _refused(make_proof(signer, iat=NOW, jwk=with_alg)).code == "invalid_dpop_proof"


def test_another_key_in_the_header_fails_the_signature() -> None:
    signer, other = JWK.generate("ES256"), JWK.generate("ES256")
    proof = make_proof(signer, iat=NOW, jwk=other.public().to_dict())
    assert "signature" in _refused(proof).message


def test_algorithm_outside_the_allow_list() -> None:
    proof = make_proof(JWK.generate("EdDSA"), iat=NOW)
    dpop = DPoPVerifier(clock=Clock(), algorithms=["ES256"])
    with pytest.raises(InvalidDPoPProof, match="not allowed"):
        dpop.verify_proof(proof, method="GET", url=URL)


@pytest.mark.parametrize("typ", [None, "JWT", "at+jwt", "dpop"])
def test_wrong_typ(typ: str | None) -> None:
    proof = make_proof(JWK.generate("ES256"), iat=NOW, typ=typ)
    assert "typ" in _refused(proof).message


def test_missing_jwk() -> None:
    proof = make_proof(JWK.generate("ES256"), iat=NOW, jwk=None)
    assert "jwk" in _refused(proof).message


def test_oversized_proof_refused_before_decoding() -> None:
    proof = make_proof(JWK.generate("ES256"), iat=NOW, extra_claims={"pad": "x" * 9000})
    assert "larger" in _refused(proof).message


@pytest.mark.parametrize("garbage", ["", "a.b", "a.b.c", "x" * 100, "é.é.é"])
def test_garbage_proofs(garbage: str) -> None:
    assert _refused(garbage).code == "invalid_dpop_proof"


def test_all_errors_are_invalid_tokens() -> None:
    """Code that catches InvalidToken refuses a bad proof too."""
    assert issubclass(InvalidDPoPProof, InvalidToken)
    assert issubclass(DPoPRequired, InvalidToken)


# -- nonces (RFC 9449 §8, §9) ---------------------------------------------------------------


def test_server_nonce_required_then_accepted() -> None:
    clock = Clock()
    nonces = RotatingNonces(secrets.token_bytes(32), period=300, clock=clock)
    dpop = DPoPVerifier(clock=clock, nonces=nonces)
    key = JWK.generate("ES256")
    with pytest.raises(UseDPoPNonce) as info:
        dpop.verify_proof(make_proof(key, iat=NOW), method="GET", url=URL)
    nonce = info.value.nonce
    assert nonce == nonces.current()
    dpop.verify_proof(make_proof(key, iat=NOW, nonce=nonce), method="GET", url=URL)
    with pytest.raises(UseDPoPNonce):
        dpop.verify_proof(make_proof(key, iat=NOW, nonce="made-up"), method="GET", url=URL)
    clock.now += 300  # the previous period's nonce still passes
    dpop.verify_proof(make_proof(key, iat=clock.now, nonce=nonce), method="GET", url=URL)
    clock.now += 300
    with pytest.raises(UseDPoPNonce):
        dpop.verify_proof(make_proof(key, iat=clock.now, nonce=nonce), method="GET", url=URL)


def test_nonces_shared_by_secret() -> None:
    secret = secrets.token_bytes(32)
    a, b = RotatingNonces(secret, clock=Clock()), RotatingNonces(secret, clock=Clock())
    assert b.accepts(a.current())
    assert not RotatingNonces(clock=Clock()).accepts(a.current())


# -- the request flow around a real Verifier ------------------------------------------------


@pytest.fixture
def issuer_key() -> JWK:
    return JWK.generate("ES256")


@pytest.fixture
def dpop(issuer_key: JWK) -> DPoPVerifier:
    verifier = Verifier(issuer_key.public(), issuer=ISSUER, audience=AUDIENCE)
    return DPoPVerifier(verifier)


def test_bound_token_with_its_proof(dpop: DPoPVerifier, issuer_key: JWK) -> None:
    client = JWK.generate("ES256")
    token = token_for(issuer_key, {"cnf": {"jkt": client.thumbprint()}})
    proof = make_proof(client, access_token=token)
    claims = dpop.verify_request(f"DPoP {token}", [proof], method="GET", url=URL)
    assert claims["cnf"]["jkt"] == client.thumbprint()
    again = make_proof(client, access_token=token)  # a new proof for the next request
    assert (
        asyncio.run(dpop.verify_request_async(f"dpop {token}", again, method="GET", url=URL))
        == claims
    )


def test_stolen_bound_token_without_the_key(dpop: DPoPVerifier, issuer_key: JWK) -> None:
    client, thief = JWK.generate("ES256"), JWK.generate("ES256")
    token = token_for(issuer_key, {"cnf": {"jkt": client.thumbprint()}})
    with pytest.raises(DPoPKeyMismatch):
        dpop.verify_request(
            f"DPoP {token}", make_proof(thief, access_token=token), method="GET", url=URL
        )
    with pytest.raises(DPoPRequired):
        dpop.verify_request(f"Bearer {token}", None, method="GET", url=URL)
    with pytest.raises(DPoPRequired):
        dpop.verify(token)


def test_proof_for_another_token(dpop: DPoPVerifier, issuer_key: JWK) -> None:
    client = JWK.generate("ES256")
    token = token_for(issuer_key, {"cnf": {"jkt": client.thumbprint()}})
    other = token_for(issuer_key, {"cnf": {"jkt": client.thumbprint()}, "jti": "2"})
    with pytest.raises(DPoPKeyMismatch, match="ath"):
        dpop.verify_request(
            f"DPoP {token}", make_proof(client, access_token=other), method="GET", url=URL
        )
    with pytest.raises(DPoPKeyMismatch, match="ath"):
        dpop.verify_request(f"DPoP {token}", make_proof(client), method="GET", url=URL)


def test_dpop_scheme_without_a_proof(dpop: DPoPVerifier, issuer_key: JWK) -> None:
    client = JWK.generate("ES256")
    token = token_for(issuer_key, {"cnf": {"jkt": client.thumbprint()}})
    for proofs in (None, [], [""]):
        with pytest.raises(InvalidDPoPProof, match="no DPoP proof"):
            dpop.verify_request(f"DPoP {token}", proofs, method="GET", url=URL)
    two = [make_proof(client, access_token=token), make_proof(client, access_token=token)]
    with pytest.raises(InvalidDPoPProof, match="more than one"):
        dpop.verify_request(f"DPoP {token}", two, method="GET", url=URL)
    with pytest.raises(InvalidDPoPProof, match="more than one"):
        dpop.verify_request(f"DPoP {token}", ", ".join(two), method="GET", url=URL)


def test_unbound_token_with_dpop_scheme(dpop: DPoPVerifier, issuer_key: JWK) -> None:
    client = JWK.generate("ES256")
    token = token_for(issuer_key)
    with pytest.raises(InvalidToken, match="not DPoP-bound"):
        dpop.verify_request(
            f"DPoP {token}", make_proof(client, access_token=token), method="GET", url=URL
        )


def test_unbound_bearer_token_passes_unless_dpop_required(
    dpop: DPoPVerifier, issuer_key: JWK
) -> None:
    token = token_for(issuer_key)
    assert dpop.verify_request(f"Bearer {token}", None, method="GET", url=URL)["sub"] == "user-1"
    strict = DPoPVerifier(dpop.verifier, require_dpop=True)
    with pytest.raises(DPoPRequired):
        strict.verify_request(f"Bearer {token}", None, method="GET", url=URL)


def test_no_credentials(dpop: DPoPVerifier) -> None:
    for header in (None, "", "Basic abc", "DPoP", "DPoP  "):
        with pytest.raises(NoCredentials):
            dpop.verify_request(header, None, method="GET", url=URL)


def test_bad_access_token_is_invalid_token_not_a_proof_error(
    dpop: DPoPVerifier, issuer_key: JWK
) -> None:
    client = JWK.generate("ES256")
    other_issuer = JWK.generate("ES256")
    token = token_for(other_issuer, {"cnf": {"jkt": client.thumbprint()}})
    with pytest.raises(InvalidToken) as info:
        dpop.verify_request(
            f"DPoP {token}", make_proof(client, access_token=token), method="GET", url=URL
        )
    assert not isinstance(info.value, InvalidDPoPProof)


@pytest.mark.parametrize("cnf", ["x", {"jkt": 5}, {"jkt": ""}, []])
def test_malformed_cnf(dpop: DPoPVerifier, issuer_key: JWK, cnf: Any) -> None:
    token = token_for(issuer_key, {"cnf": cnf})
    with pytest.raises(InvalidToken, match="cnf"):
        dpop.verify_request(f"Bearer {token}", None, method="GET", url=URL)


def test_key_import_is_remembered_per_verifier(dpop: DPoPVerifier, issuer_key: JWK) -> None:
    client = JWK.generate("ES256")
    token = token_for(issuer_key, {"cnf": {"jkt": client.thumbprint()}})
    for _ in range(3):
        proof = make_proof(client, access_token=token)
        dpop.verify_request(f"DPoP {token}", proof, method="GET", url=URL)
    assert len(dpop._keys) == 1
