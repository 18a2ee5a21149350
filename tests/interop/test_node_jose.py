"""Interop with Node's ``jose`` package (v6), both ways, for every algorithm both implement.

All Node work happens in a few batched runs of ``node/jose_helper.mjs`` (see ``conftest.py``):

* Node generates its own keys and signs a JWT and a JWS with a binary payload; jwkit verifies
  them with the public JWKs Node exports.
* jwkit signs; Node verifies with the public JWKs jwkit exports.
* Node signs with the private JWKs jwkit exports; jwkit verifies.
"""

from __future__ import annotations

import json
import time
from functools import cache
from typing import Any

import pytest

from jwkit import JWK, JWKSet
from jwkit.jose import jws, jwt
from jwkit.jose.b64 import b64url_decode, b64url_encode

from .conftest import AUDIENCE, ISSUER, NodeRunner

pytestmark = pytest.mark.interop

SHARED = [
    "ES256", "ES384", "ES512",
    "RS256", "RS384", "RS512",
    "PS256", "PS384", "PS512",
    "EdDSA", "Ed25519",
    "HS256", "HS384", "HS512",
]  # fmt: skip

#: Every byte value, so that base64url and binary payloads are exercised end to end.
BINARY_PAYLOAD = bytes(range(256)) + b"\x00\xff"


@cache
def _claims() -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": ISSUER,
        "aud": [AUDIENCE, "another"],
        "sub": "node-user",
        "iat": now,
        "exp": now + 600,
        "name": "Zoë ✓",
        "nested": {"n": [1, 2.5, None, False]},
    }


@cache
def _jwkit_keys() -> dict[str, JWK]:
    return {alg: JWK.generate(alg) for alg in SHARED}


def _public_jwk(key: JWK) -> dict[str, Any]:
    return key.to_dict(private=True) if key.kty == "oct" else key.public().to_dict()


def _ok(result: dict[str, Any]) -> dict[str, Any]:
    assert result["ok"], result
    return result


@pytest.fixture(scope="module")
def node_made(node_jose: NodeRunner) -> dict[str, dict[str, Any]]:
    """Per algorithm: Node's own key pair, a JWT and a JWS it signed with it, and a JWT it
    signed with jwkit's private key."""
    generated = node_jose([{"op": "generate", "alg": alg} for alg in SHARED])
    keys = {alg: _ok(r) for alg, r in zip(SHARED, generated, strict=True)}
    ops: list[dict[str, Any]] = []
    for alg in SHARED:
        private = keys[alg]["private_jwk"]
        ops.append({"op": "sign_jwt", "alg": alg, "jwk": private, "claims": _claims(),
                    "header": {"kid": "node-key", "typ": "JWT"}})  # fmt: skip
        ops.append({"op": "sign_jws", "alg": alg, "jwk": private,
                    "payload_b64u": b64url_encode(BINARY_PAYLOAD)})  # fmt: skip
        ops.append({"op": "sign_jwt", "alg": alg, "claims": _claims(),
                    "jwk": _jwkit_keys()[alg].to_dict(private=True)})  # fmt: skip
    signed = node_jose(ops)
    out = {}
    for i, alg in enumerate(SHARED):
        jwt_result, jws_result, with_jwkit_key = signed[3 * i : 3 * i + 3]
        out[alg] = {
            "public_jwk": keys[alg]["public_jwk"],
            "jwt": _ok(jwt_result)["token"],
            "jws": _ok(jws_result)["token"],
            "jwt_with_jwkit_key": _ok(with_jwkit_key)["token"],
        }
    return out


@pytest.fixture(scope="module")
def node_verified(node_jose: NodeRunner) -> dict[str, dict[str, Any]]:
    """Per algorithm: Node's verdict on a JWT and a binary-payload JWS signed by jwkit."""
    ops: list[dict[str, Any]] = []
    for alg in SHARED:
        key = _jwkit_keys()[alg]
        ops.append({"op": "verify_jwt", "alg": alg, "jwk": _public_jwk(key),
                    "token": jwt.encode(_claims(), key)})  # fmt: skip
        ops.append({"op": "verify_jws", "alg": alg, "jwk": _public_jwk(key),
                    "token": jws.sign(BINARY_PAYLOAD, key)})  # fmt: skip
    results = node_jose(ops)
    return {alg: {"jwt": results[2 * i], "jws": results[2 * i + 1]} for i, alg in enumerate(SHARED)}


def _jwkit_decode(token: str, key: JWK, alg: str) -> dict[str, Any]:
    return dict(jwt.decode(token, key, algorithms=[alg], issuer=ISSUER, audience=AUDIENCE))


@pytest.mark.parametrize("alg", SHARED, ids=[f"node-to-jwkit-{a}" for a in SHARED])
def test_node_tokens_verify_in_jwkit(alg: str, node_made: dict[str, dict[str, Any]]) -> None:
    made = node_made[alg]
    key = JWK.from_dict({**made["public_jwk"], "kid": "node-key"})
    assert key.alg == alg
    assert key.kty == "oct" or not key.is_private
    claims = jwt.decode(made["jwt"], key, algorithms=[alg], issuer=ISSUER, audience=AUDIENCE)
    assert dict(claims) == _claims()
    assert dict(claims.header) == {"alg": alg, "kid": "node-key", "typ": "JWT"}
    verified = jws.verify(made["jws"], key.replace(kid=None), algorithms=[alg])
    assert verified.payload == BINARY_PAYLOAD
    assert dict(verified.header) == {"alg": alg}


@pytest.mark.parametrize("alg", SHARED, ids=[f"node-signs-with-jwkit-key-{a}" for a in SHARED])
def test_node_signs_with_jwkit_private_jwk(alg: str, node_made: dict[str, dict[str, Any]]) -> None:
    key = _jwkit_keys()[alg]
    verifying = key if key.kty == "oct" else key.public()
    token = node_made[alg]["jwt_with_jwkit_key"]
    assert _jwkit_decode(token, verifying, alg) == _claims()


@pytest.mark.parametrize("alg", SHARED, ids=[f"jwkit-to-node-{a}" for a in SHARED])
def test_jwkit_tokens_verify_in_node(alg: str, node_verified: dict[str, dict[str, Any]]) -> None:
    key = _jwkit_keys()[alg]
    result = _ok(node_verified[alg]["jwt"])
    assert result["payload"] == _claims()
    assert result["header"] == {"alg": alg, "kid": key.kid, "typ": "JWT"}
    result = _ok(node_verified[alg]["jws"])
    assert b64url_decode(result["payload_b64u"]) == BINARY_PAYLOAD


def test_node_rejects_what_it_should(node_jose: NodeRunner) -> None:
    """A sanity check of the harness: a tampered jwkit token must fail in Node, so the passing
    tests above cannot be an artefact of a helper that accepts everything."""
    key = _jwkit_keys()["ES256"]
    header, payload, signature = jwt.encode(_claims(), key).split(".")
    forged = json.loads(b64url_decode(payload))
    forged["sub"] = "admin"
    tampered = ".".join((header, b64url_encode(json.dumps(forged).encode()), signature))
    (result,) = node_jose([{"op": "verify_jwt", "alg": "ES256", "jwk": _public_jwk(key),
                            "token": tampered}])  # fmt: skip
    assert result["ok"] is False
    assert result["error"] == "ERR_JWS_SIGNATURE_VERIFICATION_FAILED"


ASYMMETRIC = [alg for alg in SHARED if not alg.startswith("HS")]


def test_jwkit_jwks_selects_keys_in_node(node_jose: NodeRunner) -> None:
    """A JWK Set as jwkit publishes it (one public key per algorithm, each with kid, alg and
    use) is one that Node's createLocalJWKSet picks the right key from, for every token."""
    keys = _jwkit_keys()
    jwks = JWKSet([keys[alg].public() for alg in ASYMMETRIC]).to_dict()
    ops = [
        {"op": "verify_jwt_jwks", "algs": ASYMMETRIC, "jwks": jwks,
         "token": jwt.encode(_claims(), keys[alg])}
        for alg in ASYMMETRIC
    ]  # fmt: skip
    for alg, result in zip(ASYMMETRIC, node_jose(ops), strict=True):
        assert _ok(result)["header"]["kid"] == keys[alg].kid, alg
        assert result["payload"] == _claims()


def test_node_jwks_selects_keys_in_jwkit(node_made: dict[str, dict[str, Any]]) -> None:
    """The reverse: Node's exported public keys, given kids, form a set jwkit selects from."""
    jwks = {
        "keys": [
            {**node_made[alg]["public_jwk"], "kid": f"node-{alg}", "use": "sig"}
            for alg in ASYMMETRIC
        ]
    }
    key_set = JWKSet.from_dict(jwks)
    for alg in ASYMMETRIC:
        # Node's JWS (no kid): jwkit must find the one key that fits the algorithm. EdDSA and
        # Ed25519 keys are bound to their own names by "alg", so each fits exactly one token.
        verified = jws.verify(node_made[alg]["jws"], key_set, algorithms=[alg])
        assert verified.key.kid == f"node-{alg}"
        assert verified.payload == BINARY_PAYLOAD
