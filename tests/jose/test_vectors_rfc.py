"""RFC 7515 Appendix A, RFC 7638 §3.1 and RFC 8037 Appendix A through jwkit's public API.

Decisions for these vectors:

* RFC 7515 A.1-A.4 verify as JWS. The A.1-A.3 payload is also a JWT whose ``exp`` is
  1300819380 (2011-03-22T18:43:00Z): ``jwt.decode`` must raise ``ExpiredToken`` (code
  ``expired``) now, and accept it with ``now=`` set before that instant in 2011.
* RFC 7515 A.5 (``alg: none``) is rejected with ``unsupported_algorithm`` whatever key and
  allow-list are given, even an allow-list naming ``none``: RFC 7518 §3.6 lets an application
  accept unsecured JWSs only by explicit choice, and jwkit offers no such choice.
* The RFC 7515 keys have no ``alg``. jwkit lets a key without ``alg`` verify every algorithm
  that fits its type and size (RFC 7517 §4.4 makes ``alg`` optional), so they verify as
  printed; bound with ``replace(alg=...)`` they verify too, and bound to another algorithm of
  the same family they refuse the token.
* RFC 7638 and RFC 8037 thumbprints must match to the character.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from jwkit import (
    JWK,
    AlgorithmNotAllowed,
    ExpiredToken,
    InvalidToken,
    JWKError,
    MalformedToken,
    UnsupportedAlgorithm,
)
from jwkit.jose import jws, jwt
from jwkit.jose.algorithms import ALGORITHMS
from jwkit.jose.b64 import b64url_decode

from ._crypto import signing_key, verifying_key

RFC = Path(__file__).resolve().parents[1] / "vectors" / "rfc"
ALL_ALGORITHMS = sorted(ALGORITHMS)
EXP_2011 = 1300819380


@cache
def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RFC / name).read_text(encoding="utf-8"))
    return data


def _examples(name: str) -> dict[str, dict[str, Any]]:
    return {ex["id"]: ex for ex in _load(name)["examples"]}


RFC7515 = _examples("rfc7515_appendix_a.json")
SIGNED = [ex_id for ex_id, ex in RFC7515.items() if ex["result"] == "valid"]
JWTS = [ex_id for ex_id in SIGNED if RFC7515[ex_id]["payload_utf8"].startswith("{")]


def _key(example: dict[str, Any]) -> JWK:
    key = JWK.from_dict(example["jwk"])
    return key if key.kty == "oct" else key.public()


# -- RFC 7515 Appendix A ---------------------------------------------------------------------


def test_rfc7515_examples_present() -> None:
    assert SIGNED == ["rfc7515-A.1", "rfc7515-A.2", "rfc7515-A.3", "rfc7515-A.4"]
    assert JWTS == ["rfc7515-A.1", "rfc7515-A.2", "rfc7515-A.3"]
    assert RFC7515["rfc7515-A.5"]["result"] == "invalid"


@pytest.mark.parametrize("ex_id", SIGNED, ids=[f"{i}-jws" for i in SIGNED])
def test_rfc7515_jws(ex_id: str) -> None:
    example = RFC7515[ex_id]
    verified = jws.verify(example["compact"], _key(example), algorithms=[example["alg"]])
    assert verified.payload == example["payload_utf8"].encode("utf-8")
    # The header is taken as transmitted (A.1 has CRLF and a space inside it).
    assert dict(verified.header) == json.loads(example["protected_header_utf8"])
    assert b64url_decode(example["protected_header_b64u"]) == example[
        "protected_header_utf8"
    ].encode("utf-8")


@pytest.mark.parametrize("ex_id", SIGNED, ids=[f"{i}-bound-key" for i in SIGNED])
def test_rfc7515_jws_with_key_bound_to_alg(ex_id: str) -> None:
    example = RFC7515[ex_id]
    key = _key(example).replace(alg=example["alg"])
    verified = jws.verify(example["compact"], key, algorithms=ALL_ALGORITHMS)
    assert verified.key.alg == example["alg"]


#: Another algorithm each example's key could be bound to by mistake. An HMAC or RSA key fits
#: it, so the key itself must refuse the token; an EC key does not, so binding fails at once.
_OTHER_ALG = {"HS256": "HS512", "RS256": "PS256", "ES256": "ES384", "ES512": "ES256"}


@pytest.mark.parametrize("ex_id", SIGNED, ids=[f"{i}-key-bound-elsewhere" for i in SIGNED])
def test_rfc7515_jws_refused_by_key_bound_to_other_alg(ex_id: str) -> None:
    example = RFC7515[ex_id]
    other = _OTHER_ALG[example["alg"]]
    if example["alg"].startswith("ES"):
        with pytest.raises(JWKError):
            _key(example).replace(alg=other)
        return
    key = _key(example).replace(alg=other)
    with pytest.raises(AlgorithmNotAllowed):
        jws.verify(example["compact"], key, algorithms=ALL_ALGORITHMS)


@pytest.mark.parametrize("ex_id", SIGNED, ids=[f"{i}-not-in-allow-list" for i in SIGNED])
def test_rfc7515_jws_refused_outside_allow_list(ex_id: str) -> None:
    example = RFC7515[ex_id]
    others = [a for a in ALL_ALGORITHMS if a != example["alg"]]
    with pytest.raises(AlgorithmNotAllowed):
        jws.verify(example["compact"], _key(example), algorithms=others)


@pytest.mark.parametrize(
    "ex_id", ["rfc7515-A.1", "rfc7515-A.2"], ids=["rfc7515-A.1-resign", "rfc7515-A.2-resign"]
)
def test_rfc7515_deterministic_signature_reproduced(ex_id: str) -> None:
    example = RFC7515[ex_id]
    key = JWK.from_dict(example["jwk"])
    signature = ALGORITHMS[example["alg"]].sign(
        signing_key(key), example["signing_input"].encode("ascii")
    )
    assert signature == b64url_decode(example["signature_b64u"])


@pytest.mark.parametrize(
    "ex_id", ["rfc7515-A.3", "rfc7515-A.4"], ids=["rfc7515-A.3-resign", "rfc7515-A.4-resign"]
)
def test_rfc7515_ecdsa_key_signs(ex_id: str) -> None:
    """ECDSA is randomized: a fresh signature differs but verifies, and has the fixed length."""
    example = RFC7515[ex_id]
    key = JWK.from_dict(example["jwk"])
    algorithm = ALGORITHMS[example["alg"]]
    signing_input = example["signing_input"].encode("ascii")
    signature = algorithm.sign(signing_key(key), signing_input)
    assert len(signature) == len(b64url_decode(example["signature_b64u"]))
    assert algorithm.verify(verifying_key(key), signing_input, signature)
    assert not algorithm.verify(verifying_key(key), signing_input + b"x", signature)


@pytest.mark.parametrize("ex_id", JWTS, ids=[f"{i}-jwt-expired" for i in JWTS])
def test_rfc7515_jwt_is_expired(ex_id: str) -> None:
    example = RFC7515[ex_id]
    with pytest.raises(ExpiredToken) as caught:
        jwt.decode(example["compact"], _key(example), algorithms=[example["alg"]])
    assert caught.value.code == "expired"
    assert caught.value.claim == "exp"
    # The instant of expiry is already too late (RFC 7519 §4.1.4: "before").
    with pytest.raises(ExpiredToken):
        jwt.decode(example["compact"], _key(example), algorithms=[example["alg"]], now=EXP_2011)


@pytest.mark.parametrize("ex_id", JWTS, ids=[f"{i}-jwt-in-2011" for i in JWTS])
def test_rfc7515_jwt_valid_in_2011(ex_id: str) -> None:
    example = RFC7515[ex_id]
    key = _key(example)
    for now in (EXP_2011 - 1, datetime(2011, 3, 22, 18, 42, 59, tzinfo=UTC)):
        claims = jwt.decode(example["compact"], key, algorithms=[example["alg"]], now=now)
        assert claims["iss"] == "joe" and claims.issuer == "joe"
        assert claims["exp"] == EXP_2011
        assert claims["http://example.com/is_root"] is True
        assert claims.expires_at == datetime.fromtimestamp(EXP_2011, tz=UTC)
    # Leeway applies to time claims: one second of it makes the instant of expiry acceptable.
    jwt.decode(example["compact"], key, algorithms=[example["alg"]], now=EXP_2011, leeway=1)
    # Claims are still checked: iss is compared exactly.
    with pytest.raises(InvalidToken) as caught:
        jwt.decode(
            example["compact"], key, algorithms=[example["alg"]], now=EXP_2011 - 1, issuer="Joe"
        )
    assert caught.value.code == "invalid_issuer"


def test_rfc7515_a4_payload_is_not_a_jwt() -> None:
    example = RFC7515["rfc7515-A.4"]
    with pytest.raises(MalformedToken):
        jwt.decode(example["compact"], _key(example), algorithms=["ES512"], require_exp=False)


@pytest.mark.parametrize(
    "key_id", SIGNED, ids=[f"rfc7515-A.5-none-with-{i[-3:]}-key" for i in SIGNED]
)
def test_rfc7515_a5_unsecured_rejected(key_id: str) -> None:
    token = RFC7515["rfc7515-A.5"]["compact"]
    key = _key(RFC7515[key_id])
    for algorithms in (ALL_ALGORITHMS, ["none"], [*ALL_ALGORITHMS, "none", "None", "NONE"]):
        with pytest.raises(UnsupportedAlgorithm) as caught:
            jws.verify(token, key, algorithms=algorithms)
        assert caught.value.code == "unsupported_algorithm"
        with pytest.raises(UnsupportedAlgorithm):
            jwt.decode(token, key, algorithms=algorithms, now=EXP_2011 - 1)


# -- RFC 7638 §3.1 ---------------------------------------------------------------------------


def test_rfc7638_thumbprint() -> None:
    (example,) = _load("rfc7638_thumbprint.json")["examples"]
    key = JWK.from_dict(example["jwk"])
    assert key.thumbprint() == example["thumbprint_b64u"]
    assert key.thumbprint("sha256") == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    assert b64url_decode(key.thumbprint()) == bytes(example["thumbprint_octets"])
    assert hashlib.sha256(example["canonical_json"].encode()).digest() == bytes(
        example["thumbprint_octets"]
    )
    # Only the required members count (RFC 7638 §3.2): kid, alg and use change nothing.
    assert key.replace(kid=None, alg=None).thumbprint() == example["thumbprint_b64u"]
    assert key.replace(kid="other", alg="PS512", use="sig").thumbprint() == key.thumbprint()
    assert key.kid == "2011-04-29" and key.alg == "RS256"


# -- RFC 8037 Appendix A ---------------------------------------------------------------------

RFC8037 = _examples("rfc8037_appendix_a.json")


def test_rfc8037_a1_a2_public_key_derived() -> None:
    example = RFC8037["rfc8037-A.1-A.2"]
    private = JWK.from_dict(example["private_jwk"])
    public = JWK.from_dict(example["public_jwk"])
    assert private.is_private and not public.is_private
    assert private.public().to_dict() == public.to_dict() == example["public_jwk"]
    assert private.to_dict(private=True) == example["private_jwk"]


def test_rfc8037_a3_thumbprint() -> None:
    example = RFC8037["rfc8037-A.3"]
    expected = example["thumbprint_b64u"]
    assert expected == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    assert JWK.from_dict(example["jwk"]).thumbprint() == expected
    assert JWK.from_dict(RFC8037["rfc8037-A.1-A.2"]["private_jwk"]).thumbprint() == expected
    assert b64url_decode(expected).hex() == example["thumbprint_hex"]


def test_rfc8037_a4_signature_reproduced() -> None:
    example = RFC8037["rfc8037-A.4-A.5"]
    private = JWK.from_dict(RFC8037["rfc8037-A.1-A.2"]["private_jwk"])
    signing_input = example["signing_input"].encode("ascii")
    signature = ALGORITHMS["EdDSA"].sign(signing_key(private), signing_input)
    assert signature.hex() == example["signature_hex"]
    token = jws.sign(example["payload_utf8"].encode("utf-8"), private.replace(alg="EdDSA"))
    assert token == example["compact"]


def test_rfc8037_a5_verify() -> None:
    example = RFC8037["rfc8037-A.4-A.5"]
    public = JWK.from_dict(example["jwk"])
    verified = jws.verify(example["compact"], public, algorithms=["EdDSA"])
    assert verified.payload == example["payload_utf8"].encode("utf-8")
    verified = jws.verify(example["compact"], public.replace(alg="EdDSA"), algorithms=["EdDSA"])
    assert verified.header == {"alg": "EdDSA"}
    # The token says EdDSA: an allow-list with only the fully specified name does not cover it.
    with pytest.raises(AlgorithmNotAllowed):
        jws.verify(example["compact"], public, algorithms=["Ed25519"])
