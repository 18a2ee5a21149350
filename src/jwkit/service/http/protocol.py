"""uvicorn's httptools protocol with limits on request heads, like nginx's defaults.

uvicorn reads a request head of any size and waits for it forever: a 100 MiB header is read
and answered, and a connection that sends half a request (or nothing) stays open.
:class:`GuardedProtocol` adds, for every request on every path (the parser-level fast path
of :mod:`.wire` subclasses it):

* a limit on one line of the head (``JWKIT_MAX_HEADER_LINE``, 8 KiB like nginx's
  ``large_client_header_buffers``): a longer request target is answered ``414 URI Too Long``,
  a longer header field ``431 Request Header Fields Too Large`` (RFC 6585 §5);
* a limit on the whole head (``JWKIT_MAX_HEADER_BYTES``, 32 KiB): ``431``. The parser keeps
  an unfinished line in memory until it ends, so the bytes received while a head is under
  way are counted too: a line that never ends is refused once the head's bytes pass the
  limit (give or take one read of the socket);
* a deadline for the head (``JWKIT_HEADER_TIMEOUT``, 10 s, nginx's
  ``client_header_timeout`` is 60 s): a connection that has not sent a whole request head
  that long after it opened (for its first request) or after the head's first byte (for the
  next ones) is closed, with ``408 Request Timeout`` first if part of a request came.

Every refusal closes the connection (``Connection: close``): after a refused head the rest of
the stream cannot be trusted. The deadline costs a request no clock reading and no timer
operation: one timer per connection ticks every half timeout while requests come, and a
connection whose same head is still awaited at three ticks in a row (so for at least the
timeout, at most one and a half) is closed.
"""

from __future__ import annotations

import logging
from asyncio import TimerHandle, Transport
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from jwkit.service.http.events import close_all as close_event_streams
from jwkit.service.runtime import Service
from jwkit.service.settings import Settings

__all__ = ["GuardedProtocol", "find_service"]

log = logging.getLogger("jwkit.service.http")

_SERVICES: dict[int, tuple[object, Service | None]] = {}  # id(app) -> (app, its service)


def find_service(app: Any) -> Service | None:
    """The :class:`Service` behind uvicorn's loaded app (possibly wrapped by its middleware,
    or by :class:`~jwkit.service.http.public.PublicFastPath`), cached per app."""
    found = _SERVICES.get(id(app))
    if found is not None and found[0] is app:  # (an id can be reused by a new app)
        return found[1]
    service = None
    current = app
    for _ in range(8):
        candidate = getattr(current, "service", None)
        if candidate is None:
            candidate = getattr(getattr(current, "state", None), "service", None)
        if isinstance(candidate, Service):
            service = candidate
            break
        current = getattr(current, "app", None)
        if current is None:
            break
    _SERVICES[id(app)] = (app, service)
    return service


class _Refused(Exception):
    """Raised in a parser callback to stop parsing; httptools wraps it in an
    ``HttpParserCallbackError``, which uvicorn answers through :meth:`send_400_response`."""


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header size limits and a header deadline."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        service = find_service(self.app)
        settings = service.settings if service is not None else Settings()
        self._line_max = settings.max_header_line
        self._head_max = settings.max_header_bytes
        self._head_timeout = settings.header_timeout
        self._head_size = 0  # bytes of the head seen through the parser's callbacks
        self._head_received = 0  # bytes received while the head was incomplete
        self._in_head = False
        self._heads = 0  # how many heads have begun on this connection
        self._head_timer: TimerHandle | None = None
        self._watched = -1  # the head the deadline timer saw awaited at its last tick
        self._strikes = 0  # how many ticks in a row it was still awaited
        self._refusal: tuple[int, bytes] | None = None

    # -- the deadline --------------------------------------------------------------------

    def connection_made(self, transport: Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self._head_timeout / 2, self._tick)

    def _tick(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        # Awaited: a head under way, or the first request of a connection that sent nothing.
        if not self._in_head and self._heads:
            self._watched, self._strikes = -1, 0
            return  # idle between requests (keep-alive's business); the next head re-arms
        if self._watched == self._heads:
            self._strikes += 1
        else:
            self._watched, self._strikes = self._heads, 0
        busy = self.cycle is not None and not self.cycle.response_complete
        if self._strikes < 2 or busy:  # (a pipelined head may wait for an answer under way)
            self._arm_head_timer()
        elif self._in_head:
            self._refuse_now(408, b"the request head did not arrive in time")
        else:
            self.transport.close()

    def shutdown(self) -> None:
        # uvicorn waits for every connection to close before the app's lifespan ends, so open
        # /events streams are ended here, when shutdown begins, in either mode of the service.
        close_event_streams()
        super().shutdown()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    # -- the sizes -----------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        heads, was_in_head = self._heads, self._in_head
        HttpToolsProtocol.data_received(self, data)
        if self._in_head and not self.transport.is_closing():
            if was_in_head and heads == self._heads:
                self._head_received += len(data)  # the same head is still coming in
            if self._head_received > self._head_max:
                self._refuse_now(431, b"request header fields too large")

    def on_message_begin(self) -> None:
        self._begin_head()
        super().on_message_begin()

    def _begin_head(self) -> None:
        """A request head starts: count its bytes, and make sure its deadline ticks."""
        self._heads += 1
        self._in_head = True
        self._head_size = self._head_received = 0
        if self._head_timer is None:
            self._arm_head_timer()

    def _end_head(self) -> None:
        """The head is complete: the request target's length is known now (its bytes were
        counted while it came in)."""
        self._in_head = False
        if len(self.url) > self._line_max:
            self._refuse(414, b"request target too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        size = len(name) + len(value) + 4
        self._head_size += size
        if size > self._line_max or self._head_size > self._head_max:
            self._refuse(431, b"request header fields too large")
        # uvicorn's on_header, inline (one call less per header field):
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._end_head()
        super().on_headers_complete()

    # -- refusing ------------------------------------------------------------------------

    def _refuse(self, status: int, message: bytes) -> None:
        self._refusal = (status, message)
        raise _Refused(message.decode())

    def send_400_response(self, msg: str) -> None:
        refusal, self._refusal = self._refusal, None
        if refusal is None:
            super().send_400_response(msg)
        else:
            self._refuse_now(*refusal)

    def _refuse_now(self, status: int, message: bytes) -> None:
        self._in_head = False
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()  # an answer is under way: nothing may be written before it
            return
        body = b'{"error":"%s","message":"%s"}' % (_CODES[status], message)
        self.transport.write(
            b"".join(
                [
                    STATUS_LINE[status],
                    *(
                        name + b": " + value + b"\r\n"
                        for name, value in self.server_state.default_headers
                    ),
                    b"content-type: application/json\r\n",
                    b"content-length: %d\r\n" % len(body),
                    b"connection: close\r\n\r\n",
                    body,
                ]
            )
        )
        self.transport.close()
        log.info("refused a request head: %d (%s)", status, message.decode())


_CODES = {408: b"request_timeout", 414: b"uri_too_long", 431: b"header_fields_too_large"}
