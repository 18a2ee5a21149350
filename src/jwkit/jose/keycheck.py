"""What makes a public key acceptable: the checks ``cryptography`` does not make itself.

``cryptography`` happily loads keys that no verifier should trust: Ed25519 points of small
order (the identity verifies every message), RSA moduli that are even, tiny, huge or carry the
ROCA fingerprint, exponents of 1. Every import path of :class:`~jwkit.JWK` runs these checks.
The only arithmetic here is residue tests and comparisons on public values.
"""

from __future__ import annotations

from cryptography.exceptions import UnsupportedAlgorithm as _CryptoUnsupported
from cryptography.hazmat.primitives import serialization

from ..errors import JWKError

__all__ = [
    "MAX_RSA_BITS",
    "MIN_RSA_BITS",
    "check_ed25519_public",
    "check_rsa_public",
    "has_roca_fingerprint",
    "looks_like_asymmetric_key",
]

MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192
_ED25519_P = 2**255 - 19
# Encodings of the Ed25519 points of small order (the identity among them): a public key
# equal to one of these makes signatures forgeable, so such keys are refused at import.
_ED25519_SMALL_ORDER = frozenset(
    bytes.fromhex(h)
    for h in (
        "0100000000000000000000000000000000000000000000000000000000000000",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000080",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    )
)

# The ROCA fingerprint (CVE-2017-15361, Nemec et al. 2017): moduli from Infineon's flawed
# RSALib are, modulo each of these small primes, a power of 65537. Such keys are factorable;
# a random modulus passes all these residue tests with negligible probability.
_ROCA_PRIMES = (3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73,
                79, 83, 89, 97, 101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157,
                163, 167)  # fmt: skip


def _powers_of_65537(p: int) -> frozenset[int]:
    powers, value = set(), 1
    while value not in powers:
        powers.add(value)
        value = value * 65537 % p
    return frozenset(powers)


_ROCA_SUBGROUPS = tuple((p, _powers_of_65537(p)) for p in _ROCA_PRIMES)


def has_roca_fingerprint(n: int) -> bool:
    return all(n % p in group for p, group in _ROCA_SUBGROUPS)


def check_rsa_public(n: int, e: int) -> None:
    bits = n.bit_length()
    if bits < MIN_RSA_BITS:
        raise JWKError(f"RSA modulus of {bits} bits is too short (minimum {MIN_RSA_BITS})")
    if bits > MAX_RSA_BITS:
        raise JWKError(f"RSA modulus of {bits} bits is too long (maximum {MAX_RSA_BITS})")
    if n % 2 == 0:
        raise JWKError("RSA modulus is even")
    if e < 3 or e % 2 == 0 or e >= n:
        raise JWKError("RSA public exponent must be odd and greater than 1")
    if has_roca_fingerprint(n):
        raise JWKError("RSA modulus has the ROCA fingerprint (CVE-2017-15361)")


def check_ed25519_public(raw: bytes) -> None:
    # RFC 8032 §5.1.3: y must be canonical (< p); reject the small-order points, and the
    # "negative zero" encodings of x = 0 (y = 1 or y = -1 with the sign bit set).
    y = int.from_bytes(raw, "little") & ((1 << 255) - 1)
    if y >= _ED25519_P:
        raise JWKError("Ed25519 public key is not canonical")
    if raw in _ED25519_SMALL_ORDER or (raw[31] & 0x80 and y in (1, _ED25519_P - 1)):
        raise JWKError("Ed25519 public key is of small order")


def looks_like_asymmetric_key(secret: bytes) -> bool:
    """True if ``secret`` is (or holds) an encoded public or private key.

    Refusing these makes RS/ES -> HS algorithm confusion impossible by construction: a
    public key's bytes can never become an HMAC secret.
    """
    head = secret.lstrip()[:64]
    if b"-----BEGIN" in head or head.startswith((b"ssh-", b"ecdsa-sha2-")):
        return True
    try:
        serialization.load_der_public_key(secret)
        return True
    except (ValueError, TypeError, _CryptoUnsupported):
        pass
    try:
        serialization.load_der_private_key(secret, password=None)
        return True
    except (ValueError, TypeError, _CryptoUnsupported):
        return False
