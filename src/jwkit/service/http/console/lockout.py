"""Login throttling: exponential backoff after repeated failed passwords, shared by all workers.

Failures are counted per ``(client address, username)`` in the service's database
(:mod:`jwkit.service.domain.logins`, table ``login_failures``), so every ``--workers`` process
and every replica sees the same count, and a restart forgets nothing. The first
``FREE_ATTEMPTS - 1`` failures cost nothing extra (argon2 already makes each guess slow); the
``n``-th failure from ``FREE_ATTEMPTS`` on locks that pair out for
``BASE_DELAY * 2**(n - FREE_ATTEMPTS)`` seconds, capped at ``MAX_DELAY``. While locked, a login
is refused *before* the password is checked, so a locked-out guesser learns nothing. A success
clears the counter. Deadlines are wall-clock seconds (``clock``, injectable for tests), since
they outlive the process. Every method blocks on the database (call it through
``run_in_threadpool``) and raises :class:`sqlalchemy.exc.SQLAlchemyError` when the database
fails: the caller must then refuse the login.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError

from jwkit.service.domain import logins
from jwkit.service.domain.logins import BASE_DELAY, FREE_ATTEMPTS, MAX_DELAY
from jwkit.service.store.db import Database

__all__ = ["BASE_DELAY", "FREE_ATTEMPTS", "MAX_DELAY", "PRUNE_INTERVAL", "LoginThrottle"]

log = logging.getLogger("jwkit.service.console")

#: At most one sweep of stale counters per process per this many seconds (on a failure).
PRUNE_INTERVAL = 60.0


class LoginThrottle:
    """Failure counter with exponential lockout, kept in the database."""

    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock
        self._next_prune = 0.0

    def retry_after(self, address: str, username: str) -> int:
        """Seconds until this pair may try again (0 when it may try now)."""
        with self._db.session() as session:
            until = logins.locked_until(session, address, username)
        return max(0, int(until - self._clock() + 0.999))

    def failure(self, address: str, username: str) -> int:
        """Record a failed password; return the lockout (seconds) it starts, 0 for none."""
        now = self._clock()
        with self._db.session() as session, session.begin():
            delay = logins.record_failure(session, address, username, now=now)
        if now >= self._next_prune:
            self._next_prune = now + PRUNE_INTERVAL
            try:
                self.prune()
            except SQLAlchemyError as exc:  # the count is stored; sweeping can wait
                log.warning("login counters not pruned: %s", type(exc).__name__)
        return delay

    def success(self, address: str, username: str) -> None:
        with self._db.session() as session, session.begin():
            logins.clear(session, address, username)

    def prune(self) -> int:
        """Delete stale counters (lock over, no failure for ``MAX_DELAY``); return how many."""
        with self._db.session() as session, session.begin():
            return logins.prune(session, now=self._clock())
