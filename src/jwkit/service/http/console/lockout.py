"""Login throttling: exponential backoff after repeated failed passwords.

Failures are counted per ``(client address, username)``. The first ``FREE_ATTEMPTS`` failures
cost nothing extra (argon2 already makes each guess slow); every later failure locks that pair
out for ``BASE_DELAY * 2**(n - FREE_ATTEMPTS)`` seconds, capped at ``MAX_DELAY``. While locked,
a login is refused *before* the password is checked, so a locked-out guesser learns nothing.
A success clears the counter. State lives in this process (each worker counts on its own).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["BASE_DELAY", "FREE_ATTEMPTS", "MAX_DELAY", "LoginThrottle"]

FREE_ATTEMPTS = 5
BASE_DELAY = 30
MAX_DELAY = 15 * 60
_MAX_ENTRIES = 10_000


@dataclass(slots=True)
class _Entry:
    failures: int = 0
    locked_until: float = 0.0
    last: float = 0.0


class LoginThrottle:
    """Thread-safe failure counter with exponential lockout."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._lock = threading.Lock()

    def retry_after(self, address: str, username: str) -> int:
        """Seconds until this pair may try again (0 when it may try now)."""
        with self._lock:
            entry = self._entries.get((address, username.lower()))
            if entry is None:
                return 0
            remaining = entry.locked_until - self._clock()
            return max(0, int(remaining + 0.999))

    def failure(self, address: str, username: str) -> int:
        """Record a failed password; return the lockout (seconds) it starts, 0 for none."""
        now = self._clock()
        with self._lock:
            if len(self._entries) >= _MAX_ENTRIES:
                self._prune(now)
            entry = self._entries.setdefault((address, username.lower()), _Entry())
            entry.failures += 1
            entry.last = now
            over = entry.failures - FREE_ATTEMPTS
            if over < 0:
                return 0
            delay: int = min(MAX_DELAY, BASE_DELAY << min(over, 16))
            entry.locked_until = now + delay
            return delay

    def success(self, address: str, username: str) -> None:
        with self._lock:
            self._entries.pop((address, username.lower()), None)

    def _prune(self, now: float) -> None:
        stale = [k for k, e in self._entries.items()
                 if e.locked_until < now and now - e.last > MAX_DELAY]
        for key in stale:
            del self._entries[key]
        if len(self._entries) >= _MAX_ENTRIES:  # still full: forget the oldest half
            oldest = sorted(self._entries, key=lambda k: self._entries[k].last)
            for key in oldest[: len(oldest) // 2]:
                del self._entries[key]
