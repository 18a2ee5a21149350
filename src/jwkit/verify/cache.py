"""The verified-token cache: a bounded LRU from token string to its verified claims.

The same access token is usually presented many times during its life. Once a token has
passed the full check (strict parse, allowed ``alg``, key lookup, signature, every claim),
this cache returns its :class:`~jwkit.jose.jwt.Claims` again for the identical token string
without repeating the signature check. The reasoning is in ``docs/security-token-cache.md``;
in short:

- the key is the *whole* token string: any change to header, payload or signature misses;
- time claims are re-checked on every hit. The entry stores the window in which the claims
  policy accepts the token (``exp``, ``nbf``, ``iat``, ``max_age`` and ``leeway`` folded into
  two numbers, shrunk by :data:`MARGIN` so it is never wider than the policy's own checks);
  outside that window the verifier re-runs the policy, which raises the precise error;
- entries remember the key that verified them and are dropped the moment that key leaves
  its source (rotation, revocation, a replaced file, a remote set older than ``max_stale``);
- it is bounded by entry count and by total token length (oldest entries go first).

A hit costs two dictionary operations, one uncontended lock and two float comparisons.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Collection, Mapping
from typing import Any

from ..jose.jwk import JWK
from ..jose.jwt import Claims

__all__ = ["DEFAULT_CACHE_CHARS", "DEFAULT_CACHE_SIZE", "MARGIN", "CacheEntry", "TokenCache"]

DEFAULT_CACHE_SIZE = 10_000
#: Total token characters held at most (8 Mi characters, about 8 MiB).
DEFAULT_CACHE_CHARS = 8 << 20
#: Seconds by which a cached validity window is shrunk at each end, so float rounding can
#: never make it accept a moment the policy would reject. Near an edge the policy decides.
MARGIN = 0.001


class CacheEntry:
    """One verified token: its claims, the key that verified it and its validity window."""

    __slots__ = ("claims", "key", "not_after", "not_before")

    def __init__(self, claims: Claims, key: JWK, not_before: float, not_after: float) -> None:
        self.claims = claims
        self.key = key
        #: the entry is served for ``not_before <= now < not_after`` only
        self.not_before = not_before
        self.not_after = not_after


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def validity_window(
    claims: Mapping[str, Any], *, leeway: float, max_age: float | None
) -> tuple[float, float]:
    """The ``[not_before, not_after)`` interval in which the claims policy accepts ``claims``.

    Mirrors :meth:`jwkit.jose.jwt.ClaimsPolicy.validate` (RFC 7519 §4.1.4, §4.1.5, §4.1.6),
    narrowed by :data:`MARGIN`. Only called for claims that have just passed that policy.
    """
    start = -math.inf
    end = math.inf
    exp = _number(claims, "exp")
    if exp is not None:
        end = exp + leeway - MARGIN
    nbf = _number(claims, "nbf")
    if nbf is not None:
        start = max(start, nbf - leeway + MARGIN)
    iat = _number(claims, "iat")
    if iat is not None:
        start = max(start, iat - leeway + MARGIN)
        if max_age is not None:
            end = min(end, iat + max_age + leeway - MARGIN)
    return start, end


class TokenCache:
    """A thread-safe LRU of verified tokens, bounded by count and total token length.

    A lookup takes no lock; every change to the dict (including a hit's move to the end)
    takes one, so invalidation can iterate the entries while other threads read.
    """

    __slots__ = ("__weakref__", "_chars", "_data", "_lock", "max_chars", "maxsize")

    def __init__(self, maxsize: int = DEFAULT_CACHE_SIZE, *, max_chars: int = DEFAULT_CACHE_CHARS):
        if maxsize <= 0 or max_chars <= 0:
            raise ValueError("cache bounds must be positive")
        self.maxsize = maxsize
        self.max_chars = max_chars
        self._data: OrderedDict[str | bytes, CacheEntry] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()

    def get(self, token: str | bytes) -> CacheEntry | None:
        """The entry for ``token`` (marked as recently used), or ``None``."""
        entry = self._data.get(token)
        if entry is not None:
            # Every reordering happens under the lock, so invalidation can iterate safely.
            with self._lock:
                if token in self._data:
                    self._data.move_to_end(token)
        return entry

    def put(self, token: str | bytes, entry: CacheEntry) -> None:
        """Remember ``token``; evict the least recently used entries beyond the bounds."""
        size = len(token)
        if size > self.max_chars:
            return
        with self._lock:
            old = self._data.pop(token, None)
            if old is not None:
                self._chars -= size
            self._data[token] = entry
            self._chars += size
            while len(self._data) > self.maxsize or self._chars > self.max_chars:
                evicted, _ = self._data.popitem(last=False)
                self._chars -= len(evicted)

    def discard(self, token: str | bytes) -> None:
        with self._lock:
            if self._data.pop(token, None) is not None:
                self._chars -= len(token)

    def drop_keys(self, keys: Collection[JWK]) -> None:
        """Drop every entry verified with one of ``keys`` (compared by identity)."""
        gone = {id(k) for k in keys}
        if not gone:
            return
        with self._lock:
            doomed = [t for t, e in self._data.items() if id(e.key) in gone]
            for token in doomed:
                del self._data[token]
                self._chars -= len(token)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._chars = 0

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, token: object) -> bool:
        return token in self._data

    def __repr__(self) -> str:
        return f"<TokenCache {len(self._data)}/{self.maxsize} entries>"
