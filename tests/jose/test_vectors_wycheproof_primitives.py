"""Project Wycheproof signature vectors against jwkit's algorithm layer.

Each file holds raw signatures in the very format JWS uses (ECDSA as fixed-length ``r || s``,
i.e. IEEE P1363; RSASSA-PKCS1-v1_5; RSASSA-PSS with a salt as long as the hash; Ed25519), so
each case runs through ``jwkit.jose.algorithms.ALGORITHMS[alg].verify(key, msg, sig)`` with the
key imported through ``jwkit.JWK`` from the group's JWK (or, for the groups that have none,
from its coordinates). The result must be ``True`` exactly for the ``valid`` cases.

Decisions (the override table for these files):

* ``acceptable`` — one case only, ``rsa_signature_2048_sha256_test.json`` tcId 8, a PKCS#1 v1.5
  signature whose DigestInfo lacks the ASN.1 NULL parameter (flag ``MissingNull``). jwkit
  **rejects** it: RFC 8017 §8.2.2 step 3 re-encodes the message with EMSA-PKCS1-v1_5, whose
  DigestInfo always carries the NULL (§9.2 note 1), and step 4 requires an exact match. RFC 7518
  §3.3 adds no leniency, and accepting a second encoding gains nothing but malleability.
* Groups with ``e = 3`` in the RSA PKCS#1 file are ``valid`` and jwkit verifies them: it refuses
  ``e = 1`` and even exponents, not small odd ones (RFC 8017 §3.1 allows any odd ``e >= 3``).
* No other label is overridden, and jwkit is not stricter than any of these files.

Every group's key is also imported in each of the forms the file offers (JWK, coordinates or
modulus, PEM) and the results must be the same key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from jwkit import JWK
from jwkit.jose.algorithms import ALGORITHMS
from jwkit.jose.b64 import b64url_encode

from ._crypto import verifying_key

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "wycheproof" / "testvectors_v1"


@dataclass(frozen=True)
class VectorFile:
    short: str  # used in test ids
    name: str
    alg: str
    crv: str | None = None
    size: int | None = None  # EC coordinate length in octets


FILES = (
    VectorFile("ecdsa-p256", "ecdsa_secp256r1_sha256_p1363_test.json", "ES256", "P-256", 32),
    VectorFile("ecdsa-p384", "ecdsa_secp384r1_sha384_p1363_test.json", "ES384", "P-384", 48),
    VectorFile("ecdsa-p521", "ecdsa_secp521r1_sha512_p1363_test.json", "ES512", "P-521", 66),
    VectorFile("rsa-pkcs1-2048-sha256", "rsa_signature_2048_sha256_test.json", "RS256"),
    VectorFile("rsa-pss-2048-sha256", "rsa_pss_2048_sha256_mgf1_32_test.json", "PS256"),
    VectorFile("ed25519", "ed25519_test.json", "EdDSA", "Ed25519"),
)

#: How jwkit decides Wycheproof's ``acceptable`` cases (see the module docstring).
ACCEPTABLE_RESULT = "invalid"

#: Upstream labels overridden for these files: none.
OVERRIDES: dict[tuple[str, int], str] = {}


@cache
def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / name).read_text(encoding="utf-8"))
    return data


def _fixed(hex_value: str, size: int) -> str:
    """A Wycheproof coordinate (hex, possibly with a sign octet or leading zeros dropped) as
    the fixed-length base64url a JWK needs (RFC 7518 §6.2.1.2)."""
    return b64url_encode(int(hex_value, 16).to_bytes(size, "big"))


def _minimal(hex_value: str) -> str:
    value = int(hex_value, 16)
    return b64url_encode(value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def _jwk_member(group: dict[str, Any]) -> dict[str, Any] | None:
    jwk: dict[str, Any] | None = group.get("publicKeyJwk") or group.get("keyJwk")
    return jwk


def _key_from_raw(vf: VectorFile, group: dict[str, Any]) -> dict[str, Any]:
    """The group's public key rebuilt as a JWK from its raw numbers."""
    pub = group["publicKey"]
    if vf.short.startswith("ecdsa"):
        assert vf.size is not None
        return {
            "kty": "EC",
            "crv": vf.crv,
            "x": _fixed(pub["wx"], vf.size),
            "y": _fixed(pub["wy"], vf.size),
        }
    if vf.short.startswith("rsa"):
        return {"kty": "RSA", "n": _minimal(pub["modulus"]), "e": _minimal(pub["publicExponent"])}
    return {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(bytes.fromhex(pub["pk"]))}


@cache
def _group_key(file_index: int, group_index: int) -> JWK:
    vf = FILES[file_index]
    group = _load(vf.name)["testGroups"][group_index]
    data = _jwk_member(group) or _key_from_raw(vf, group)
    key = JWK.from_dict(data)
    # The Wycheproof JWKs of the ECDSA and Ed25519 files carry no "alg"; the file says it.
    return key if key.alg == vf.alg else key.replace(alg=vf.alg)


def _cases() -> list[Any]:
    params = []
    for fi, vf in enumerate(FILES):
        for gi, group in enumerate(_load(vf.name)["testGroups"]):
            for test in group["tests"]:
                result = OVERRIDES.get((vf.short, test["tcId"]), test["result"])
                if result == "acceptable":
                    result = ACCEPTABLE_RESULT
                flag = test["flags"][0] if test["flags"] else "NoFlag"
                params.append(
                    pytest.param(
                        fi,
                        gi,
                        test["msg"],
                        test["sig"],
                        result,
                        id=f"wycheproof-{vf.short}-tc{test['tcId']}-{flag}",
                    )
                )
    return params


def _groups() -> list[Any]:
    return [
        pytest.param(fi, gi, id=f"wycheproof-{vf.short}-group{gi + 1}-key-forms")
        for fi, vf in enumerate(FILES)
        for gi in range(len(_load(vf.name)["testGroups"]))
    ]


@pytest.mark.parametrize(("file_index", "group_index", "msg", "sig", "expected"), _cases())
def test_wycheproof_signature(
    file_index: int, group_index: int, msg: str, sig: str, expected: str
) -> None:
    vf = FILES[file_index]
    key = _group_key(file_index, group_index)
    assert key.can_verify(vf.alg)
    verified = ALGORITHMS[vf.alg].verify(verifying_key(key), bytes.fromhex(msg), bytes.fromhex(sig))
    assert verified is (expected == "valid")


def _material(key: JWK) -> dict[str, Any]:
    return {k: v for k, v in key.to_dict().items() if k in ("kty", "crv", "x", "y", "n", "e")}


@pytest.mark.parametrize(("file_index", "group_index"), _groups())
def test_wycheproof_key_forms_agree(file_index: int, group_index: int) -> None:
    """The JWK, the raw numbers and the PEM of a group all import as the same public key."""
    vf = FILES[file_index]
    group = _load(vf.name)["testGroups"][group_index]
    from_raw = JWK.from_dict(_key_from_raw(vf, group))
    from_pem = JWK.from_pem(group["publicKeyPem"], alg=vf.alg)
    assert not from_raw.is_private and not from_pem.is_private
    assert from_pem.alg == vf.alg
    assert from_raw.thumbprint() == from_pem.thumbprint()
    assert _material(from_raw) == _material(from_pem)
    jwk = _jwk_member(group)
    if jwk is not None:
        assert JWK.from_dict(jwk).thumbprint() == from_raw.thumbprint()
    else:
        # Only the ECDSA files have groups without a JWK (the r/s edge-case groups).
        assert vf.short.startswith("ecdsa")


def test_every_case_collected() -> None:
    total = sum(_load(vf.name)["numberOfTests"] for vf in FILES)
    assert len(_cases()) == total == 262 + 280 + 318 + 259 + 108 + 151
    acceptable = [
        (vf.short, t["tcId"])
        for vf in FILES
        for g in _load(vf.name)["testGroups"]
        for t in g["tests"]
        if t["result"] == "acceptable"
    ]
    assert acceptable == [("rsa-pkcs1-2048-sha256", 8)]
