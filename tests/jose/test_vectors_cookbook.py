"""RFC 7520 (the JOSE cookbook) section 3 keys and section 4 signatures, plus RFC 8037 §A.4 in
the cookbook's format, run through jwkit's public API.

jwkit speaks the JWS Compact Serialization only (RFC 7515 §7.1). The cookbook's examples that
exist only in the JSON serializations are handled as this table says:

=====================  ==========================================================================
example                decision
=====================  ==========================================================================
every ``json`` and     Rejected with ``malformed``: jwkit does not parse the JSON serializations
``json_flat`` output   (RFC 7515 §7.2). Checked for every example, so that a JSON token can never
                       slip through by accident.
4.5 detached content   Out of scope (RFC 7515 Appendix F): the compact form with the payload left
                       out must be rejected (the signature covers the real payload); with the
                       payload put back in place it verifies.
4.6, 4.8 RS256/HS256   JSON only, but ``alg`` is in the protected header. The compact form made of
                       the protected header, payload and signature is exactly what was signed
                       (RFC 7515 §5.1 step 7), so it must verify; the unprotected ``kid`` that is
                       dropped was never integrity-protected.
4.7, 4.8 ES512         Out of scope: ``alg`` sits only in an unprotected header, which the compact
                       serialization cannot carry. The rebuilt compact form has an empty protected
                       header and must be rejected with ``malformed`` (RFC 7515 §7.1, §4.1.1).
=====================  ==========================================================================

The cookbook keys carry no ``alg``; each is bound to the example's algorithm with
``JWK.replace(alg=...)`` before verifying, as a deployment would.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from jwkit import JWK, AlgorithmNotAllowed, InvalidSignature, JWKError, MalformedToken
from jwkit.jose import jws
from jwkit.jose.algorithms import ALGORITHMS
from jwkit.jose.b64 import b64url_decode

from ._crypto import signing_key

COOKBOOK = Path(__file__).resolve().parents[1] / "vectors" / "jose-cookbook"
ALL_ALGORITHMS = sorted(ALGORITHMS)

COMPACT_EXAMPLES = {
    "rfc7520-4.1-RS256": "jws/4_1.rsa_v15_signature.json",
    "rfc7520-4.2-PS384": "jws/4_2.rsa-pss_signature.json",
    "rfc7520-4.3-ES512": "jws/4_3.ecdsa_signature.json",
    "rfc7520-4.4-HS256": "jws/4_4.hmac-sha2_integrity_protection.json",
    "rfc8037-A.4-EdDSA": "curve25519/jws.json",
}
ALL_EXAMPLES = {
    **COMPACT_EXAMPLES,
    "rfc7520-4.5-detached": "jws/4_5.signature_with_detached_content.json",
    "rfc7520-4.6-unprotected-kid": "jws/4_6.protecting_specific_header_fields.json",
    "rfc7520-4.7-unprotected-alg": "jws/4_7.protecting_content_only.json",
    "rfc7520-4.8-multiple": "jws/4_8.multiple_signatures.json",
}


@cache
def _load(relative: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((COOKBOOK / relative).read_text(encoding="utf-8"))
    return data


def _verifying_key(key_data: dict[str, Any], alg: str) -> JWK:
    """The example's key bound to its algorithm; the public half when there is one."""
    key = JWK.from_dict(key_data).replace(alg=alg)
    return key if key.kty == "oct" else key.public()


# -- section 3 keys ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("public_file", "private_file"),
    [
        pytest.param(
            "jwk/3_1.ec_public_key.json",
            "jwk/3_2.ec_private_key.json",
            id="rfc7520-3.1-3.2-EC-P521",
        ),
        pytest.param(
            "jwk/3_3.rsa_public_key.json", "jwk/3_4.rsa_private_key.json", id="rfc7520-3.3-3.4-RSA"
        ),
    ],
)
def test_cookbook_key_pairs(public_file: str, private_file: str) -> None:
    public_data, private_data = _load(public_file), _load(private_file)
    public, private = JWK.from_dict(public_data), JWK.from_dict(private_data)
    assert not public.is_private and private.is_private
    assert public.kid == private.kid == "bilbo.baggins@hobbiton.example"
    assert public.use == "sig"
    assert private.public().to_dict() == public.to_dict() == public_data
    assert private.thumbprint() == public.thumbprint()
    # The private export gives back every member of the file, unchanged.
    assert private.to_dict(private=True) == private_data


def test_cookbook_hmac_key() -> None:
    data = _load("jwk/3_5.symmetric_key_mac_computation.json")
    key = JWK.from_dict(data)
    assert key.kty == "oct" and key.alg == "HS256" and key.is_private
    assert key.can_verify("HS256")
    assert not key.can_verify("HS384")  # bound by its alg, and too short for HS384 anyway
    assert key.to_dict(private=True) == data
    with pytest.raises(JWKError):
        key.to_dict()  # a secret has no public form


def test_cookbook_encryption_key_cannot_sign_or_verify() -> None:
    """RFC 7520 §3.6 is an A256GCM key with use "enc": no JWS algorithm may use it."""
    data = _load("jwk/3_6.symmetric_key_encryption.json")
    try:
        key = JWK.from_dict(data)
    except JWKError:
        return  # refusing it at import would be just as correct
    assert not any(key.can_verify(alg) for alg in ALGORITHMS)
    with pytest.raises(JWKError):
        jws.sign(b"payload", key, headers={"alg": "HS256"})


# -- section 4 signatures ---------------------------------------------------------------------


@pytest.mark.parametrize("relative", COMPACT_EXAMPLES.values(), ids=COMPACT_EXAMPLES.keys())
def test_cookbook_compact(relative: str) -> None:
    example = _load(relative)
    alg = example["input"]["alg"]
    key = _verifying_key(example["input"]["key"], alg)
    verified = jws.verify(example["output"]["compact"], key, algorithms=ALL_ALGORITHMS)
    assert verified.payload == example["input"]["payload"].encode("utf-8")
    assert dict(verified.header) == example["signing"]["protected"]
    assert verified.key is key


#: For each example, another algorithm its key could be bound to by mistake.
_OTHER_ALG = {
    "RS256": "PS256",
    "PS384": "RS384",
    "ES512": "ES384",
    "HS256": "HS384",
    "EdDSA": "ES256",
}


@pytest.mark.parametrize("relative", COMPACT_EXAMPLES.values(), ids=COMPACT_EXAMPLES.keys())
def test_cookbook_compact_rejected_under_another_algorithm(relative: str) -> None:
    """Bound to another algorithm, the same key must refuse the token before any signature
    check: at import when the algorithm does not fit the key at all (ES384 on P-521, ES256 on
    Ed25519, HS384 with a 32-byte secret), else because the key does not allow the token's."""
    example = _load(relative)
    other = _OTHER_ALG[example["input"]["alg"]]
    with pytest.raises((JWKError, AlgorithmNotAllowed)):
        key = JWK.from_dict(example["input"]["key"]).replace(alg=other)
        jws.verify(example["output"]["compact"], key, algorithms=ALL_ALGORITHMS)


@pytest.mark.parametrize(
    "relative",
    [
        ALL_EXAMPLES[name]
        for name in ("rfc7520-4.1-RS256", "rfc7520-4.4-HS256", "rfc8037-A.4-EdDSA")
    ],
    ids=["rfc7520-4.1-RS256-resign", "rfc7520-4.4-HS256-resign", "rfc8037-A.4-EdDSA-resign"],
)
def test_cookbook_deterministic_signatures_reproduced(relative: str) -> None:
    """RSASSA-PKCS1-v1_5, HMAC and Ed25519 are deterministic: jwkit must sign to the same bytes,
    and since its header serialization is compact JSON with alg then kid, to the same token."""
    example = _load(relative)
    assert example["reproducible"] is True
    alg = example["input"]["alg"]
    key = JWK.from_dict(example["input"]["key"]).replace(alg=alg)
    signing_input = example["signing"]["sig-input"].encode("ascii")
    assert ALGORITHMS[alg].sign(signing_key(key), signing_input) == b64url_decode(
        example["signing"]["sig"]
    )
    token = jws.sign(example["input"]["payload"].encode("utf-8"), key)
    assert token == example["output"]["compact"]


def test_cookbook_detached_content() -> None:
    example = _load(ALL_EXAMPLES["rfc7520-4.5-detached"])
    key = _verifying_key(example["input"]["key"], "HS256")
    detached = example["output"]["compact"]
    header_b64, empty, signature_b64 = detached.split(".")
    assert empty == ""
    with pytest.raises(InvalidSignature):
        jws.verify(detached, key, algorithms=["HS256"])
    payload_b64 = example["signing"]["sig-input"].split(".")[1]
    attached = f"{header_b64}.{payload_b64}.{signature_b64}"
    verified = jws.verify(attached, key, algorithms=["HS256"])
    assert verified.payload == example["input"]["payload"].encode("utf-8")


def _rebuilt_compact(example: dict[str, Any]) -> list[Any]:
    signings = example["signing"] if isinstance(example["signing"], list) else [example["signing"]]
    algs = (
        example["input"]["alg"]
        if isinstance(example["input"]["alg"], list)
        else [example["input"]["alg"]]
    )
    keys = (
        example["input"]["key"]
        if isinstance(example["input"]["key"], list)
        else [example["input"]["key"]]
    )
    return list(zip(signings, algs, keys, strict=True))


JSON_ONLY = [
    pytest.param(
        ALL_EXAMPLES["rfc7520-4.6-unprotected-kid"],
        0,
        "valid",
        id="rfc7520-4.6-HS256-compact-rebuilt",
    ),
    pytest.param(
        ALL_EXAMPLES["rfc7520-4.7-unprotected-alg"],
        0,
        "invalid",
        id="rfc7520-4.7-HS256-no-protected-header",
    ),
    pytest.param(
        ALL_EXAMPLES["rfc7520-4.8-multiple"], 0, "valid", id="rfc7520-4.8-RS256-compact-rebuilt"
    ),
    pytest.param(
        ALL_EXAMPLES["rfc7520-4.8-multiple"],
        1,
        "invalid",
        id="rfc7520-4.8-ES512-no-protected-header",
    ),
    pytest.param(
        ALL_EXAMPLES["rfc7520-4.8-multiple"], 2, "valid", id="rfc7520-4.8-HS256-compact-rebuilt"
    ),
]


@pytest.mark.parametrize(("relative", "index", "expected"), JSON_ONLY)
def test_cookbook_json_only_examples(relative: str, index: int, expected: str) -> None:
    example = _load(relative)
    signing, alg, key_data = _rebuilt_compact(example)[index]
    assert "compact" not in example["output"]
    token = signing["sig-input"] + "." + signing["sig"]
    key = _verifying_key(key_data, alg)
    if expected == "valid":
        assert "alg" in signing["protected"]
        verified = jws.verify(token, key, algorithms=ALL_ALGORITHMS)
        assert verified.payload == example["input"]["payload"].encode("utf-8")
        assert dict(verified.header) == signing["protected"]
    else:
        assert "protected" not in signing and token.startswith(".")
        with pytest.raises(MalformedToken):
            jws.verify(token, key, algorithms=ALL_ALGORITHMS)


@pytest.mark.parametrize("relative", ALL_EXAMPLES.values(), ids=[f"{n}-json" for n in ALL_EXAMPLES])
def test_cookbook_json_serializations_rejected(relative: str) -> None:
    example = _load(relative)
    first = _rebuilt_compact(example)[0]
    key = _verifying_key(first[2], first[1])
    forms = [v for k, v in example["output"].items() if k in ("json", "json_flat")]
    assert forms
    for form in forms:
        for text in (json.dumps(form), json.dumps(form, separators=(",", ":"))):
            with pytest.raises(MalformedToken):
                jws.verify(text, key, algorithms=ALL_ALGORITHMS)
