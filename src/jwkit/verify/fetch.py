"""One bounded HTTP exchange for a JWKS (and its OpenID discovery document).

:class:`JWKSFetcher` does the I/O for :class:`~jwkit.verify.remote.RemoteJWKSource`; it keeps
no cache state of its own except the JWKS URL found by discovery. Every exchange is bounded:

- ``timeout`` for the whole exchange (discovery and JWKS together), body included: a server
  that stalls or drips bytes anywhere is cut off at the deadline (see :class:`_Deadline`);
- ``max_bytes`` enforced on the raw stream and again after ``gzip``/``deflate`` decoding
  (RFC 9110 §8.4), so a compression bomb cannot get through;
- ``https`` only unless ``allow_insecure_http``; redirects refused unless
  ``follow_redirects`` (and never to plain ``http``);
- ``Cache-Control: max-age`` less ``Age`` (RFC 9111 §5.2.2.1, §4.2.3), ``ETag`` and
  ``If-None-Match``/``304`` (RFC 9110 §8.8.3, §13.1.2, §15.4.5).

Only public asymmetric signature keys come out of :meth:`JWKSFetcher.fetch`: entries that do
not import, secrets, private keys, keys that cannot verify and repeated ``kid`` values are
skipped with a warning on the ``jwkit`` logger (never with key material).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
import threading
import time
import zlib
from dataclasses import dataclass
from typing import Any

import httpx

from ..errors import JWKError, KeySourceError
from ..jose.jwk import JWK, JWKSet

__all__ = [
    "MAX_KEYS",
    "Fetched",
    "InsecureURLError",
    "JWKSFetcher",
    "check_url",
    "describe",
    "max_age",
    "usable_keys",
]

logger = logging.getLogger("jwkit")

#: A JWKS with more entries than this is refused outright.
MAX_KEYS = 256
DISCOVERY_SUFFIX = "/.well-known/openid-configuration"
_ACCEPT = {"Accept": "application/json", "Accept-Encoding": "gzip, deflate"}


class InsecureURLError(ValueError):
    """An ``http://`` URL given where https is required. The message speaks Python; each
    interface words the switch its own way with :meth:`advice` (the CLI's
    ``--allow-insecure-http``, Django's ``VERIFIER_OPTIONS``)."""

    def __init__(self, what: str, url: str) -> None:
        self.what = what
        self.url = url
        super().__init__(self.advice("pass allow_insecure_http=True"))

    def advice(self, switch: str) -> str:
        """The refusal, with ``switch`` named as the way to allow http for local tests."""
        return f"{self.what} {self.url} must use https (to allow http for local tests, {switch})"


def check_url(url: str, *, allow_insecure_http: bool, what: str = "JWKS URL") -> str:
    """Return ``url`` if it is an absolute ``https`` URL (or ``http`` when allowed).

    Raises ``ValueError`` (a configuration mistake, not a token problem).
    """
    if not isinstance(url, str):
        raise TypeError(f"{what} must be a string")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise ValueError(f"invalid {what}: {url!r}") from exc
    if parsed.scheme == "https" or (parsed.scheme == "http" and allow_insecure_http):
        if not parsed.host:
            raise ValueError(f"{what} has no host: {url!r}")
        return url
    if parsed.scheme == "http":
        raise InsecureURLError(what, url)
    raise ValueError(f"{what} must be an https URL: {url!r}")


def max_age(headers: httpx.Headers) -> float | None:
    """``max-age`` less ``Age`` (RFC 9111 §5.2.2.1, §4.2.3); 0 for ``no-store``/``no-cache``."""
    value = headers.get("cache-control")
    if value is None:
        return None
    max_age: float | None = None
    for directive in value.split(","):
        name, _, arg = directive.strip().partition("=")
        name = name.strip().lower()
        if name in ("no-store", "no-cache"):
            return 0.0
        if name == "max-age":
            arg = arg.strip().strip('"')
            if arg.isdigit():
                max_age = float(min(int(arg), 10**9))
    if max_age is None:
        return None
    age = headers.get("age", "").strip()
    if age.isdigit():
        max_age -= min(int(age), 10**9)
    return max(max_age, 0.0)


@dataclass(frozen=True)
class Fetched:
    """The outcome of one successful exchange: keys (``None`` for ``304``), TTL, ETag."""

    keys: list[JWK] | None
    ttl: float | None  # None: the server sent no max-age
    etag: str | None


def describe(exc: BaseException) -> str:
    if isinstance(exc, KeySourceError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"[:300]


class _Deadline:
    """Shut the sockets of one sync request down when the fetch's deadline passes.

    httpx's ``timeout`` bounds each socket operation, not the request: a server that drips a
    byte now and then, or stalls just before the deadline, restarts it every time. So the
    request's sockets are recorded as they are opened (the ``trace`` extension reports each
    new connection) and as the response exposes them (``network_stream``), and a timer shuts
    them down at the deadline: ``shutdown()``, unlike ``close()``, wakes a read blocked in
    another thread at once. httpcore then sees EOF, raises, and closes the connection itself.

    A keep-alive connection reused from an injected client is only known from the response
    headers on; before that each read is still bounded by the (remaining) httpx timeout.
    DNS resolution (the OS resolver) cannot be interrupted at all.
    """

    def __init__(self, deadline: float) -> None:
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(deadline - time.monotonic(), 0.0), self._expire)
        self._timer.name = "jwkit-fetch-deadline"
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        self._timer.join()  # never leave the thread behind (it may be shutting sockets down)

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore ``trace`` hook: a connection was just opened (TCP, then TLS)."""
        if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            self.watch(info.get("return_value"))

    def watch(self, stream: Any) -> None:
        """Record the socket of an httpcore network stream (anything else is ignored)."""
        get_extra_info = getattr(stream, "get_extra_info", None)
        sock = get_extra_info("socket") if get_extra_info is not None else None
        if not isinstance(sock, socket.socket):
            return
        with self._lock:
            self._sockets.append(sock)
            if self.expired:  # opened just as the timer fired
                _shutdown(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    try:
        # The plain socket method even for an SSLSocket: SSLSocket.shutdown() would also drop
        # its SSL object under the reading thread's feet (ValueError instead of EOF).
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:  # already closed, or a TCP socket since wrapped (detached) for TLS
        pass


class JWKSFetcher:
    """Fetch and check a JWKS, discovering its URL from ``issuer`` when none is given."""

    def __init__(
        self,
        jwks_url: str | None,
        *,
        issuer: str | None,
        timeout: float,
        max_bytes: int,
        allow_insecure_http: bool,
        follow_redirects: bool,
        http_client: httpx.Client | None,
        async_http_client: httpx.AsyncClient | None,
    ) -> None:
        if jwks_url is None and issuer is None:
            raise ValueError("give a JWKS url or an issuer to discover it from")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.allow_insecure_http = allow_insecure_http
        self.jwks_url: str | None = (
            check_url(jwks_url, allow_insecure_http=allow_insecure_http)
            if jwks_url is not None
            else None
        )
        self.issuer = issuer
        self.discovery_url: str | None = None
        if issuer is not None and jwks_url is None:
            check_url(issuer, allow_insecure_http=allow_insecure_http, what="issuer")
            self.discovery_url = issuer.rstrip("/") + DISCOVERY_SUFFIX
        self.timeout = float(timeout)
        self.max_bytes = int(max_bytes)
        self.follow_redirects = follow_redirects
        self._http_client = http_client
        self._async_http_client = async_http_client
        self._own_client: httpx.Client | None = None
        self._ssl_context: ssl.SSLContext | None = None

    @property
    def source_name(self) -> str:
        return self.jwks_url or self.discovery_url or "remote JWKS"

    def close(self) -> None:
        """Close the client this fetcher created (an injected one is left open)."""
        client, self._own_client = self._own_client, None
        if client is not None:
            client.close()

    def timeout_message(self) -> str:
        return f"fetching {self.source_name} timed out after {self.timeout:g} s"

    def _client(self) -> httpx.Client:
        if self._http_client is not None:
            return self._http_client
        if self._own_client is None:
            self._own_client = httpx.Client(
                timeout=self.timeout,
                # No keep-alive: every request opens its connection, so _Deadline sees its
                # socket from the start. Fetches are minutes apart; reuse would save little.
                limits=httpx.Limits(max_keepalive_connections=0),
                follow_redirects=self.follow_redirects,
                verify=self._ssl(),
                headers={"User-Agent": "jwkit"},
            )
        return self._own_client

    def _ssl(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = httpx.create_ssl_context()
        return self._ssl_context

    @staticmethod
    def _headers(etag: str | None) -> dict[str, str]:
        headers = dict(_ACCEPT)
        if etag is not None:
            headers["If-None-Match"] = etag
        return headers

    def fetch(self, etag: str | None = None) -> Fetched:
        """One exchange (plus discovery the first time); ``etag`` makes it conditional.
        Raises :class:`KeySourceError`, at the latest when ``timeout`` has passed."""
        deadline = time.monotonic() + self.timeout
        try:
            if self.jwks_url is None:
                self._discover(self._get_sync(self._discovery(), self._headers(None), deadline))
            assert self.jwks_url is not None
            url = self.jwks_url
            return self._parse_jwks(self._get_sync(url, self._headers(etag), deadline), etag)
        except httpx.TimeoutException:
            raise KeySourceError(self.timeout_message(), url=self.source_name) from None
        except httpx.HTTPError as exc:
            raise KeySourceError(
                f"fetching {self.source_name} failed: {describe(exc)}", url=self.source_name
            ) from None

    async def fetch_async(self, etag: str | None = None) -> Fetched:
        """Like :meth:`fetch`, with ``httpx.AsyncClient`` (a fresh one per exchange unless
        one was injected, so the fetcher works from any event loop)."""
        deadline = time.monotonic() + self.timeout
        try:
            # Cancelling at the deadline bounds the whole exchange (httpx's own timeout is per
            # read); leaving the ``stream()`` blocks on cancellation closes the connections.
            return await asyncio.wait_for(self._fetch_async(deadline, etag), self.timeout)
        except TimeoutError:
            raise KeySourceError(self.timeout_message(), url=self.source_name) from None
        except httpx.TimeoutException:
            raise KeySourceError(self.timeout_message(), url=self.source_name) from None
        except httpx.HTTPError as exc:
            raise KeySourceError(
                f"fetching {self.source_name} failed: {describe(exc)}", url=self.source_name
            ) from None

    async def _fetch_async(self, deadline: float, etag: str | None) -> Fetched:
        if self._async_http_client is not None:
            return await self._fetch_with(self._async_http_client, deadline, etag)
        async with httpx.AsyncClient(
            timeout=self.timeout,
            follow_redirects=self.follow_redirects,
            verify=self._ssl(),
            headers={"User-Agent": "jwkit"},
        ) as client:
            return await self._fetch_with(client, deadline, etag)

    async def _fetch_with(
        self, client: httpx.AsyncClient, deadline: float, etag: str | None
    ) -> Fetched:
        if self.jwks_url is None:
            headers = self._headers(None)
            self._discover(await self._get_async(client, self._discovery(), headers, deadline))
        assert self.jwks_url is not None
        url = self.jwks_url
        exchange = await self._get_async(client, url, self._headers(etag), deadline)
        return self._parse_jwks(exchange, etag)

    def _discovery(self) -> str:
        assert self.discovery_url is not None
        return self.discovery_url

    def _get_sync(
        self, url: str, headers: dict[str, str], deadline: float
    ) -> tuple[httpx.Response, bytes]:
        client = self._client()
        timeout = self._remaining(url, deadline)
        with _Deadline(deadline) as watchdog:
            try:
                with client.stream(
                    "GET",
                    url,
                    headers=headers,
                    follow_redirects=self.follow_redirects,
                    timeout=timeout,  # bounds what the watchdog cannot see (connect, pool)
                    extensions={"trace": watchdog.trace},
                ) as response:
                    watchdog.watch(response.extensions.get("network_stream"))
                    self._check_response(url, response)
                    held = self._in_memory(url, response)
                    if held is not None:
                        return response, held
                    body = bytearray()
                    for chunk in response.iter_raw():
                        body += chunk
                        self._check_progress(url, body, deadline)
                    return response, self._decoded(url, response, bytes(body))
            except httpx.HTTPError:
                if watchdog.expired:  # the EOF or reset the watchdog caused
                    raise KeySourceError(self.timeout_message(), url=url) from None
                raise

    async def _get_async(
        self, client: httpx.AsyncClient, url: str, headers: dict[str, str], deadline: float
    ) -> tuple[httpx.Response, bytes]:
        async with client.stream(
            "GET",
            url,
            headers=headers,
            follow_redirects=self.follow_redirects,
            timeout=self._remaining(url, deadline),
        ) as response:
            self._check_response(url, response)
            held = self._in_memory(url, response)
            if held is not None:
                return response, held
            body = bytearray()
            async for chunk in response.aiter_raw():
                body += chunk
                self._check_progress(url, body, deadline)
            return response, self._decoded(url, response, bytes(body))

    def _check_response(self, url: str, response: httpx.Response) -> None:
        if response.url.scheme != "https" and not self.allow_insecure_http:
            raise KeySourceError("refusing a redirect to a non-https URL", url=url)
        if 300 <= response.status_code < 400 and response.status_code != 304:
            raise KeySourceError(
                f"{url} answered a redirect ({response.status_code}); "
                "redirects are not followed unless follow_redirects=True",
                url=url,
            )
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            raise KeySourceError(f"{url} sent more than {self.max_bytes} bytes", url=url)

    def _in_memory(self, url: str, response: httpx.Response) -> bytes | None:
        """The body of a response a transport built in memory, already read and decoded
        (``httpx.MockTransport`` returning ``httpx.Response(200, json=...)``): its stream
        is consumed, so there is nothing to iterate. ``None`` for a real, streamed body."""
        try:
            body = response.content
        except httpx.ResponseNotRead:
            return None
        if len(body) > self.max_bytes:
            raise KeySourceError(f"{url} sent more than {self.max_bytes} bytes", url=url)
        return body

    def _remaining(self, url: str, deadline: float) -> float:
        """The time left for the next request of this exchange (discovery used some)."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise KeySourceError(self.timeout_message(), url=url)
        return remaining

    def _check_progress(self, url: str, body: bytearray, deadline: float) -> None:
        if len(body) > self.max_bytes:
            raise KeySourceError(f"{url} sent more than {self.max_bytes} bytes", url=url)
        if time.monotonic() > deadline:
            raise KeySourceError(self.timeout_message(), url=url)

    def _decoded(self, url: str, response: httpx.Response, raw: bytes) -> bytes:
        """Undo a ``Content-Encoding`` with the same size limit on the decoded bytes."""
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding in ("", "identity"):
            return raw
        if encoding not in ("gzip", "deflate"):
            raise KeySourceError(f"{url} used an unsupported content encoding", url=url)
        wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
        try:
            decoder = zlib.decompressobj(wbits)
            data = decoder.decompress(raw, self.max_bytes + 1)
        except zlib.error as exc:
            raise KeySourceError(f"{url} sent a corrupt {encoding} body", url=url) from exc
        if len(data) > self.max_bytes:
            raise KeySourceError(f"{url} sent more than {self.max_bytes} bytes", url=url)
        return data

    # -- documents -----------------------------------------------------------------------------
    def _load_object(self, url: str, body: bytes) -> dict[str, Any]:
        try:
            document = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise KeySourceError(f"{url} did not return valid JSON", url=url) from None
        if not isinstance(document, dict):
            raise KeySourceError(f"{url} did not return a JSON object", url=url)
        return document

    def _discover(self, exchange: tuple[httpx.Response, bytes]) -> None:
        """Read the discovery document: ``issuer`` must match, ``jwks_uri`` must be https."""
        response, body = exchange
        url = self._discovery()
        if response.status_code != 200:
            raise KeySourceError(f"{url} answered HTTP {response.status_code}", url=url)
        document = self._load_object(url, body)
        if document.get("issuer") != self.issuer:
            raise KeySourceError(
                "the discovery document names another issuer (OpenID Connect Discovery 1.0 §4.3)",
                url=url,
            )
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise KeySourceError("the discovery document has no jwks_uri", url=url)
        try:
            self.jwks_url = check_url(jwks_uri, allow_insecure_http=self.allow_insecure_http)
        except ValueError as exc:
            raise KeySourceError(f"unusable jwks_uri: {exc}", url=url) from None

    def _parse_jwks(self, exchange: tuple[httpx.Response, bytes], sent: str | None) -> Fetched:
        response, body = exchange
        url = self.jwks_url or ""
        ttl = max_age(response.headers)
        etag = response.headers.get("etag")
        if response.status_code == 304:
            if sent is None:
                raise KeySourceError(f"{url} answered 304 to an unconditional request", url=url)
            return Fetched(None, ttl, etag or sent)
        if response.status_code != 200:
            raise KeySourceError(f"{url} answered HTTP {response.status_code}", url=url)
        document = self._load_object(url, body)
        entries = document.get("keys")
        if isinstance(entries, list) and len(entries) > MAX_KEYS:
            raise KeySourceError(f"{url} lists more than {MAX_KEYS} keys", url=url)
        try:
            jwks = JWKSet.from_dict(document, skip_invalid=True)
        except JWKError as exc:
            raise KeySourceError(f"{url}: {exc.message}", url=url) from None
        for index, error in jwks.skipped:
            logger.warning("jwkit: skipped key #%d of %s: %s", index, url, error.message)
        usable = usable_keys(url, jwks)
        if not usable:
            raise KeySourceError(f"{url} has no usable signature keys", url=url)
        return Fetched(usable, ttl, etag)


def usable_keys(url: str, jwks: JWKSet) -> list[JWK]:
    """Public asymmetric signature keys only, one per ``kid`` (the first wins)."""
    usable: list[JWK] = []
    seen: set[str] = set()
    for index, key in enumerate(jwks.keys):
        reason = None
        if key.is_symmetric:
            reason = "a symmetric key in a public JWKS"
        elif key.is_private:
            reason = "it publishes private key material"
        elif not key.verify_algorithms:
            reason = "it cannot verify any signature (use/key_ops/alg)"
        elif key.kid is not None and key.kid in seen:
            reason = f"duplicate kid {key.kid!r}"
        if reason is not None:
            logger.warning("jwkit: skipped key %r of %s: %s", key.kid or index, url, reason)
            continue
        if key.kid is not None:
            seen.add(key.kid)
        usable.append(key)
    return usable
