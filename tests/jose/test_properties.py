"""Property tests (hypothesis) for the JOSE core.

* Every algorithm round-trips: what jwkit signs, jwkit verifies, payload and claims intact.
* One key's material bound to two algorithms of its family: each refuses the other's tokens.
* Flipping any single bit of a token is rejected — a bit of the decoded bytes of any of the
  three segments (re-encoded properly), or a bit of any character of the token text.
* Random input never raises anything but a ``JWKitError``: strings and bytes as tokens, tokens
  built from random headers, random JSON and bytes as JWKs and JWK Sets, valid JWKs with one
  member replaced by junk, random PEM, and random signatures at the algorithm layer; P-521
  coordinates that are not reduced modulo p are refused.

Example counts are kept moderate so the suite stays fast; hypothesis's database (``.hypothesis``)
remembers any failure it finds and replays it first.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from jwkit import JWK, AlgorithmNotAllowed, InvalidToken, JWKError, JWKitError, JWKSet
from jwkit.jose import jws, jwt
from jwkit.jose._fast import new_header_cache, parse_object
from jwkit.jose._json import loads_checked, loads_object
from jwkit.jose.algorithms import ALGORITHMS
from jwkit.jose.b64 import b64url_decode, b64url_encode

from ._crypto import signing_key, verifying_key

ALGS = sorted(ALGORITHMS)
#: For tests parametrized over all 14 algorithms (so 14x this many examples in all).
SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: For the single fuzz tests.
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@cache
def _signing_key(alg: str) -> JWK:
    return JWK.generate(alg)


def _verifying_key(alg: str) -> JWK:
    key = _signing_key(alg)
    return key if key.kty == "oct" else key.public()


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=16)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
#: Claims that decode() validates are left out: the round trip is about carrying data intact.
_VALIDATED = {"exp", "nbf", "iat", "iss", "aud"}
free_claims = st.dictionaries(
    st.text(max_size=12).filter(lambda name: name not in _VALIDATED), json_values, max_size=8
)


# -- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ALGS)
@SETTINGS
@given(payload=st.binary(max_size=1024))
def test_jws_round_trip(alg: str, payload: bytes) -> None:
    token = jws.sign(payload, _signing_key(alg))
    for key in (_verifying_key(alg), JWKSet([_verifying_key(alg)])):
        verified = jws.verify(token, key, algorithms=[alg])
        assert verified.payload == payload
        assert verified.header == {"alg": alg, "kid": _signing_key(alg).kid}
        assert verified.key == _verifying_key(alg)


@pytest.mark.parametrize("alg", ALGS)
@SETTINGS
@given(claims=free_claims)
def test_jwt_round_trip(alg: str, claims: dict[str, Any]) -> None:
    full = {**claims, "iss": "https://issuer.example", "aud": ["a", "b"], "exp": 4_102_444_800}
    token = jwt.encode(full, _signing_key(alg))
    decoded = jwt.decode(
        token,
        _verifying_key(alg),
        algorithms=[alg],
        issuer="https://issuer.example",
        audience="b",
        now=1_700_000_000,
    )
    assert dict(decoded) == full
    assert decoded.header["typ"] == "JWT"


# -- the algorithm is bound to the key ----------------------------------------------------------

#: Algorithms that can share one key's material, by key type.
_FAMILIES = {
    "RSA": ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"],
    "oct": ["HS256", "HS384", "HS512"],
    "OKP": ["EdDSA", "Ed25519"],
}


@cache
def _family_key(family: str) -> JWK:
    """One key whose material fits every algorithm of its family (a 64-byte HMAC secret)."""
    first = _FAMILIES[family][-1] if family == "oct" else _FAMILIES[family][0]
    return _signing_key(first)


@pytest.mark.parametrize("family", sorted(_FAMILIES))
@settings(max_examples=30, deadline=None)
@given(data=st.data(), payload=st.binary(max_size=64))
def test_a_key_verifies_only_the_algorithm_it_is_bound_to(
    family: str, data: st.DataObject, payload: bytes
) -> None:
    """Same key material, bound to two different algorithms of its family: the token signed
    under one is refused under the other, whatever the allow-list says (RFC 8725 §3.1)."""
    signer_alg = data.draw(st.sampled_from(_FAMILIES[family]), label="signed with")
    other_alg = data.draw(
        st.sampled_from([a for a in _FAMILIES[family] if a != signer_alg]), label="key bound to"
    )
    base = _family_key(family)
    token = jws.sign(payload, base.replace(alg=signer_alg))
    verifier = base if base.kty == "oct" else base.public()
    with pytest.raises(AlgorithmNotAllowed):
        jws.verify(token, verifier.replace(alg=other_alg), algorithms=ALGS)
    with pytest.raises(AlgorithmNotAllowed):
        jws.verify(token, JWKSet([verifier.replace(alg=other_alg)]), algorithms=ALGS)
    assert jws.verify(token, verifier.replace(alg=signer_alg), algorithms=ALGS).payload == payload


# -- any single bit flipped is rejected -------------------------------------------------------


def _flip(data: bytes, bit: int) -> bytes:
    changed = bytearray(data)
    changed[bit // 8] ^= 1 << (bit % 8)
    return bytes(changed)


@pytest.mark.parametrize("alg", ALGS)
@SETTINGS
@given(data=st.data(), payload=st.binary(min_size=1, max_size=64))
def test_flipping_a_bit_of_any_decoded_segment_is_rejected(
    alg: str, data: st.DataObject, payload: bytes
) -> None:
    token = jws.sign(payload, _signing_key(alg))
    segments = [b64url_decode(s) for s in token.split(".")]
    index = data.draw(st.integers(0, 2), label="segment")
    bit = data.draw(st.integers(0, 8 * len(segments[index]) - 1), label="bit")
    segments[index] = _flip(segments[index], bit)
    tampered = ".".join(b64url_encode(s) for s in segments)
    with pytest.raises(InvalidToken):
        jws.verify(tampered, _verifying_key(alg), algorithms=ALGS)


@pytest.mark.parametrize("alg", ALGS)
@SETTINGS
@given(data=st.data())
def test_flipping_a_bit_of_any_character_is_rejected(alg: str, data: st.DataObject) -> None:
    token = jwt.encode({"sub": "x", "exp": 4_102_444_800}, _signing_key(alg))
    position = data.draw(st.integers(0, len(token) - 1), label="position")
    bit = data.draw(st.integers(0, 7), label="bit")
    tampered = token[:position] + chr(ord(token[position]) ^ (1 << bit)) + token[position + 1 :]
    with pytest.raises(InvalidToken):
        jws.verify(tampered, _verifying_key(alg), algorithms=ALGS)
    with pytest.raises(InvalidToken):
        jwt.decode(tampered, _verifying_key(alg), algorithms=ALGS)


# -- random input raises JWKitError and nothing else ------------------------------------------

_KEYS_FOR_FUZZ = ("ES256", "RS256", "EdDSA", "HS256")


def _every_decoder_rejects(token: str | bytes) -> None:
    for alg in _KEYS_FOR_FUZZ:
        with pytest.raises(InvalidToken):
            jws.verify(token, _verifying_key(alg), algorithms=ALGS)
    with pytest.raises(InvalidToken):
        jwt.decode(token, JWKSet([_verifying_key("ES256")]), algorithms=ALGS)
    try:
        jwt.decode_unverified(token)
    except JWKitError:
        pass


@FUZZ
@given(token=st.text(max_size=300) | st.binary(max_size=300))
@example(token="")
@example(token="..")
@example(token="a.b.c")
@example(token="e30.e30.")
@example(token=b64url_encode(b"[" * 5000 + b"]" * 5000) + ".e30.AA")
@example(token=b64url_encode(b'{"alg":"ES256","alg":"none"}') + ".e30.")
@example(token=b64url_encode(b'{"alg":"ES256","x":NaN}') + ".e30.AA")
@example(token=b64url_encode(b'{"alg":"HS256","exp":' + b"9" * 5000 + b"}") + ".e30.AA")
@example(token=b"\xff\xfe.\x00.\x80")
def test_random_tokens_raise_only_jwkit_errors(token: str | bytes) -> None:
    _every_decoder_rejects(token)


header_values = st.fixed_dictionaries(
    {
        "alg": st.sampled_from([*ALGS, "none", "None", "NONE", "nOnE", "", "HS1", "ES521"])
        | json_values
    },
    optional={
        "kid": st.sampled_from([_signing_key(a).kid for a in _KEYS_FOR_FUZZ]) | json_values,
        "typ": st.just("JWT") | json_values,
        "crit": st.lists(st.text(max_size=6), max_size=3) | json_values,
        "b64": st.booleans() | json_values,
        "jwk": st.just(_verifying_key("ES256").to_dict()) | json_values,
        "jku": st.just("https://attacker.example/jwks.json"),
        "x5u": st.just("https://attacker.example/cert.pem"),
        "x5c": st.lists(st.text(max_size=20), max_size=2),
    },
)


@FUZZ
@given(
    header=header_values | json_values,
    payload=st.binary(max_size=64) | json_values.map(lambda v: json.dumps(v).encode()),
    signature=st.binary(max_size=600),
)
def test_tokens_with_random_headers_raise_only_jwkit_errors(
    header: Any, payload: bytes, signature: bytes
) -> None:
    token = ".".join(
        (
            b64url_encode(json.dumps(header).encode()),
            b64url_encode(payload),
            b64url_encode(signature),
        )
    )
    _every_decoder_rejects(token)


@FUZZ
@given(segments=st.lists(st.text(B64_ALPHABET, max_size=80), min_size=1, max_size=5))
def test_base64url_shaped_garbage_raises_only_jwkit_errors(segments: list[str]) -> None:
    _every_decoder_rejects(".".join(segments))


def _import_or_refuse(make: Any) -> None:
    """Build a key or set; JWKError is fine, anything else fails. A key that imports must be
    fully usable: exportable and with a thumbprint."""
    try:
        result = make()
    except JWKError:
        return
    keys = result.keys if isinstance(result, JWKSet) else (result,)
    for key in keys:
        assert isinstance(key, JWK)
        key.thumbprint()
        key.to_dict(private=key.is_private)
        assert isinstance(key.can_verify("ES256"), bool)


@FUZZ
@given(text=st.text(max_size=300) | st.binary(max_size=300) | json_values.map(json.dumps))
@example(text="[" * 5000)
@example(text='{"kty":"EC","kty":"RSA"}')
def test_random_text_as_jwk_raises_only_jwk_errors(text: str | bytes) -> None:
    _import_or_refuse(lambda: JWK.from_json(text))
    _import_or_refuse(lambda: JWKSet.from_json(text))


jwk_members = st.dictionaries(
    st.sampled_from(
        [
            "kty",
            "crv",
            "x",
            "y",
            "d",
            "n",
            "e",
            "p",
            "q",
            "dp",
            "dq",
            "qi",
            "k",
            "oth",
            "alg",
            "kid",
            "use",
            "key_ops",
        ]
    ),
    st.sampled_from(
        [
            "EC",
            "RSA",
            "OKP",
            "oct",
            "P-256",
            "P-521",
            "Ed25519",
            "X25519",
            "AQAB",
            "AQ",
            "",
            "AA",
            "sig",
            "enc",
        ]
    )
    | st.text(B64_ALPHABET, max_size=90)
    | json_values,
    max_size=10,
)


@FUZZ
@given(data=jwk_members)
def test_random_jwk_dicts_raise_only_jwk_errors(data: dict[str, Any]) -> None:
    _import_or_refuse(lambda: JWK.from_dict(data))
    _import_or_refuse(lambda: JWKSet.from_dict({"keys": [data, data]}))
    _import_or_refuse(lambda: JWKSet.from_dict({"keys": [data]}, skip_invalid=True))


@pytest.mark.parametrize("alg", ["ES256", "ES512", "RS256", "EdDSA", "HS256"])
@SETTINGS
@given(data=st.data())
def test_valid_jwk_with_one_member_replaced_raises_only_jwk_errors(
    alg: str, data: st.DataObject
) -> None:
    members = _signing_key(alg).to_dict(private=True)
    name = data.draw(st.sampled_from(sorted(members)), label="member")
    members[name] = data.draw(
        st.text(B64_ALPHABET, max_size=400)
        | st.binary(max_size=70).map(b64url_encode)
        | json_values,
        label="value",
    )
    _import_or_refuse(lambda: JWK.from_dict(members))


@FUZZ
@given(
    pem=st.binary(max_size=400)
    | st.text(max_size=400)
    | st.binary(max_size=300).map(
        lambda b: (
            b"-----BEGIN PUBLIC KEY-----\n"
            + b64url_encode(b).encode()
            + b"\n-----END PUBLIC KEY-----\n"
        )
    )
)
@example(pem=b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
@example(pem=b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
@example(pem="MCowBQYDK2VwAyEA" + "A" * 43 + "=")
def test_random_pem_raises_only_jwk_errors(pem: bytes | str) -> None:
    _import_or_refuse(lambda: JWK.from_pem(pem))


_P521 = 2**521 - 1


@settings(max_examples=25, deadline=None)
@given(member=st.sampled_from(["x", "y"]), multiple=st.integers(1, 127))
def test_p521_coordinates_must_be_reduced(member: str, multiple: int) -> None:
    """A P-521 coordinate takes 66 octets but the field has 521 bits, so ``c + k*p`` still has
    the exact length: that second spelling of a point must be refused, or one key would have
    several JWKs (and several thumbprints)."""
    key = JWK.generate("ES512").to_dict()
    value = int.from_bytes(b64url_decode(key[member]), "big") + multiple * _P521
    assume(value < 2 ** (8 * 66))
    key[member] = b64url_encode(value.to_bytes(66, "big"))
    with pytest.raises(JWKError):
        JWK.from_dict(key)


@pytest.mark.parametrize("alg", ALGS)
@SETTINGS
@given(signing_input=st.binary(max_size=200), signature=st.binary(max_size=1100))
def test_algorithm_verify_returns_false_for_random_signatures(
    alg: str, signing_input: bytes, signature: bytes
) -> None:
    assert (
        ALGORITHMS[alg].verify(verifying_key(_verifying_key(alg)), signing_input, signature)
        is False
    )


@pytest.mark.parametrize("size", [32, 48, 66])
@FUZZ
@given(data=st.data())
def test_ecdsa_der_matches_cryptography(size: int, data: st.DataObject) -> None:
    # The hot path builds the DER signature from r || s itself; it must be byte-for-byte what
    # cryptography's encoder makes, for every length (leading zeros, high bits, P-521's
    # long-form sequence length).
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    from jwkit.jose.algorithms import _der_signature

    edge = st.sampled_from(
        [b"\x00" * (size - 1) + b"\x01", b"\xff" * size, b"\x80" + bytes(size - 1)]
    )
    octets = st.one_of(edge, st.binary(min_size=size, max_size=size))
    r = data.draw(octets.filter(any))
    s = data.draw(octets.filter(any))
    expected = encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big"))
    assert _der_signature(r, s) == expected


@pytest.mark.parametrize("size", [32, 48, 66])
@FUZZ
@given(data=st.data())
def test_ecdsa_der_templates_match_cryptography(size: int, data: st.DataObject) -> None:
    # The checker frames full-width halves (first octet not zero) from a table.
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    from jwkit.jose.algorithms import _der_templates

    heads, middles = _der_templates(size)
    full = st.binary(min_size=size, max_size=size).filter(lambda b: b[0] != 0)
    r, s = data.draw(full), data.draw(full)
    framed = heads[(r[0] >> 7) << 1 | s[0] >> 7] + r + middles[s[0] >> 7] + s
    assert framed == encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big"))


@pytest.mark.parametrize("alg", ["ES256", "ES384", "ES512"])
def test_ecdsa_checker_accepts_every_shape_of_signature(alg: str) -> None:
    # Real signatures until every DER shape has been seen and accepted: each half with and
    # without its high bit set, and a half with a leading zero octet (the general encoder).
    key = JWK.generate(alg)
    check = key.public()._checker(alg)
    assert check is not None
    size = {"ES256": 32, "ES384": 48, "ES512": 66}[alg]
    seen: set[object] = set()
    private = signing_key(key)
    for i in range(20_000):
        message = b"message %d" % i
        signature = ALGORITHMS[alg].sign(private, message)
        r, s = signature[:size], signature[size:]
        seen.add((r[0] >> 7, s[0] >> 7))
        if r[0] == 0 or s[0] == 0:
            seen.add("leading zero")
        assert check(message, signature)
        assert not check(message + b"!", signature)
        # P-521 halves (521 bits in 66 octets) never have the high bit set.
        if len(seen) == (2 if alg == "ES512" else 5):
            break
    else:
        pytest.fail(f"saw only {seen}")


class _Obj(list[tuple[str, Any]]):
    """A JSON object as its members in order, so that names can repeat."""


def _dump(value: Any) -> str:
    if isinstance(value, _Obj):
        return "{" + ",".join(f"{json.dumps(k)}:{_dump(v)}" for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_dump(v) for v in value) + "]"
    return json.dumps(value)


_NAMES = st.sampled_from(["a", "b", "c", "a,", "{", "A_ESC"])
_JSON_VALUES = st.recursive(
    st.one_of(
        st.integers(-(2**63), 2**63),
        st.booleans(),
        st.none(),
        st.sampled_from(["a,b", "{", "}", "[", "]", '"', ",,", "x"]),
        st.text(max_size=5),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.lists(st.tuples(_NAMES, inner), max_size=4).map(_Obj)
    ),
    max_leaves=8,
)


@FUZZ
@given(members=st.lists(st.tuples(_NAMES, _JSON_VALUES), max_size=6).map(_Obj))
def test_loads_object_agrees_with_the_checking_decoder(members: _Obj) -> None:
    # loads_object takes the plain C scanner for flat objects and decides from the commas
    # whether a duplicate name could have been merged away; the checking decoder (a hook on
    # every object) is the reference. Names repeat often here (also "a" written as an
    # escape), and values hide commas and braces in strings and arrays.
    text = _dump(members).replace('"A_ESC"', '"\\u0061"')  # "a", spelt as an escape
    try:
        expected: object = loads_checked(text, "JSON")
    except InvalidToken as exc:
        expected = type(exc)
    try:
        got: object = loads_object(text.encode())
    except InvalidToken as exc:
        got = type(exc)
    assert got == expected


_ABSENT = object()
_TIMES = st.one_of(
    st.just(_ABSENT),
    st.none(),
    st.booleans(),
    st.integers(-10, 10).map(lambda d: 1_700_000_000 + d),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 253402300799, 253402300800, "1700000000"]),
)


_NEAR = st.integers(-10, 10).map(lambda d: 1_700_000_000 + d)


# A clock at the end of time: the fast path must still refuse an iat past _MAX_TIME.
@example(exp=253402300799, iat=253402300800, nbf=_ABSENT, leeway=5, rules={}, now=253402300799.0)
@settings(max_examples=1000, deadline=None)
@given(
    # Mostly the fast path's own shape (integers near now, no nbf, no extra rule), so that
    # its every boundary is crossed; the rest of the time anything at all.
    exp=st.one_of(_NEAR, _NEAR, _TIMES),
    iat=st.one_of(_NEAR, _NEAR, _TIMES),
    nbf=st.one_of(st.just(_ABSENT), st.just(_ABSENT), _TIMES),
    leeway=st.sampled_from([0, 5, 0.5]),
    rules=st.sampled_from([{}, {}, {"max_age": 5}, {"typ": "at+jwt"}, {"required": ("sub",)}]),
    now=st.tuples(st.integers(-3, 3), st.sampled_from([0, 0.25, 0.5])).map(
        lambda t: 1_700_000_000 + t[0] + t[1]
    ),
)
def test_claims_policy_fast_path_agrees_with_the_general_checks(
    exp: object, iat: object, nbf: object, leeway: float, rules: dict[str, Any], now: float
) -> None:
    # validate() decides the common case inline and sends everything else to _check_times;
    # for the time claims both must give the same answer on every input.
    policy = jwt.ClaimsPolicy(leeway=leeway, **rules)
    claims = {name: value for name, value in (("exp", exp), ("iat", iat), ("nbf", nbf))
              if value is not _ABSENT}  # fmt: skip
    header = {"alg": "ES256", "typ": "at+jwt"}

    def outcome(run: Any) -> object:
        try:
            run(claims, header, now)
        except JWKitError as exc:
            return type(exc), getattr(exc, "claim", None)
        return None

    assert outcome(policy.validate) == outcome(policy._check_times)


def test_claims_policy_is_immutable() -> None:
    # One policy is shared by every decode() call with the same options, and validate()'s
    # fast path relies on what the constructor decided.
    policy = jwt.ClaimsPolicy(issuer="https://a.example", max_age=60)
    for name in ("max_age", "leeway", "required", "typ", "issuer", "_plain", "anything"):
        with pytest.raises(AttributeError):
            setattr(policy, name, None)
    assert policy.max_age == 60 and policy.issuer == "https://a.example"


_SEGMENT_JUNK = st.sampled_from(["", "=", "==", "+", "/", " ", "\n", ".", "é", "A", "AA", "B"])
# How to spoil a token: not at all (often), splice junk into a segment, or set unused bits in
# a segment's last character (a non-canonical spelling of the same bytes).
_TAMPER = st.one_of(
    st.just(None),
    st.just(None),
    st.tuples(st.just("junk"), st.integers(0, 2), st.integers(0, 200), _SEGMENT_JUNK),
    st.tuples(st.just("bits"), st.integers(1, 2), st.just(0), st.just("")),
)


def _spoil(segments: list[str], tamper: tuple[str, int, int, str] | None) -> None:
    if tamper is None:
        return
    kind, where, at, text = tamper
    segment = segments[where]
    if kind == "junk":
        cut = at % (len(segment) + 1)
        segments[where] = segment[:cut] + text + segment[cut:]
    elif len(segment) % 4 in (2, 3):  # the last character carries unused bits: set one
        last = B64_ALPHABET.index(segment[-1]) | 1
        segments[where] = segment[:-1] + B64_ALPHABET[last]


@FUZZ
@given(
    header=st.sampled_from(
        ['{"alg":"ES256","kid":"k"}', '{"alg":"HS256"}', '{"alg":1}', "[]", '{"alg":"none"}']
    ),
    members=st.lists(st.tuples(_NAMES, _JSON_VALUES), max_size=5).map(_Obj),
    raw_payload=st.one_of(st.none(), st.none(), st.binary(max_size=12)),
    signature=st.binary(max_size=70),
    tamper=_TAMPER,
    seen=st.booleans(),
    max_size=st.sampled_from([16 * 1024, 16 * 1024, 40]),
)
@example(  # a duplicate name the commas alone would miss
    header='{"alg":"HS256"}', members=_Obj([("a", 1), ("a", 2)]), raw_payload=None,
    signature=b"s" * 32, tamper=None, seen=True, max_size=16 * 1024,
)  # fmt: skip
@example(  # a duplicate inside a nested object
    header='{"alg":"HS256"}', members=_Obj([("c", _Obj([("a", 1), ("a", 2)]))]),
    raw_payload=None, signature=b"s" * 32, tamper=None, seen=True, max_size=16 * 1024,
)  # fmt: skip
@example(  # a non-canonical signature ending
    header='{"alg":"HS256"}', members=_Obj([("a", 1)]), raw_payload=None,
    signature=b"s" * 32, tamper=("bits", 2, 0, ""), seen=True, max_size=16 * 1024,
)  # fmt: skip
@example(  # a non-canonical payload ending
    header='{"alg":"HS256"}', members=_Obj([("a", 1)]), raw_payload=None,
    signature=b"s" * 32, tamper=("bits", 1, 0, ""), seen=True, max_size=16 * 1024,
)  # fmt: skip
@example(  # a signature of impossible length (one character)
    header='{"alg":"HS256"}', members=_Obj([("a", 1)]), raw_payload=None,
    signature=b"", tamper=("junk", 2, 0, "A"), seen=True, max_size=16 * 1024,
)  # fmt: skip
@example(  # an object followed by more text
    header='{"alg":"HS256"}', members=_Obj(), raw_payload=b'{"a":1}x',
    signature=b"s" * 32, tamper=None, seen=True, max_size=16 * 1024,
)  # fmt: skip
def test_parse_object_agrees_with_parse_then_loads_object(
    header: str,
    members: _Obj,
    raw_payload: bytes | None,
    signature: bytes,
    tamper: tuple[str, int, int, str] | None,
    seen: bool,
    max_size: int,
) -> None:
    # parse_object decides the common case inline and sends any doubt to parse() and
    # loads_object(); both ways must give the same answer (or the same error, same words)
    # for every token: junk spliced into any segment, bad lengths, non-canonical endings,
    # non-ASCII, duplicate names, payloads that are not JSON objects, headers seen or not.
    text = _dump(members).replace('"A_ESC"', '"\\u0061"')
    payload = raw_payload if raw_payload is not None else text.encode()
    segments = [b64url_encode(header.encode()), b64url_encode(payload), b64url_encode(signature)]
    _spoil(segments, tamper)
    token = ".".join(segments)
    headers = new_header_cache()
    if seen:
        try:  # a good header goes into the decoded-header cache
            parse_object(segments[0] + "." + b64url_encode(b"{}") + ".", headers=headers)
        except JWKitError:
            pass

    def outcome(run: Any) -> object:
        try:
            parsed, claims = run()
        except (JWKitError, TypeError) as exc:
            return type(exc), str(exc)
        return tuple(parsed), claims

    def reference() -> tuple[jws.ParsedJWS, dict[str, Any]]:
        parsed = jws.parse(token, max_size=max_size)
        return parsed, loads_object(parsed.payload, "payload")

    expected = outcome(reference)
    assert outcome(lambda: parse_object(token, max_size, headers)) == expected
    assert outcome(lambda: parse_object(token, max_size)) == expected
