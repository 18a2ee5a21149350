"""Admin credentials and console sessions: only hashes are ever stored.

* API token: 256-bit random, stored as SHA-256 (high entropy, so a fast hash is right).
* Console password: argon2id via argon2-cffi.
* Console sessions: random id (stored as SHA-256) plus a CSRF token, with an expiry.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from jwkit.service.domain import audit
from jwkit.service.store.models import AdminCredential, ConsoleSession

__all__ = [
    "ADMIN_USER",
    "GeneratedCredentials",
    "SessionInfo",
    "create_session",
    "delete_session",
    "ensure_admin",
    "get_session",
    "hash_token",
    "reset_admin",
    "secrets_equal",
    "token_hashes",
    "verify_password",
]

ADMIN_USER = "admin"
_hasher = PasswordHasher()
# A hash to verify against when the user does not exist, so timing does not reveal it.
_DUMMY_HASH = _hasher.hash("jwkit-no-such-user")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class GeneratedCredentials:
    """Credentials created on first start; print them once, they cannot be recovered."""

    username: str
    token: str | None
    password: str | None


def ensure_admin(
    session: Session, *, token: str | None, password: str | None, now: int
) -> GeneratedCredentials | None:
    """Store the configured admin token/password hashes, or generate the missing ones on
    first start. Returns what was generated (to show once), else ``None``."""
    row = session.execute(
        select(AdminCredential).where(AdminCredential.username == ADMIN_USER).with_for_update()
    ).scalar_one_or_none()
    generated_token = generated_password = None
    if row is None:
        row = AdminCredential(username=ADMIN_USER, created_at=now)
        session.add(row)
    if token:
        new_hash = hash_token(token)
        if row.token_hash != new_hash:
            row.token_hash = new_hash
            audit.record(session, now=now, actor="system", action="admin.token_set")
    elif row.token_hash is None:
        generated_token = "jwk_" + secrets.token_urlsafe(32)
        row.token_hash = hash_token(generated_token)
        audit.record(session, now=now, actor="system", action="admin.token_generated")
    if password:
        if row.password_hash is None or not _verify(row.password_hash, password):
            row.password_hash = _hasher.hash(password)
            audit.record(session, now=now, actor="system", action="admin.password_set")
    elif row.password_hash is None:
        generated_password = secrets.token_urlsafe(18)
        row.password_hash = _hasher.hash(generated_password)
        audit.record(session, now=now, actor="system", action="admin.password_generated")
    if generated_token or generated_password:
        return GeneratedCredentials(ADMIN_USER, generated_token, generated_password)
    return None


def reset_admin(session: Session, *, now: int) -> GeneratedCredentials:
    """Forget the admin token and password, end every console session, and generate new
    ones (shown once by the caller). For an operator who lost the first-start credentials."""
    row = session.get(AdminCredential, ADMIN_USER, with_for_update=True)
    if row is not None:
        row.token_hash = row.password_hash = None
    session.execute(delete(ConsoleSession).where(ConsoleSession.username == ADMIN_USER))
    audit.record(session, now=now, actor="system", action="admin.credentials_reset")
    generated = ensure_admin(session, token=None, password=None, now=now)
    assert generated is not None  # both were just cleared
    return generated


def token_hashes(session: Session) -> dict[str, str]:
    """``token hash -> username`` for every admin with an API token."""
    rows = session.execute(select(AdminCredential)).scalars()
    return {r.token_hash: r.username for r in rows if r.token_hash}


def _verify(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def verify_password(session: Session, username: str, password: str) -> bool:
    row = session.get(AdminCredential, username)
    if row is None or row.password_hash is None:
        _verify(_DUMMY_HASH, password)
        return False
    return _verify(row.password_hash, password)


@dataclass(frozen=True, slots=True)
class SessionInfo:
    username: str
    csrf_token: str
    expires_at: int


def _sid_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


def create_session(session: Session, username: str, *, now: int, ttl: int) -> tuple[str, str]:
    session_id = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < now))
    session.add(
        ConsoleSession(
            id_hash=_sid_hash(session_id),
            username=username,
            csrf_token=csrf,
            created_at=now,
            expires_at=now + ttl,
        )
    )
    return session_id, csrf


def get_session(session: Session, session_id: str, *, now: int) -> SessionInfo | None:
    row = session.get(ConsoleSession, _sid_hash(session_id))
    if row is None or row.expires_at <= now:
        return None
    return SessionInfo(row.username, row.csrf_token, row.expires_at)


def delete_session(session: Session, session_id: str) -> None:
    session.execute(delete(ConsoleSession).where(ConsoleSession.id_hash == _sid_hash(session_id)))


def secrets_equal(expected: str, supplied: str) -> bool:
    """Constant-time comparison of two secrets of any text: ``hmac.compare_digest`` refuses
    ``str`` with non-ASCII characters (a ``TypeError``), so both are compared as UTF-8 bytes
    (lone surrogates passed through), and anything an attacker sends is simply unequal."""
    return hmac.compare_digest(
        expected.encode("utf-8", "surrogatepass"), supplied.encode("utf-8", "surrogatepass")
    )


def csrf_matches(info: SessionInfo, supplied: str | None) -> bool:
    return supplied is not None and secrets_equal(info.csrf_token, supplied)
