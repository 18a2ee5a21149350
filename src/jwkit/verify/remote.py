"""A JWKS fetched over HTTPS: caching, cooldown, single-flight refresh, stale-if-error.

:class:`RemoteJWKSource` is the key source behind ``Verifier.from_jwks_url``,
``from_issuer`` and most provider presets. Its defaults follow Node jose's
``createRemoteJWKSet`` and the HTTP caching rules of RFC 9111:

- every fetch is bounded: ``timeout`` (5 s) for the whole exchange, ``max_bytes`` (1 MiB)
  enforced while the body streams in, ``https`` only unless ``allow_insecure_http``,
  redirects refused unless ``follow_redirects``;
- the key set is fresh for ``Cache-Control: max-age`` (RFC 9111 §5.2.2.1, less ``Age``,
  §5.1) clamped to ``[min_ttl, max_ttl]``, or ``default_ttl`` (10 min) when the server
  sends none; a refresh sends ``If-None-Match`` with the last ``ETag`` and accepts ``304``
  (RFC 9110 §13.1.2, §15.4.5);
- a token with an unknown ``kid`` triggers at most one refetch per ``cooldown`` (30 s), and
  the kid is remembered as missing for that long;
- concurrent callers share one request in flight, across threads and asyncio tasks
  (single-flight);
- when a refresh fails (network, timeout, 5xx, bad JSON, no usable keys) the last good set
  keeps serving for up to ``max_stale`` (24 h) past its expiry, with exponential backoff
  between attempts and a warning on the ``jwkit`` logger;
- only public, asymmetric signature keys are used: private members, secrets, ``use: enc``
  and keys that fail to import are skipped with a warning (RFC 7517 §4.2, §4.3);
- with asyncio, a background task refreshes the set ahead of its expiry, so requests never
  wait for a routine refresh (started lazily, cancelled by :meth:`aclose`).

OpenID discovery (OpenID Connect Discovery 1.0 §4): :meth:`RemoteJWKSource.from_issuer`
reads ``{issuer}/.well-known/openid-configuration`` on the first fetch, requires its
``issuer`` to be identical to the one given (§4.3) and uses its ``jwks_uri``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from ..errors import KeySourceError
from ..jose.jwk import JWKSet
from .fetch import Fetched, JWKSFetcher, check_url, describe
from .sources import BaseKeySource, SourceHealth

__all__ = [
    "DEFAULT_COOLDOWN",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_STALE",
    "DEFAULT_MAX_TTL",
    "DEFAULT_MIN_TTL",
    "DEFAULT_TIMEOUT",
    "DEFAULT_TTL",
    "REMOTE_OPTIONS",
    "RemoteJWKSource",
    "check_url",
]

logger = logging.getLogger("jwkit")

DEFAULT_TIMEOUT = 5.0
DEFAULT_COOLDOWN = 30.0
DEFAULT_MIN_TTL = 60.0
DEFAULT_MAX_TTL = 24 * 3600.0
DEFAULT_TTL = 600.0
DEFAULT_MAX_STALE = 24 * 3600.0
DEFAULT_MAX_BYTES = 1 << 20
#: Backoff after a failed refresh: 1 s, 2 s, 4 s, ... capped at 5 min.
BACKOFF_BASE = 1.0
BACKOFF_MAX = 300.0
#: The keyword options that configure a remote source (``Verifier.from_*`` pass them on).
REMOTE_OPTIONS = frozenset(
    {
        "timeout",
        "cooldown",
        "min_ttl",
        "max_ttl",
        "default_ttl",
        "max_stale",
        "max_bytes",
        "allow_insecure_http",
        "follow_redirects",
        "http_client",
        "async_http_client",
        "background_refresh",
    }
)


class RemoteJWKSource(BaseKeySource):
    """Keys from a JWKS URL (or an issuer's discovery document), cached and refreshed.

    Thread-safe and usable from several event loops. ``clock`` (monotonic seconds) can be
    injected by tests; every other option is documented in the module docstring and in
    ``docs/verifier.md``.
    """

    remote = True

    def __init__(
        self,
        url: str | None = None,
        *,
        issuer: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        cooldown: float = DEFAULT_COOLDOWN,
        min_ttl: float = DEFAULT_MIN_TTL,
        max_ttl: float = DEFAULT_MAX_TTL,
        default_ttl: float = DEFAULT_TTL,
        max_stale: float = DEFAULT_MAX_STALE,
        max_bytes: int = DEFAULT_MAX_BYTES,
        allow_insecure_http: bool = False,
        follow_redirects: bool = False,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
        background_refresh: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        for name, value in (("cooldown", cooldown), ("min_ttl", min_ttl), ("max_stale", max_stale)):
            if value < 0:
                raise ValueError(f"{name} must not be negative")
        if max_ttl < min_ttl:
            raise ValueError("max_ttl must not be less than min_ttl")
        self.fetcher = JWKSFetcher(
            url,
            issuer=issuer,
            timeout=timeout,
            max_bytes=max_bytes,
            allow_insecure_http=allow_insecure_http,
            follow_redirects=follow_redirects,
            http_client=http_client,
            async_http_client=async_http_client,
        )
        self.timeout = float(timeout)
        self.cooldown = float(cooldown)
        self.min_ttl = float(min_ttl)
        self.max_ttl = float(max_ttl)
        self.default_ttl = float(default_ttl)
        self.max_stale = float(max_stale)
        self.background_refresh = background_refresh
        self._clock = clock

        self._lock = threading.Lock()
        self._keys: JWKSet | None = None
        self._expires_at = float("-inf")
        self._fetched_at: float | None = None
        self._fetched_wall: float | None = None
        self._etag: str | None = None
        self._last_attempt = float("-inf")
        self._retry_at = float("-inf")
        self._failures = 0
        self._fetch_count = 0
        self._last_error: str | None = None
        self._last_error_wall: float | None = None
        self._missing: dict[str, float] = {}
        self._inflight: concurrent.futures.Future[JWKSet] | None = None
        self._inflight_thread: int | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._bg_task: asyncio.Task[None] | None = None
        self._closed = False

    @classmethod
    def from_issuer(cls, issuer: str, **options: Any) -> RemoteJWKSource:
        """Discover the JWKS URL from ``issuer``'s OpenID configuration (on first use)."""
        return cls(None, issuer=issuer, **options)

    @property
    def source_name(self) -> str:
        return self.fetcher.source_name

    @property
    def jwks_url(self) -> str | None:
        """The JWKS URL (found by discovery on the first fetch for ``from_issuer``)."""
        return self.fetcher.jwks_url

    def __repr__(self) -> str:
        return f"RemoteJWKSource({self.source_name!r})"

    # -- public, sync --------------------------------------------------------------------------
    def get_keys(self) -> JWKSet:
        """The current key set, refreshing it first when it has expired."""
        keys = self._keys
        if keys is not None and self._clock() < self._expires_at:
            return keys
        fresh = self._refresh_sync(kid=None)
        assert fresh is not None  # only a kid refetch can be refused
        return fresh

    def refresh_for_kid(self, kid: str) -> JWKSet | None:
        """Refetch because a token names ``kid``; ``None`` when the cooldown forbids it."""
        until = self._missing.get(kid)
        if until is not None and self._clock() < until:
            return None
        try:
            keys = self._refresh_sync(kid=kid)
        except KeySourceError:
            return None
        if keys is not None:
            self._note_missing(kid, keys)
        return keys

    def expire(self) -> None:
        """Treat the cached set as expired now (an event said the keys changed): the next
        :meth:`get_keys` refetches it, conditionally. The keys stay usable for
        ``max_stale`` from now if that refetch fails."""
        with self._lock:
            self._expires_at = min(self._expires_at, self._clock())
            self._retry_at = float("-inf")

    def close(self) -> None:
        """Close the HTTP client this source created (an injected one is left open)."""
        self._closed = True
        self.fetcher.close()
        for task in list(self._tasks):
            task.cancel()
        if self._bg_task is not None:
            self._bg_task.cancel()

    # -- public, async -------------------------------------------------------------------------
    async def get_keys_async(self) -> JWKSet:
        keys = self._keys
        if self.background_refresh:
            self._ensure_background()
        if keys is not None and self._clock() < self._expires_at:
            return keys
        fresh = await self._refresh_async(kid=None)
        assert fresh is not None  # only a kid refetch can be refused
        return fresh

    async def refresh_for_kid_async(self, kid: str) -> JWKSet | None:
        until = self._missing.get(kid)
        if until is not None and self._clock() < until:
            return None
        try:
            keys = await self._refresh_async(kid=kid)
        except KeySourceError:
            return None
        if keys is not None:
            self._note_missing(kid, keys)
        return keys

    async def aclose(self) -> None:
        """Cancel the background refresh and close what this source created."""
        tasks = list(self._tasks)
        if self._bg_task is not None:
            tasks.append(self._bg_task)
        self.close()
        current = asyncio.get_running_loop()
        mine = [t for t in tasks if t.get_loop() is current]
        if mine:
            await asyncio.gather(*mine, return_exceptions=True)

    async def __aenter__(self) -> RemoteJWKSource:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- health --------------------------------------------------------------------------------
    def health(self) -> SourceHealth:
        """Last fetch, age, time to expiry, last error: for readiness probes and logs."""
        with self._lock:
            now = self._clock()
            keys = self._keys
            fetched_at = self._fetched_at
            expires_at = self._expires_at
            age = None if fetched_at is None else max(0.0, now - fetched_at)
            stale = keys is not None and now >= expires_at
            ok = keys is not None and now < expires_at + self.max_stale
            return SourceHealth(
                source=self.source_name,
                ok=ok,
                key_count=0 if keys is None else len(keys),
                last_fetch=_utc(self._fetched_wall),
                age=age,
                expires_in=None if keys is None else expires_at - now,
                stale=stale,
                last_error=self._last_error,
                last_error_at=_utc(self._last_error_wall),
                consecutive_failures=self._failures,
                fetch_count=self._fetch_count,
            )

    # -- the shared decision -------------------------------------------------------------------
    def _begin(self, kid: str | None, force: bool = False, *, blocking: bool) -> tuple[str, Any]:
        """Decide under the lock: ``("keys", set)``, ``("join", future)``, ``("fetch", future)``
        ``("fail", None)`` (backoff) or ``("none", None)`` (a kid refetch refused by the
        cooldown or the backoff)."""
        now = self._clock()
        keys = self._keys
        if self._inflight is not None:
            if blocking and self._inflight_thread == threading.get_ident():
                # The owner runs on this very thread (an event loop calling sync code):
                # waiting would deadlock, so serve what we have or fail.
                return ("fail", None)
            return ("join", self._inflight)
        if kid is None and not force and keys is not None and now < self._expires_at:
            return ("keys", keys)
        if kid is not None:
            if keys is not None and keys.get(kid) is not None:
                return ("keys", keys)
            if now - self._last_attempt < self.cooldown or now < self._retry_at:
                self._missing_until(kid, max(self._last_attempt + self.cooldown, self._retry_at))
                return ("none", None)
        if now < self._retry_at:
            return ("fail", None)
        future: concurrent.futures.Future[JWKSet] = concurrent.futures.Future()
        future.set_running_or_notify_cancel()  # joiners cannot cancel it
        self._inflight = future
        self._inflight_thread = threading.get_ident()
        self._last_attempt = now
        return ("fetch", future)

    def _refresh_sync(self, kid: str | None) -> JWKSet | None:
        with self._lock:
            action, value = self._begin(kid, blocking=True)
        if action == "none":
            return None
        if action == "keys":
            assert isinstance(value, JWKSet)
            return value
        if action == "fail":
            return self._stale_or_raise(None)
        future: concurrent.futures.Future[JWKSet] = value
        if action == "fetch":
            try:
                fetched = self.fetcher.fetch(self._conditional_etag())
            except BaseException as exc:
                self._finish(future, None, exc)
                if not isinstance(exc, Exception):
                    raise
            else:
                self._finish(future, fetched, None)
        try:
            return future.result()
        except KeySourceError as exc:
            return self._stale_or_raise(exc)

    async def _refresh_async(self, kid: str | None, force: bool = False) -> JWKSet | None:
        with self._lock:
            action, value = self._begin(kid, force, blocking=False)
        if action == "none":
            return None
        if action == "keys":
            assert isinstance(value, JWKSet)
            return value
        if action == "fail":
            return self._stale_or_raise(None)
        future: concurrent.futures.Future[JWKSet] = value
        if action == "fetch":
            # The fetch runs in its own task: a caller that is cancelled does not cancel
            # the request the other callers are waiting for.
            task = asyncio.get_running_loop().create_task(self._fetch_task(future))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        try:
            return await asyncio.wrap_future(future)
        except KeySourceError as exc:
            return self._stale_or_raise(exc)

    async def _fetch_task(self, future: concurrent.futures.Future[JWKSet]) -> None:
        try:
            etag = self._conditional_etag()
            fetched = await self.fetcher.fetch_async(etag)  # bounded by the fetcher's timeout
        except asyncio.CancelledError:
            self._finish(future, None, KeySourceError("the refresh was cancelled"), count=False)
            raise
        except Exception as exc:
            self._finish(future, None, exc)
        else:
            self._finish(future, fetched, None)

    def _finish(
        self,
        future: concurrent.futures.Future[JWKSet],
        fetched: Fetched | None,
        error: BaseException | None,
        *,
        count: bool = True,
    ) -> None:
        """Record the outcome, wake every waiter, and clear the in-flight marker."""
        try:
            if fetched is not None:
                try:
                    future.set_result(self._apply_success(fetched))
                    return
                except KeySourceError as exc:
                    error = exc
            assert error is not None
            if not isinstance(error, KeySourceError):
                error = KeySourceError(f"refresh failed: {describe(error)}", url=self.source_name)
            if count:
                self._apply_failure(error)
            future.set_exception(error)
        except BaseException as exc:  # pragma: no cover - defensive: never strand waiters
            if not future.done():
                future.set_exception(KeySourceError(f"refresh failed: {describe(exc)}"))
            raise
        finally:
            with self._lock:
                if self._inflight is future:
                    self._inflight = None
                    self._inflight_thread = None

    def _apply_success(self, fetched: Fetched) -> JWKSet:
        now = self._clock()
        ttl = self.default_ttl if fetched.ttl is None else fetched.ttl
        ttl = min(max(ttl, self.min_ttl), self.max_ttl)
        if fetched.keys is None:
            keys = self._keys
            if keys is None:  # a 304 without anything cached: treat as a failure
                raise KeySourceError("304 Not Modified without a cached JWKS", url=self.jwks_url)
        else:
            keys = self._install(fetched.keys)
        with self._lock:
            self._keys = keys
            self._expires_at = now + ttl
            self._fetched_at = now
            self._fetched_wall = time.time()
            if fetched.etag is not None or fetched.keys is not None:
                self._etag = fetched.etag
            self._failures = 0
            self._retry_at = float("-inf")
            self._fetch_count += 1
            if fetched.keys is not None:
                self._missing = {k: t for k, t in self._missing.items() if keys.get(k) is None}
        return keys

    def _apply_failure(self, error: KeySourceError) -> None:
        with self._lock:
            now = self._clock()
            self._failures += 1
            self._fetch_count += 1
            backoff = min(BACKOFF_BASE * 2 ** min(self._failures - 1, 20), BACKOFF_MAX)
            self._retry_at = now + backoff
            self._last_error = error.message
            self._last_error_wall = time.time()
            has_keys = self._keys is not None
        logger.warning(
            "jwkit: refreshing %s failed (%s); %s; next attempt in %.0f s",
            self.source_name,
            error.message,
            "serving the cached keys" if has_keys else "no keys cached",
            backoff,
        )

    def _stale_or_raise(self, error: KeySourceError | None) -> JWKSet:
        """Serve the last good set while it is within ``max_stale`` of its expiry."""
        with self._lock:
            keys = self._keys
            now = self._clock()
            usable = keys is not None and now < self._expires_at + self.max_stale
            last_error = self._last_error
        if keys is not None and usable:
            return keys
        if keys is not None:
            # Too old to vouch for: forget the keys (and the tokens cached with them).
            with self._lock:
                self._keys = None
            self._drop_all()
        if error is None:
            detail = last_error or "no refresh allowed yet"
            raise KeySourceError(
                f"no usable keys from {self.source_name}: {detail}", url=self.source_name
            )
        # A fresh exception per caller: the shared one may be raised in many threads at once.
        raise KeySourceError(error.message, url=error.url or self.source_name) from None

    def _conditional_etag(self) -> str | None:
        with self._lock:
            return self._etag if self._keys is not None else None

    def _note_missing(self, kid: str, keys: JWKSet) -> None:
        if keys.get(kid) is None:
            with self._lock:
                self._missing_until(kid, self._clock() + self.cooldown)

    def _missing_until(self, kid: str, until: float) -> None:
        if len(self._missing) >= 4096:  # a kid flood must not grow memory without bound
            self._missing.clear()
        self._missing[kid] = until

    # -- background refresh (asyncio) ----------------------------------------------------------
    def _ensure_background(self) -> None:
        task = self._bg_task
        if self._closed or (task is not None and not task.done()):
            return
        loop = asyncio.get_running_loop()
        self._bg_task = loop.create_task(self._background())

    async def _background(self) -> None:
        """Refresh ahead of expiry: at 80 % of the TTL (at most 60 s early)."""
        while not self._closed:
            with self._lock:
                now = self._clock()
                if self._keys is None or self._fetched_at is None:
                    wake = self._retry_at
                else:
                    ttl = self._expires_at - self._fetched_at
                    wake = max(self._expires_at - min(0.2 * ttl, 60.0), self._retry_at)
            if now < wake:
                await asyncio.sleep(min(wake - now, 60.0))
                continue
            try:
                await self._refresh_async(kid=None, force=True)
            except KeySourceError:
                pass  # recorded and logged; the loop retries after the backoff
            await asyncio.sleep(0.5)  # never spin, whatever the TTL


def _utc(wall: float | None) -> datetime | None:
    return None if wall is None else datetime.fromtimestamp(wall, tz=UTC)
