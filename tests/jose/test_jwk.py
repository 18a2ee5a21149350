"""JWK import, validation and export (RFC 7517, RFC 7518 §6, RFC 8037 §2, RFC 7638)."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from jwkit import JWK, JWKError, JWKSet
from jwkit.jose import jws
from jwkit.jose.b64 import b64url_decode, b64url_encode, uint_b64url

from ..conftest import private_key

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k", "oth"}


def test_generate_sets_alg_use_and_thumbprint_kid(alg: str) -> None:
    key = private_key(alg)
    assert key.alg == alg
    assert key.use == "sig"
    assert key.is_private
    assert key.kid == key.thumbprint() or alg[:2] in ("RS", "PS")  # RSA twins share a key
    assert key.can_sign(alg) and key.can_verify(alg)


def test_public_export_never_has_private_members(alg: str) -> None:
    key = private_key(alg)
    if key.is_symmetric:
        with pytest.raises(JWKError):
            key.to_dict()
        with pytest.raises(JWKError):
            key.public()
        return
    public = key.public().to_dict()
    assert not PRIVATE_MEMBERS & set(public)
    assert not PRIVATE_MEMBERS & set(key.to_dict())  # private=False is the default
    assert public["kid"] == key.kid and public["alg"] == alg and public["use"] == "sig"
    assert not key.public().is_private


def test_private_round_trip(alg: str) -> None:
    key = private_key(alg)
    again = JWK.from_dict(key.to_dict(private=True))
    assert again == key
    assert JWK.from_json(key.to_json(private=True)) == key


def test_pem_round_trip(alg: str) -> None:
    key = private_key(alg)
    if key.is_symmetric:
        with pytest.raises(JWKError):
            key.to_pem()
        return
    from_private = JWK.from_pem(key.to_pem(private=True), alg=alg)
    assert from_private.to_dict(private=True)["d"] == key.to_dict(private=True)["d"]
    from_public = JWK.from_pem(key.to_pem().decode())
    assert not from_public.is_private
    assert from_public.thumbprint() == key.thumbprint()
    assert from_public.kid == key.thumbprint()  # default kid


def test_clerk_style_one_line_spki() -> None:
    key = JWK.generate("RS256")
    der = key.public().to_pem()
    body = b"".join(der.split(b"\n")[1:-2])
    assert b"BEGIN" not in body
    imported = JWK.from_pem(body.decode(), alg="RS256")
    assert imported.thumbprint() == key.thumbprint()
    assert imported.can_verify("RS256") and not imported.can_verify("PS256")


def test_certificate_pem() -> None:
    import datetime

    priv = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "jwkit test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(priv.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(priv, hashes.SHA256())
    )
    key = JWK.from_pem(cert.public_bytes(serialization.Encoding.PEM))
    assert key.kty == "EC" and key.crv == "P-256" and not key.is_private


@pytest.mark.parametrize(
    "junk", [b"", b"not a key", b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"]
)
def test_from_pem_junk(junk: bytes) -> None:
    with pytest.raises(JWKError):
        JWK.from_pem(junk)


def _ec_public(crv: str = "P-256") -> dict[str, str]:
    return (
        JWK.generate({"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}[crv]).public().to_dict()
    )


def test_ec_point_not_on_curve() -> None:
    jwk = _ec_public()
    y = bytearray(b64url_decode(jwk["y"]))
    y[-1] ^= 1
    jwk["y"] = b64url_encode(bytes(y))
    with pytest.raises(JWKError, match="curve"):
        JWK.from_dict(jwk)


@pytest.mark.parametrize("member", ["x", "y"])
def test_ec_coordinate_length_is_exact(member: str) -> None:
    jwk = _ec_public()
    raw = b64url_decode(jwk[member])
    for bad in (raw[1:], b"\x00" + raw):
        jwk[member] = b64url_encode(bad)
        with pytest.raises(JWKError, match="exactly"):
            JWK.from_dict(jwk)


def test_ec_private_must_match_public() -> None:
    a = JWK.generate("ES256").to_dict(private=True)
    b = JWK.generate("ES256").to_dict(private=True)
    a["d"] = b["d"]
    with pytest.raises(JWKError, match="match"):
        JWK.from_dict(a)


def test_ec_private_scalar_range() -> None:
    jwk = JWK.generate("ES256").to_dict(private=True)
    jwk["d"] = b64url_encode(b"\x00" * 32)
    with pytest.raises(JWKError):
        JWK.from_dict(jwk)


@pytest.mark.parametrize("crv", ["P-192", "secp256k1", "", None, 7])
def test_unsupported_curves(crv: object) -> None:
    jwk: dict[str, object] = dict(_ec_public())
    jwk["crv"] = crv
    with pytest.raises(JWKError):
        JWK.from_dict(jwk)


def test_alg_must_fit_key() -> None:
    jwk = _ec_public()
    for alg in ("ES384", "RS256", "HS256", "EdDSA"):
        with pytest.raises(JWKError):
            JWK.from_dict({**jwk, "alg": alg})
    with pytest.raises(JWKError):
        JWK.from_dict({**jwk, "alg": "none"})
    # An algorithm jwkit does not implement (here an encryption one) may be imported
    # but verifies nothing.
    enc = JWK.from_dict({**jwk, "alg": "ECDH-ES", "use": "enc"})
    assert enc.verify_algorithms == frozenset()


def _rsa_public_dict(bits: int = 2048, e: int = 65537) -> dict[str, str]:
    n = rsa.generate_private_key(65537, max(bits, 1024)).public_key().public_numbers().n
    return {"kty": "RSA", "n": uint_b64url(n), "e": uint_b64url(e)}


def test_rsa_too_small_key_refused() -> None:
    with pytest.raises(JWKError, match="too short"):
        JWK.from_dict(_rsa_public_dict(1024))
    with pytest.raises(ValueError):
        JWK.generate("RS256", size=1024)


def test_rsa_too_large_modulus_refused() -> None:
    n = (1 << 8200) + 1
    with pytest.raises(JWKError, match="too long"):
        JWK.from_dict({"kty": "RSA", "n": uint_b64url(n), "e": "AQAB"})


@pytest.mark.parametrize("e", [1, 2, 65536, 0])
def test_rsa_bad_exponent(e: int) -> None:
    jwk = _rsa_public_dict()
    jwk["e"] = uint_b64url(e)
    with pytest.raises(JWKError):
        JWK.from_dict(jwk)


def test_rsa_even_modulus() -> None:
    jwk = _rsa_public_dict()
    n = int.from_bytes(b64url_decode(jwk["n"]), "big") + 1
    jwk["n"] = uint_b64url(n)
    with pytest.raises(JWKError, match="even"):
        JWK.from_dict(jwk)


def test_rsa_private_without_crt_parameters() -> None:
    full = JWK.generate("RS256").to_dict(private=True)
    minimal = {k: full[k] for k in ("kty", "n", "e", "d", "alg")}
    key = JWK.from_dict(minimal)
    assert key.is_private and key.to_dict(private=True)["p"] in (full["p"], full["q"])
    partial = {**minimal, "p": full["p"]}
    with pytest.raises(JWKError):
        JWK.from_dict(partial)


def test_rsa_inconsistent_private_key() -> None:
    full = JWK.generate("RS256").to_dict(private=True)
    full["dp"] = full["dq"]
    with pytest.raises(JWKError):
        JWK.from_dict(full)


# RFC 8032 small-order points and non-canonical encodings: the identity (01 00..00)
# verifies every message with a signature of R = identity, S = 0.
ED25519_DEGENERATE = [
    "01" + "00" * 31,
    "ec" + "ff" * 30 + "7f",
    "00" * 32,
    "00" * 31 + "80",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "01" + "00" * 30 + "80",  # x = 0 with the sign bit: non-canonical identity
    "ee" + "ff" * 30 + "7f",  # y = p + 1: non-canonical
    "ff" * 31 + "7f",  # y = 2^255 - 1 >= p
]


@pytest.mark.parametrize("hexkey", ED25519_DEGENERATE)
def test_ed25519_degenerate_public_keys(hexkey: str) -> None:
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(bytes.fromhex(hexkey))}
    with pytest.raises(JWKError):
        JWK.from_dict(jwk)


def test_identity_key_would_verify_anything_without_the_check() -> None:
    # Documents why the check exists: cryptography itself accepts the identity key.
    from cryptography.hazmat.primitives.asymmetric import ed25519

    pub = ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex("01" + "00" * 31))
    sig = bytes.fromhex("01" + "00" * 31) + b"\x00" * 32
    pub.verify(sig, b"any message at all")  # no exception: forgeable


@pytest.mark.parametrize("crv", ["X25519", "Ed448", "P-256", None])
def test_okp_unsupported_curves(crv: object) -> None:
    jwk = JWK.generate("EdDSA").public().to_dict()
    with pytest.raises(JWKError):
        JWK.from_dict({**jwk, "crv": crv})


def test_ed25519_private_must_match() -> None:
    a = JWK.generate("EdDSA").to_dict(private=True)
    a["d"] = JWK.generate("EdDSA").to_dict(private=True)["d"]
    with pytest.raises(JWKError):
        JWK.from_dict(a)


@pytest.mark.parametrize(
    "jwk",
    [
        [],
        "key",
        {},
        {"kty": "XYZ"},
        {"kty": "oct"},
        {"kty": "oct", "k": ""},
        {"kty": "oct", "k": "AAA="},
        {"kty": "EC", "crv": "P-256", "x": 5, "y": "AA"},
        {"kty": "RSA", "n": "AQAB"},
        {"kty": "oct", "k": "c2VjcmV0", "kid": 5},
        {"kty": "oct", "k": "c2VjcmV0", "key_ops": "sign"},
        {"kty": "oct", "k": "c2VjcmV0", "key_ops": ["sign", "sign"]},
        {"kty": "oct", "k": "c2VjcmV0", "use": "sig", "key_ops": ["encrypt"]},
    ],
)
def test_malformed_jwks_raise_jwk_error(jwk: object) -> None:
    with pytest.raises(JWKError):
        JWK.from_dict(jwk)  # type: ignore[arg-type]


def test_from_json_rejects_duplicates_and_non_objects() -> None:
    with pytest.raises(JWKError):
        JWK.from_json('{"kty":"oct","kty":"oct","k":"AAAA"}')
    with pytest.raises(JWKError):
        JWK.from_json("[1]")
    with pytest.raises(JWKError):
        JWK.from_json("{")


def test_use_and_key_ops_decide_verification() -> None:
    base = JWK.generate("ES256").public().to_dict()
    enc = JWK.from_dict({k: v for k, v in base.items() if k != "use"} | {"use": "enc"})
    assert not enc.can_verify("ES256")
    sign_only = JWK.from_dict({k: v for k, v in base.items() if k != "use"} | {"key_ops": ["sign"]})
    assert not sign_only.can_verify("ES256")
    verify_ok = JWK.from_dict(
        {k: v for k, v in base.items() if k != "use"} | {"key_ops": ["verify"]}
    )
    assert verify_ok.can_verify("ES256")


def test_secret_keys() -> None:
    key = JWK.from_secret(b"k" * 32, "HS256", kid="s1")
    assert key.can_verify("HS256") and not key.can_verify("HS384")
    with pytest.raises(JWKError, match="at least 48"):
        JWK.from_secret(b"k" * 32, "HS384")
    with pytest.raises(JWKError):
        JWK.from_secret(b"k" * 64, "RS256")
    # An alg-less oct key verifies only the HMACs whose hash it is long enough for.
    loose = JWK.from_dict({"kty": "oct", "k": b64url_encode(b"k" * 40)})
    assert loose.verify_algorithms == frozenset({"HS256"})


def test_asymmetric_key_bytes_never_become_hmac_secrets() -> None:
    key = JWK.generate("RS256")
    pem = key.public().to_pem()
    der = base64.b64decode(b"".join(pem.split(b"\n")[1:-2]))
    for material in (pem, der, key.to_pem(private=True), b"ssh-rsa AAAAB3NzaC1yc2E" + b"A" * 40):
        with pytest.raises(JWKError, match="asymmetric"):
            JWK.from_secret(material, "HS256")


def test_thumbprint_ignores_metadata_and_is_stable() -> None:
    key = JWK.generate("ES256")
    assert key.thumbprint() == key.replace(kid="other", alg=None, use=None).thumbprint()
    canonical = json.dumps(
        {m: key.public().to_dict()[m] for m in ("crv", "kty", "x", "y")},
        separators=(",", ":"),
        sort_keys=True,
    )
    import hashlib

    assert key.thumbprint() == b64url_encode(hashlib.sha256(canonical.encode()).digest())
    assert len(b64url_decode(key.thumbprint("sha512"))) == 64
    with pytest.raises(ValueError):
        key.thumbprint("md17")


def test_repr_never_shows_secret_material() -> None:
    key = JWK.from_secret(b"s3cr3t-" * 6, "HS256", kid="k")
    assert "s3cr3t" not in repr(key)
    priv = JWK.generate("ES256")
    assert priv.to_dict(private=True)["d"] not in repr(priv)


# -- JWK Sets --------------------------------------------------------------------------


def test_jwkset_lookup_and_export() -> None:
    a, b = JWK.generate("ES256").public(), JWK.generate("EdDSA").public()
    keys = JWKSet([a, b])
    assert keys.get(a.kid or "") is a and keys.get("nope") is None
    assert keys.find(alg="EdDSA") == [b]
    assert keys.find(kid=a.kid) == [a]
    assert len(keys) == 2 and list(keys) == [a, b]
    again = JWKSet.from_json(json.dumps(keys.to_dict()))
    assert again == keys


def test_jwkset_skip_invalid() -> None:
    good = JWK.generate("ES256").public().to_dict()
    data = {"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}, good, {"kty": "?"}]}
    with pytest.raises(JWKError):
        JWKSet.from_dict(data)
    keys = JWKSet.from_dict(data, skip_invalid=True)
    assert [k.kid for k in keys] == [good["kid"]]
    assert [i for i, _ in keys.skipped] == [0, 2]


@pytest.mark.parametrize("data", [[], {"keys": {}}, {"keys": "x"}, {}, "keys"])
def test_jwkset_malformed(data: object) -> None:
    with pytest.raises(JWKError):
        JWKSet.from_dict(data)  # type: ignore[arg-type]


def test_jwkset_refuses_duplicate_kids_and_mixed_kinds_for_verification() -> None:
    a = JWK.generate("ES256", kid="same").public()
    b = JWK.generate("ES256", kid="same").public()
    with pytest.raises(JWKError, match="share"):
        JWKSet([a, b]).check_verifiable()
    mixed = JWKSet([JWK.generate("ES256").public(), JWK.generate("HS256")])
    with pytest.raises(JWKError, match="mixes"):
        mixed.check_verifiable()


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
def test_a_private_key_holds_no_second_public_key_object(alg: str) -> None:
    """A signer keeps one OpenSSL key, not two (the key service holds one per project): the
    public half is derived when it is needed, and is the same key."""
    generated = JWK.generate(alg)
    private = JWK.from_dict(generated.to_dict(private=True))
    assert private._public_key is None
    public = private.public()
    assert public._public_key is not None
    assert public.to_dict() == generated.public().to_dict()
    assert private.to_pem() == public.to_pem()
    token = jws.sign(b"payload", private, headers={"alg": alg})
    assert jws.verify(token, private, algorithms=[alg]).payload == b"payload"
    assert jws.verify(token, public, algorithms=[alg]).payload == b"payload"
