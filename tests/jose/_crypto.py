"""The ``cryptography`` key objects behind a JWK, taken through its public export only:
what the algorithm layer (:mod:`jwkit.jose.algorithms`) signs and verifies with."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization

from jwkit import JWK
from jwkit.jose.algorithms import PrivateKey, PublicKey
from jwkit.jose.b64 import b64url_decode


def signing_key(key: JWK) -> PrivateKey | bytes:
    """The private key object (or, for an ``oct`` key, the secret) of ``key``."""
    if key.kty == "oct":
        return b64url_decode(key.to_dict(private=True)["k"])
    loaded = serialization.load_pem_private_key(key.to_pem(private=True), password=None)
    assert not isinstance(loaded, bytes)
    return loaded  # type: ignore[return-value]


def verifying_key(key: JWK) -> PublicKey | bytes:
    """The public key object (or, for an ``oct`` key, the secret) of ``key``."""
    if key.kty == "oct":
        return b64url_decode(key.to_dict(private=True)["k"])
    return serialization.load_pem_public_key(key.to_pem())  # type: ignore[return-value]
