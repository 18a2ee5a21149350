"""Token status checking: Status List Tokens fetched, verified and cached for a verifier.

A token that carries ``"status": {"status_list": {"idx": N, "uri": U}}``
(draft-ietf-oauth-status-list §6.2) is accepted only while entry ``N`` of the list at ``U``
is VALID. :class:`StatusChecker` does that for :class:`~jwkit.Verifier` (option
``check_status``):

- **No SSRF.** ``U`` is fetched only when it lies under the verifier's issuer or one of the
  ``status_uris`` prefixes (same scheme, host and port; path below the prefix's path; no
  user info, fragment or dot segments), ``https`` unless ``allow_insecure_http``. Anything
  else is refused before any network traffic. Redirects are never followed.
- **Verified like a token, with the verifier's own keys** (§5.1, §8.3): compact JWS, ``alg``
  in the verifier's allow-list and bound to the key found in the verifier's key source,
  header ``typ`` ``statuslist+jwt``, ``sub`` equal to ``U``, ``iat`` and ``exp`` present and
  valid, ``iss`` equal to the verifier's issuer when it has one, ``ttl`` a positive number,
  ``status_list`` decoded by :class:`jwkit.jose.statuslist.StatusList` with its
  decompression bound. A list older (by ``iat``) than the one cached is refused.
- **Cached for its ``ttl``** clamped to ``[min_ttl, max_ttl]`` (``default_ttl`` without
  one), never past its ``exp``; refreshed with ``If-None-Match``, single-flight across
  threads and asyncio tasks, through the same bounded HTTP code as the remote JWKS
  (:class:`~jwkit.verify.fetch.JWKSFetcher`: one deadline for the exchange, ``max_bytes``
  on the raw and decoded body).
- **Outage policy.** When a refresh fails, the last good list keeps answering until
  ``max_stale`` after its ttl ran out (and never past its ``exp``), with backoff between
  attempts. After that the token is refused with :class:`~jwkit.errors.StatusUnavailable`
  unless ``fail_open``, which accepts it with a warning on the ``jwkit`` logger.
- **Answers.** VALID passes; INVALID raises :class:`~jwkit.errors.TokenRevoked`, SUSPENDED
  :class:`~jwkit.errors.TokenSuspended`; any other value (application-specific or reserved,
  §7) is not VALID either and raises ``TokenRevoked``. An index outside the list, a
  malformed ``status`` claim or a URI outside the allowed prefixes raise
  :class:`~jwkit.errors.ClaimError` (``claim="status"``) whatever the outage policy.

Once a list is cached, a check is a few dictionary lookups and one bit read: the verifier
runs it on every verified-token cache hit too, so the cache never hides a revocation.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import httpx

from ..errors import (
    ClaimError,
    InvalidToken,
    KeyNotFound,
    KeySourceError,
    MissingClaim,
    StatusUnavailable,
    TokenRevoked,
    TokenSuspended,
)
from ..jose import jws
from ..jose._fast import checker_for, parse_object
from ..jose.jwk import JWK, JWKSet
from ..jose.jwt import ClaimsPolicy
from ..jose.statuslist import DEFAULT_MAX_BYTES as DEFAULT_MAX_LIST_BYTES
from ..jose.statuslist import SUSPENDED, VALID, StatusList
from .fetch import JWKSFetcher, check_url, describe
from .sources import KeySource

__all__ = [
    "DEFAULT_STATUS_MAX_STALE",
    "DEFAULT_STATUS_MAX_TTL",
    "DEFAULT_STATUS_MIN_TTL",
    "DEFAULT_STATUS_TTL",
    "STATUS_LIST_TYP",
    "STATUS_OPTIONS",
    "StatusChecker",
    "StatusListFetcher",
    "build_checker",
    "status_reference",
    "uri_is_under",
]

logger = logging.getLogger("jwkit")

STATUS_LIST_TYP = "statuslist+jwt"
#: A list is cached at least this long whatever its ``ttl`` says (a tiny ttl must not
#: turn every verifier into a load generator, §11.5).
DEFAULT_STATUS_MIN_TTL = 5.0
#: ... and at most this long, so a list with a ttl of days is still re-read hourly.
DEFAULT_STATUS_MAX_TTL = 3600.0
#: A list without ``ttl`` is re-read after this long.
DEFAULT_STATUS_TTL = 300.0
#: How long past its ttl a cached list keeps answering while it cannot be refreshed.
DEFAULT_STATUS_MAX_STALE = 900.0
DEFAULT_STATUS_TIMEOUT = 5.0
#: The largest Status List Token body accepted (the encoded list is inside it).
DEFAULT_STATUS_MAX_BYTES = 1 << 20
#: Distinct lists cached at most; the least recently fetched goes first.
MAX_LISTS = 1024
BACKOFF_BASE = 1.0
BACKOFF_MAX = 60.0
_ACCEPT = {"Accept": "application/statuslist+jwt", "Accept-Encoding": "gzip, deflate"}

#: The ``Verifier`` keyword options that configure status checking (``check_status`` aside).
STATUS_OPTIONS = frozenset(
    {
        "status_uris",
        "status_min_ttl",
        "status_max_ttl",
        "status_default_ttl",
        "status_max_stale",
        "status_fail_open",
        "status_timeout",
        "status_max_bytes",
        "status_allow_insecure_http",
        "status_http_client",
        "status_async_http_client",
        "status_events",
    }
)


# -- the status claim and the URI rule -----------------------------------------------------------
def status_reference(claim: object) -> tuple[str, int]:
    """``(uri, idx)`` of a ``status`` claim (§6.2), or :class:`ClaimError`."""
    if type(claim) is dict:
        ref = claim.get("status_list")
        if type(ref) is dict:
            uri = ref.get("uri")
            idx = ref.get("idx")
            if type(uri) is str and type(idx) is int and idx >= 0 and uri:
                return uri, idx
            raise ClaimError(
                '"status_list" needs a non-negative integer "idx" and a string "uri"',
                claim="status",
            )
        if isinstance(claim, dict) and "status_list" not in claim:
            raise ClaimError(
                "the token uses a status mechanism jwkit does not know", claim="status"
            )
    raise ClaimError('"status" must be an object holding a "status_list" object', claim="status")


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default = {"https": 443, "http": 80}.get(url.scheme)
    return url.scheme, url.host.lower(), url.port or default


def uri_is_under(uri: str, prefix: str) -> bool:
    """True when ``uri`` is ``prefix`` itself or lies below it: same scheme, host and port,
    a path under the prefix's path (segment-wise), no user info, no fragment, and no ``.``
    or ``..`` segment (even percent-encoded) that could climb out of it."""
    try:
        target = httpx.URL(uri)
        base = httpx.URL(prefix)
    except (httpx.InvalidURL, ValueError, TypeError):
        return False
    if not target.host or target.userinfo or target.fragment or "#" in uri:
        return False
    if _origin(target) != _origin(base):
        return False
    path = target.raw_path.split(b"?", 1)[0].decode("ascii", "replace")
    segments = unquote(path).split("/")
    if any(s in (".", "..") for s in segments) or "\\" in path:
        return False
    root = base.path.rstrip("/")
    return path == root or path.startswith(root + "/") or (root == "" and path == "")


@dataclass(frozen=True)
class _Reply:
    body: bytes | None  # None: 304 Not Modified
    etag: str | None


class StatusListFetcher(JWKSFetcher):
    """One bounded HTTP exchange for a Status List Token: the remote JWKS's fetch code
    (deadline, size limits on the raw and decoded body, no redirects, ETag) with the
    ``application/statuslist+jwt`` media type (§8.1) and no JSON parsing."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        max_bytes: int,
        allow_insecure_http: bool,
        http_client: httpx.Client | None,
        async_http_client: httpx.AsyncClient | None,
    ) -> None:
        check_url(url, allow_insecure_http=allow_insecure_http, what="status list URL")
        super().__init__(
            url,
            issuer=None,
            timeout=timeout,
            max_bytes=max_bytes,
            allow_insecure_http=allow_insecure_http,
            follow_redirects=False,
            http_client=http_client,
            async_http_client=async_http_client,
        )

    @property
    def url(self) -> str:
        assert self.jwks_url is not None
        return self.jwks_url

    @staticmethod
    def _headers(etag: str | None) -> dict[str, str]:
        headers = dict(_ACCEPT)
        if etag is not None:
            headers["If-None-Match"] = etag
        return headers

    def get(self, etag: str | None) -> _Reply:
        """GET the list (conditionally with ``etag``); :class:`KeySourceError` on failure."""
        deadline = time.monotonic() + self.timeout
        try:
            return self._reply(self._get_sync(self.url, self._headers(etag), deadline), etag)
        except httpx.TimeoutException:
            raise KeySourceError(self.timeout_message(), url=self.url) from None
        except httpx.HTTPError as exc:
            raise KeySourceError(f"fetching {self.url} failed: {describe(exc)}") from None

    async def get_async(self, etag: str | None) -> _Reply:
        deadline = time.monotonic() + self.timeout
        try:
            return await asyncio.wait_for(self._get_reply_async(deadline, etag), self.timeout)
        except (TimeoutError, httpx.TimeoutException):
            raise KeySourceError(self.timeout_message(), url=self.url) from None
        except httpx.HTTPError as exc:
            raise KeySourceError(f"fetching {self.url} failed: {describe(exc)}") from None

    async def _get_reply_async(self, deadline: float, etag: str | None) -> _Reply:
        headers = self._headers(etag)
        if self._async_http_client is not None:
            client = self._async_http_client
            return self._reply(await self._get_async(client, self.url, headers, deadline), etag)
        async with httpx.AsyncClient(
            timeout=self.timeout,
            follow_redirects=False,
            verify=self._ssl(),
            headers={"User-Agent": "jwkit"},
        ) as own:
            return self._reply(await self._get_async(own, self.url, headers, deadline), etag)

    def _reply(self, exchange: tuple[httpx.Response, bytes], sent: str | None) -> _Reply:
        response, body = exchange
        etag = response.headers.get("etag")
        if response.status_code == 304:
            if sent is None:
                raise KeySourceError(f"{self.url} answered 304 to an unconditional request")
            return _Reply(None, etag or sent)
        if response.status_code != 200:
            raise KeySourceError(f"{self.url} answered HTTP {response.status_code}")
        return _Reply(body, etag)


@dataclass(frozen=True)
class _Verified:
    """A Status List Token that passed every check."""

    lst: StatusList
    ttl: float | None
    exp: float
    iat: float


class _State:
    """One status list URI: the last good list and the refresh bookkeeping."""

    __slots__ = (
        "etag",
        "exp",
        "failures",
        "fetcher",
        "fresh_until",
        "iat",
        "inflight",
        "inflight_thread",
        "last_error",
        "lst",
        "open_warned",
        "retry_at",
        "ttl",
        "uri",
        "usable_until",
        "view",
    )

    def __init__(self, uri: str, fetcher: StatusListFetcher) -> None:
        self.uri = uri
        self.fetcher = fetcher
        self.lst: StatusList | None = None
        # The list for the hot path, replaced in one assignment: its bytes, and how an
        # index finds its bits in them (index >> shift, slot bits, mask).
        self.view: tuple[bytes, int, int, int, int] = (b"", 0, 0, 0, 0)
        self.fresh_until = -math.inf  # served without a refresh before this
        self.usable_until = -math.inf  # served when a refresh fails, before this
        self.exp = math.inf
        self.iat = -math.inf
        self.ttl: float | None = None
        self.etag: str | None = None
        self.failures = 0
        self.retry_at = -math.inf
        self.last_error: str | None = None
        self.open_warned = -math.inf
        self.inflight: concurrent.futures.Future[StatusList] | None = None
        self.inflight_thread: int | None = None


class StatusChecker:
    """Checks the ``status`` claim of verified tokens against their Status List Tokens.

    Built by :class:`~jwkit.Verifier` (``check_status``); ``source``, ``algorithms``,
    ``issuers``, ``leeway`` and ``clock`` (POSIX seconds) are the verifier's own.
    ``required`` refuses tokens without a ``status`` claim.
    """

    def __init__(
        self,
        source: KeySource,
        *,
        algorithms: Collection[str],
        issuers: tuple[str, ...] | None,
        leeway: float = 0.0,
        clock: Callable[[], float] = time.time,
        required: bool = False,
        uris: Collection[str] = (),
        min_ttl: float = DEFAULT_STATUS_MIN_TTL,
        max_ttl: float = DEFAULT_STATUS_MAX_TTL,
        default_ttl: float = DEFAULT_STATUS_TTL,
        max_stale: float = DEFAULT_STATUS_MAX_STALE,
        fail_open: bool = False,
        timeout: float = DEFAULT_STATUS_TIMEOUT,
        max_bytes: int = DEFAULT_STATUS_MAX_BYTES,
        max_list_bytes: int = DEFAULT_MAX_LIST_BYTES,
        allow_insecure_http: bool = False,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
        events: bool = False,
    ) -> None:
        if isinstance(uris, str):
            raise TypeError(
                'status_uris must be a collection of URL prefixes, e.g. ["https://..."]'
            )
        for name, value in (
            ("status_min_ttl", min_ttl),
            ("status_max_stale", max_stale),
            ("status_default_ttl", default_ttl),
        ):
            if not 0 <= value < math.inf:
                raise ValueError(f"{name} must be a non-negative number of seconds")
        if not min_ttl <= max_ttl < math.inf:
            raise ValueError("status_max_ttl must be finite and not less than status_min_ttl")
        if timeout <= 0 or max_bytes <= 0:
            raise ValueError("status_timeout and status_max_bytes must be positive")
        prefixes: list[str] = []
        for prefix in (*(issuers or ()), *uris):
            try:
                scheme = httpx.URL(prefix).scheme if isinstance(prefix, str) else None
            except (httpx.InvalidURL, ValueError):
                scheme = None  # an issuer that is not a URL has no lists under it
            if scheme == "https" or (scheme == "http" and allow_insecure_http):
                prefixes.append(prefix)
            elif prefix in uris:
                raise ValueError(f"status_uris entries must be https URLs: {prefix!r}")
        self.prefixes = tuple(prefixes)
        self.source = source
        self.algorithms = frozenset(algorithms)
        self.required = required
        self.min_ttl = float(min_ttl)
        self.max_ttl = float(max_ttl)
        self.default_ttl = float(default_ttl)
        self.max_stale = float(max_stale)
        self.fail_open = bool(fail_open)
        self.timeout = float(timeout)
        self.max_bytes = int(max_bytes)
        self.max_list_bytes = int(max_list_bytes)
        self.allow_insecure_http = bool(allow_insecure_http)
        self.events = bool(events)
        self.leeway = float(leeway)
        self._clock = clock
        self._http_client = http_client
        self._async_http_client = async_http_client
        # iss is checked only when the verifier checks it; exp is required (§5.1 makes it
        # RECOMMENDED; jwkit refuses to trust a list forever).
        self._policy = ClaimsPolicy(
            issuers, None, leeway, ("sub", "iat", "status_list"), STATUS_LIST_TYP, None, True
        )
        self._lists: dict[str, _State] = {}
        self._lock = threading.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    # -- the check -------------------------------------------------------------------------
    def quick(self, claims: Mapping[str, Any], now: float) -> bool:
        """Decide from what is cached at ``now``: ``True`` when the token's status is VALID
        (or it has none and none is required); raises when it is refused; ``False`` when
        the list must be fetched first (then call :meth:`check` or :meth:`check_async`).

        This runs on every verification and every verified-token cache hit: the common
        case (a well-formed claim, a fresh list, a VALID entry) is a few lookups and one
        byte read; everything else goes through :func:`status_reference` and
        :func:`_judge`, which word the refusals."""
        claim = claims.get("status")
        if claim is None:
            if self.required:
                raise MissingClaim('token has no "status" claim', claim="status")
            return True
        ref = claim.get("status_list") if type(claim) is dict else None
        if type(ref) is dict:
            uri = ref.get("uri")
            idx = ref.get("idx")
            if type(uri) is str and type(idx) is int and idx >= 0:
                state = self._lists.get(uri)
                if state is not None and now < state.fresh_until:
                    data, shift, slots, bits, mask = state.view
                    at = idx >> shift
                    if at < len(data):
                        byte = data[at]
                        if not byte or not (byte >> (idx & slots) * bits) & mask:
                            return True
                    lst = state.lst
                    assert lst is not None
                    _judge(lst, idx)  # raises (or, should the list disagree, decides)
                    return True
                return False
        status_reference(claim)  # raises: the claim is malformed
        return False  # pragma: no cover - status_reference accepted what the fast path did not

    def check(self, claims: Mapping[str, Any]) -> None:
        """Raise unless the token's status is VALID; fetches the list when needed."""
        if self.quick(claims, self._clock()):
            return
        uri, idx = status_reference(claims["status"])
        lst = self._list_sync(uri)
        if lst is not None:
            _judge(lst, idx)

    async def check_async(self, claims: Mapping[str, Any]) -> None:
        """Like :meth:`check`; fetching does not block the event loop."""
        if self.quick(claims, self._clock()):
            return
        uri, idx = status_reference(claims["status"])
        lst = await self._list_async(uri)
        if lst is not None:
            _judge(lst, idx)

    # -- lists -----------------------------------------------------------------------------
    def allowed(self, uri: str) -> bool:
        """Whether ``uri`` may be fetched at all (the no-SSRF rule)."""
        if not self.prefixes:
            return False
        try:
            scheme = httpx.URL(uri).scheme
        except (httpx.InvalidURL, ValueError):
            return False
        if scheme != "https" and not (scheme == "http" and self.allow_insecure_http):
            return False
        return any(uri_is_under(uri, prefix) for prefix in self.prefixes)

    def known(self) -> list[str]:
        """The URIs of the lists cached (or being fetched) now."""
        return list(self._lists)

    def _state(self, uri: str) -> _State:
        state = self._lists.get(uri)
        if state is not None:
            return state
        if not self.allowed(uri):
            raise ClaimError(
                "the status list URI is not under the issuer or an allowed prefix "
                "(status_uris); it is not fetched",
                claim="status",
            )
        fetcher = StatusListFetcher(
            uri,
            timeout=self.timeout,
            max_bytes=self.max_bytes,
            allow_insecure_http=self.allow_insecure_http,
            http_client=self._http_client,
            async_http_client=self._async_http_client,
        )
        with self._lock:
            state = self._lists.get(uri)
            if state is None:
                if len(self._lists) >= MAX_LISTS:
                    oldest = min(self._lists.values(), key=lambda s: s.fresh_until)
                    if oldest.inflight is None:
                        del self._lists[oldest.uri]
                        oldest.fetcher.close()
                state = self._lists[uri] = _State(uri, fetcher)
        return state

    def invalidate(self, uri: str) -> bool:
        """Treat the cached list at ``uri`` as out of date (a push hint): the next check
        refetches it. Unknown URIs are ignored (a hint never names a new URL to fetch)."""
        state = self._lists.get(uri)
        if state is None:
            return False
        with self._lock:
            now = self._clock()
            if state.fresh_until > now:
                # The stale window is kept as if the ttl had run out now.
                state.usable_until = min(state.usable_until, now + self.max_stale)
                state.fresh_until = now
            state.retry_at = -math.inf  # a hint is worth an attempt even during backoff
        return True

    def refresh(self, uri: str) -> bool:
        """Invalidate and refetch ``uri`` now (sync); ``False`` when unknown or failed."""
        if not self.invalidate(uri):
            return False
        try:
            return self._list_sync(uri) is not None
        except InvalidToken:
            return False

    async def refresh_async(self, uri: str) -> bool:
        if not self.invalidate(uri):
            return False
        try:
            return await self._list_async(uri) is not None
        except InvalidToken:
            return False

    def _begin(self, state: _State, *, blocking: bool) -> tuple[str, Any]:
        now = self._clock()
        if state.inflight is not None:
            if blocking and state.inflight_thread == threading.get_ident():
                return ("fail", None)  # an event loop calling sync code: never deadlock
            return ("join", state.inflight)
        if state.lst is not None and now < state.fresh_until:
            return ("list", state.lst)
        if now < state.retry_at:
            return ("fail", None)
        future: concurrent.futures.Future[StatusList] = concurrent.futures.Future()
        future.set_running_or_notify_cancel()
        state.inflight = future
        state.inflight_thread = threading.get_ident()
        return ("fetch", future)

    def _list_sync(self, uri: str) -> StatusList | None:
        state = self._state(uri)
        with self._lock:
            action, value = self._begin(state, blocking=True)
        if action == "list":
            lst: StatusList = value
            return lst
        if action == "fail":
            return self._stale_or_fail(state)
        future: concurrent.futures.Future[StatusList] = value
        if action == "fetch":
            try:
                verified = self._fetch_sync(state)
            except BaseException as exc:
                self._finish(state, future, None, exc)
                if not isinstance(exc, Exception):
                    raise
            else:
                self._finish(state, future, verified, None)
        try:
            return future.result()
        except StatusUnavailable:
            return self._stale_or_fail(state)

    async def _list_async(self, uri: str) -> StatusList | None:
        state = self._state(uri)
        with self._lock:
            action, value = self._begin(state, blocking=False)
        if action == "list":
            lst: StatusList = value
            return lst
        if action == "fail":
            return self._stale_or_fail(state)
        future: concurrent.futures.Future[StatusList] = value
        if action == "fetch":
            # Its own task: a caller that is cancelled does not cancel the shared fetch.
            task = asyncio.get_running_loop().create_task(self._fetch_task(state, future))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        try:
            return await asyncio.wrap_future(future)
        except StatusUnavailable:
            return self._stale_or_fail(state)

    async def _fetch_task(
        self, state: _State, future: concurrent.futures.Future[StatusList]
    ) -> None:
        try:
            verified = await self._fetch_async(state)
        except asyncio.CancelledError:
            self._finish(state, future, None, StatusUnavailable("the refresh was cancelled"))
            raise
        except Exception as exc:
            self._finish(state, future, None, exc)
        else:
            self._finish(state, future, verified, None)

    def _fetch_sync(self, state: _State) -> _Verified | None:
        with self._lock:
            etag = state.etag if state.lst is not None else None
        reply = state.fetcher.get(etag)
        if reply.body is None:
            self._not_modified(state, reply)
            return None
        parsed, payload = self._parse(state, reply)
        keys = self.source.get_keys()
        try:
            key = _select(parsed, keys)
        except KeyNotFound:
            kid = parsed.kid
            newer = self.source.refresh_for_kid(kid) if kid is not None else None
            if newer is None or newer is keys:
                raise
            key = _select(parsed, newer)
        return self._verified(state, parsed, payload, key, reply)

    async def _fetch_async(self, state: _State) -> _Verified | None:
        with self._lock:
            etag = state.etag if state.lst is not None else None
        reply = await state.fetcher.get_async(etag)
        if reply.body is None:
            self._not_modified(state, reply)
            return None
        parsed, payload = self._parse(state, reply)
        keys = await self.source.get_keys_async()
        try:
            key = _select(parsed, keys)
        except KeyNotFound:
            kid = parsed.kid
            newer = await self.source.refresh_for_kid_async(kid) if kid is not None else None
            if newer is None or newer is keys:
                raise
            key = _select(parsed, newer)
        return self._verified(state, parsed, payload, key, reply)

    def _not_modified(self, state: _State, reply: _Reply) -> None:
        with self._lock:
            state.etag = reply.etag

    def _parse(self, state: _State, reply: _Reply) -> tuple[jws.ParsedJWS, dict[str, Any]]:
        assert reply.body is not None
        try:
            text = reply.body.decode("ascii").strip()
        except UnicodeDecodeError:
            raise StatusUnavailable("the status list is not a compact JWS", uri=state.uri) from None
        parsed, payload = parse_object(text, self.max_bytes)
        jws.check_header(parsed, self.algorithms)
        return parsed, payload

    def _verified(
        self,
        state: _State,
        parsed: jws.ParsedJWS,
        payload: dict[str, Any],
        key: JWK,
        reply: _Reply,
    ) -> _Verified:
        jws.verify_signature(parsed, key)
        self._policy.validate(payload, parsed.header, self._clock())
        if payload["sub"] != state.uri:
            raise ClaimError('the status list\'s "sub" is not its URI', claim="sub")
        ttl = payload.get("ttl")
        if ttl is not None and (
            type(ttl) not in (int, float) or not 0 < ttl < math.inf  # also refuses NaN
        ):
            raise ClaimError('"ttl" must be a positive number of seconds', claim="ttl")
        lst = StatusList.decode(payload["status_list"], max_bytes=self.max_list_bytes)
        iat = float(payload["iat"])
        if iat < state.iat:
            raise ClaimError("the status list is older than the one already cached", claim="iat")
        with self._lock:
            state.etag = reply.etag
        return _Verified(lst, None if ttl is None else float(ttl), float(payload["exp"]), iat)

    def _finish(
        self,
        state: _State,
        future: concurrent.futures.Future[StatusList],
        verified: _Verified | None,
        error: BaseException | None,
    ) -> None:
        """Record the outcome, wake every waiter, clear the in-flight marker."""
        try:
            if error is None:
                try:
                    future.set_result(self._apply_success(state, verified))
                    return
                except StatusUnavailable as exc:
                    error = exc
            self._apply_failure(state, error)
            if not isinstance(error, StatusUnavailable):
                error = StatusUnavailable(
                    f"the status list at {state.uri} is unavailable: {_reason(error)}",
                    uri=state.uri,
                )
            future.set_exception(error)
        except BaseException as exc:  # pragma: no cover - defensive: never strand waiters
            if not future.done():
                future.set_exception(StatusUnavailable(f"refresh failed: {describe(exc)}"))
            raise
        finally:
            with self._lock:
                if state.inflight is future:
                    state.inflight = None
                    state.inflight_thread = None

    def _apply_success(self, state: _State, verified: _Verified | None) -> StatusList:
        now = self._clock()
        with self._lock:
            if verified is not None:
                new = verified.lst
                per_byte = 8 // new.bits
                shift = per_byte.bit_length() - 1
                state.lst, state.ttl = new, verified.ttl
                state.view = (new.to_bytes(), shift, per_byte - 1, new.bits, (1 << new.bits) - 1)
                state.exp, state.iat = verified.exp, verified.iat
            lst = state.lst
            if lst is None:
                raise StatusUnavailable("304 Not Modified without a cached list", uri=state.uri)
            limit = state.exp + self.leeway
            if now >= limit:
                raise StatusUnavailable("the status list has expired", uri=state.uri)
            ttl = self.default_ttl if state.ttl is None else state.ttl
            fresh = now + min(max(ttl, self.min_ttl), self.max_ttl)
            state.fresh_until = min(fresh, limit)
            state.usable_until = min(fresh + self.max_stale, limit)
            state.failures = 0
            state.retry_at = -math.inf
            state.last_error = None
        return lst

    def _apply_failure(self, state: _State, error: BaseException) -> None:
        with self._lock:
            now = self._clock()
            state.failures += 1
            backoff = min(BACKOFF_BASE * 2 ** min(state.failures - 1, 20), BACKOFF_MAX)
            state.retry_at = now + backoff
            state.last_error = _reason(error)
            has_list = state.lst is not None and now < state.usable_until
        logger.warning(
            "jwkit: refreshing the status list %s failed (%s); %s; next attempt in %.0f s",
            state.uri,
            state.last_error,
            "serving the last good list" if has_list else "no usable list",
            backoff,
        )

    def _stale_or_fail(self, state: _State) -> StatusList | None:
        """The last good list while it is within ``max_stale``; else the outage policy."""
        with self._lock:
            now = self._clock()
            lst = state.lst if now < state.usable_until else None
            reason = state.last_error or "no refresh allowed yet"
            warn = now >= state.open_warned + 60
            if self.fail_open and lst is None and warn:
                state.open_warned = now
        if lst is not None:
            return lst
        if self.fail_open:
            if warn:  # at most once a minute per list, not once per request
                logger.warning(
                    "jwkit: accepting tokens without checking their status "
                    "(status_fail_open): %s: %s",
                    state.uri,
                    reason,
                )
            return None
        raise StatusUnavailable(
            f"the status list at {state.uri} is unavailable: {reason}", uri=state.uri
        )

    # -- health and lifecycle --------------------------------------------------------------
    def health(self) -> list[dict[str, Any]]:
        """Per cached list: its URI, entries, seconds until stale/unusable, last error."""
        now = self._clock()
        out = []
        with self._lock:
            for state in self._lists.values():
                out.append(
                    {
                        "uri": state.uri,
                        "entries": None if state.lst is None else len(state.lst),
                        "fresh_for": max(state.fresh_until - now, 0.0) if state.lst else None,
                        "usable_for": max(state.usable_until - now, 0.0) if state.lst else None,
                        "failures": state.failures,
                        "last_error": state.last_error,
                    }
                )
        return out

    def close(self) -> None:
        self._closed = True
        for state in list(self._lists.values()):
            state.fetcher.close()
        for task in list(self._tasks):
            task.cancel()

    async def aclose(self) -> None:
        tasks = list(self._tasks)
        self.close()
        current = asyncio.get_running_loop()
        mine = [t for t in tasks if t.get_loop() is current]
        if mine:
            await asyncio.gather(*mine, return_exceptions=True)


def _judge(lst: StatusList, idx: int) -> None:
    """Refuse unless entry ``idx`` is VALID (§7, §8.3 step 6)."""
    try:
        value = lst[idx]
    except IndexError:
        raise ClaimError("the status index is outside the status list", claim="status") from None
    if value != VALID:
        if value == SUSPENDED:
            raise TokenSuspended("the token is suspended")
        raise TokenRevoked("the token has been revoked")


def _select(parsed: jws.ParsedJWS, keys: JWKSet) -> JWK:
    """The key for the list token: a set of one kid-less key is that key (as the verifier
    does for tokens), else :func:`jws.select_key`; the ``alg`` must fit it."""
    if len(keys) == 1 and keys.keys[0].kid is None:
        key = jws.select_key(parsed, keys.keys[0])
    else:
        key = jws.select_key(parsed, keys)
    checker_for(key, parsed.alg)
    return key


def _reason(error: BaseException) -> str:
    if isinstance(error, InvalidToken):
        return f"the status list token was refused ({error.code}: {error.message})"
    if isinstance(error, KeySourceError):
        return error.message
    return describe(error)


def build_checker(
    check_status: bool | str,
    options: Mapping[str, Any],
    *,
    source: KeySource,
    algorithms: Collection[str],
    issuers: tuple[str, ...] | None,
    leeway: float,
    clock: Callable[[], float],
) -> StatusChecker | None:
    """The :class:`StatusChecker` of a verifier's ``check_status`` and ``status_*`` options
    (``None`` for ``check_status=False``). Unknown options raise ``TypeError``."""
    unknown = sorted(set(options) - STATUS_OPTIONS)
    if unknown:
        raise TypeError(f"unexpected options: {', '.join(unknown)}")
    if check_status is not True and check_status is not False and check_status != "required":
        raise ValueError('check_status must be True, False or "required"')
    if check_status is False:
        return None
    return StatusChecker(
        source,
        algorithms=algorithms,
        issuers=issuers,
        leeway=leeway,
        clock=clock,
        required=check_status == "required",
        **{name[len("status_") :]: value for name, value in options.items()},
    )
