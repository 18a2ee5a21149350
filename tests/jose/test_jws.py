"""Compact JWS: strict parsing, signing and verification (RFC 7515)."""

from __future__ import annotations

import json

import pytest

from jwkit import JWK, JWKSet, jws
from jwkit.errors import (
    AlgorithmNotAllowed,
    InvalidSignature,
    JWKError,
    KeyNotFound,
    MalformedToken,
    TokenTooLarge,
    UnsupportedAlgorithm,
)
from jwkit.jose.algorithms import ALGORITHMS, CURVES
from jwkit.jose.b64 import b64url_decode, b64url_encode

from ..conftest import private_key, verification_key
from ._crypto import signing_key, verifying_key
from ._forge import segment, token, unsigned


def test_round_trip_every_algorithm(alg: str) -> None:
    signed = jws.sign(b"hello", private_key(alg))
    result = jws.verify(signed, verification_key(alg), algorithms=[alg])
    assert result.payload == b"hello"
    assert result.header["alg"] == alg and result.header["kid"] == private_key(alg).kid
    assert result.key == verification_key(alg)


def test_sign_header_overrides() -> None:
    key = private_key("ES256")
    signed = jws.sign(b"x", key, headers={"kid": None, "cty": "text/plain"})
    header = json.loads(b64url_decode(signed.split(".")[0]))
    assert header == {"alg": "ES256", "cty": "text/plain"}
    with pytest.raises(JWKError):
        jws.sign(b"x", key, headers={"alg": "ES384"})
    with pytest.raises(JWKError):
        jws.sign(b"x", key, headers={"alg": "none"})
    with pytest.raises(JWKError):
        jws.sign(b"x", key.public())
    with pytest.raises(TypeError):
        jws.sign("text", key)  # type: ignore[arg-type]


def test_empty_payload_is_allowed() -> None:
    key = private_key("EdDSA")
    assert jws.verify(jws.sign(b"", key), key.public(), algorithms=["EdDSA"]).payload == b""


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "a",
        "a.b",
        "a.b.c.d",
        "a.b.c.d.e",
        ".e30.",
        "e30.e30.",  # header without alg
        " eyJhbGciOiJFUzI1NiJ9.e30.AA",
    ],
)
def test_malformed_shapes(bad: str) -> None:
    with pytest.raises(MalformedToken):
        jws.verify(bad, verification_key("ES256"), algorithms=["ES256"])


@pytest.mark.parametrize(
    "header",
    [
        b"[1,2]",
        b'"ES256"',
        b"null",
        b'{"alg":"ES256","alg":"HS256"}',  # duplicate member names
        b'{"alg":"ES256"',
        b'{"alg":5}',
        b'{"alg":"ES256","kid":7}',
        b'{"alg":"ES256","x":NaN}',
        b"\xef\xbb\xbf{}",
        b"\xff\xfe",
        b"[" * 5000 + b"]" * 5000,
    ],
)
def test_header_must_be_a_strict_json_object(header: bytes) -> None:
    bad = segment(header) + "." + segment({}) + ".AAAA"
    with pytest.raises(MalformedToken):
        jws.parse(bad)


def test_size_limit() -> None:
    key = private_key("ES256")
    big = jws.sign(b"x" * 20_000, key)
    with pytest.raises(TokenTooLarge) as info:
        jws.verify(big, key.public(), algorithms=["ES256"])
    assert info.value.code == "token_too_large"
    assert jws.verify(big, key.public(), algorithms=["ES256"], max_size=40_000).payload


def test_non_canonical_segments_are_rejected() -> None:
    key = private_key("ES256")
    signed = jws.sign(b"payload", key)
    h, p, s = signed.split(".")
    variants = [
        f"{h}.{p}.{s}=",
        f"{h}=.{p}.{s}",
        f"{h}.{p}=.{s}",
        f"{h}.{p}.{s[:-1]}",
        f"{h}.{p} .{s}",
        f"{h}.{p}.{s}\n",
        f"{h}.{p}.{s.replace('-', '+').replace('_', '/')}" if ("-" in s or "_" in s) else "x",
    ]
    for variant in variants:
        with pytest.raises(MalformedToken):
            jws.verify(variant, key.public(), algorithms=["ES256"])


def test_flipping_unused_trailing_bits_is_rejected() -> None:
    # "payload" is 7 bytes: its base64url ends in a character with 2 unused bits.
    key = private_key("HS256")
    h, p, s = jws.sign(b"payload", key).split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(p[-1])
    twin = alphabet[last | 1] if not last & 1 else alphabet[last & ~1]
    assert twin != p[-1]
    with pytest.raises(MalformedToken):
        jws.verify(f"{h}.{p[:-1]}{twin}.{s}", key, algorithms=["HS256"])


# The group orders as SEC 2 v2 (§2.4.2, §2.5.1, §2.6.1) writes them, in decimal.
SEC2_ORDERS = {
    "ES256": 115792089210356248762697446949407573529996955224135760342422259061068512044369,
    "ES384": int(
        "39402006196394479212279040100143613805079739270465446667946905279627659399113263569398"
        "956308152294913554433653942643"
    ),
    "ES512": int(
        "68647976601306097149819007990813932172694353001433054093944634591855431833976553942450"
        "57746333217197532963996371363321113864768612440380340372808892707005449"
    ),
}


@pytest.mark.parametrize("alg", ["ES256", "ES384", "ES512"])
def test_ecdsa_signature_must_be_raw_fixed_length(alg: str) -> None:
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    key = private_key(alg)
    h, p, s = jws.sign(b"x", key).split(".")
    raw = b64url_decode(s)
    half = len(raw) // 2
    r, ss = int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
    der = encode_dss_signature(r, ss)
    for bad in (der, raw[:-1], raw + b"\x00", b"\x00" + raw, b"\x00" * len(raw)):
        with pytest.raises(InvalidSignature):
            jws.verify(f"{h}.{p}.{b64url_encode(bad)}", key.public(), algorithms=[alg])
    # r or s out of range (>= the group order) with the right length
    n = CURVES[ALGORITHMS[alg].crv].order  # type: ignore[attr-defined]
    assert n == SEC2_ORDERS[alg] and n < 256**half
    for r2, s2 in ((n, ss), (r, n), (n + 1, ss), (r, n + 1), (r + n, ss), (0, ss), (r, 0)):
        if max(r2, s2) >= 256**half:  # r + n can overflow the width; n itself cannot
            continue
        bad = r2.to_bytes(half, "big") + s2.to_bytes(half, "big")
        with pytest.raises(InvalidSignature):
            jws.verify(f"{h}.{p}.{b64url_encode(bad)}", key.public(), algorithms=[alg])


def test_rsa_signature_must_be_modulus_length() -> None:
    key = private_key("RS256")
    h, p, s = jws.sign(b"x", key).split(".")
    raw = b64url_decode(s)
    for bad in (b"\x00" + raw, raw[1:] if raw[0] == 0 else raw[:-1]):
        with pytest.raises(InvalidSignature):
            jws.verify(f"{h}.{p}.{b64url_encode(bad)}", key.public(), algorithms=["RS256"])


def test_algorithms_argument_is_checked() -> None:
    key = private_key("ES256")
    signed = jws.sign(b"x", key)
    with pytest.raises(TypeError):
        jws.verify(signed, key.public(), algorithms="ES256")
    with pytest.raises(ValueError):
        jws.verify(signed, key.public(), algorithms=[])
    with pytest.raises(AlgorithmNotAllowed):
        jws.verify(signed, key.public(), algorithms=["RS256"])
    with pytest.raises(TypeError):
        jws.verify(12345, key.public(), algorithms=["ES256"])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        jws.verify(signed, key.public().to_dict(), algorithms=["ES256"])  # type: ignore[arg-type]


def test_unknown_algorithm() -> None:
    forged = token({"alg": "ES257"}, {}, b"sig")
    with pytest.raises(UnsupportedAlgorithm):
        jws.verify(forged, verification_key("ES256"), algorithms=["ES256", "ES257"])


def test_key_selection_from_a_set() -> None:
    a = private_key("ES256")
    b = JWK.generate("ES256")
    c = private_key("EdDSA")
    keys = JWKSet([a.public(), b.public(), c.public()])
    assert jws.verify(jws.sign(b"1", b), keys, algorithms=["ES256"]).key == b.public()
    # unknown kid
    stray = JWK.generate("ES256", kid="stray")
    with pytest.raises(KeyNotFound) as info:
        jws.verify(jws.sign(b"1", stray), keys, algorithms=["ES256"])
    assert info.value.kid == "stray"
    # no kid: exactly one key must fit the alg
    assert jws.verify(jws.sign(b"1", c, headers={"kid": None}), keys, algorithms=["EdDSA"]).key
    with pytest.raises(KeyNotFound, match="several"):
        jws.verify(jws.sign(b"1", a, headers={"kid": None}), keys, algorithms=["ES256"])
    # a single JWK whose kid differs from the token's
    with pytest.raises(KeyNotFound):
        jws.verify(jws.sign(b"1", b), a.public(), algorithms=["ES256"])


def test_wrong_key_is_an_invalid_signature_that_says_nothing_more(alg: str) -> None:
    other = JWK.generate(alg, kid=private_key(alg).kid, size=2048)
    verify_with = other if other.is_symmetric else other.public()
    signed = jws.sign(b"x", private_key(alg))
    with pytest.raises(InvalidSignature) as info:
        jws.verify(signed, verify_with, algorithms=[alg])
    assert str(info.value) == "signature verification failed"


def test_algorithm_objects_low_level(alg: str) -> None:
    algorithm = ALGORITHMS[alg]
    key = private_key(alg)
    sig = algorithm.sign(signing_key(key), b"input")
    public = verifying_key(verification_key(alg))
    assert algorithm.verify(public, b"input", sig)
    assert not algorithm.verify(public, b"inpuT", sig)
    assert not algorithm.verify(public, b"input", sig[:-1])
    assert algorithm.name == alg and repr(algorithm) == f"<Algorithm {alg}>"


def test_parse_exposes_unverified_parts() -> None:
    parsed = jws.parse(unsigned({"alg": "ES256", "kid": "k"}, {"a": 1}) + ".AAAA")
    assert parsed.alg == "ES256" and parsed.kid == "k"
    assert json.loads(parsed.payload) == {"a": 1}
    assert parsed.signature == b"\x00\x00\x00"


def test_size_is_checked_before_any_decoding() -> None:
    with pytest.raises(TokenTooLarge):
        jws.parse(b"\xff" * 20_000)
    with pytest.raises(TokenTooLarge):
        jws.parse("é" * 20_000)
