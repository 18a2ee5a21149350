"""Console login attempts, reserved in the database before the password is checked.

Every attempt is counted on three counters in one transaction, *before* the argon2 check, so
concurrent guesses from any number of workers and replicas are each counted and checked only
while the counts allow (a guess that arrives while a lock is on is refused unchecked):

* **pair** ``(client address, user name)``: ``FREE_ATTEMPTS - 1`` attempts cost nothing
  extra (argon2 already makes each slow); the ``n``-th from ``FREE_ATTEMPTS`` on locks the
  pair for ``BASE_DELAY * 2**(n - FREE_ATTEMPTS)`` seconds, capped at ``MAX_DELAY``.
* **address** ``(client address, any name)``: the same from ``ADDRESS_FREE_ATTEMPTS`` on. It
  bounds what one address spends on argon2 by trying many names, existing or not.
* **account** ``(any address, user name)``: from ``ACCOUNT_FREE_ATTEMPTS`` attempts on, the
  account is *guarded* for the same kind of delay. While it is guarded, an address that has
  failed for this name in the last ``MAX_DELAY`` seconds is refused unchecked, but an address
  with no recent failure still gets its password checked. So guessing from many addresses
  gets one guess per address per ``MAX_DELAY``, while the real admin at an address that has
  not failed is never locked out by someone else's guesses.

A correct password clears its pair and address counters and hands its attempt back to the
account counter (the guard stays up while others guess).
A counter with no attempt for ``MAX_DELAY`` (and no lock left) starts again from zero, and
:func:`prune` deletes such rows. User names are lower-cased and stored only as SHA-256 (a
password typed into the name field must not be kept in clear). Times are float Unix seconds
from the caller's clock.

Atomicity: each counter row is first claimed with ``INSERT … ON CONFLICT DO UPDATE … RETURNING``
(SQLite and PostgreSQL), which creates it or locks it for the rest of the transaction (SQLite
transactions here start with ``BEGIN IMMEDIATE`` and run one at a time); the decision and the
update follow in the same transaction. Rows are always claimed in the same order, so two
transactions cannot deadlock.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, case, delete, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from jwkit.service.store.models import LoginFailure

__all__ = [
    "ACCOUNT_FREE_ATTEMPTS",
    "ADDRESS_FREE_ATTEMPTS",
    "ANY",
    "BASE_DELAY",
    "FREE_ATTEMPTS",
    "MAX_DELAY",
    "Reservation",
    "lock_delay",
    "prune",
    "reserve",
    "retry_after",
    "succeeded",
]

FREE_ATTEMPTS = 5
ADDRESS_FREE_ATTEMPTS = 20
ACCOUNT_FREE_ATTEMPTS = 20
BASE_DELAY = 30
MAX_DELAY = 15 * 60
#: The address of account counters and the user of address counters (no real value is "*").
ANY = "*"
_ADDRESS_MAX = 64


def lock_delay(attempts: int, free: int) -> int:
    """The lock (seconds) that the ``attempts``-th attempt starts on a counter (0: none)."""
    over = attempts - free
    return 0 if over < 0 else min(MAX_DELAY, BASE_DELAY << min(over, 16))


@dataclass(frozen=True, slots=True)
class Reservation:
    """The answer to :func:`reserve`.

    ``allowed``: the password may be checked now (the attempt is counted). Otherwise
    ``wait`` is the number of seconds until this address may try this name again; when
    allowed, ``wait`` is the lock this attempt leaves behind if its password is wrong.
    """

    allowed: bool
    wait: float


def _user_hash(username: str) -> str:
    return hashlib.sha256(username.lower().encode("utf-8", "surrogatepass")).hexdigest()


def _counters(address: str, username: str) -> list[tuple[str, str, int]]:
    """(address, user_hash, free attempts) of the pair, address and account counters."""
    address, user = address[:_ADDRESS_MAX], _user_hash(username)
    return [
        (address, user, FREE_ATTEMPTS),
        (address, ANY, ADDRESS_FREE_ATTEMPTS),
        (ANY, user, ACCOUNT_FREE_ATTEMPTS),
    ]


def _key(address: str, user_hash: str) -> ColumnElement[bool]:
    return and_(LoginFailure.address == address, LoginFailure.user_hash == user_hash)


def _stale(now: float) -> ColumnElement[bool]:
    return and_(LoginFailure.locked_until < now, LoginFailure.last_failure < now - MAX_DELAY)


def _claim(session: Session, address: str, user_hash: str, now: float) -> tuple[int, float]:
    """Create or lock one counter row (reset if stale); its ``(attempts, locked_until)``."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    insert: Any = dialect.insert(LoginFailure).values(
        address=address, user_hash=user_hash, failures=0, locked_until=0.0, last_failure=now
    )
    row = session.execute(
        insert.on_conflict_do_update(
            index_elements=[LoginFailure.address, LoginFailure.user_hash],
            set_={
                "failures": case((_stale(now), 0), else_=LoginFailure.failures),
                "locked_until": case((_stale(now), 0.0), else_=LoginFailure.locked_until),
            },
        ).returning(LoginFailure.failures, LoginFailure.locked_until)
    ).one()
    return int(row[0]), float(row[1])


def _until(rows: list[tuple[int, float]]) -> float:
    """When this (address, name) may next be checked: the pair and address locks, and the
    account guard if the pair has failed recently."""
    (pair_n, pair_lock), (_, address_lock), (_, account_lock) = rows
    return max(pair_lock, address_lock, account_lock if pair_n > 0 else 0.0)


def reserve(session: Session, address: str, username: str, *, now: float) -> Reservation:
    """Count an attempt before its password is checked, or refuse it (nothing counted).

    Call inside a transaction and commit before checking the password."""
    counters = _counters(address, username)
    rows = [_claim(session, a, u, now) for a, u, _free in counters]
    until = _until(rows)
    if until > now:
        return Reservation(False, until - now)
    after = []
    for (a, u, free), (n, lock) in zip(counters, rows, strict=True):
        delay = lock_delay(n + 1, free)
        new_lock = now + delay if delay else lock
        session.execute(
            update(LoginFailure)
            .where(_key(a, u))
            .values(failures=n + 1, locked_until=new_lock, last_failure=now)
        )
        after.append((n + 1, new_lock))
    return Reservation(True, max(0.0, _until(after) - now))


def succeeded(session: Session, address: str, username: str) -> None:
    """The reserved attempt had the right password: forget the pair's and the address's
    counts (whoever is there knows a password), and hand the attempt back to the account
    counter, whose guard stays up while others guess."""
    pair, per_address, (aa, au, _free) = _counters(address, username)
    for a, u, _ in (pair, per_address):
        session.execute(delete(LoginFailure).where(_key(a, u)))
    session.execute(
        update(LoginFailure)
        .where(_key(aa, au))
        .values(failures=case((LoginFailure.failures > 0, LoginFailure.failures - 1), else_=0))
    )


def retry_after(session: Session, address: str, username: str, *, now: float) -> float:
    """Seconds until this address may try this name (0.0: now); reads, counts nothing."""
    rows: list[tuple[int, float]] = []
    for a, u, _free in _counters(address, username):
        row = session.execute(
            select(
                LoginFailure.failures, LoginFailure.locked_until, LoginFailure.last_failure
            ).where(_key(a, u))
        ).one_or_none()
        stale = row is None or (row[1] < now and row[2] < now - MAX_DELAY)
        rows.append((0, 0.0) if stale or row is None else (int(row[0]), float(row[1])))
    return max(0.0, _until(rows) - now)


def prune(session: Session, *, now: float) -> int:
    """Delete counters whose lock has ended and that saw no attempt for ``MAX_DELAY``.

    On PostgreSQL rows another transaction holds are skipped (``FOR UPDATE SKIP LOCKED``): a
    sweep never waits on a login, so the two cannot deadlock."""
    if session.get_bind().dialect.name == "postgresql":
        keys = (
            select(LoginFailure.address, LoginFailure.user_hash)
            .where(_stale(now))
            .with_for_update(skip_locked=True)
        )
        pair = tuple_(LoginFailure.address, LoginFailure.user_hash)
        result = session.execute(delete(LoginFailure).where(pair.in_(keys)))
        return int(getattr(result, "rowcount", 0) or 0)
    result = session.execute(delete(LoginFailure).where(_stale(now)))
    return int(getattr(result, "rowcount", 0) or 0)
