"""JWKS, discovery and tokens answered at the HTTP parser: one response, one write.

Serving a JWKS costs jwkit a few µs; uvicorn's ASGI machinery around it (a task and a
request/response cycle per request, header checks, two ``write`` calls) costs ten times that,
and around a token about as much as the ES256 signature itself.
:class:`FastDocumentProtocol` skips the machinery for the plain, common requests, provided
nothing else is in flight on the connection, the socket is not applying back-pressure, the
request is not an upgrade and its path has no percent-encoding:

* ``GET`` of a known project's ``/.well-known/jwks.json`` or ``openid-configuration`` with no
  ``If-None-Match`` and no request body: answered with the complete response (status line,
  headers, body) joined from its ``cache-control``
  (:func:`~jwkit.service.http.documents.document_cache_control`) and the document, which
  holds its serialised representation fields and body in one bytes object
  (:class:`~jwkit.service.published.Document`, the same fields the ASGI routes' answers
  carry);
* ``POST`` to a known project's ``/oauth2/token`` with a form body of known length (at most
  ``MAX_FORM``), ``client_secret_basic`` credentials and a client already in the replica's
  client cache: the body is collected as the parser delivers it and the answer is computed by
  the same functions the ASGI route calls (:func:`~jwkit.service.http.public.parse_token_request`,
  :func:`~jwkit.service.http.public.grant_token`), errors included.

Every other request — conditional, ``HEAD``, chunked, ``Expect``, unknown project or client,
``client_secret_post``, admin, console — takes uvicorn's normal path to the same app
(:class:`~jwkit.service.http.public.PublicFastPath`), which answers identically. Answers are
written synchronously, inside the parser callback, so pipelined requests keep their order.

The keep-alive timeout is enforced lazily on this path: uvicorn arms a timer when a response
completes and cancels it when the next bytes arrive, two timer-heap operations per request
(a fifth of a JWKS answer's cost). Here one timer per connection stays armed and, when it
fires, closes the connection only if it has been idle (no request begun since the last
answer) for the whole timeout, else re-arms for the remainder. Requests served by uvicorn's
path keep uvicorn's own timer.

Every header field and body written here comes from :mod:`.documents`, as on the other
paths. The head limits and deadline of :class:`~jwkit.service.http.protocol.GuardedProtocol`
(the base class) hold here too. ``JWKIT_FAST_PATH=false`` leaves this class out altogether.

This subclasses uvicorn's httptools protocol and so depends on its internals; the supported
uvicorn range is pinned in ``pyproject.toml`` and ``tests/service/test_wire.py`` holds the
behaviour in place (keep-alive and its timeout, pipelining, ``Connection: close``,
fall-backs, metrics, byte parity with the ASGI path).
"""

from __future__ import annotations

import logging
from asyncio import TimerHandle
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from jwkit.service.domain.clients import ClientRecord
from jwkit.service.http import documents
from jwkit.service.http.metrics import ERRORS, WIRE
from jwkit.service.http.protocol import GuardedProtocol, find_service
from jwkit.service.http.public import (
    COUNT,
    DISCOVERY_SUFFIX,
    JWKS_SUFFIX,
    MAX_FORM,
    TOKEN_SUFFIX,
    TokenAnswer,
    basic_credentials,
    grant_token,
    parse_token_request,
    token_precheck_passes,
)
from jwkit.service.published import Document, serialised
from jwkit.service.state import ProjectView
from jwkit.service.statuslists import ListDoc

__all__ = ["FastDocumentProtocol"]

log = logging.getLogger("jwkit.service.http")

_GET_FALLBACK = frozenset({b"if-none-match", b"content-length", b"transfer-encoding"})
_TOKEN_HEADERS = frozenset({b"content-type", b"content-length", b"authorization"})
# DPoP proofs (RFC 9449) are checked on the ASGI path only: one place verifies them.
_TOKEN_FALLBACK = frozenset({b"transfer-encoding", b"expect", b"dpop"})
_JWKS = JWKS_SUFFIX.encode()
_DISCOVERY = DISCOVERY_SUFFIX.encode()
_TOKEN = TOKEN_SUFFIX.encode()
_STATUSLISTS = b"/statuslists/"
_CLOSE = b"connection: close\r\n"
_END = b"\r\n\r\n"  # the end of the head


# One process serves one Service, so these are per-process caches.
_TOKEN_FIELDS: dict[int, bytes] = {}  # status -> documents.token_fields(status) serialised
_DEFAULTS: list[Any] = [None, b""]  # uvicorn's default headers list -> its encoded lines


def _default_lines(defaults: list[tuple[bytes, bytes]]) -> bytes:
    if _DEFAULTS[0] is not defaults:
        _DEFAULTS[1] = b"".join(n + b": " + v + b"\r\n" for n, v in defaults)
        _DEFAULTS[0] = defaults
    lines: bytes = _DEFAULTS[1]
    return lines


def _published(
    defaults: list[tuple[bytes, bytes]], control: bytes, doc: bytes, keep_alive: bool
) -> bytes:
    """The complete 200 answer of a published document: uvicorn's status line and default
    fields, its ``cache-control`` value, then ``doc`` (a
    :class:`~jwkit.service.published.Document`: its representation fields serialised, the
    blank line, its body); one join (requests spread over 100,000 projects each touch a
    different document, so nothing here is cached per document but what the document is).
    Without keep-alive, ``connection: close`` is the head's last field, as uvicorn writes it."""
    if not keep_alive:
        end = doc.index(_END) + 2
        doc = doc[:end] + _CLOSE + doc[end:]
    return b"".join(
        (STATUS_LINE[200], _default_lines(defaults), b"cache-control: ", control, b"\r\n", doc)
    )


class FastDocumentProtocol(GuardedProtocol):
    """uvicorn's httptools protocol with a one-write path for JWKS, discovery and tokens."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._service = find_service(self.app)
        self._enabled = (
            self._service is not None
            and self._service.settings.fast_path
            and self.limit_concurrency is None
            and not self.access_log
            and not self.root_path
        )
        # A document request being answered here: (document name, the document, its
        # cache-control value).
        self._fast: tuple[str, bytes, bytes] | None = None
        # The quiet index's cache-control and the second and confirmation it is for (None:
        # not swept for the present second yet).
        self._quiet: tuple[int, int | None, bytes] | None = None
        self._status_doc: ListDoc | None = None  # a status list being answered here
        # A token request being answered here: (view, Authorization, its credentials, the
        # cached client) and the body received so far.
        self._token: tuple[ProjectView, str, tuple[str, str], ClientRecord | None] | None = None
        self._token_body = b""
        self._close_after = False  # shutdown() arrived while a token body was coming in
        # Lazy keep-alive: when the connection last went idle after an answer of ours (None:
        # a request is under way, or uvicorn's path answered and runs its own timer).
        self._idle_since: float | None = None
        self._keepalive: TimerHandle | None = None

    # -- choosing the path ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        # What uvicorn's on_message_begin resets, minus the ASGI scope: building it (a dict of
        # ten entries and a copy of the lifespan state) is left to _begin_scope, for requests
        # that go to the app.
        self._idle_since = None  # busy: the lazy keep-alive timer must not close us now
        # GuardedProtocol._begin_head, inline (this runs for every request):
        self._heads += 1
        self._in_head = True
        self._head_size = self._head_received = 0
        if self._head_timer is None:
            self._arm_head_timer()
        self.url = b""
        self.expect_100_continue = False
        self.headers = []

    def _begin_scope(self) -> None:
        """uvicorn's on_message_begin, late: the scope, keeping what the parser has set."""
        url, headers, expect = self.url, self.headers, self.expect_100_continue
        HttpToolsProtocol.on_message_begin(self)  # (the head has begun already)
        self.url, self.expect_100_continue = url, expect
        self.headers = self.scope["headers"] = headers

    def on_headers_complete(self) -> None:
        self._fast = None
        self._status_doc = None
        self._token = None
        self._in_head = False  # GuardedProtocol._end_head, inline:
        if len(self.url) > self._line_max:
            self._refuse(414, b"request target too long")
        if self._enabled and self._connection_free():
            method = self.parser.get_method()
            if method == b"GET":
                self._get()
                if self._fast is not None or self._status_doc is not None:
                    return
            elif method == b"POST" and self._token_request():
                return
        self._begin_scope()
        super().on_headers_complete()

    def _connection_free(self) -> bool:
        """Nothing in flight or queued before this request, and no reason to wait."""
        return (
            not self.pipeline
            and (self.cycle is None or self.cycle.response_complete)
            and not self.flow.write_paused
            and not self.parser.should_upgrade()
        )

    def _view(self, suffix: bytes) -> ProjectView | None:
        """The project of ``/p/{project}{suffix}`` (query ignored), if the path is that."""
        path = self.url.split(b"?", 1)[0]
        if not path.startswith(b"/p/") or not path.endswith(suffix) or b"%" in path:
            return None
        service = self._service
        assert service is not None
        # Only what this worker holds: a project not cached (or whose key is not opened yet)
        # goes the ASGI way, which builds it off the event loop.
        view = service.state.projects.peek(path[3 : -len(suffix)].decode("ascii", "replace"))
        if view is not None and suffix == _TOKEN and view.opened is None:
            return None
        return view

    def _get(self) -> None:
        """Take a plain GET of a project's JWKS, discovery document or status list (the path
        parsed once, the header fields scanned once): sets ``_fast`` or ``_status_doc``."""
        for name, _ in self.headers:
            if name in _GET_FALLBACK:
                return
        path = self.url.split(b"?", 1)[0]
        if not path.startswith(b"/p/") or b"%" in path:
            return
        service = self._service
        assert service is not None
        rest = path[3:]
        if rest.endswith(_JWKS):
            self._document("jwks", rest[: -len(_JWKS)])
        elif rest.endswith(_DISCOVERY):
            self._document("discovery", rest[: -len(_DISCOVERY)])
        else:
            project, sep, number = rest.partition(_STATUSLISTS)
            if sep and number.isdigit() and len(number) <= 9:
                self._status_doc = service.state.status.document(
                    project.decode("ascii", "replace"), int(number)
                )

    def _document(self, name: str, project: bytes) -> None:
        """Set ``_fast`` for a GET of ``project``'s document ``name`` if this worker holds
        it: from the quiet index when the project is quiet (one dictionary read, the
        ``cache-control`` of the second shared by all), else from its view."""
        service = self._service
        assert service is not None
        views = service.state.projects
        pid = project.decode("ascii", "replace")
        now = service.clock()
        quiet = self._quiet
        current = (
            quiet is not None
            and quiet[0] == now
            and quiet[1] == service.state.freshness.confirmed_at
        )
        if current or self._sweep(now):
            doc = (views.quiet_jwks if name == "jwks" else views.quiet_discovery).get(pid)
            if doc is not None:
                quiet = self._quiet
                assert quiet is not None
                self._fast = (name, doc, quiet[2])
                return
        view = views.peek(pid)
        if view is not None:
            self._fast = (
                name,
                view.jwks if name == "jwks" else view.discovery,
                documents.document_cache_control(view, now, service.settings.sync_interval),
            )

    def _sweep(self, now: int) -> bool:
        """Bring the quiet index to ``now`` (once per second per connection) and compute its
        ``cache-control``; False while a change holds the index (the views answer then)."""
        service = self._service
        assert service is not None
        confirmed = service.state.freshness.confirmed_at
        if not service.state.projects.quiet_sweep(now):
            self._quiet = None
            return False
        control = documents.quiet_cache_control(confirmed, now, service.settings.sync_interval)
        self._quiet = (now, confirmed, control)
        return True

    def _status_response(self, doc: ListDoc, keep_alive: bool) -> bytes:
        """The 200 response to a GET of a status list (what the ASGI route answers)."""
        service = self._service
        assert service is not None
        life = documents.status_list_lifetime(doc, service.clock())
        WIRE.n += 1
        return _published(
            self.server_state.default_headers,
            documents.cache_control(life),
            Document(doc.body, documents.STATUS_LIST, doc.etag),
            keep_alive,
        )

    def _document_response(self, fast: tuple[str, bytes, bytes], keep_alive: bool) -> bytes:
        """The 200 response to a GET of a project document (``_fast``), counted as served."""
        name, doc, control = fast
        COUNT[name, "200"].n += 1
        WIRE.n += 1
        return _published(self.server_state.default_headers, control, doc, keep_alive)

    def _token_request(self) -> bool:
        """Take a plain client_secret_basic token request whose client is cached."""
        view = self._view(_TOKEN)
        if view is None:
            return False
        found: dict[bytes, str] = {}
        for name, value in self.headers:
            if name in _TOKEN_HEADERS:
                if name in found:
                    return False  # repeated: let the ASGI path decide as it always has
                found[name] = value.decode("latin-1")
            elif name in _TOKEN_FALLBACK:
                return False
        authorization = found.get(b"authorization")
        if authorization is None or not token_precheck_passes(
            found.get(b"content-type"), found.get(b"content-length")
        ):
            return False  # client_secret_post, or a refusal: the ASGI path answers those
        creds = basic_credentials(authorization)
        if creds is None:
            return False
        service = self._service
        assert service is not None
        hit, record = service.state.cached_client(creds[0])
        if not hit:
            return False  # the ASGI path looks the client up in the database once
        if view.token_status and not service.state.status.ready(view.id):
            return False  # no status index left: the ASGI path reserves the next block first
        self._token = (view, authorization, creds, record)
        self._token_body = b""
        return True

    # -- answering -------------------------------------------------------------------------

    def on_body(self, body: bytes) -> None:
        if self._token is not None:
            if len(self._token_body) + len(body) <= MAX_FORM:  # Content-Length was checked
                self._token_body += body
            return
        if self._fast is None and self._status_doc is None:
            super().on_body(body)

    def on_message_complete(self) -> None:
        fast, token, status_doc = self._fast, self._token, self._status_doc
        if fast is None and token is None and status_doc is None:
            super().on_message_complete()
            return
        self._fast = self._token = self._status_doc = None
        keep_alive = (
            self.parser.get_http_version() != "1.0"
            and self.parser.should_keep_alive()
            and not self._close_after
        )
        if fast is not None:
            response = self._document_response(fast, keep_alive)
        elif status_doc is not None:
            response = self._status_response(status_doc, keep_alive)
        else:
            assert token is not None
            response = self._token_response(token, keep_alive)
            WIRE.n += 1
        self.transport.write(response)
        self.server_state.total_requests += 1
        if not keep_alive:
            self.transport.close()
            return
        self._became_idle()

    def _token_response(
        self,
        token: tuple[ProjectView, str, tuple[str, str], ClientRecord | None],
        keep_alive: bool,
    ) -> bytes:
        view, authorization, creds, record = token
        body, self._token_body = self._token_body, b""
        service = self._service
        assert service is not None
        try:
            parsed = parse_token_request(body, authorization, creds)
            answer = (
                parsed
                if isinstance(parsed, TokenAnswer)
                else grant_token(service, view, parsed, record)
            )
        except Exception as exc:  # a bug: answer like PublicFastPath does
            ERRORS.labels("internal").inc()
            log.error("unhandled %s on the token endpoint", type(exc).__name__, exc_info=exc)
            written = documents.internal_error()
            return b"".join(
                [
                    STATUS_LINE[written.status],
                    _default_lines(self.server_state.default_headers),
                    serialised(written.headers),
                    b"\r\n" if keep_alive else _CLOSE + b"\r\n",
                    written.body,
                ]
            )
        # documents.token(status, body), serialised: its fixed fields kept as bytes per status.
        status = answer.status
        fields = _TOKEN_FIELDS.get(status)
        if fields is None:
            fields = _TOKEN_FIELDS[status] = serialised(documents.token_fields(status))
        return b"".join(
            [
                STATUS_LINE[status],
                _default_lines(self.server_state.default_headers),
                fields,
                b"content-length: %d\r\n" % len(answer.body),
                b"\r\n" if keep_alive else _CLOSE + b"\r\n",
                answer.body,
            ]
        )

    # -- keep-alive and shutdown -------------------------------------------------------------

    def _became_idle(self) -> None:
        now = self.loop.time()
        self._idle_since = now
        if self._keepalive is None:
            self._keepalive = self.loop.call_at(now + self.timeout_keep_alive, self._check_idle)

    def _check_idle(self) -> None:
        self._keepalive = None
        idle_since = self._idle_since
        if idle_since is None or self.transport.is_closing():
            return  # busy; the next answer of ours arms the timer again
        deadline = idle_since + self.timeout_keep_alive
        if self.loop.time() >= deadline:
            self.timeout_keep_alive_handler()  # uvicorn's: close the idle connection
        else:
            self._keepalive = self.loop.call_at(deadline, self._check_idle)

    def _unset_keepalive_if_required(self) -> None:
        # uvicorn calls this when bytes arrive and when its own responses complete.
        self._idle_since = None
        super()._unset_keepalive_if_required()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None
        self._token = None
        super().connection_lost(exc)

    def shutdown(self) -> None:
        if self._token is not None:  # a token request's body is still coming in
            self._close_after = True
            return
        super().shutdown()
