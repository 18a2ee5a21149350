"""The ``pkcs11`` backend: signing keys generated inside a PKCS#11 token and never exported.

Binding: `python-pkcs11 <https://python-pkcs11.readthedocs.io>`_ (MIT, typed, maintained). It
releases the GIL around ``C_Sign`` (``_pkcs11.pyx``: the calls sit in ``with nogil`` blocks)
and serialises operations per session with its own lock, so each thread here borrows a
session from a small pool. PyKCS11 was the alternative: a SWIG wrapper (GPL) whose C++ layer
calls ``C_Sign`` without releasing the GIL and whose API is a thin CK_* mirror.

Keys (PKCS#11 v2.40 §2.3, §4.9): the private key is a token object (``CKA_TOKEN``) with
``CKA_SENSITIVE=true``, ``CKA_EXTRACTABLE=false``, ``CKA_PRIVATE=true``, labelled
``jwkit/{project_id}/{kid}`` (and ``CKA_ID`` = kid); the public half is a session object,
read once into the database as a JWK. After a restart, or on another replica sharing the
token, the key is found again by its label.

Signing (RFC 7518 §3): ``CKM_ECDSA`` over a digest computed here (the token returns the raw
``r || s`` JWS wants), ``CKM_SHA*_RSA_PKCS`` for RS*, ``CKM_SHA*_RSA_PKCS_PSS`` with MGF1 of
the same hash and a salt as long as the hash for PS*, ``CKM_EDDSA`` for EdDSA (Ed25519).
Every signature the token returns is verified against the stored public key before it
leaves :meth:`_Key.sign`; a bad one raises :class:`~jwkit.service.keys.KeyUnavailable`.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pkcs11
from asn1crypto.core import OctetString  # type: ignore[import-untyped]
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from pkcs11 import MGF, Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.exceptions import NoSuchKey, PKCS11Error
from pkcs11.util.ec import encode_named_curve_parameters

from jwkit.jose.algorithms import ALGORITHMS, PublicKey
from jwkit.jose.jwk import JWK
from jwkit.service.keys import (
    PKCS11,
    KeyBackendError,
    KeyUnavailable,
    NewKey,
    Signer,
    UnsupportedByBackend,
)

__all__ = ["Pkcs11Backend", "Pkcs11Config", "label_for"]

log = logging.getLogger("jwkit.service.keys")

RSA_BITS = 2048
#: Sessions kept open for signing beyond the one that logged in.
_POOL_MAX = 8


@dataclass(frozen=True, slots=True)
class _Spec:
    key_type: KeyType
    mechanism: Mechanism
    #: Digest computed here before the token signs (CKM_ECDSA signs a digest).
    prehash: Any = None
    param: Any = None
    curve: str | None = None  # EC_PARAMS named curve (OID name or dotted OID)
    crypto_curve: Any = None


_SPECS: dict[str, _Spec] = {
    "ES256": _Spec(KeyType.EC, Mechanism.ECDSA, hashlib.sha256, None, "secp256r1", ec.SECP256R1),
    "ES384": _Spec(KeyType.EC, Mechanism.ECDSA, hashlib.sha384, None, "secp384r1", ec.SECP384R1),
    "ES512": _Spec(KeyType.EC, Mechanism.ECDSA, hashlib.sha512, None, "secp521r1", ec.SECP521R1),
    "RS256": _Spec(KeyType.RSA, Mechanism.SHA256_RSA_PKCS),
    "RS384": _Spec(KeyType.RSA, Mechanism.SHA384_RSA_PKCS),
    "RS512": _Spec(KeyType.RSA, Mechanism.SHA512_RSA_PKCS),
    "PS256": _Spec(
        KeyType.RSA, Mechanism.SHA256_RSA_PKCS_PSS, None, (Mechanism.SHA256, MGF.SHA256, 32)
    ),
    "PS384": _Spec(
        KeyType.RSA, Mechanism.SHA384_RSA_PKCS_PSS, None, (Mechanism.SHA384, MGF.SHA384, 48)
    ),
    "PS512": _Spec(
        KeyType.RSA, Mechanism.SHA512_RSA_PKCS_PSS, None, (Mechanism.SHA512, MGF.SHA512, 64)
    ),
    # Ed25519 by its OID (RFC 8410): SoftHSM2 takes the OID or the printable name.
    "EdDSA": _Spec(KeyType.EC_EDWARDS, Mechanism.EDDSA, None, None, "1.3.101.112"),
}


def label_for(project_id: str, kid: str) -> str:
    return f"jwkit/{project_id}/{kid}"


@dataclass(frozen=True, slots=True)
class Pkcs11Config:
    module: Path
    token_label: str | None
    slot: int | None
    pin: str


class _Session:
    """A session with the private keys it has found (handles are per session)."""

    __slots__ = ("found", "session")

    def __init__(self, session: Any) -> None:
        self.session = session
        self.found: dict[str, Any] = {}

    def key(self, label: str) -> Any:
        key = self.found.get(label)
        if key is None:
            key = self.found[label] = self.session.get_key(
                object_class=ObjectClass.PRIVATE_KEY, label=label
            )
        return key


class Pkcs11Backend:
    """Keys inside one PKCS#11 token; see the module docstring."""

    name = PKCS11

    def __init__(self, config: Pkcs11Config) -> None:
        self.config = config
        if not config.module.is_file():
            raise KeyBackendError(f"PKCS#11 module not found: {config.module}")
        try:
            self._lib = pkcs11.lib(str(config.module))
        except PKCS11Error as exc:
            raise KeyBackendError(
                f"cannot load the PKCS#11 module {config.module}: {exc}"
            ) from None
        self._token = self._find_token()
        try:
            # Login is per application: this session stays open so the others stay logged in.
            self._login = self._token.open(user_pin=config.pin, rw=True)
        except pkcs11.exceptions.UserAlreadyLoggedIn:  # another backend of this process did
            self._login = self._token.open(rw=True)
        except pkcs11.exceptions.PinIncorrect:
            raise KeyBackendError(
                "the PKCS#11 token refused the PIN (JWKIT_PKCS11_PIN / JWKIT_PKCS11_PIN_FILE)"
            ) from None
        except pkcs11.exceptions.PinLocked:
            raise KeyBackendError("the PKCS#11 token's user PIN is locked") from None
        except PKCS11Error as exc:
            raise KeyBackendError(
                f"cannot log in to the PKCS#11 token: {type(exc).__name__}"
            ) from None
        self._admin_lock = threading.Lock()
        self._pool: queue.SimpleQueue[_Session] = queue.SimpleQueue()
        self._mechanisms = set(self._token.slot.get_mechanisms())

    def _find_token(self) -> Any:
        cfg = self.config
        try:
            if cfg.slot is not None:
                slots = [
                    s for s in self._lib.get_slots(token_present=True) if s.slot_id == cfg.slot
                ]
                if not slots:
                    raise KeyBackendError(f"no PKCS#11 token in slot {cfg.slot}")
                token = slots[0].get_token()
                if cfg.token_label is not None and token.label != cfg.token_label:
                    raise KeyBackendError(
                        f"the token in slot {cfg.slot} is {token.label!r}, not {cfg.token_label!r}"
                    )
                return token
            return self._lib.get_token(token_label=cfg.token_label)
        except pkcs11.exceptions.NoSuchToken:
            raise KeyBackendError(f"no PKCS#11 token labelled {cfg.token_label!r}") from None
        except pkcs11.exceptions.MultipleTokensReturned:
            raise KeyBackendError(
                "several PKCS#11 tokens found: set JWKIT_PKCS11_TOKEN_LABEL or JWKIT_PKCS11_SLOT"
            ) from None
        except PKCS11Error as exc:
            raise KeyBackendError(f"cannot reach the PKCS#11 token: {type(exc).__name__}") from None

    # -- sessions -----------------------------------------------------------------------

    def _borrow(self) -> _Session:
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            return _Session(self._token.open(rw=False))

    def _give_back(self, session: _Session) -> None:
        if self._pool.qsize() < _POOL_MAX:
            self._pool.put(session)
        else:
            session.session.close()

    # -- the seam -----------------------------------------------------------------------

    def generate(self, project_id: str, alg: str) -> NewKey:
        spec = _SPECS.get(alg)
        if spec is None:
            raise UnsupportedByBackend(
                f"{alg} keys are shared secrets handed to every verifier; the pkcs11 backend "
                "keeps keys that never leave the token: choose an asymmetric algorithm",
                field="alg",
            )
        wanted = {
            KeyType.EC: Mechanism.EC_KEY_PAIR_GEN,
            KeyType.RSA: Mechanism.RSA_PKCS_KEY_PAIR_GEN,
            KeyType.EC_EDWARDS: Mechanism.EC_EDWARDS_KEY_PAIR_GEN,
        }[spec.key_type]
        if wanted not in self._mechanisms or spec.mechanism not in self._mechanisms:
            raise UnsupportedByBackend(
                f"this PKCS#11 token cannot make or sign with {alg} keys", field="alg"
            )
        private = {
            Attribute.TOKEN: True,
            Attribute.PRIVATE: True,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.SIGN: True,
        }
        public = {Attribute.TOKEN: False, Attribute.VERIFY: True}
        try:
            with self._admin_lock:
                session = self._login
                if spec.key_type == KeyType.RSA:
                    pub, priv = session.generate_keypair(
                        KeyType.RSA,
                        RSA_BITS,
                        store=True,
                        public_template=public,
                        private_template=private,
                    )
                else:
                    params = session.create_domain_parameters(
                        spec.key_type,
                        {Attribute.EC_PARAMS: encode_named_curve_parameters(spec.curve or "")},
                        local=True,
                    )
                    pub, priv = params.generate_keypair(
                        store=True,
                        mechanism=wanted,
                        public_template=public,
                        private_template=private,
                    )
                jwk = _public_jwk(spec, pub, alg)
                assert jwk.kid is not None
                label = label_for(project_id, jwk.kid)
                priv[Attribute.LABEL] = label
                priv[Attribute.ID] = jwk.kid.encode()
        except PKCS11Error as exc:
            raise KeyUnavailable(
                f"the PKCS#11 token could not generate a key: {type(exc).__name__}",
                code="key_backend_unavailable",
            ) from None
        return NewKey(kid=jwk.kid, public_jwk=jwk.to_dict(), backend=PKCS11, handle=label)

    def signer(self, key: Any) -> Signer:
        if not key.public_jwk or not key.key_handle:
            raise KeyUnavailable(
                f"key {key.kid} has no label or public key", code="signing_key_missing", kid=key.kid
            )
        jwk = JWK.from_json(key.public_jwk)
        spec = _SPECS.get(key.alg)
        if spec is None:
            raise KeyUnavailable(f"{key.alg} cannot sign in a PKCS#11 token", kid=key.kid)
        held = _Key(self, spec, jwk, key.key_handle)
        held.sign(b"jwkit key check")  # found, signs, and matches the stored public key
        return Signer(jwk, backend=PKCS11, external=held.sign)

    def destroy(self, key: Any) -> bool:
        label = key.key_handle
        if not label:
            return False
        with self._admin_lock:
            try:
                found = list(
                    self._login.get_objects(
                        {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: label}
                    )
                )
                for obj in found:
                    obj.destroy()
            except PKCS11Error as exc:
                raise KeyUnavailable(
                    f"the PKCS#11 token could not destroy key {key.kid}: {type(exc).__name__}",
                    code="key_backend_unavailable",
                    kid=key.kid,
                ) from None
        return bool(found)

    def close(self) -> None:
        while True:
            try:
                self._pool.get_nowait().session.close()
            except queue.Empty:
                break
            except PKCS11Error:
                continue
        try:
            self._login.close()
        except PKCS11Error:
            pass


class _Key:
    """One private key in the token, signing through the backend's session pool."""

    __slots__ = ("_check", "backend", "kid", "label", "spec")

    def __init__(self, backend: Pkcs11Backend, spec: _Spec, jwk: JWK, label: str) -> None:
        self.backend = backend
        self.spec = spec
        self.kid = jwk.kid
        self.label = label
        # The public half as ``cryptography`` sees it: every signature the token returns is
        # checked with it before it leaves the service.
        public = serialization.load_pem_public_key(jwk.to_pem())
        self._check = ALGORITHMS[jwk.default_alg].checker(cast(PublicKey, public))

    def sign(self, signing_input: bytes) -> bytes:
        spec = self.spec
        data = spec.prehash(signing_input).digest() if spec.prehash is not None else signing_input
        backend = self.backend
        session = backend._borrow()
        try:
            key = session.key(self.label)
            if not hasattr(key, "sign"):  # found, but its CKA_SIGN is off (python-pkcs11
                # gives such an object no ``sign``): not kept, so a key allowed again signs
                session.found.pop(self.label, None)
                backend._give_back(session)
                raise KeyUnavailable(
                    f"the PKCS#11 token does not let key {self.kid} sign (CKA_SIGN is false)",
                    code="key_backend_unavailable",
                    kid=self.kid,
                )
            signature = bytes(key.sign(data, mechanism=spec.mechanism, mechanism_param=spec.param))
        except NoSuchKey:
            backend._give_back(session)
            raise KeyUnavailable(
                f"signing key {self.kid} is gone from the PKCS#11 token",
                code="signing_key_missing",
                kid=self.kid,
            ) from None
        except PKCS11Error as exc:
            try:  # a session in doubt is dropped, not reused
                session.session.close()
            except PKCS11Error:
                pass
            missing = isinstance(
                exc, pkcs11.exceptions.ObjectHandleInvalid | pkcs11.exceptions.KeyHandleInvalid
            )
            raise KeyUnavailable(
                f"signing key {self.kid} is gone from the PKCS#11 token"
                if missing
                else f"the PKCS#11 token could not sign: {type(exc).__name__}",
                code="signing_key_missing" if missing else "key_backend_unavailable",
                kid=self.kid,
            ) from None
        backend._give_back(session)
        if not self._check(signing_input, signature):
            raise KeyUnavailable(
                f"the PKCS#11 token returned a signature that does not verify (key {self.kid})",
                code="signature_invalid",
                kid=self.kid,
            )
        return signature


def _public_jwk(spec: _Spec, pub: Any, alg: str) -> JWK:
    """The public half the token generated, as a JWK whose kid is its RFC 7638 thumbprint."""
    crypto: Any
    if spec.key_type == KeyType.RSA:
        n = int.from_bytes(pub[Attribute.MODULUS], "big")
        e = int.from_bytes(pub[Attribute.PUBLIC_EXPONENT], "big")
        crypto = rsa.RSAPublicNumbers(e, n).public_key()
    else:
        point = _ec_point(pub[Attribute.EC_POINT])
        if spec.key_type == KeyType.EC_EDWARDS:
            crypto = ed25519.Ed25519PublicKey.from_public_bytes(point)
        else:
            crypto = ec.EllipticCurvePublicKey.from_encoded_point(spec.crypto_curve(), point)
    pem = crypto.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    jwk = JWK.from_pem(pem, alg)
    return jwk.replace(use="sig", kid=jwk.thumbprint())


def _ec_point(value: bytes) -> bytes:
    """CKA_EC_POINT is the point wrapped in a DER OCTET STRING (PKCS#11 v2.40 §2.3.3);
    some modules return it bare."""
    try:
        inner = OctetString.load(value).native
    except (ValueError, TypeError):
        return value
    return inner if isinstance(inner, bytes) else value
