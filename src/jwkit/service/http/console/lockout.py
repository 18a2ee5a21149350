"""Login throttling for the console: attempts reserved in the database, shared by all workers.

Each login attempt is reserved (:func:`jwkit.service.domain.logins.reserve`) *before* its
password is checked, on three counters kept in the service's database (table
``login_failures``): per ``(client address, user name)``, per client address and per user
name. So every ``--workers`` process and every replica sees the same counts, concurrent guesses
get no more checks than the counts allow, and a restart forgets nothing. Once a pair is locked a
login is refused *before* the password is checked, so a locked-out guesser learns nothing; a
user name under attack from many addresses stays open to an address that has not failed (see
the domain module for the rules and the trade-off). A success frees the pair.

The client address is the connection's peer, or the address a configured proxy forwarded
(``JWKIT_FORWARDED_ALLOW_IPS``: uvicorn then rewrites the peer; nothing else is trusted).
IPv6 addresses count per ``/64``, the block one subscriber usually gets, so that walking
through one's own prefix gains nothing. Deadlines are wall-clock seconds (``clock``,
injectable for tests), since they outlive the process. Every method blocks on the database
(call it through ``run_in_threadpool``) and raises :class:`sqlalchemy.exc.SQLAlchemyError` when
the database fails: the caller must then refuse the login.
"""

from __future__ import annotations

import ipaddress
import logging
import math
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError

from jwkit.service.domain import logins
from jwkit.service.domain.logins import (
    ACCOUNT_FREE_ATTEMPTS,
    ADDRESS_FREE_ATTEMPTS,
    BASE_DELAY,
    FREE_ATTEMPTS,
    MAX_DELAY,
)
from jwkit.service.store.db import Database

__all__ = [
    "ACCOUNT_FREE_ATTEMPTS",
    "ADDRESS_FREE_ATTEMPTS",
    "BASE_DELAY",
    "FREE_ATTEMPTS",
    "MAX_DELAY",
    "PRUNE_INTERVAL",
    "Attempt",
    "LoginThrottle",
    "client_key",
]

log = logging.getLogger("jwkit.service.console")

#: At most one sweep of stale counters per process per this many seconds (on an attempt).
PRUNE_INTERVAL = 60.0
IPV6_PREFIX = 64


def client_key(host: str | None) -> str:
    """The address a login is counted under: IPv4 as is, IPv6 as its ``/64``
    (``2001:db8:1:2::/64``; IPv4-mapped IPv6 as the IPv4 address), anything else (a Unix
    socket, whatever a proxy forwarded) as ``name:<it>``, which no address and no counter of
    :mod:`~jwkit.service.domain.logins` (``*``) can equal."""
    if not host:
        return "unknown"
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return "name:" + host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_PREFIX), strict=False))
    return str(ip)


class Attempt:
    """A reserved (or refused) login attempt: ``allowed``, and ``retry_after`` in whole
    seconds, rounded up (when refused, the wait; when allowed, the lock a wrong password
    leaves, 0 for none)."""

    __slots__ = ("allowed", "retry_after")

    def __init__(self, allowed: bool, wait: float) -> None:
        self.allowed = allowed
        self.retry_after = max(0, math.ceil(wait - 1e-9))


class LoginThrottle:
    """Attempt counters with exponential locks, kept in the database."""

    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock
        self._next_prune = 0.0

    def reserve(self, address: str, username: str) -> Attempt:
        """Count this attempt before its password is checked, or refuse it."""
        now = self._clock()
        with self._db.session() as session, session.begin():
            reservation = logins.reserve(session, address, username, now=now)
        if now >= self._next_prune:
            self._next_prune = now + PRUNE_INTERVAL
            try:
                self.prune()
            except SQLAlchemyError as exc:  # the attempt is stored; sweeping can wait
                log.warning("login counters not pruned: %s", type(exc).__name__)
        return Attempt(reservation.allowed, reservation.wait)

    def retry_after(self, address: str, username: str) -> int:
        """Seconds until this address may try this name (0 when it may try now)."""
        with self._db.session() as session:
            wait = logins.retry_after(session, address, username, now=self._clock())
        return Attempt(False, wait).retry_after

    def success(self, address: str, username: str) -> None:
        """The reserved attempt had the right password."""
        with self._db.session() as session, session.begin():
            logins.succeeded(session, address, username)

    def prune(self) -> int:
        """Delete stale counters (lock over, no attempt for ``MAX_DELAY``); return how many."""
        with self._db.session() as session, session.begin():
            return logins.prune(session, now=self._clock())
