"""Fuzz targets: one function per surface, each taking the fuzzer's bytes.

A target returns normally when jwkit handled the input (accepted it, or refused it with a
:class:`~jwkit.JWKitError`); anything else escaping is a finding. Targets also check what
must hold on the way (the hot and plain parse paths agree; what imports, exports). The same
functions are driven by hypothesis in the suite (``tests/fuzz/test_fuzz.py``, bounded) and by
atheris in ``make fuzz`` (``tests/fuzz/run.py``, coverage-guided, long).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from typing import Any

from jwkit import JWK, JWKitError, JWKSet, Verifier
from jwkit.jose import jws, jwt
from jwkit.jose._fast import new_header_cache, parse_object
from jwkit.jose._json import loads_object
from jwkit.jose.algorithms import ALGORITHMS
from jwkit.jose.b64 import b64url_encode
from jwkit.jose.statuslist import StatusList

#: The verifiers' fixed clock: tokens in the seeds are valid at this instant.
NOW = 1_700_000_000
ISSUER = "https://issuer.example"

# Fixed keys (generated once per process: targets must not depend on the run's randomness
# beyond that, and a finding replays with the same keys' kinds).
HMAC_SECRET = b"fuzzing-secret-" * 3
HMAC_KEY = JWK.from_secret(HMAC_SECRET, "HS256", kid="hs")
EC_KEY = JWK.generate("ES256", kid="es")
KEYS = JWKSet([EC_KEY.public()])

_VERIFIERS = (
    # A bare verifier: the hot path with its memoised route and token cache.
    Verifier(HMAC_KEY, algorithms=["HS256"], audience=None, clock=lambda: float(NOW)),
    # Every policy check switched on.
    Verifier(
        HMAC_KEY,
        algorithms=["HS256", "HS384"],
        issuer=ISSUER,
        audience=["api", "other"],
        typ="at+jwt",
        required_claims=["sub"],
        max_age=3600,
        leeway=5,
        azp=["client"],
        token_cache=False,
        clock=lambda: float(NOW),
    ),
)


def _outcome(run: Callable[[], tuple[jws.ParsedJWS, dict[str, Any]]]) -> object:
    try:
        parsed, claims = run()
    except JWKitError as exc:
        return type(exc), str(exc)
    return tuple(parsed), claims


def _tokens(token: str | bytes) -> None:
    """Every decoding path on one token; the hot path must agree with the plain one."""
    headers = new_header_cache()
    hot = _outcome(lambda: parse_object(token, headers=headers))
    again = _outcome(lambda: parse_object(token, headers=headers))  # header now memoised
    plain = _outcome(lambda: (p := jws.parse(token), loads_object(p.payload, "payload")))
    assert hot == plain == again, (hot, plain, again)
    for verifier in _VERIFIERS:
        try:
            claims = verifier.verify(token)
        except JWKitError:
            pass
        else:
            # Accepted: the claims must be printable and serialisable (no lone surrogates).
            json.dumps(claims.to_dict(), ensure_ascii=False).encode("utf-8")
            repr(claims)
    for run in (
        lambda: jws.verify(token, KEYS, algorithms=["ES256", "HS256"]),
        lambda: jwt.decode(token, HMAC_KEY, algorithms=["HS256"], now=NOW, require_exp=False),
        lambda: jwt.decode_unverified(token),
    ):
        try:
            run()
        except JWKitError:
            pass


def fuzz_token(data: bytes) -> None:
    """Raw bytes as a token (and as text, when they decode)."""
    _tokens(data)
    _tokens(data.decode("latin-1"))


def fuzz_token_parts(data: bytes) -> None:
    """Header, payload and signature as raw bytes separated by 0xFF, base64url-encoded here
    so that mutations reach the JSON. An empty signature is replaced by a valid HS256 one,
    so mutated claims reach the claims checks."""
    parts = data.split(b"\xff", 2)
    while len(parts) < 3:
        parts.append(b"")
    header, payload, signature = parts
    signing_input = b64url_encode(header) + "." + b64url_encode(payload)
    if not signature:
        signature = ALGORITHMS["HS256"].sign(HMAC_SECRET, signing_input.encode())
    _tokens(signing_input + "." + b64url_encode(signature))


def _use_key(key: JWK) -> None:
    """A key that imported must be fully usable (a secret has no public form: exported
    with ``private=True``)."""
    json.dumps(key.to_dict(private=key.is_symmetric))
    key.thumbprint()
    if not key.is_symmetric:
        key.public().to_dict()
    for alg in sorted(key.verify_algorithms):
        key.can_verify(alg)
    repr(key)


def fuzz_jwk(data: bytes) -> None:
    """Bytes as a JWK (JSON and PEM) and as a JWK Set (strict and skipping bad keys)."""
    for make in (
        lambda: JWK.from_json(data),
        lambda: JWK.from_pem(data),
    ):
        try:
            _use_key(make())
        except JWKitError:
            pass
    for skip in (False, True):
        try:
            keys = JWKSet.from_json(data, skip_invalid=skip)
        except JWKitError:
            continue
        for key in keys:
            _use_key(key)
        json.dumps(keys.to_dict(private=any(key.is_symmetric for key in keys)))


def fuzz_statuslist(data: bytes) -> None:
    """Bytes as a status list: the first byte picks ``bits``, the rest is ``lst`` (so ZLIB
    streams are fuzzed); and the bytes as the JSON ``status_list`` object itself."""
    objects: list[object] = []
    if data:
        bits = (1, 2, 4, 8, 0, 3, 16, True)[data[0] % 8]
        objects.append({"bits": bits, "lst": b64url_encode(data[1:])})
    try:
        objects.append(loads_object(data, "status_list"))
    except JWKitError:
        pass
    for obj in objects:
        try:
            lst = StatusList.decode(obj, max_bytes=1 << 16)
        except JWKitError:
            continue
        size = len(lst)
        assert size > 0 and lst.bits in (1, 2, 4, 8)
        for index in (0, size // 2, size - 1):
            assert 0 <= lst[index] < (1 << lst.bits)
        assert StatusList.decode(lst.encode(), max_bytes=1 << 16) == lst


TARGETS: dict[str, Callable[[bytes], None]] = {
    "token": fuzz_token,
    "token_parts": fuzz_token_parts,
    "jwk": fuzz_jwk,
    "statuslist": fuzz_statuslist,
}


#: Words libFuzzer splices into inputs (``-dict``): what the parsers look for.
DICTIONARY: dict[str, list[bytes]] = {
    "token": [b".", b"eyJ", b"eyJhbGciOiJIUzI1NiJ9", b"e30", b"AAAA", b"_-", b"="],
    "token_parts": [
        *(
            b'"%s"' % word
            for word in (
                b"alg",
                b"kid",
                b"typ",
                b"crit",
                b"b64",
                b"jwk",
                b"x5c",
                b"HS256",
                b"HS384",
                b"ES256",
                b"none",
                b"at+jwt",
                b"iss",
                b"sub",
                b"aud",
                b"azp",
                b"exp",
                b"nbf",
                b"iat",
                b"hs",
                b"es",
                b"api",
                b"client",
                ISSUER.encode(),
            )
        ),
        b"\\ud800",
        b"\\ud83d\\ude00",
        b"\\u0000",
        b"1700000000",
        b"1e999",
        b"-0",
        b"[]",
        b"{}",
        b"null",
        b"true",
        b"\xff",
    ],
    "jwk": [
        *(
            b'"%s"' % word
            for word in (
                b"kty",
                b"EC",
                b"RSA",
                b"OKP",
                b"oct",
                b"crv",
                b"P-256",
                b"P-384",
                b"P-521",
                b"Ed25519",
                b"x",
                b"y",
                b"d",
                b"n",
                b"e",
                b"k",
                b"p",
                b"q",
                b"dp",
                b"dq",
                b"qi",
                b"keys",
                b"use",
                b"sig",
                b"enc",
                b"key_ops",
                b"verify",
                b"alg",
                b"kid",
                b"AQAB",
            )
        ),
        b"-----BEGIN PUBLIC KEY-----",
        b"-----BEGIN PRIVATE KEY-----",
        b"-----END",
    ],
    "statuslist": [b'"bits"', b'"lst"', b"\x78\x9c", b"\x78\xda", b"\x00\x00\xff\xff"],
}


def _signed_parts(header: dict[str, Any], claims: dict[str, Any]) -> bytes:
    return json.dumps(header).encode() + b"\xff" + json.dumps(claims).encode() + b"\xff"


def seeds() -> dict[str, list[bytes]]:
    """Valid and nearly valid inputs per target: where a fuzzer starts."""
    claims = {
        "iss": ISSUER,
        "sub": "alice",
        "aud": ["api", "x"],
        "azp": "client",
        "iat": NOW - 10,
        "exp": NOW + 600,
        "nbf": NOW - 10,
        "scope": "read write",
        "name": "\u00e9\U0001f600",
    }
    token = jwt.encode(claims, HMAC_KEY, headers={"typ": "at+jwt"})
    es_token = jwt.encode(claims, EC_KEY)
    status = StatusList(64, 2)
    status[3] = 2
    return {
        "token": [token.encode(), es_token.encode(), token.rsplit(".", 1)[0].encode() + b"."],
        "token_parts": [
            _signed_parts({"alg": "HS256", "kid": "hs", "typ": "at+jwt"}, claims),
            _signed_parts({"alg": "HS256", "crit": ["x"], "x": 1}, claims),
            _signed_parts({"alg": "HS256", "kid": "hs"}, {**claims, "aud": "api", "sub": 1}),
            _signed_parts({"alg": "ES256", "kid": "es"}, claims) + b"sig",
        ],
        "jwk": [
            EC_KEY.to_json().encode(),
            EC_KEY.to_json(private=True).encode(),
            HMAC_KEY.to_json(private=True).encode(),
            JWK.generate("EdDSA").to_json().encode(),
            b'{"keys": [' + HMAC_KEY.to_json(private=True).encode() + b"]}",
            JWK.generate("RS256", size=2048).to_json().encode(),
            KEYS.to_json().encode(),
            EC_KEY.to_pem(),
        ],
        "statuslist": [
            b"\x01" + b"x\x9c\x03\x00\x00\x00\x00\x01",
            json.dumps(status.encode()).encode(),
            bytes([1]) + zlib.compress(bytes(range(64))),
        ],
    }
