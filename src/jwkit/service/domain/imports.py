"""Bring your own key: import an existing private key as a project's ``next`` key.

The key arrives as PEM (PKCS#1 ``RSA PRIVATE KEY``, SEC1 ``EC PRIVATE KEY``, PKCS#8
``PRIVATE KEY`` or ``ENCRYPTED PRIVATE KEY`` with its passphrase — what ``openssl genrsa``,
``openssl ecparam -genkey`` and ``openssl genpkey`` write) or as a private JWK. It goes through
the JOSE core's import checks (:mod:`jwkit.jose.keycheck`: RSA of 2048 to 8192 bits, no ROCA
modulus, points on their curve, ...), must fit the project's algorithm, and is then stored
exactly like a generated key: sealed by the vault, pre-published as ``next`` (a previous next
key, which never signed, is dropped) and promoted by the normal rotation schedule.

The private material is never returned, logged or put in an error message; the audit event
``key.imported`` names the ``kid`` and the RFC 7638 thumbprint only.
"""

from __future__ import annotations

import json
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select
from sqlalchemy.orm import Session

from jwkit.errors import JWKError
from jwkit.jose.jwk import JWK
from jwkit.jose.keycheck import MIN_RSA_BITS
from jwkit.service.domain import audit
from jwkit.service.domain.common import Conflict, InvalidInput
from jwkit.service.domain.keys import ACTIVE, NEXT, PUBLISHED_STATES, REVOKED, pre_shared
from jwkit.service.domain.projects import lock_project
from jwkit.service.store.models import ForeignPublicKey, Key
from jwkit.service.vault import Vault

__all__ = ["MAX_KEY_CHARS", "import_key", "read_private_key"]

#: Largest PEM text or JWK JSON accepted (an 8192-bit RSA key in PKCS#8 PEM is ~6.5 KB).
MAX_KEY_CHARS = 16 * 1024
KID_MAX = 128
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k")


def _refuse(message: str, code: str, field: str) -> InvalidInput:
    return InvalidInput(message, field=field, code=code)


def read_private_key(
    *,
    pem: str | None = None,
    jwk: dict[str, Any] | None = None,
    passphrase: str | None = None,
) -> JWK:
    """A private asymmetric key from PEM text or a JWK object, checked by the JOSE core.

    Raises :class:`InvalidInput` (422) with a code that says what is wrong:
    ``key_too_large``, ``public_key_only``, ``passphrase_required``, ``wrong_passphrase``,
    ``weak_key`` or ``invalid_key``. No message quotes the input."""
    if (pem is None) == (jwk is None):
        raise _refuse("give exactly one of pem or jwk", "invalid_input", "pem")
    if pem is not None:
        return _from_pem(pem, passphrase)
    assert jwk is not None
    if passphrase is not None:
        raise _refuse(
            "a passphrase only applies to an encrypted PEM", "invalid_input", "passphrase"
        )
    return _from_jwk(jwk)


def _from_pem(pem: str, passphrase: str | None) -> JWK:
    if len(pem) > MAX_KEY_CHARS:
        raise _refuse(f"the PEM is longer than {MAX_KEY_CHARS} characters", "key_too_large", "pem")
    data = pem.encode("utf-8", "replace")
    if b"PRIVATE KEY-----" not in data:
        if b"-----BEGIN" in data and (b"PUBLIC KEY" in data or b"CERTIFICATE" in data):
            raise _refuse(
                "this PEM holds a public key or certificate: import the private key "
                "(the service signs with it)",
                "public_key_only",
                "pem",
            )
        raise _refuse("not a PEM private key (no BEGIN … PRIVATE KEY block)", "invalid_key", "pem")
    # ``openssl ecparam -genkey`` writes an ``EC PARAMETERS`` block first: keep the key block.
    block = data[max(data.rfind(b"-----BEGIN", 0, data.find(b"PRIVATE KEY-----")), 0) :]
    encrypted = b"ENCRYPTED" in block
    if encrypted and not passphrase:
        raise _refuse(
            "this private key is encrypted: give its passphrase",
            "passphrase_required",
            "passphrase",
        )
    password = passphrase.encode() if passphrase and encrypted else None
    if passphrase and not encrypted:
        raise _refuse(
            "a passphrase was given but this private key is not encrypted",
            "invalid_input",
            "passphrase",
        )
    try:
        obj = serialization.load_pem_private_key(block, password=password)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        if encrypted:
            raise _refuse(
                "the private key could not be decrypted (wrong passphrase?)",
                "wrong_passphrase",
                "passphrase",
            ) from None
        raise _refuse("not a readable PEM private key", "invalid_key", "pem") from None
    if isinstance(obj, rsa.RSAPrivateKey) and obj.key_size < MIN_RSA_BITS:
        raise _refuse(
            f"RSA key of {obj.key_size} bits is too weak (minimum {MIN_RSA_BITS})",
            "weak_key",
            "pem",
        )
    try:
        plain = obj.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise _refuse("this kind of private key is not supported", "invalid_key", "pem") from None
    try:
        key = JWK.from_pem(plain)
    except JWKError as exc:
        raise _refuse(_jose_message(exc), _jose_code(exc), "pem") from None
    return key.replace(kid=None)  # the thumbprint from_pem set is not a kid the user chose


def _from_jwk(data: dict[str, Any]) -> JWK:
    try:
        size = len(json.dumps(data))
    except (TypeError, ValueError, RecursionError):
        raise _refuse("the JWK is not a JSON object", "invalid_key", "jwk") from None
    if size > MAX_KEY_CHARS:
        raise _refuse(f"the JWK is longer than {MAX_KEY_CHARS} characters", "key_too_large", "jwk")
    if data.get("kty") == "oct":
        raise _refuse(
            "a symmetric (oct) key cannot be published: import an RSA, EC or OKP key",
            "invalid_key",
            "jwk",
        )
    if not any(m in data for m in _PRIVATE_MEMBERS):
        raise _refuse(
            "this JWK has no private members: import the private key (the service signs with it)",
            "public_key_only",
            "jwk",
        )
    try:
        key = JWK.from_dict(data)
    except JWKError as exc:
        raise _refuse(_jose_message(exc), _jose_code(exc), "jwk") from None
    if key.use not in (None, "sig"):
        raise _refuse(f'a key with "use": {key.use!r} cannot sign tokens', "invalid_key", "jwk")
    if key.key_ops is not None and "sign" not in key.key_ops:
        raise _refuse('this key\'s "key_ops" do not allow "sign"', "invalid_key", "jwk")
    return key


def _jose_message(exc: JWKError) -> str:
    return f"the key is refused: {exc.message}"


def _jose_code(exc: JWKError) -> str:
    weak = ("too short", "ROCA", "small order", "exponent", "even")
    if "does not fit" in exc.message:
        return "alg_mismatch"
    return "weak_key" if any(w in exc.message for w in weak) else "invalid_key"


def _bind(key: JWK, alg: str, kid: str | None, field: str) -> JWK:
    """The key as the project stores it: ``alg`` fixed to the project's, ``use: sig``."""
    if key.alg is not None and key.alg != alg:
        raise _refuse(
            f"the key says alg {key.alg} but this project signs with {alg}", "alg_mismatch", field
        )
    try:
        bound = key.replace(alg=alg, use="sig", key_ops=None)
    except JWKError:
        bound = None
    if bound is None or not bound.can_sign(alg):
        shape = f"{key.kty} {key.crv}" if key.crv else key.kty
        raise _refuse(
            f"this {shape} key cannot sign {alg}, the project's algorithm", "alg_mismatch", field
        )
    chosen = kid or key.kid or bound.thumbprint()
    if not 0 < len(chosen) <= KID_MAX or not chosen.isprintable():
        raise _refuse(f"kid must be 1 to {KID_MAX} printable characters", "invalid_input", "kid")
    return bound.replace(kid=chosen)


def import_key(
    session: Session,
    project_id: str,
    vault: Vault,
    key: JWK,
    *,
    now: int,
    actor: str,
    source: str,
    kid: str | None = None,
) -> Key:
    """Store ``key`` (private, checked by :func:`read_private_key`) as the project's next key.

    Refused with 422 when it does not fit the project's algorithm, and with 409 when its
    ``kid`` is taken (by a key of the project or a foreign key it publishes) or the same key
    is already in the project (a revoked key never comes back)."""
    project = lock_project(session, project_id)
    field = "jwk" if source == "jwk" else "pem"
    if pre_shared(project):
        raise _refuse(
            f"this {project.algorithm} project verifies with shared secrets, not a published "
            "key: import a private key into an RS*, PS*, ES* or EdDSA project",
            "alg_mismatch",
            field,
        )
    bound = _bind(key, project.algorithm, kid, field)
    thumbprint = bound.thumbprint()
    rows = list(session.execute(select(Key).where(Key.project_id == project_id)).scalars())
    for row in rows:
        if row.public_jwk and JWK.from_json(row.public_jwk).thumbprint() == thumbprint:
            raise Conflict(
                f"this key is already in the project (kid {row.kid!r}, {row.state})",
                code="key_exists",
            )
    if any(row.kid == bound.kid for row in rows):
        raise Conflict(
            f"this project already has a key with kid {bound.kid!r}", code="kid_conflict"
        )
    foreign = session.execute(
        select(ForeignPublicKey.kid).where(
            ForeignPublicKey.project_id == project_id, ForeignPublicKey.kid == bound.kid
        )
    ).scalar_one_or_none()
    if foreign is not None:
        raise Conflict(
            f"a foreign key with kid {bound.kid!r} is published by this project: remove it "
            "first (the imported key, published as next, keeps verifying its tokens)",
            code="kid_conflict",
        )
    has_active = False
    for row in rows:
        has_active = has_active or row.state == ACTIVE
        if row.state == NEXT:
            row.state, row.revoked_at = REVOKED, now
            audit.record(
                session,
                now=now,
                actor=actor,
                action="key.revoked",
                project_id=project_id,
                kid=row.kid,
                detail={"reason": "superseded next key"},
            )
    state = NEXT if has_active else ACTIVE
    assert bound.kid is not None
    sealed = vault.seal(bound.to_json(private=True).encode(), project_id=project_id, kid=bound.kid)
    stored = Key(
        project_id=project_id,
        kid=bound.kid,
        alg=project.algorithm,
        state=state,
        public_jwk=json.dumps(bound.public().to_dict(), sort_keys=True),
        wrapped_dek=sealed.wrapped_dek,
        ciphertext=sealed.ciphertext,
        kek_id=sealed.kek_id,
        created_at=now,
        published_at=now if state in PUBLISHED_STATES else None,
        activated_at=now if state == ACTIVE else None,
    )
    session.add(stored)
    session.flush()
    audit.record(
        session,
        now=now,
        actor=actor,
        action="key.imported",
        project_id=project_id,
        kid=bound.kid,
        detail={"thumbprint": thumbprint, "alg": project.algorithm, "state": state, "from": source},
    )
    return stored
