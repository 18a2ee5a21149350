"""JWT claims validation (RFC 7519 §4.1, §7.2) and the Claims mapping."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest

from jwkit import JWK, Claims, ClaimsPolicy, jwt
from jwkit.errors import (
    ClaimError,
    ExpiredToken,
    InvalidAudience,
    InvalidIssuer,
    InvalidType,
    JWKError,
    MalformedToken,
    MissingClaim,
    NotYetValid,
)
from jwkit.jose.algorithms import ALGORITHMS

from ..conftest import private_key
from ._forge import segment

NOW = 1_800_000_000
KEY = private_key("ES256")
PUB = KEY.public()


def decode(claims: dict[str, Any], **kw: Any) -> Claims:
    kw.setdefault("now", NOW)
    return jwt.decode(jwt.encode(claims, KEY), PUB, algorithms=["ES256"], **kw)


def test_valid_token_and_claims_view() -> None:
    claims = decode(
        {"iss": "https://a", "sub": "u1", "aud": ["api", "x"], "exp": NOW + 60, "iat": NOW,
         "scope": "read write", "nested": {"a": [1]}},
        issuer="https://a",
        audience="api",
    )  # fmt: skip
    assert claims["sub"] == "u1" and claims.sub == "u1"
    assert claims.issuer == "https://a"
    assert claims.audience == ("api", "x")
    assert claims.scopes == frozenset({"read", "write"})
    assert claims.expires_at == datetime.fromtimestamp(NOW + 60, tz=UTC)
    assert claims.issued_at == datetime.fromtimestamp(NOW, tz=UTC)
    assert claims.header["alg"] == "ES256" and claims.header["typ"] == "JWT"
    assert dict(claims) == claims.to_dict()
    with pytest.raises(TypeError):
        claims["sub"] = "other"  # type: ignore[index]
    copy = claims.to_dict()
    copy["nested"]["a"].append(2)
    assert claims["nested"] == {"a": [1]}


def test_scp_list_and_missing_scopes() -> None:
    assert decode({"exp": NOW + 1, "scp": ["a", "b", 3]}).scopes == frozenset({"a", "b"})
    assert decode({"exp": NOW + 1}).scopes == frozenset()
    assert decode({"exp": NOW + 1}).sub is None


def test_exp_required_unless_opted_out() -> None:
    with pytest.raises(MissingClaim) as info:
        decode({"sub": "x"})
    assert info.value.claim == "exp" and info.value.code == "missing_claim"
    assert decode({"sub": "x"}, require_exp=False)["sub"] == "x"


def test_expiry_boundaries_and_leeway() -> None:
    with pytest.raises(ExpiredToken):
        decode({"exp": NOW})  # "on or after" exp is expired
    assert decode({"exp": NOW + 1})
    assert decode({"exp": NOW - 5}, leeway=10)
    with pytest.raises(ExpiredToken):
        decode({"exp": NOW - 10}, leeway=10)


def test_nbf_and_iat() -> None:
    with pytest.raises(NotYetValid):
        decode({"exp": NOW + 100, "nbf": NOW + 1})
    assert decode({"exp": NOW + 100, "nbf": NOW})
    assert decode({"exp": NOW + 100, "nbf": NOW + 5}, leeway=5)
    with pytest.raises(NotYetValid) as info:
        decode({"exp": NOW + 100, "iat": NOW + 30})
    assert info.value.claim == "iat"


def test_max_age() -> None:
    assert decode({"exp": NOW + 100, "iat": NOW - 50}, max_age=60)
    with pytest.raises(ExpiredToken):
        decode({"exp": NOW + 100, "iat": NOW - 61}, max_age=60)
    with pytest.raises(MissingClaim):
        decode({"exp": NOW + 100}, max_age=60)


@pytest.mark.parametrize(
    "value",
    ["1800000100", True, False, None if False else [1], {"t": 1}, -1, 1e300, 2**70],
)
@pytest.mark.parametrize("name", ["exp", "nbf", "iat"])
def test_time_claims_must_be_sane_numbers(name: str, value: Any) -> None:
    claims = {"exp": NOW + 100, name: value}
    with pytest.raises(ClaimError) as info:
        decode(claims)
    assert info.value.claim == name


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_are_malformed(constant: bytes) -> None:
    from jwkit import jws

    payload = b'{"exp":' + constant + b"}"
    token = jws.sign(payload, KEY)
    with pytest.raises(MalformedToken):
        jwt.decode(token, PUB, algorithms=["ES256"])
    assert math.isnan(float("nan"))


def test_float_times_are_fine() -> None:
    assert decode({"exp": NOW + 0.5})


def test_issuer_exact_match() -> None:
    claims = {"exp": NOW + 10, "iss": "https://issuer.example/"}
    assert decode(claims, issuer="https://issuer.example/")
    assert decode(claims, issuer=["https://other", "https://issuer.example/"])
    for bad in ("https://issuer.example", "HTTPS://ISSUER.EXAMPLE/", "https://issuer.example/ "):
        with pytest.raises(InvalidIssuer):
            decode(claims, issuer=bad)
    with pytest.raises(MissingClaim):
        decode({"exp": NOW + 10}, issuer="https://issuer.example/")
    with pytest.raises(InvalidIssuer):
        decode(
            {"exp": NOW + 10, "iss": ["https://issuer.example/"]}, issuer="https://issuer.example/"
        )


def test_audience_forms() -> None:
    assert decode({"exp": NOW + 10, "aud": "api"}, audience="api")
    assert decode({"exp": NOW + 10, "aud": ["x", "api"]}, audience="api")
    assert decode({"exp": NOW + 10, "aud": "api"}, audience=["api", "other"])
    for bad in ("API", ["x"], [], 5, ["api", 5], {"api": 1}):
        with pytest.raises(InvalidAudience):
            decode({"exp": NOW + 10, "aud": bad}, audience="api")
    with pytest.raises(MissingClaim):
        decode({"exp": NOW + 10}, audience="api")


def test_leeway_applies_to_time_claims_only() -> None:
    with pytest.raises(InvalidIssuer):
        decode({"exp": NOW + 10, "iss": "a"}, issuer="b", leeway=10_000)
    with pytest.raises(InvalidAudience):
        decode({"exp": NOW + 10, "aud": "a"}, audience="b", leeway=10_000)


def test_required_claims() -> None:
    assert decode({"exp": NOW + 10, "sub": "s", "jti": "j"}, required=["sub", "jti"])
    with pytest.raises(MissingClaim) as info:
        decode({"exp": NOW + 10, "sub": "s"}, required=["sub", "jti"])
    assert info.value.claim == "jti"
    with pytest.raises(TypeError):
        decode({"exp": NOW + 10}, required="sub")


def test_typ() -> None:
    token = jwt.encode({"exp": NOW + 10}, KEY, headers={"typ": "at+jwt"})
    for expected in ("at+jwt", "application/at+jwt", "AT+JWT"):
        assert jwt.decode(token, PUB, algorithms=["ES256"], typ=expected, now=NOW)
    with pytest.raises(InvalidType):
        jwt.decode(token, PUB, algorithms=["ES256"], typ="JWT", now=NOW)
    untyped = jwt.encode({"exp": NOW + 10}, KEY, headers={"typ": None})
    with pytest.raises(InvalidType):
        jwt.decode(untyped, PUB, algorithms=["ES256"], typ="at+jwt", now=NOW)


@pytest.mark.parametrize(
    "payload",
    [b"[]", b'"x"', b"1", b"", b'{"exp":1,"exp":2}', b"\xff", b'{"a":1', b"[" * 3000],
)
def test_payload_must_be_a_json_object(payload: bytes) -> None:
    from jwkit import jws

    token = jws.sign(payload, KEY)
    with pytest.raises(MalformedToken):
        jwt.decode(token, PUB, algorithms=["ES256"])
    assert segment({}) == "e30"


def test_now_accepts_datetime_and_rejects_junk() -> None:
    when = datetime.fromtimestamp(NOW, tz=UTC)
    assert decode({"exp": NOW + 10}, now=when)
    with pytest.raises(TypeError):
        decode({"exp": NOW + 10}, now="now")


def test_policy_argument_checks() -> None:
    for bad in ({"leeway": -1}, {"leeway": math.inf}, {"max_age": -5}, {"audience": []},
                {"issuer": [1]}):  # fmt: skip
        with pytest.raises((ValueError, TypeError)):
            ClaimsPolicy(**bad)  # type: ignore[arg-type]


def test_decode_unverified() -> None:
    token = jwt.encode({"exp": NOW, "sub": "x"}, KEY)
    header, claims = jwt.decode_unverified(token)
    assert header["kid"] == KEY.kid and claims == {"exp": NOW, "sub": "x"}


def test_encode_refuses_nan_and_non_mappings() -> None:
    with pytest.raises(ValueError):
        jwt.encode({"exp": math.nan}, KEY)
    with pytest.raises(TypeError):
        jwt.encode([("a", 1)], KEY)  # type: ignore[arg-type]


def test_bool_options_are_not_numbers_even_after_caching() -> None:
    assert decode({"exp": NOW + 10}, leeway=1)
    with pytest.raises(ValueError):
        decode({"exp": NOW + 10}, leeway=True)


@pytest.mark.parametrize("alg", ["HS256", "RS256", "EdDSA", "ES256"])
def test_encoder_makes_what_encode_makes(alg: str) -> None:
    key = JWK.generate(alg, kid="k1")
    claims = {"sub": "u", "exp": 2_000_000_000, "name": "é"}
    encoder = jwt.Encoder(key, headers={"typ": "at+jwt", "kid": None})
    assert dict(encoder.header) == {"alg": alg, "typ": "at+jwt"}
    token = encoder.encode(claims)
    reference = jwt.encode(claims, key, headers={"typ": "at+jwt", "kid": None})
    if alg == "ES256":  # randomised signatures: compare what was signed
        assert token.rsplit(".", 1)[0] == reference.rsplit(".", 1)[0]
    else:
        assert token == reference
    assert jwt.decode(token, key.public() if alg != "HS256" else key, algorithms=[alg]) == claims
    with pytest.raises(TypeError):
        encoder.encode([("sub", "u")])  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        encoder.encode({"x": float("nan")})
    with pytest.raises(JWKError):
        jwt.Encoder(
            key.public() if alg != "HS256" else JWK.from_secret(b"k" * 32, "HS256"),
            headers={"alg": "RS256" if alg == "HS256" else alg},
        )


@pytest.mark.parametrize("alg", ["RS256", "EdDSA", "PS256", "ES256"])
def test_encoder_signing_elsewhere_makes_what_the_private_key_makes(alg: str) -> None:
    """``sign=``: the public JWK gives ``alg`` and ``kid``, the function signs (an HSM in the
    key service); the token is the one the private key makes itself."""
    key = JWK.generate(alg, kid="k1")
    algorithm = ALGORITHMS[alg]
    held = jwt.Encoder(key.public(), sign=lambda data: algorithm.sign(key, data))
    here = jwt.Encoder(key)
    assert held.header == here.header == {"alg": alg, "kid": "k1", "typ": "JWT"}
    claims = {"sub": "u", "exp": 2_000_000_000}
    token = held.encode(claims)
    if alg in ("RS256", "EdDSA"):  # deterministic signatures
        assert token == here.encode(claims)
    assert jwt.decode(token, key.public(), algorithms=[alg]) == claims
    with pytest.raises(JWKError):  # a public key alone cannot sign
        jwt.Encoder(key.public())
    with pytest.raises(JWKError):  # nor can a key sign for another algorithm
        jwt.Encoder(key.public(), headers={"alg": "HS256"}, sign=lambda data: b"")
    with pytest.raises(JWKError):  # shared secrets are never "held elsewhere"
        jwt.Encoder(JWK.from_secret(b"k" * 32, "HS256"), sign=lambda data: b"")
