"""Input types at the edges of the JOSE core: subclasses, bytearrays, wrong types, DER keys."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization

from jwkit import JWK, JWKError, MalformedToken, jwt
from jwkit.jose import jws
from jwkit.jose._json import loads_object
from jwkit.jose.b64 import b64url_decode

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
