"""Interop with PyJWT, both ways, for every algorithm PyJWT and jwkit share.

* jwkit signs, PyJWT verifies with the public JWK jwkit exports (and with its PEM).
* PyJWT signs with a key made by ``cryptography`` alone; jwkit verifies with the public JWK
  PyJWT exports (and with the PEM), so no jwkit code touched the key on the signing side.
* PyJWT signs with the private JWK jwkit exports; jwkit verifies.
"""

from __future__ import annotations

import os
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import get_default_algorithms

from jwkit import JWK, JWKSet
from jwkit.jose import jwt

from .conftest import AUDIENCE, ISSUER

pytestmark = pytest.mark.interop

SHARED = [
    "ES256", "ES384", "ES512",
    "RS256", "RS384", "RS512",
    "PS256", "PS384", "PS512",
    "EdDSA",
    "HS256", "HS384", "HS512",
]  # fmt: skip

_CURVES: dict[str, ec.EllipticCurve] = {
    "ES256": ec.SECP256R1(),
    "ES384": ec.SECP384R1(),
    "ES512": ec.SECP521R1(),
}
_HMAC_SIZE = {"HS256": 32, "HS384": 48, "HS512": 64}


def test_shared_algorithms_are_pyjwt_algorithms() -> None:
    assert set(SHARED) <= set(get_default_algorithms())


def _foreign_key(alg: str) -> Any:
    """A signing key made with ``cryptography`` (or os.urandom) only."""
    if alg in _CURVES:
        return ec.generate_private_key(_CURVES[alg])
    if alg[:2] in ("RS", "PS"):
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    return os.urandom(_HMAC_SIZE[alg])


def _pyjwt_decode(token: str, key: Any, alg: str) -> dict[str, Any]:
    decoded: dict[str, Any] = pyjwt.decode(
        token,
        key,
        algorithms=[alg],
        audience=AUDIENCE,
        issuer=ISSUER,
        options={"require": ["exp", "iat", "iss", "aud"]},
    )
    return decoded


def _jwkit_decode(token: str, key: JWK, alg: str) -> dict[str, Any]:
    return dict(jwt.decode(token, key, algorithms=[alg], issuer=ISSUER, audience=AUDIENCE))


@pytest.mark.parametrize("alg", SHARED, ids=[f"jwkit-to-pyjwt-{a}" for a in SHARED])
def test_jwkit_token_verifies_in_pyjwt(alg: str, claims: dict[str, Any]) -> None:
    key = JWK.generate(alg)
    token = jwt.encode(claims, key)
    if key.kty == "oct":
        verifying = pyjwt.PyJWK(key.to_dict(private=True), algorithm=alg)
    else:
        verifying = pyjwt.PyJWK(key.public().to_dict(), algorithm=alg)
        assert _pyjwt_decode(token, key.public().to_pem(), alg) == claims
    assert _pyjwt_decode(token, verifying, alg) == claims
    header = pyjwt.get_unverified_header(token)
    assert header == {"alg": alg, "kid": key.kid, "typ": "JWT"}


@pytest.mark.parametrize("alg", SHARED, ids=[f"pyjwt-to-jwkit-{a}" for a in SHARED])
def test_pyjwt_token_verifies_in_jwkit(alg: str, claims: dict[str, Any]) -> None:
    signing = _foreign_key(alg)
    token = pyjwt.encode(claims, signing, algorithm=alg, headers={"kid": "pyjwt-key"})
    algorithm = get_default_algorithms()[alg]
    if isinstance(signing, bytes):
        exported = algorithm.to_jwk(signing, as_dict=True)
    else:
        exported = algorithm.to_jwk(signing.public_key(), as_dict=True)
    key = JWK.from_dict({**exported, "kid": "pyjwt-key"})
    assert not key.is_private or key.kty == "oct"
    assert _jwkit_decode(token, key, alg) == claims
    assert _jwkit_decode(token, key.replace(alg=alg), alg) == claims
    if not isinstance(signing, bytes):
        pem = signing.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        assert _jwkit_decode(token, JWK.from_pem(pem, alg=alg, kid="pyjwt-key"), alg) == claims


@pytest.mark.parametrize("alg", SHARED, ids=[f"pyjwt-signs-with-jwkit-key-{a}" for a in SHARED])
def test_pyjwt_signs_with_jwkit_private_jwk(alg: str, claims: dict[str, Any]) -> None:
    key = JWK.generate(alg)
    signing = pyjwt.PyJWK(key.to_dict(private=True), algorithm=alg)
    token = pyjwt.encode(claims, signing, algorithm=alg, headers={"kid": key.kid})
    verifying = key if key.kty == "oct" else key.public()
    assert _jwkit_decode(token, verifying, alg) == claims
    if key.kty != "oct":
        pem_signed = pyjwt.encode(claims, key.to_pem(private=True), algorithm=alg)
        assert _jwkit_decode(pem_signed, verifying, alg) == claims


ASYMMETRIC = [alg for alg in SHARED if not alg.startswith("HS")]


def test_jwkit_jwks_is_a_pyjwt_key_set(claims: dict[str, Any]) -> None:
    """The JWK Set jwkit publishes loads as a PyJWT key set, and each token's kid finds its key."""
    keys = {alg: JWK.generate(alg) for alg in ASYMMETRIC}
    key_set = pyjwt.PyJWKSet.from_dict(JWKSet([k.public() for k in keys.values()]).to_dict())
    assert len(key_set.keys) == len(ASYMMETRIC)
    for alg, key in keys.items():
        token = jwt.encode(claims, key)
        found = key_set[pyjwt.get_unverified_header(token)["kid"]]
        assert _pyjwt_decode(token, found, alg) == claims
