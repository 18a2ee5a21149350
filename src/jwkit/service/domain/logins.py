"""Failed console logins, counted in the database so every worker and replica shares them.

Failures are counted per ``(client address, user name)``, the name lower-cased and stored only
as its SHA-256 (a password typed into the user-name field must not be kept in clear). The first
``FREE_ATTEMPTS - 1`` failures cost nothing extra (argon2 already makes each guess slow); the
``n``-th failure from ``FREE_ATTEMPTS`` on locks the pair out for
``BASE_DELAY * 2**(n - FREE_ATTEMPTS)`` seconds, capped at ``MAX_DELAY``.

:func:`record_failure` counts with one ``INSERT … ON CONFLICT DO UPDATE SET failures =
failures + 1 … RETURNING`` (SQLite and PostgreSQL), so failures made at the same moment by
several processes are all counted; the lock it sets is written in the same transaction. A
counter that saw no failure for ``MAX_DELAY`` (so its lock, if any, is over) starts again from
one, and :func:`prune` deletes such rows. Times are float Unix seconds from the caller's clock.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import ColumnElement, and_, case, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from jwkit.service.store.models import LoginFailure

__all__ = [
    "BASE_DELAY",
    "FREE_ATTEMPTS",
    "MAX_DELAY",
    "clear",
    "locked_until",
    "prune",
    "record_failure",
]

FREE_ATTEMPTS = 5
BASE_DELAY = 30
MAX_DELAY = 15 * 60
_ADDRESS_MAX = 64


def _ids(address: str, username: str) -> dict[str, str]:
    user_hash = hashlib.sha256(username.lower().encode("utf-8", "surrogatepass")).hexdigest()
    return {"address": address[:_ADDRESS_MAX], "user_hash": user_hash}


def _key(ids: dict[str, str]) -> ColumnElement[bool]:
    return and_(LoginFailure.address == ids["address"],
                LoginFailure.user_hash == ids["user_hash"])


def _stale(now: float) -> ColumnElement[bool]:
    return and_(LoginFailure.locked_until < now, LoginFailure.last_failure < now - MAX_DELAY)


def locked_until(session: Session, address: str, username: str) -> float:
    """When this pair's lock ends (0.0 when it has none)."""
    until = session.execute(select(LoginFailure.locked_until).where(_key(_ids(address, username))))
    return until.scalar_one_or_none() or 0.0


def record_failure(session: Session, address: str, username: str, *, now: float) -> int:
    """Count a failed password; return the lockout (seconds) it starts, 0 for none."""
    ids = _ids(address, username)
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    insert: Any = dialect.insert(LoginFailure).values(
        **ids, failures=1, locked_until=0.0, last_failure=now)
    failures: int = session.execute(insert.on_conflict_do_update(
        index_elements=[LoginFailure.address, LoginFailure.user_hash],
        set_={"failures": case((_stale(now), 1), else_=LoginFailure.failures + 1),
              "last_failure": now},
    ).returning(LoginFailure.failures)).scalar_one()
    over = failures - FREE_ATTEMPTS
    if over < 0:
        return 0
    delay: int = min(MAX_DELAY, BASE_DELAY << min(over, 16))
    session.execute(update(LoginFailure).where(_key(ids)).values(locked_until=now + delay))
    return delay


def clear(session: Session, address: str, username: str) -> None:
    """Forget this pair's failures (after a successful login)."""
    session.execute(delete(LoginFailure).where(_key(_ids(address, username))))


def prune(session: Session, *, now: float) -> int:
    """Delete counters whose lock has ended and that saw no failure for ``MAX_DELAY``."""
    result = session.execute(delete(LoginFailure).where(_stale(now)))
    return int(getattr(result, "rowcount", 0) or 0)
