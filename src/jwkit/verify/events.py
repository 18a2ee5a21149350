"""Push: listen to a jwkit service's ``{issuer}/events`` stream (Server-Sent Events).

The key service announces, within milliseconds of a commit, that a status list
(``event: status``, ``data: {"uri": ...}``) or the key set (``event: keys``) changed. An
event is only a hint: the listener refetches the signed list or JWKS through the
verifier's normal, verified path, so a forged, replayed or garbled event can never revoke
or un-revoke anything. It can at most cause a conditional GET of a list the verifier
already caches (an event never names a new URL to fetch).

- sync: :meth:`EventListener.start_thread` runs a daemon thread; async:
  :meth:`EventListener.start_task` runs a task on the running loop;
- reconnects with exponential backoff (the server's ``retry:`` is the first delay, capped
  by ``max_backoff``), and on every connection, the first one included, refetches every
  cached list and the key set, since events may have been missed before it opened;
- a connection with no byte (not even the ``: ping`` heartbeat) for ``read_timeout`` is
  dropped and reopened;
- :meth:`close` / :meth:`aclose` stop it at once (the socket is shut down under a blocked
  read).

Against an issuer that is not a jwkit service there is no stream: the lists' ``ttl``
(polling) is all there is.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import threading
import time

import httpx
from httpx_sse import EventSource, ServerSentEvent

from ..errors import JWKitError
from .fetch import _Deadline, check_url
from .sources import KeySource
from .status import StatusChecker

__all__ = ["EventListener", "events_url"]

logger = logging.getLogger("jwkit")

DEFAULT_READ_TIMEOUT = 45.0  # three missed 15 s heartbeats
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_MAX_BACKOFF = 30.0
#: A connection is reopened after this long even if healthy (bounds a silent half-open link).
MAX_CONNECTION_AGE = 3600.0


def events_url(issuer: str) -> str:
    return issuer.rstrip("/") + "/events"


class EventListener:
    """Refetch status lists and keys when the issuer's event stream says they changed."""

    def __init__(
        self,
        url: str,
        *,
        checker: StatusChecker | None,
        source: KeySource,
        allow_insecure_http: bool = False,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        max_backoff: float = DEFAULT_MAX_BACKOFF,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = check_url(url, allow_insecure_http=allow_insecure_http, what="events URL")
        self.checker = checker
        self.source = source
        self.read_timeout = float(read_timeout)
        self.connect_timeout = float(connect_timeout)
        self.max_backoff = float(max_backoff)
        self._http_client = http_client
        self._async_http_client = async_http_client
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None
        self._watchdog: _Deadline | None = None
        self._retry = 1.0
        self._lock = threading.Lock()
        self._handled = threading.Condition()
        #: Connections opened so far, events received and events acted upon.
        self.connections = 0
        self.events = 0
        self.handled = 0

    def _timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.read_timeout, connect=self.connect_timeout)

    # -- the events ------------------------------------------------------------------------
    def _targets(self, sse: ServerSentEvent) -> tuple[list[str], bool]:
        """Which cached lists to refetch and whether to refetch the keys (never trusted
        beyond that: the refetch is verified)."""
        if sse.event == "keys":
            return [], True
        if sse.event != "status" or self.checker is None:
            return [], False
        known = self.checker.known()
        try:
            uri = json.loads(sse.data).get("uri")
        except (ValueError, AttributeError):
            uri = None
        if isinstance(uri, str) and uri in known:
            return [uri], False
        return known, False  # a hint we cannot place: recheck what we hold

    def _everything(self) -> tuple[list[str], bool]:
        return (self.checker.known() if self.checker is not None else []), True

    def _apply_sync(self, uris: list[str], keys: bool) -> None:
        if keys:
            expire = getattr(self.source, "expire", None)
            if expire is not None:
                expire()
                try:
                    self.source.get_keys()
                except JWKitError as exc:
                    logger.info("jwkit: refetching keys after an event failed: %s", exc)
        for uri in uris:
            assert self.checker is not None
            self.checker.refresh(uri)

    async def _apply_async(self, uris: list[str], keys: bool) -> None:
        if keys:
            expire = getattr(self.source, "expire", None)
            if expire is not None:
                expire()
                try:
                    await self.source.get_keys_async()
                except JWKitError as exc:
                    logger.info("jwkit: refetching keys after an event failed: %s", exc)
        for uri in uris:
            assert self.checker is not None
            await self.checker.refresh_async(uri)

    def _done(self) -> None:
        with self._handled:
            self.handled += 1
            self._handled.notify_all()

    def wait_handled(self, count: int, timeout: float = 10.0) -> bool:
        """Block until ``count`` events (and reconnect resyncs) have been acted upon."""
        with self._handled:
            return self._handled.wait_for(lambda: self.handled >= count, timeout)

    def wait_connected(self, count: int = 1, timeout: float = 10.0) -> bool:
        """Block until the stream has been opened ``count`` times."""
        with self._handled:
            return self._handled.wait_for(lambda: self.connections >= count, timeout)

    def _connected(self) -> None:
        with self._handled:
            self.connections += 1
            self._handled.notify_all()

    def _note(self, sse: ServerSentEvent) -> None:
        self.events += 1
        if sse.retry is not None and 0 < sse.retry <= 60_000:
            self._retry = sse.retry / 1000

    def _check_response(self, response: httpx.Response) -> None:
        if response.status_code != 200:
            raise httpx.HTTPStatusError(
                f"{self.url} answered HTTP {response.status_code}",
                request=response.request,
                response=response,
            )
        if response.url.scheme != httpx.URL(self.url).scheme:
            raise httpx.RequestError("the events stream changed scheme")

    def _backoff(self, failures: int) -> float:
        delay = min(self._retry * 2 ** min(failures, 10), self.max_backoff)
        return float(delay * (0.5 + random.random() / 2))  # noqa: S311  (jitter, not a secret)

    # -- sync: a daemon thread -------------------------------------------------------------
    def start_thread(self) -> None:
        """Listen in a daemon thread (idempotent)."""
        with self._lock:
            if self._stop.is_set() or (self._thread is not None and self._thread.is_alive()):
                return
            self._thread = threading.Thread(
                target=self._run_thread, name="jwkit-events", daemon=True
            )
            self._thread.start()

    def _run_thread(self) -> None:
        failures = 0
        client = self._http_client or httpx.Client(
            limits=httpx.Limits(max_keepalive_connections=0),
            follow_redirects=False,
            headers={"User-Agent": "jwkit"},
        )
        try:
            while not self._stop.is_set():
                try:
                    if self._listen_sync(client):
                        failures = 0
                except Exception as exc:  # any failure: reconnect later
                    if not self._stop.is_set():
                        logger.info("jwkit: event stream %s: %s", self.url, exc)
                if self._stop.wait(self._backoff(failures)):
                    break
                failures += 1
        finally:
            if client is not self._http_client:
                client.close()

    def _listen_sync(self, client: httpx.Client) -> bool:
        """One connection; ``True`` when it was established."""
        with _Deadline(time.monotonic() + MAX_CONNECTION_AGE) as watchdog:
            self._watchdog = watchdog
            if self._stop.is_set():
                return False
            headers = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
            with client.stream(
                "GET",
                self.url,
                headers=headers,
                timeout=self._timeout(),
                extensions={"trace": watchdog.trace},
            ) as response:
                watchdog.watch(response.extensions.get("network_stream"))
                self._check_response(response)
                self._connected()
                # Events sent before this connection opened (the first one included: the
                # verifier fetched its lists before it started listening) were missed.
                self._apply_sync(*self._everything())
                self._done()
                for sse in EventSource(response).iter_sse():
                    self._note(sse)
                    self._apply_sync(*self._targets(sse))
                    self._done()
                    if self._stop.is_set():
                        break
            return True

    # -- async: a task ---------------------------------------------------------------------
    def start_task(self) -> None:
        """Listen in a task on the running event loop (idempotent)."""
        if self._stop.is_set() or (self._task is not None and not self._task.done()):
            return
        self._task = asyncio.get_running_loop().create_task(self._run_task())

    async def _run_task(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                if await self._listen_async():
                    failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.info("jwkit: event stream %s: %s", self.url, exc)
            await asyncio.sleep(self._backoff(failures))
            failures += 1

    async def _listen_async(self) -> bool:
        if self._async_http_client is not None:
            return await self._listen_with(self._async_http_client)
        async with httpx.AsyncClient(
            follow_redirects=False, headers={"User-Agent": "jwkit"}
        ) as client:
            return await self._listen_with(client)

    async def _listen_with(self, client: httpx.AsyncClient) -> bool:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
        async with client.stream(
            "GET", self.url, headers=headers, timeout=self._timeout()
        ) as response:
            self._check_response(response)
            self._connected()
            # Events sent before this connection opened were missed (see _listen_sync).
            await self._apply_async(*self._everything())
            self._done()
            async for sse in EventSource(response).aiter_sse():
                self._note(sse)
                await self._apply_async(*self._targets(sse))
                self._done()
        return True

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        thread, task = self._thread, self._task
        return (thread is not None and thread.is_alive()) or (task is not None and not task.done())

    def close(self, timeout: float = 5.0) -> None:
        """Stop listening: the thread's socket is shut down and the thread joined; a task
        is cancelled (await :meth:`aclose` to wait for it)."""
        self._stop.set()
        watchdog = self._watchdog
        if watchdog is not None:
            watchdog._expire()  # shuts the stream's socket down under the blocked read
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        if self._task is not None:
            self._task.cancel()

    async def aclose(self) -> None:
        task = self._task
        self.close()
        if task is not None and task.get_loop() is asyncio.get_running_loop():
            await asyncio.gather(task, return_exceptions=True)

    def __repr__(self) -> str:
        return f"EventListener({self.url!r})"
