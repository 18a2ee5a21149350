"""Interop with joserfc, both ways, for every algorithm joserfc and jwkit share.

* jwkit signs, joserfc verifies with the public JWK jwkit exports.
* joserfc generates its own key and signs; jwkit verifies with the public JWK joserfc exports.
* joserfc signs with the private JWK jwkit exports; jwkit verifies.

joserfc only enables its "recommended" algorithms unless told otherwise, so every call names
the algorithm explicitly.
"""

from __future__ import annotations

from typing import Any

import pytest
from joserfc import jwt as rfc_jwt
from joserfc.jwk import JWKRegistry, KeySet
from joserfc.jws import JWSRegistry

from jwkit import JWK, JWKSet
from jwkit.jose import jwt

from .conftest import AUDIENCE, ISSUER

pytestmark = [
    pytest.mark.interop,
    # joserfc warns that RFC 9864 deprecates the polymorphic "EdDSA" name in favour of
    # "Ed25519". jwkit accepts both, so both are tested; only that one warning is silenced.
    pytest.mark.filterwarnings("ignore:EdDSA is deprecated:joserfc.errors.SecurityWarning"),
]

SHARED = [
    "ES256", "ES384", "ES512",
    "RS256", "RS384", "RS512",
    "PS256", "PS384", "PS512",
    "EdDSA", "Ed25519",
    "HS256", "HS384", "HS512",
]  # fmt: skip

#: joserfc's generate_key arguments for each algorithm: key type and curve or size.
_KEY_SPEC: dict[str, tuple[str, str | int]] = {
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "EdDSA": ("OKP", "Ed25519"),
    "Ed25519": ("OKP", "Ed25519"),
    "HS256": ("oct", 256),
    "HS384": ("oct", 384),
    "HS512": ("oct", 512),
    **{f"{f}{b}": ("RSA", 2048) for f in ("RS", "PS") for b in (256, 384, 512)},
}


def test_shared_algorithms_are_joserfc_algorithms() -> None:
    assert set(SHARED) <= set(JWSRegistry.algorithms)


def _rfc_decode(token: str, key: Any, alg: str) -> dict[str, Any]:
    decoded = rfc_jwt.decode(token, key, algorithms=[alg])
    registry = rfc_jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": AUDIENCE},
        exp={"essential": True},
    )
    registry.validate(decoded.claims)
    assert decoded.header["alg"] == alg
    return dict(decoded.claims)


def _jwkit_decode(token: str, key: JWK, alg: str) -> dict[str, Any]:
    return dict(jwt.decode(token, key, algorithms=[alg], issuer=ISSUER, audience=AUDIENCE))


@pytest.mark.parametrize("alg", SHARED, ids=[f"jwkit-to-joserfc-{a}" for a in SHARED])
def test_jwkit_token_verifies_in_joserfc(alg: str, claims: dict[str, Any]) -> None:
    key = JWK.generate(alg)
    token = jwt.encode(claims, key)
    exported = key.to_dict(private=True) if key.kty == "oct" else key.public().to_dict()
    assert _rfc_decode(token, JWKRegistry.import_key(exported), alg) == claims
    if key.kty != "oct":
        from_pem = JWKRegistry.import_key(key.public().to_pem(), key.kty)
        assert _rfc_decode(token, from_pem, alg) == claims


@pytest.mark.parametrize("alg", SHARED, ids=[f"joserfc-to-jwkit-{a}" for a in SHARED])
def test_joserfc_token_verifies_in_jwkit(alg: str, claims: dict[str, Any]) -> None:
    kty, crv_or_size = _KEY_SPEC[alg]
    signing = JWKRegistry.generate_key(
        kty, crv_or_size, {"alg": alg, "use": "sig", "kid": "joserfc-key"}, private=True
    )
    token = rfc_jwt.encode({"alg": alg, "kid": "joserfc-key"}, claims, signing, algorithms=[alg])
    exported = signing.as_dict(private=kty == "oct")
    key = JWK.from_dict(exported)
    assert key.alg == alg and key.kid == "joserfc-key" and key.use == "sig"
    assert _jwkit_decode(token, key, alg) == claims
    if kty != "oct":
        assert not key.is_private
        assert key.thumbprint() == signing.thumbprint()


@pytest.mark.parametrize("alg", SHARED, ids=[f"joserfc-signs-with-jwkit-key-{a}" for a in SHARED])
def test_joserfc_signs_with_jwkit_private_jwk(alg: str, claims: dict[str, Any]) -> None:
    key = JWK.generate(alg)
    signing = JWKRegistry.import_key(key.to_dict(private=True))
    token = rfc_jwt.encode({"alg": alg, "kid": key.kid}, claims, signing, algorithms=[alg])
    verifying = key if key.kty == "oct" else key.public()
    assert _jwkit_decode(token, verifying, alg) == claims
    # Both libraries compute the same RFC 7638 thumbprint for the same key.
    assert signing.thumbprint() == key.thumbprint()


ASYMMETRIC = [alg for alg in SHARED if not alg.startswith("HS")]


def test_jwkit_jwks_is_a_joserfc_key_set(claims: dict[str, Any]) -> None:
    """joserfc picks the right key from the JWK Set jwkit publishes, by kid, for every token."""
    keys = {alg: JWK.generate(alg) for alg in ASYMMETRIC}
    exported: Any = JWKSet([k.public() for k in keys.values()]).to_dict()
    key_set = KeySet.import_key_set(exported)
    for alg, key in keys.items():
        assert _rfc_decode(jwt.encode(claims, key), key_set, alg) == claims


def test_joserfc_key_set_is_a_jwkit_key_set(claims: dict[str, Any]) -> None:
    """The reverse: a key set joserfc generates and exports is one jwkit selects from."""
    generated = {
        alg: JWKRegistry.generate_key(*_KEY_SPEC[alg], {"alg": alg, "use": "sig"}, auto_kid=True)
        for alg in ASYMMETRIC
    }
    exported = KeySet(list(generated.values())).as_dict(private=False)
    key_set = JWKSet.from_dict(exported)
    assert len(key_set.keys) == len(ASYMMETRIC)
    for alg, signing in generated.items():
        token = rfc_jwt.encode({"alg": alg, "kid": signing.kid}, claims, signing, algorithms=[alg])
        decoded = jwt.decode(token, key_set, algorithms=[alg], issuer=ISSUER, audience=AUDIENCE)
        assert dict(decoded) == claims
        assert decoded.header["kid"] == signing.kid
