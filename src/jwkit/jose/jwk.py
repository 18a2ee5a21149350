"""JSON Web Keys and Key Sets (RFC 7517, RFC 7518 §6, RFC 8037 §2, RFC 7638).

A :class:`JWK` is immutable and validated on import: wrong coordinate lengths, points off
their curve, degenerate keys that ``cryptography`` would still accept (small-order or
non-canonical Ed25519 points, RSA with ``e = 1``, an even exponent or modulus, moduli under
2048 or over 8192 bits) and ``alg`` values that do not fit the key type are all refused with
:class:`~jwkit.errors.JWKError`.

Which algorithms a key may verify is computed once at import from its type, curve, length,
``alg``, ``use`` and ``key_ops`` (:meth:`JWK.can_verify`), so an algorithm is always bound to
the key and never chosen by a token alone.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm as _CryptoUnsupported
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from ..errors import JWKError, MalformedToken
from ._json import loads_object
from .algorithms import ALGORITHMS, CURVES, Algorithm, Checker, HMACAlgorithm, PrivateKey, PublicKey
from .b64 import b64url_decode, b64url_encode, uint_b64url
from .keycheck import (
    MAX_RSA_BITS,
    MIN_RSA_BITS,
    check_ed25519_public,
    check_rsa_public,
    looks_like_asymmetric_key,
)

__all__ = ["JWK", "JWKSet"]

#: ``{alg}`` for each algorithm, built once: a key with an ``alg`` shares its set of usable
#: algorithms (a service holding 100,000 keys would otherwise hold 200,000 equal sets).
_ONLY: Mapping[str, frozenset[str]] = MappingProxyType(
    {name: frozenset((name,)) for name in ALGORITHMS}
)

_DEFAULT_ALG = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512", "Ed25519": "EdDSA"}
_PRIVATE_MEMBERS = {
    "EC": ("d",),
    "RSA": ("d", "p", "q", "dp", "dq", "qi"),
    "OKP": ("d",),
    "oct": ("k",),
}
_THUMBPRINT_MEMBERS = {
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
    "OKP": ("crv", "kty", "x"),
    "oct": ("k", "kty"),
}
_META = ("kid", "alg", "use", "key_ops")
_SIGN_OPS = frozenset({"sign", "verify"})


def _str_member(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise JWKError(f'JWK member "{name}" must be a string')
    return value


def _bytes_member(data: Mapping[str, Any], name: str, size: int | None = None) -> bytes:
    value = data.get(name)
    if not isinstance(value, str):
        raise JWKError(f'JWK member "{name}" is missing or not a string')
    try:
        raw = b64url_decode(value, name)
    except MalformedToken as exc:
        raise JWKError(f'JWK member "{name}" is not base64url') from exc
    if size is not None and len(raw) != size:
        raise JWKError(f'JWK member "{name}" must be exactly {size} octets')
    return raw


def _uint_member(data: Mapping[str, Any], name: str) -> int:
    raw = _bytes_member(data, name)
    if not raw:
        raise JWKError(f'JWK member "{name}" is empty')
    return int.from_bytes(raw, "big")


class JWK:
    """One JSON Web Key: an EC, RSA, OKP (Ed25519) or oct key with its parameters.

    Build keys with :meth:`generate`, :meth:`from_dict`, :meth:`from_json`,
    :meth:`from_pem` or :meth:`from_secret`; the constructor is internal.
    """

    __slots__ = (
        "_alg",
        "_checkers",
        "_crv",
        "_headers",
        "_key_ops",
        "_kid",
        "_kty",
        "_private_key",
        "_public_key",
        "_public_members",
        "_secret",
        "_sign_algs",
        "_use",
        "_verify_algs",
    )

    _private_key: PrivateKey | None
    _public_key: PublicKey | None
    _secret: bytes | None

    def __init__(
        self,
        *,
        kty: str,
        public_key: PublicKey | None = None,
        private_key: PrivateKey | None = None,
        secret: bytes | None = None,
        crv: str | None = None,
        kid: str | None = None,
        alg: str | None = None,
        use: str | None = None,
        key_ops: Iterable[str] | None = None,
    ) -> None:
        self._kty = kty
        self._private_key = private_key
        # A private key keeps no public key object: derived when needed (a verification, the
        # public half), so a key that only signs -- the key service holds one per project --
        # does not carry a second OpenSSL key (about 2 KiB) for nothing.
        self._public_key = public_key if private_key is None else None
        self._secret = secret
        self._crv = crv
        self._kid = kid
        self._alg = alg
        self._use = use
        self._key_ops = tuple(key_ops) if key_ops is not None else None
        self._public_members = self._compute_public_members(public_key or self._public_object())
        self._check_metadata()
        self._verify_algs = self._usable_algs("verify")
        self._sign_algs = self._usable_algs("sign") if self.is_private else frozenset()
        self._checkers: dict[str, Checker] = {}
        # Headers of tokens decoded with this key (jose._fast; jwt.decode keeps them here).
        self._headers: dict[bytes, Mapping[str, Any]] = {}

    # -- construction -------------------------------------------------------------------

    @classmethod
    def generate(
        cls,
        alg: str,
        *,
        kid: str | None = None,
        use: str | None = "sig",
        size: int | None = None,
    ) -> JWK:
        """Generate a new private key for ``alg``; ``kid`` defaults to the RFC 7638 thumbprint.

        ``size`` is the RSA modulus size in bits (default 2048, at least 2048).
        """
        algorithm = ALGORITHMS.get(alg)
        if algorithm is None:
            raise ValueError(f"unsupported algorithm {alg!r}")
        if algorithm.kty == "EC":
            assert algorithm.crv is not None
            priv: PrivateKey = ec.generate_private_key(CURVES[algorithm.crv].curve)
            key = cls(kty="EC", crv=algorithm.crv, private_key=priv, public_key=priv.public_key())
        elif algorithm.kty == "RSA":
            bits = size or MIN_RSA_BITS
            if bits < MIN_RSA_BITS or bits > MAX_RSA_BITS:
                raise ValueError(f"RSA key size must be {MIN_RSA_BITS}-{MAX_RSA_BITS} bits")
            priv = rsa.generate_private_key(public_exponent=65537, key_size=bits)
            key = cls(kty="RSA", private_key=priv, public_key=priv.public_key())
        elif algorithm.kty == "OKP":
            priv = ed25519.Ed25519PrivateKey.generate()
            key = cls(kty="OKP", crv="Ed25519", private_key=priv, public_key=priv.public_key())
        else:
            assert isinstance(algorithm, HMACAlgorithm)
            key = cls(kty="oct", secret=secrets.token_bytes(algorithm.min_key_size))
        return key.replace(alg=alg, use=use, kid=kid if kid is not None else key.thumbprint())

    @classmethod
    def from_json(cls, text: str | bytes) -> JWK:
        """Import a JWK from its JSON text."""
        return cls.from_dict(_load_json_object(text))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JWK:
        """Import and validate a JWK given as a mapping (RFC 7517 §4, RFC 7518 §6)."""
        if not isinstance(data, Mapping):
            raise JWKError("a JWK must be a JSON object")
        kty = data.get("kty")
        kid = _str_member(data, "kid")
        alg = _str_member(data, "alg")
        use = _str_member(data, "use")
        key_ops = data.get("key_ops")
        if key_ops is not None:
            if (
                not isinstance(key_ops, list)
                or not all(isinstance(op, str) for op in key_ops)
                or len(set(key_ops)) != len(key_ops)
            ):
                raise JWKError('JWK member "key_ops" must be a list of distinct strings', kid=kid)
        meta: dict[str, Any] = {"kid": kid, "alg": alg, "use": use, "key_ops": key_ops}
        try:
            if kty == "EC":
                return cls._ec_from_dict(data, meta)
            if kty == "RSA":
                return cls._rsa_from_dict(data, meta)
            if kty == "OKP":
                return cls._okp_from_dict(data, meta)
            if kty == "oct":
                secret = _bytes_member(data, "k")
                if not secret:
                    raise JWKError("symmetric key is empty")
                return cls(kty="oct", secret=secret, **meta)
        except JWKError as exc:
            if exc.kid is None:
                exc.kid = kid
            raise
        except (ValueError, TypeError, _CryptoUnsupported) as exc:
            raise JWKError(f"invalid {kty} key: {exc}", kid=kid) from None
        raise JWKError(f"unsupported key type {kty!r}", kid=kid)

    @classmethod
    def _ec_from_dict(cls, data: Mapping[str, Any], meta: dict[str, Any]) -> JWK:
        crv = data.get("crv")
        info = CURVES.get(crv) if isinstance(crv, str) else None
        if info is None:
            raise JWKError(f"unsupported EC curve {crv!r}")
        x = _bytes_member(data, "x", info.size)
        y = _bytes_member(data, "y", info.size)
        try:
            pub = ec.EllipticCurvePublicKey.from_encoded_point(info.curve, b"\x04" + x + y)
        except ValueError:
            raise JWKError("EC point is not on the curve") from None
        priv = None
        if "d" in data:
            d = int.from_bytes(_bytes_member(data, "d", info.size), "big")
            if not 0 < d < info.order:
                raise JWKError("EC private scalar is out of range")
            priv = ec.derive_private_key(d, info.curve)
            if priv.public_key().public_numbers() != pub.public_numbers():
                raise JWKError("EC private key does not match its public key")
        return cls(kty="EC", crv=info.name, public_key=pub, private_key=priv, **meta)

    @classmethod
    def _rsa_from_dict(cls, data: Mapping[str, Any], meta: dict[str, Any]) -> JWK:
        n = _uint_member(data, "n")
        e = _uint_member(data, "e")
        check_rsa_public(n, e)
        public_numbers = rsa.RSAPublicNumbers(e, n)
        if "d" not in data:
            if any(m in data for m in ("p", "q", "dp", "dq", "qi")):
                raise JWKError("RSA private key members without d")
            return cls(kty="RSA", public_key=public_numbers.public_key(), **meta)
        if "oth" in data:
            raise JWKError("multi-prime RSA keys are not supported")
        d = _uint_member(data, "d")
        if all(m in data for m in ("p", "q", "dp", "dq", "qi")):
            p, q = _uint_member(data, "p"), _uint_member(data, "q")
            dp, dq, qi = (_uint_member(data, m) for m in ("dp", "dq", "qi"))
        elif any(m in data for m in ("p", "q", "dp", "dq", "qi")):
            raise JWKError("RSA private key has only some of p, q, dp, dq, qi")
        else:
            p, q = rsa.rsa_recover_prime_factors(n, e, d)
            dp, dq, qi = rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q), rsa.rsa_crt_iqmp(p, q)
        priv = rsa.RSAPrivateNumbers(p, q, d, dp, dq, qi, public_numbers).private_key()
        return cls(kty="RSA", public_key=priv.public_key(), private_key=priv, **meta)

    @classmethod
    def _okp_from_dict(cls, data: Mapping[str, Any], meta: dict[str, Any]) -> JWK:
        crv = data.get("crv")
        if crv != "Ed25519":
            raise JWKError(f"unsupported OKP curve {crv!r}")
        x = _bytes_member(data, "x", 32)
        check_ed25519_public(x)
        pub = ed25519.Ed25519PublicKey.from_public_bytes(x)
        priv = None
        if "d" in data:
            priv = ed25519.Ed25519PrivateKey.from_private_bytes(_bytes_member(data, "d", 32))
            derived = priv.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
            if derived != x:
                raise JWKError("Ed25519 private key does not match its public key")
        return cls(kty="OKP", crv="Ed25519", public_key=pub, private_key=priv, **meta)

    @classmethod
    def from_pem(cls, data: bytes | str, alg: str | None = None, *, kid: str | None = None) -> JWK:
        """Import a PEM key: private (PKCS#8 / traditional), public (SPKI), or a certificate.

        Also accepts the bare one-line base64 SPKI with no PEM armour that some providers
        (Clerk's ``CLERK_JWT_KEY``) hand out. ``kid`` defaults to the RFC 7638 thumbprint.
        """
        raw = data.encode("ascii", "replace") if isinstance(data, str) else bytes(data)
        stripped = raw.strip()
        try:
            key_obj: Any
            if b"-----BEGIN CERTIFICATE-----" in stripped:
                key_obj = x509.load_pem_x509_certificate(stripped).public_key()
            elif b"PRIVATE KEY-----" in stripped:
                key_obj = serialization.load_pem_private_key(stripped, password=None)
            elif b"-----BEGIN" in stripped:
                key_obj = serialization.load_pem_public_key(stripped)
            else:
                der = base64.b64decode(b"".join(stripped.split()), validate=True)
                key_obj = serialization.load_der_public_key(der)
        except (ValueError, TypeError, binascii.Error, _CryptoUnsupported) as exc:
            raise JWKError(f"not a usable PEM key: {exc}") from None
        key = cls._from_crypto_key(key_obj)
        if alg is not None and alg not in ALGORITHMS:
            raise JWKError(f"unsupported algorithm {alg!r}")
        key = key.replace(alg=alg)
        return key.replace(kid=kid if kid is not None else key.thumbprint())

    @classmethod
    def _from_crypto_key(cls, obj: Any) -> JWK:
        if isinstance(obj, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
            pub = obj.public_key() if isinstance(obj, ec.EllipticCurvePrivateKey) else obj
            priv = obj if isinstance(obj, ec.EllipticCurvePrivateKey) else None
            # Round-trip through the JWK form so every import path runs the same checks.
            numbers = pub.public_numbers()
            crv = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}.get(
                pub.curve.name
            )
            if crv is None:
                raise JWKError(f"unsupported EC curve {pub.curve.name}")
            size = CURVES[crv].size
            d: dict[str, Any] = {
                "kty": "EC",
                "crv": crv,
                "x": uint_b64url(numbers.x, size),
                "y": uint_b64url(numbers.y, size),
            }
            if priv is not None:
                d["d"] = uint_b64url(priv.private_numbers().private_value, size)
            return cls.from_dict(d)
        if isinstance(obj, rsa.RSAPrivateKey | rsa.RSAPublicKey):
            pub_n = obj.public_key() if isinstance(obj, rsa.RSAPrivateKey) else obj
            pn = pub_n.public_numbers()
            check_rsa_public(pn.n, pn.e)
            if isinstance(obj, rsa.RSAPrivateKey):
                return cls(kty="RSA", public_key=obj.public_key(), private_key=obj)
            return cls(kty="RSA", public_key=obj)
        if isinstance(obj, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
            pub_e = obj.public_key() if isinstance(obj, ed25519.Ed25519PrivateKey) else obj
            x = pub_e.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            check_ed25519_public(x)
            priv_e = obj if isinstance(obj, ed25519.Ed25519PrivateKey) else None
            return cls(kty="OKP", crv="Ed25519", public_key=pub_e, private_key=priv_e)
        raise JWKError(f"unsupported key type {type(obj).__name__}")

    @classmethod
    def from_secret(cls, secret: bytes, alg: str = "HS256", *, kid: str | None = None) -> JWK:
        """Make an HMAC key (RFC 7518 §3.2) from at least as many random bytes as the hash.

        Bytes that hold an encoded public or private key are refused: an asymmetric key can
        never be turned into an HMAC secret.
        """
        if not isinstance(secret, bytes | bytearray):
            raise TypeError("secret must be bytes")
        algorithm = ALGORITHMS.get(alg)
        if not isinstance(algorithm, HMACAlgorithm):
            raise JWKError(f"{alg!r} is not an HMAC algorithm")
        secret = bytes(secret)
        if len(secret) < algorithm.min_key_size:
            raise JWKError(
                f"{alg} needs a secret of at least {algorithm.min_key_size} bytes",
            )
        if looks_like_asymmetric_key(secret):
            raise JWKError("refusing to use an asymmetric key's bytes as an HMAC secret")
        return cls(kty="oct", secret=secret, alg=alg, kid=kid, use="sig")

    def replace(self, **params: Any) -> JWK:
        """A copy with ``kid``, ``alg``, ``use`` or ``key_ops`` changed (``None`` removes)."""
        unknown = set(params) - set(_META)
        if unknown:
            raise TypeError(f"cannot replace {sorted(unknown)}")
        meta: dict[str, Any] = {
            "kid": self._kid,
            "alg": self._alg,
            "use": self._use,
            "key_ops": self._key_ops,
        }
        meta.update(params)
        return JWK(
            kty=self._kty,
            public_key=self._public_key,
            private_key=self._private_key,
            secret=self._secret,
            crv=self._crv,
            **meta,
        )

    # -- validation ---------------------------------------------------------------------

    def _check_metadata(self) -> None:
        alg = self._alg
        if alg is not None and alg in ALGORITHMS:
            algorithm = ALGORITHMS[alg]
            if not self._fits(algorithm):
                raise JWKError(f"alg {alg} does not fit this {self._kty} key", kid=self._kid)
        if alg is not None and alg.lower() == "none":
            raise JWKError('a key can never have alg "none"', kid=self._kid)
        if self._use is not None and self._key_ops is not None:
            ops = set(self._key_ops)
            if self._use == "sig" and not ops <= _SIGN_OPS:
                raise JWKError('"use" and "key_ops" disagree', kid=self._kid)
            if self._use == "enc" and ops & _SIGN_OPS:
                raise JWKError('"use" and "key_ops" disagree', kid=self._kid)

    def _usable_algs(self, op: str) -> frozenset[str]:
        if self._use is not None and self._use != "sig":
            return frozenset()
        if self._key_ops is not None and op not in self._key_ops:
            return frozenset()
        if self._alg is not None:
            algorithm = ALGORITHMS.get(self._alg)
            if algorithm is None or not self._fits(algorithm):
                return frozenset()
            return _ONLY[self._alg]
        return frozenset(name for name, a in ALGORITHMS.items() if self._fits(a))

    def _fits(self, algorithm: Algorithm) -> bool:
        """Whether this key is of the type, curve and size ``algorithm`` needs (ignores
        ``use``, ``key_ops`` and ``alg``)."""
        if algorithm.kty != self._kty or (algorithm.crv is not None and algorithm.crv != self._crv):
            return False
        return self._secret is None or len(self._secret) >= algorithm.min_key_size

    # -- properties ---------------------------------------------------------------------

    @property
    def kty(self) -> str:
        return self._kty

    @property
    def kid(self) -> str | None:
        return self._kid

    @property
    def alg(self) -> str | None:
        return self._alg

    @property
    def crv(self) -> str | None:
        return self._crv

    @property
    def use(self) -> str | None:
        return self._use

    @property
    def key_ops(self) -> tuple[str, ...] | None:
        return self._key_ops

    @property
    def is_private(self) -> bool:
        """True for a private or secret key (one that can sign)."""
        return self._private_key is not None or self._secret is not None

    @property
    def is_symmetric(self) -> bool:
        return self._kty == "oct"

    @property
    def default_alg(self) -> str:
        """The key's ``alg``, else the natural one for its type (RS256 for RSA keys)."""
        if self._alg is not None:
            return self._alg
        if self._crv in _DEFAULT_ALG:
            return _DEFAULT_ALG[self._crv]
        return "RS256" if self._kty == "RSA" else "HS256"

    def can_verify(self, alg: str) -> bool:
        """Whether this key may verify a signature made with ``alg``."""
        return alg in self._verify_algs

    def _public_object(self) -> PublicKey | None:
        """The ``cryptography`` public key: held by a public key, derived from a private one."""
        if self._private_key is not None:
            return self._private_key.public_key()
        return self._public_key

    def _checker(self, alg: str) -> Checker | None:
        """``ALGORITHMS[alg]`` bound to this key (made once, then kept), or ``None`` when this
        key may not verify ``alg``: the algorithm is bound to the key, never to the token."""
        check = self._checkers.get(alg)
        if check is None:
            if alg not in self._verify_algs:
                return None
            key = self._secret if self._kty == "oct" else self._public_object()
            assert key is not None
            check = self._checkers[alg] = ALGORITHMS[alg].checker(key)
        return check

    def _sign(self, alg: str, signing_input: bytes) -> bytes:
        """The JOSE signature of ``signing_input`` with this key and ``alg``; raises
        :class:`JWKError` unless this key may sign with ``alg``."""
        if alg not in self._sign_algs:
            raise JWKError(f"this key cannot sign with {alg}", kid=self._kid)
        key = self._secret if self._kty == "oct" else self._private_key
        assert key is not None
        return ALGORITHMS[alg].sign(key, signing_input)

    def can_sign(self, alg: str) -> bool:
        """Whether this key may sign with ``alg``."""
        return alg in self._sign_algs

    @property
    def verify_algorithms(self) -> frozenset[str]:
        """Every algorithm this key may verify."""
        return self._verify_algs

    # -- export -------------------------------------------------------------------------

    def _compute_public_members(self, public_key: PublicKey | None) -> dict[str, str]:
        if self._kty == "EC":
            assert isinstance(public_key, ec.EllipticCurvePublicKey) and self._crv
            nums = public_key.public_numbers()
            size = CURVES[self._crv].size
            return {
                "kty": "EC",
                "crv": self._crv,
                "x": uint_b64url(nums.x, size),
                "y": uint_b64url(nums.y, size),
            }
        if self._kty == "RSA":
            assert isinstance(public_key, rsa.RSAPublicKey)
            rn = public_key.public_numbers()
            return {"kty": "RSA", "n": uint_b64url(rn.n), "e": uint_b64url(rn.e)}
        if self._kty == "OKP":
            assert isinstance(public_key, ed25519.Ed25519PublicKey)
            raw = public_key.public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
            return {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(raw)}
        return {"kty": "oct"}

    def _private_members(self) -> dict[str, str]:
        priv = self._private_key
        if self._kty == "oct":
            assert self._secret is not None
            return {"k": b64url_encode(self._secret)}
        if isinstance(priv, ec.EllipticCurvePrivateKey):
            assert self._crv
            size = CURVES[self._crv].size
            return {"d": uint_b64url(priv.private_numbers().private_value, size)}
        if isinstance(priv, rsa.RSAPrivateKey):
            pn = priv.private_numbers()
            return {
                "d": uint_b64url(pn.d),
                "p": uint_b64url(pn.p),
                "q": uint_b64url(pn.q),
                "dp": uint_b64url(pn.dmp1),
                "dq": uint_b64url(pn.dmq1),
                "qi": uint_b64url(pn.iqmp),
            }
        # Only called for private keys, and every import path makes one of these three.
        assert isinstance(priv, ed25519.Ed25519PrivateKey)
        raw = priv.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return {"d": b64url_encode(raw)}

    def to_dict(self, private: bool = False) -> dict[str, Any]:
        """The JWK as a dict: public members only unless ``private=True``.

        A symmetric key has no public form: ``to_dict()`` of an ``oct`` key raises
        :class:`JWKError`; pass ``private=True`` to export its secret deliberately.
        """
        if self._kty == "oct" and not private:
            raise JWKError("a symmetric key has no public form", kid=self._kid)
        out: dict[str, Any] = dict(self._public_members)
        if private:
            if not self.is_private:
                raise JWKError("this is a public key", kid=self._kid)
            out.update(self._private_members())
        for name in _META:
            value = getattr(self, "_" + name)
            if value is not None:
                out[name] = list(value) if name == "key_ops" else value
        return out

    def to_json(self, private: bool = False) -> str:
        return json.dumps(self.to_dict(private), separators=(",", ":"))

    def to_pem(self, private: bool = False) -> bytes:
        """PEM: PKCS#8 for the private key (``private=True``), else SubjectPublicKeyInfo."""
        if self._kty == "oct":
            raise JWKError("a symmetric key has no PEM form", kid=self._kid)
        if private:
            if self._private_key is None:
                raise JWKError("this is a public key", kid=self._kid)
            return self._private_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        public_key = self._public_object()
        assert public_key is not None
        return public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def public(self) -> JWK:
        """The public half, with the same kid/alg/use (a symmetric key has none)."""
        if self._kty == "oct":
            raise JWKError("a symmetric key has no public half", kid=self._kid)
        if self._private_key is None:
            return self
        key_ops = self._key_ops
        if key_ops is not None:
            key_ops = tuple(op for op in key_ops if op != "sign")
        return JWK(
            kty=self._kty,
            public_key=self._public_object(),
            crv=self._crv,
            kid=self._kid,
            alg=self._alg,
            use=self._use,
            key_ops=key_ops,
        )

    def thumbprint(self, hash: str = "sha256") -> str:
        """RFC 7638 thumbprint: base64url of the hash of the required members' JSON."""
        members = dict(self._public_members)
        if self._kty == "oct":
            members.update(self._private_members())
        canonical = {m: members[m] for m in _THUMBPRINT_MEMBERS[self._kty]}
        text = json.dumps(canonical, separators=(",", ":"), sort_keys=True)
        try:
            digest = hashlib.new(hash, text.encode("utf-8")).digest()
        except ValueError:
            raise ValueError(f"unknown hash {hash!r}") from None
        return b64url_encode(digest)

    # -- dunder -------------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, JWK):
            return NotImplemented
        if self._kty == "oct" or other._kty == "oct":
            same_key = (
                self._secret is not None
                and other._secret is not None
                and secrets.compare_digest(self._secret, other._secret)
            )
        else:
            same_key = self._public_members == other._public_members
        return (
            same_key
            and self.is_private == other.is_private
            and (self._kid, self._alg, self._use, self._key_ops)
            == (other._kid, other._alg, other._use, other._key_ops)
        )

    def __hash__(self) -> int:
        return hash((self._kty, self._kid, self._alg, tuple(self._public_members.items())))

    def __repr__(self) -> str:
        kind = "private" if self.is_private else "public"
        extra = f" crv={self._crv}" if self._crv else ""
        return f"<JWK {self._kty}{extra} {kind} kid={self._kid!r} alg={self._alg!r}>"


def _load_json_object(text: str | bytes) -> dict[str, Any]:
    try:
        return loads_object(text, "JWK")
    except MalformedToken as exc:
        raise JWKError(str(exc)) from None


class JWKSet:
    """A JSON Web Key Set (RFC 7517 §5): an ordered, immutable collection of keys."""

    __slots__ = ("_by_kid", "_headers", "_keys", "_problem", "skipped")

    def __init__(
        self, keys: Iterable[JWK], *, skipped: Iterable[tuple[int, JWKError]] = ()
    ) -> None:
        self._keys = tuple(keys)
        if not all(isinstance(k, JWK) for k in self._keys):
            raise TypeError("JWKSet holds JWK objects")
        self.skipped: tuple[tuple[int, JWKError], ...] = tuple(skipped)
        by_kid: dict[str, JWK] = {}
        problem = None
        for key in self._keys:
            if key.kid is not None:
                if key.kid in by_kid:
                    problem = f"two keys share the kid {key.kid!r}"
                by_kid.setdefault(key.kid, key)
        if any(k.is_symmetric for k in self._keys) and not all(k.is_symmetric for k in self._keys):
            problem = "the set mixes secret and public keys"
        self._by_kid = by_kid
        self._problem = problem
        self._headers: dict[bytes, Mapping[str, Any]] = {}  # as JWK._headers

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, skip_invalid: bool = False) -> JWKSet:
        """Import ``{"keys": [...]}``. With ``skip_invalid``, bad keys are skipped and listed
        in :attr:`skipped` instead of failing the whole set."""
        if not isinstance(data, Mapping) or not isinstance(data.get("keys"), list):
            raise JWKError('a JWK Set must be a JSON object with a "keys" array')
        keys: list[JWK] = []
        skipped: list[tuple[int, JWKError]] = []
        for index, item in enumerate(data["keys"]):
            try:
                keys.append(JWK.from_dict(item))
            except JWKError as exc:
                if not skip_invalid:
                    raise
                skipped.append((index, exc))
        return cls(keys, skipped=skipped)

    @classmethod
    def from_json(cls, text: str | bytes, *, skip_invalid: bool = False) -> JWKSet:
        return cls.from_dict(_load_json_object(text), skip_invalid=skip_invalid)

    @property
    def keys(self) -> tuple[JWK, ...]:
        return self._keys

    def get(self, kid: str) -> JWK | None:
        """The key with this ``kid``, or ``None``."""
        return self._by_kid.get(kid)

    def find(self, *, alg: str | None = None, kid: str | None = None) -> list[JWK]:
        """Keys that match ``kid`` (if given) and may verify ``alg`` (if given)."""
        return [
            k
            for k in self._keys
            if (kid is None or k.kid == kid) and (alg is None or k.can_verify(alg))
        ]

    def check_verifiable(self) -> None:
        """Raise :class:`JWKError` if this set must not be used for verification
        (duplicate ``kid`` values, or secret and public keys mixed)."""
        if self._problem is not None:
            raise JWKError(f"refusing to verify with this JWK Set: {self._problem}")

    def to_dict(self, private: bool = False) -> dict[str, Any]:
        return {"keys": [k.to_dict(private) for k in self._keys]}

    def to_json(self, private: bool = False) -> str:
        return json.dumps(self.to_dict(private), separators=(",", ":"))

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[JWK]:
        return iter(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, JWKSet):
            return NotImplemented
        return self._keys == other._keys

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<JWKSet {len(self._keys)} keys kids={[k.kid for k in self._keys]}>"
