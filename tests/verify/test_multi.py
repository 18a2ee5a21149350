"""MultiVerifier: routing by issuer and issuer template."""

from __future__ import annotations

import asyncio

import pytest

from jwkit import AlgorithmNotAllowed, ClaimError, InvalidIssuer, MissingClaim
from jwkit.verify import MultiVerifier, Verifier
from jwkit.verify.multi import compile_template
from tests.verify.conftest import AUDIENCE, make_key, token_for

# Verifiers built without audience= on purpose: the audience is not what these tests check
# (tests/verify/test_audience.py holds the AudienceWarning itself).
pytestmark = pytest.mark.filterwarnings("ignore::jwkit.verify.verifier.AudienceWarning")


ENTRA = "https://login.microsoftonline.com/{tenantid}/v2.0"
TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"


def test_routes_by_exact_issuer() -> None:
    a, b = make_key("ES256", "a"), make_key("RS256", "b")
    va = Verifier(a.public(), issuer="https://a.example", audience=AUDIENCE)
    vb = Verifier(b.public(), issuer="https://b.example", audience=AUDIENCE)
    multi = MultiVerifier([va, vb])
    assert multi.verify(token_for(a, {"iss": "https://a.example"}))["sub"] == "user-1"
    token_b = token_for(b, {"iss": "https://b.example"})
    claims = multi.verify(token_b)
    assert multi.verify(token_b) is claims  # served from vb's cache
    with pytest.raises(InvalidIssuer):
        multi.verify(token_for(a, {"iss": "https://c.example"}))
    with pytest.raises(MissingClaim):
        multi.verify(token_for(a, {"iss": None}))
    # a token that names b's issuer but is signed by a's key
    with pytest.raises(AlgorithmNotAllowed):
        multi.verify(token_for(a.replace(kid="b"), {"iss": "https://b.example"}))


def test_issuer_template_and_tid() -> None:
    key = make_key("RS256", "ms")
    common = Verifier(key.public(), audience=AUDIENCE)
    multi = MultiVerifier({ENTRA: common})
    iss = f"https://login.microsoftonline.com/{TENANT}/v2.0"
    assert multi.verify(token_for(key, {"iss": iss, "tid": TENANT}))["tid"] == TENANT
    with pytest.raises(ClaimError) as info:
        multi.verify(token_for(key, {"iss": iss, "tid": "someone-else"}))
    assert info.value.claim == "tid"
    for bad in (
        "https://login.microsoftonline.com/a/b/v2.0",
        "https://login.microsoftonline.com//v2.0",
        "https://login.microsoftonline.com.evil.example/x/v2.0",
        f"https://login.microsoftonline.com/{TENANT}/v2.0/extra",
    ):
        with pytest.raises(InvalidIssuer):
            multi.verify(token_for(key, {"iss": bad}))


def test_template_compiles_to_one_segment_per_name() -> None:
    pattern = compile_template("https://x.example/{a}/y.{b}")
    assert pattern.fullmatch("https://x.example/1/y.2")
    assert not pattern.fullmatch("https://x.example/1/2/y.3")
    assert not pattern.fullmatch("https://xxexample/1/y.2")  # dots are literal


def test_azp_and_async() -> None:
    key = make_key("ES256", "k")
    verifier = Verifier(key.public(), issuer="https://a.example", audience=AUDIENCE)
    multi = MultiVerifier({"https://a.example": verifier}, azp=["client-1"])
    good = token_for(key, {"iss": "https://a.example", "azp": "client-1"})
    bad = token_for(key, {"iss": "https://a.example", "azp": "client-2"})

    async def main() -> None:
        assert (await multi.verify_async(good))["azp"] == "client-1"
        assert (await multi.verify_async(good))["azp"] == "client-1"
        with pytest.raises(ClaimError):
            await multi.verify_async(bad)
        with pytest.raises(ClaimError):
            await multi.verify_async(bad)  # cached in the verifier, still refused here
        await multi.aclose()

    asyncio.run(main())


def test_construction_errors() -> None:
    key = make_key("ES256", "k")
    with pytest.raises(ValueError):
        MultiVerifier([])
    with pytest.raises(ValueError):
        MultiVerifier([Verifier(key.public())])
    with pytest.raises(TypeError):
        MultiVerifier({"https://a.example": "nope"})  # type: ignore[dict-item]
