"""The JWS algorithm registry (RFC 7518 §3, RFC 8037 §3.1).

``ALGORITHMS`` maps each supported ``alg`` name to an :class:`Algorithm` object. This is the
documented low-level layer, and it knows nothing of JWKs: it takes ``cryptography`` key
objects (or, for HMAC, the secret bytes). ``sign(private_key, signing_input)`` returns the raw
JOSE signature and ``verify(public_key, signing_input, signature)`` returns a bool. Everything
above it (:class:`~jwkit.jose.jwk.JWK`, :mod:`jwkit.jose.jws`, the verifier) decides *which*
algorithm may run with *which* key; an algorithm object only checks that the key is of its type.

All cryptography is delegated to ``cryptography``'s primitives, :mod:`hmac`, and :mod:`hashlib`
(for the digest an ECDSA check verifies); the only arithmetic here is range checks on ECDSA
``r`` and ``s`` against the curve order.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from types import MappingProxyType

from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature

from ..errors import JWKError

__all__ = [
    "ALGORITHMS",
    "ASYMMETRIC_ALGORITHMS",
    "CURVES",
    "Algorithm",
    "Checker",
    "CurveInfo",
    "ECDSAAlgorithm",
    "EdDSAAlgorithm",
    "HMACAlgorithm",
    "PrivateKey",
    "PublicKey",
    "RSAPKCS1Algorithm",
    "RSAPSSAlgorithm",
]

#: The ``cryptography`` key objects the algorithms verify with (``bytes``: an HMAC secret).
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey
#: The ``cryptography`` key objects the algorithms sign with (``bytes``: an HMAC secret).
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


class CurveInfo:
    """What jwkit needs to know about a NIST curve: its JWK name, size and group order."""

    __slots__ = ("curve", "name", "order", "size")

    def __init__(self, name: str, curve: ec.EllipticCurve, size: int, order: int) -> None:
        self.name = name
        self.curve = curve
        self.size = size  # octets per coordinate / per half of the signature
        self.order = order


# Group orders from SEC 2 / FIPS 186-4 (constants, used only for range checks).
CURVES: Mapping[str, CurveInfo] = MappingProxyType(
    {
        "P-256": CurveInfo(
            "P-256",
            ec.SECP256R1(),
            32,
            0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
        ),
        "P-384": CurveInfo(
            "P-384",
            ec.SECP384R1(),
            48,
            int(
                "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF"
                "581A0DB248B0A77AECEC196ACCC52973",
                16,
            ),
        ),
        "P-521": CurveInfo(
            "P-521",
            ec.SECP521R1(),
            66,
            int(
                "01FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"
                "FA51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409",
                16,
            ),
        ),
    }
)

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}

# The same hashes from hashlib (OpenSSL's, like cryptography's), for verifying a digest.
_DIGESTS: dict[str, Callable[[bytes], hashlib._Hash]] = {
    "256": hashlib.sha256,
    "384": hashlib.sha384,
    "512": hashlib.sha512,
}


#: A JWS algorithm bound to one key: ``check(signing_input, signature) -> bool``.
Checker = Callable[[bytes, bytes], bool]


def _refuse(signing_input: bytes, signature: bytes) -> bool:
    """The checker of a key that does not fit the algorithm."""
    return False


class Algorithm:
    """One JWS algorithm. Subclasses bind it to a key type."""

    name: str
    #: The JWK key type (``kty``) the algorithm needs.
    kty: str
    #: The curve the key must be on (EC and OKP), else ``None``.
    crv: str | None = None
    #: The fewest secret octets an HMAC key may have (0: not an HMAC algorithm).
    min_key_size: int = 0

    def sign(self, key: PrivateKey | bytes, signing_input: bytes) -> bytes:
        """The JOSE signature of ``signing_input`` with ``key``; :class:`JWKError` when the
        key is not of this algorithm's type."""
        raise NotImplementedError  # pragma: no cover - abstract

    def checker(self, key: PublicKey | bytes) -> Checker:
        """This algorithm bound to ``key``: a function ``(signing_input, signature) -> bool``.

        Everything that depends only on the key (its type, its curve, the objects
        ``cryptography`` needs) is settled here, once; a key of the wrong type gets a checker
        that refuses every signature. :class:`~jwkit.jose.jwk.JWK` keeps one per algorithm.
        """
        raise NotImplementedError  # pragma: no cover - abstract

    def verify(self, key: PublicKey | bytes, signing_input: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is valid for ``signing_input`` under ``key``."""
        return self.checker(key)(signing_input, signature)

    def _wrong_key(self) -> JWKError:
        return JWKError(f"{self.name} signing needs a {self.kty} private key")

    def __repr__(self) -> str:
        return f"<Algorithm {self.name}>"


class ECDSAAlgorithm(Algorithm):
    """ECDSA with the signature as fixed-length ``r || s`` (RFC 7518 §3.4)."""

    kty = "EC"

    def __init__(self, name: str, crv: str, hash_bits: str) -> None:
        self.name = name
        self.crv = crv
        info = CURVES[crv]
        self._curve = info.curve.name
        self._size = info.size
        self._order_octets = info.order.to_bytes(info.size, "big")
        self._zero = bytes(info.size)
        self._ecdsa = ec.ECDSA(_HASHES[hash_bits]())
        # Verification hashes with hashlib and hands OpenSSL the digest: the same check,
        # about a microsecond cheaper per token than letting cryptography hash.
        self._digest = _DIGESTS[hash_bits]
        self._ecdsa_prehashed = ec.ECDSA(Prehashed(_HASHES[hash_bits]()))

    def sign(self, key: PrivateKey | bytes, signing_input: bytes) -> bytes:
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != self._curve:
            raise self._wrong_key()
        r, s = decode_dss_signature(key.sign(signing_input, self._ecdsa))
        return r.to_bytes(self._size, "big") + s.to_bytes(self._size, "big")

    def checker(self, key: PublicKey | bytes) -> Checker:
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != self._curve:
            return _refuse
        verify = key.verify
        digest = self._digest
        ecdsa = self._ecdsa_prehashed
        size = self._size
        signature_size = 2 * size
        zero = self._zero
        order = self._order_octets
        heads, middles = _der_templates(size)

        def check(signing_input: bytes, signature: bytes) -> bool:
            if len(signature) != signature_size:
                return False
            r = signature[:size]
            s = signature[size:]
            # 0 < r, s < n, compared as equal-length big-endian octet strings (which orders
            # them exactly as the integers do), then re-encoded as the DER OpenSSL takes.
            if not (zero < r < order and zero < s < order):
                return False
            high_r = r[0]
            high_s = s[0]
            if high_r and high_s:  # full-width halves: the DER framing comes from a table
                der = heads[(high_r >> 7) << 1 | high_s >> 7] + r + middles[high_s >> 7] + s
            else:
                der = _der_signature(r, s)
            try:
                verify(der, digest(signing_input).digest(), ecdsa)
            except _CryptoInvalidSignature:
                return False
            return True

        return check


def _der_templates(size: int) -> tuple[tuple[bytes, ...], tuple[bytes, bytes]]:
    """The DER framing of two ``size``-octet halves whose first octets are not zero.

    ``heads[hr << 1 | hs]`` goes before ``r`` and ``middles[hs]`` between ``r`` and ``s``,
    where ``hr``/``hs`` is the high bit of each half's first octet (a set bit needs a zero
    octet in front to keep the INTEGER positive). :func:`_der_signature` builds the same
    bytes for any halves.
    """
    heads = []
    for high_r in (0, 1):
        for high_s in (0, 1):
            body = 2 + size + high_r + 2 + size + high_s
            length = bytes((body,)) if body < 0x80 else bytes((0x81, body))
            heads.append(b"\x30" + length + bytes((0x02, size + high_r)) + b"\x00" * high_r)
    middles = (bytes((0x02, size)), bytes((0x02, size + 1, 0x00)))
    return tuple(heads), middles


def _der_signature(r: bytes, s: bytes) -> bytes:
    """``r || s`` (two positive big-endian halves) -> DER ``SEQUENCE { INTEGER r, INTEGER s }``
    (RFC 3279 §2.2.3).

    The same bytes ``cryptography``'s ``encode_dss_signature`` returns (a property test checks
    that on every curve), built from the octets directly: on the verify hot path this skips
    two integer conversions and a call into the Rust extension. Each INTEGER is minimal, with
    a zero octet in front when the high bit is set; P-521's sequence needs the long length.
    """
    r = r.lstrip(b"\x00")
    if r[0] & 0x80:
        r = b"\x00" + r
    s = s.lstrip(b"\x00")
    if s[0] & 0x80:
        s = b"\x00" + s
    body = bytes((0x02, len(r))) + r + bytes((0x02, len(s))) + s
    n = len(body)
    return (bytes((0x30, n)) if n < 0x80 else bytes((0x30, 0x81, n))) + body


class _RSAAlgorithm(Algorithm):
    kty = "RSA"

    def __init__(self, name: str, hash_bits: str) -> None:
        self.name = name
        self._hash = _HASHES[hash_bits]()

    def _padding(self) -> padding.AsymmetricPadding:  # pragma: no cover - abstract
        raise NotImplementedError

    def sign(self, key: PrivateKey | bytes, signing_input: bytes) -> bytes:
        if not isinstance(key, rsa.RSAPrivateKey):
            raise self._wrong_key()
        return key.sign(signing_input, self._padding(), self._hash)

    def checker(self, key: PublicKey | bytes) -> Checker:
        if not isinstance(key, rsa.RSAPublicKey):
            return _refuse
        verify = key.verify
        # RFC 8017 §8.2.2 step 1: the signature is exactly k octets long.
        signature_size = (key.key_size + 7) // 8
        pad = self._padding()
        hash_algorithm = self._hash

        def check(signing_input: bytes, signature: bytes) -> bool:
            if len(signature) != signature_size:
                return False
            try:
                verify(signature, signing_input, pad, hash_algorithm)
            except _CryptoInvalidSignature:
                return False
            return True

        return check


class RSAPKCS1Algorithm(_RSAAlgorithm):
    """RSASSA-PKCS1-v1_5 (RFC 7518 §3.3)."""

    _PKCS1 = padding.PKCS1v15()

    def _padding(self) -> padding.AsymmetricPadding:
        return self._PKCS1


class RSAPSSAlgorithm(_RSAAlgorithm):
    """RSASSA-PSS with MGF1 and a salt as long as the hash (RFC 7518 §3.5)."""

    def __init__(self, name: str, hash_bits: str) -> None:
        super().__init__(name, hash_bits)
        self._pss = padding.PSS(
            mgf=padding.MGF1(_HASHES[hash_bits]()), salt_length=self._hash.digest_size
        )

    def _padding(self) -> padding.AsymmetricPadding:
        return self._pss


class EdDSAAlgorithm(Algorithm):
    """EdDSA over Ed25519 (RFC 8037 §3.1; ``Ed25519`` is the fully specified name)."""

    kty = "OKP"
    crv = "Ed25519"

    def __init__(self, name: str) -> None:
        self.name = name

    def sign(self, key: PrivateKey | bytes, signing_input: bytes) -> bytes:
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise self._wrong_key()
        return key.sign(signing_input)

    def checker(self, key: PublicKey | bytes) -> Checker:
        if not isinstance(key, ed25519.Ed25519PublicKey):
            return _refuse
        verify = key.verify

        def check(signing_input: bytes, signature: bytes) -> bool:
            if len(signature) != 64:
                return False
            try:
                verify(signature, signing_input)
            except _CryptoInvalidSignature:
                return False
            return True

        return check


class HMACAlgorithm(Algorithm):
    """HMAC with SHA-2 (RFC 7518 §3.2). The key must be at least as long as the hash."""

    kty = "oct"

    def __init__(self, name: str, hash_bits: str) -> None:
        self.name = name
        self._digest = "sha" + hash_bits
        self.min_key_size = hashlib.new(self._digest).digest_size

    def sign(self, key: PrivateKey | bytes, signing_input: bytes) -> bytes:
        if type(key) is not bytes or len(key) < self.min_key_size:
            raise JWKError(f"{self.name} needs a secret of at least {self.min_key_size} bytes")
        return hmac.digest(key, signing_input, self._digest)

    def checker(self, key: PublicKey | bytes) -> Checker:
        if type(key) is not bytes or len(key) < self.min_key_size:
            return _refuse
        secret = key
        digest = self._digest
        mac = hmac.digest
        same = hmac.compare_digest

        def check(signing_input: bytes, signature: bytes) -> bool:
            return same(mac(secret, signing_input, digest), signature)

        return check


def _registry() -> dict[str, Algorithm]:
    algs: list[Algorithm] = [
        ECDSAAlgorithm("ES256", "P-256", "256"),
        ECDSAAlgorithm("ES384", "P-384", "384"),
        ECDSAAlgorithm("ES512", "P-521", "512"),
        EdDSAAlgorithm("EdDSA"),
        EdDSAAlgorithm("Ed25519"),
    ]
    for bits in ("256", "384", "512"):
        algs.append(RSAPKCS1Algorithm("RS" + bits, bits))
        algs.append(RSAPSSAlgorithm("PS" + bits, bits))
        algs.append(HMACAlgorithm("HS" + bits, bits))
    return {a.name: a for a in algs}


#: Every supported JWS algorithm by name. ``none`` is deliberately absent.
ALGORITHMS: Mapping[str, Algorithm] = MappingProxyType(_registry())

#: The algorithms that use public keys (the safe default allow-list for remote key sets).
ASYMMETRIC_ALGORITHMS: frozenset[str] = frozenset(
    name for name, a in ALGORITHMS.items() if a.kty != "oct"
)
