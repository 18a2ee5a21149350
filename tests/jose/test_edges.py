"""Input types at the edges of the JOSE core: subclasses, bytearrays, wrong types, DER keys."""

from __future__ import annotations

import json
import zlib
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519

from jwkit import JWK, Claims, ClaimsPolicy, JWKError, JWKSet, MalformedToken, jwt
from jwkit.jose import jws
from jwkit.jose._json import loads_object
from jwkit.jose.b64 import b64url_decode, b64url_encode
from jwkit.jose.statuslist import StatusList

from ..conftest import private_key

KEY = JWK.from_secret(b"k" * 32, "HS256", kid="k1")


class _Text(str):
    pass


def test_parse_takes_a_str_subclass_as_its_text() -> None:
    token = jwt.encode({"sub": "a", "exp": 2_000_000_000}, KEY)
    assert tuple(jws.parse(_Text(token))) == tuple(jws.parse(token))


def test_protected_header_wants_a_jwk() -> None:
    with pytest.raises(TypeError, match="key must be a JWK"):
        jws.protected_header({"kty": "oct"})  # type: ignore[arg-type]


def test_loads_object_takes_bytearray_and_refuses_other_types() -> None:
    assert loads_object(bytearray(b'{"a":1}')) == {"a": 1}
    with pytest.raises(MalformedToken, match="is not text"):
        loads_object(12)  # type: ignore[arg-type]


def test_b64url_decode_refuses_a_non_string() -> None:
    assert b64url_decode(bytearray(b"YQ")) == b"a"
    with pytest.raises(MalformedToken, match="is not a string"):
        b64url_decode(12)  # type: ignore[arg-type]


def test_a_der_private_key_is_never_an_hmac_secret() -> None:
    der = JWK.generate("ES256")._private_key.private_bytes(  # type: ignore[union-attr]
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(JWKError, match="asymmetric"):
        JWK.from_secret(der, "HS256")


# -- JWK and JWKSet: refusals and small conveniences no other test reached -------------------


def _pem(private: object) -> bytes:
    return private.private_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def test_generate_refuses_an_unknown_algorithm() -> None:
    with pytest.raises(ValueError, match="unsupported algorithm"):
        JWK.generate("ES999")


def test_rsa_private_members_need_d_and_one_prime_pair() -> None:
    public = private_key("RS256").public().to_dict()
    full = private_key("RS256").to_dict(private=True)
    with pytest.raises(JWKError, match="without d"):
        JWK.from_dict({**public, "p": full["p"]})
    with pytest.raises(JWKError, match="multi-prime"):
        JWK.from_dict({**full, "oth": []})


def test_from_pem_refuses_unknown_algorithms_curves_and_key_types() -> None:
    pem = private_key("ES256").to_pem()
    with pytest.raises(JWKError, match="unsupported algorithm"):
        JWK.from_pem(pem, "ES999")
    with pytest.raises(JWKError, match="unsupported EC curve"):
        JWK.from_pem(_pem(ec.generate_private_key(ec.SECP256K1())))
    with pytest.raises(JWKError, match="unsupported key type"):
        JWK.from_pem(_pem(x25519.X25519PrivateKey.generate()))


def test_from_secret_and_replace_refuse_misuse() -> None:
    with pytest.raises(TypeError, match="bytes"):
        JWK.from_secret("k" * 32)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="cannot replace"):
        KEY.replace(kty="EC")


def test_use_enc_with_signing_key_ops_is_refused() -> None:
    data = {**private_key("ES256").public().to_dict(), "use": "enc", "key_ops": ["verify"]}
    with pytest.raises(JWKError, match="disagree"):
        JWK.from_dict(data)


def test_default_algorithm_and_key_ops_of_keys_without_alg() -> None:
    for alg, expected in (("ES384", "ES384"), ("RS256", "RS256"), ("EdDSA", "EdDSA")):
        bare = JWK.from_dict(
            {
                k: v
                for k, v in private_key(alg).public().to_dict().items()
                if k not in ("alg", "kid")
            }
        )
        assert bare.default_alg == expected
    secret = JWK.from_dict({"kty": "oct", "k": "a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s"})
    assert secret.default_alg == "HS256"
    signer = private_key("ES256").replace(key_ops=["sign", "verify"])
    assert signer.key_ops == ("sign", "verify")
    half = signer.public()
    assert half.key_ops == ("verify",)  # the public half cannot sign
    assert half.public() is half


def test_a_key_signs_only_with_what_it_allows() -> None:
    with pytest.raises(JWKError, match="cannot sign with HS384"):
        KEY._sign("HS384", b"input")
    public = private_key("ES256").public()
    with pytest.raises(JWKError, match="public key"):
        public.to_dict(private=True)
    with pytest.raises(JWKError, match="public key"):
        public.to_pem(private=True)


def test_comparisons_with_other_types_and_set_conveniences() -> None:
    public = private_key("ES256").public()
    assert public != "a key" and JWKSet([public]) != "a set"
    with pytest.raises(TypeError, match="JWKSet holds JWK objects"):
        JWKSet([public.to_dict()])  # type: ignore[list-item]
    anonymous = public.replace(kid=None)
    keys = JWKSet([anonymous])
    assert anonymous in keys and KEY not in keys
    assert json.loads(keys.to_json()) == {"keys": [anonymous.to_dict()]}
    assert repr(keys) == "<JWKSet 1 keys kids=[None]>"


# -- Claims, ClaimsPolicy and StatusList: the small accessors and refusals -----------------


def test_claims_accessors_on_odd_values() -> None:
    claims = Claims({"aud": "api", "scp": "read write", "exp": -1, "nbf": 10, "iat": "x"})
    assert "aud" in claims and "sub" not in claims
    assert repr(claims).startswith("Claims({'aud': 'api'")
    assert claims.audience == ("api",) and Claims({"aud": 3}).audience == ()
    assert claims.scopes == frozenset({"read", "write"})
    assert claims.expires_at is None and claims.issued_at is None  # out of range, not a number
    assert claims.not_before == datetime.fromtimestamp(10, tz=UTC)
    assert ClaimsPolicy(audience=["a", "b"]).audience == ("a", "b")


def test_decode_refuses_algorithms_given_as_one_string() -> None:
    token = jwt.encode({"sub": "a", "exp": 2_000_000_000}, KEY)
    with pytest.raises(TypeError, match="collection of names"):
        jwt.decode(token, KEY, algorithms="HS256")
    with pytest.raises(ValueError, match="must not be empty"):
        jwt.decode(token, KEY, algorithms=[])


def test_status_list_refusals_and_conveniences() -> None:
    with pytest.raises(ValueError, match="bits must be"):
        StatusList(8, bits=3)
    with pytest.raises(ValueError, match="positive integer"):
        StatusList(0)
    with pytest.raises(ValueError, match="at least one byte"):
        StatusList.from_bytes(b"")
    empty = {"bits": 1, "lst": b64url_encode(zlib.compress(b""))}
    with pytest.raises(MalformedToken, match="empty"):
        StatusList.decode(empty)
    lst = StatusList(8, bits=2)
    with pytest.raises(TypeError, match="an int"):
        lst["0"]  # type: ignore[index]
    assert lst != "a list"
    assert repr(lst) == "StatusList(entries=8, bits=2)"
    assert StatusList(8, bits=1).narrowed().bits == 1  # nothing narrower than one bit
    lst[3] = 3  # needs both bits: stays 2-bit
    assert lst.narrowed() is lst
    lst[3] = 1
    assert lst.narrowed().bits == 1 and lst.narrowed()[3] == 1
