"""JWKS and discovery answered at the HTTP parser: one prebuilt response, one write.

Serving a JWKS costs jwkit about 5 µs; uvicorn's ASGI machinery around it (a task and a
request/response cycle per request, header checks, two ``write`` calls) costs ten times that.
For the plain, common request, :class:`FastDocumentProtocol` skips the machinery:

* ``GET`` of a known project's ``/.well-known/jwks.json`` or ``openid-configuration``,
* no ``If-None-Match``, no request body, no upgrade, no percent-encoding in the path,
* nothing else in flight on the connection and the socket not applying back-pressure,

is answered with the complete response (status line, headers, body) prebuilt from the same
:class:`~jwkit.service.state.Document` snapshot the ASGI routes use, rebuilt when the
snapshot or the second changes. Every other request — conditional, ``HEAD``, unknown
project, token, admin, console — takes uvicorn's normal path to the same app
(:class:`~jwkit.service.http.public.PublicFastPath`), which answers identically.

This subclasses uvicorn's httptools protocol and so depends on its internals; the supported
uvicorn range is pinned in ``pyproject.toml`` and ``tests/service/test_wire.py`` holds the
behaviour in place (keep-alive, pipelining, ``Connection: close``, fall-backs, metrics).
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from jwkit.service.http.metrics import WIRE
from jwkit.service.http.public import (
    DISCOVERY_SUFFIX,
    JWKS_SUFFIX,
    PublicFastPath,
    count_document,
)
from jwkit.service.runtime import Service

__all__ = ["FastDocumentProtocol"]

_CONTENT_TYPES = {"jwks": b"application/jwk-set+json", "discovery": b"application/json"}
_FALLBACK_HEADERS = frozenset({b"if-none-match", b"content-length", b"transfer-encoding"})
_JWKS = JWKS_SUFFIX.encode()
_MAX_PREBUILT = 4096
_DISCOVERY = DISCOVERY_SUFFIX.encode()


# (project, document) -> (the default_headers list it was built with, etag, max-age, bytes);
# one process serves one Service, so these are per-process caches.
_PREBUILT: dict[tuple[str, str], tuple[object, str, int, bytes]] = {}
_SERVICES: dict[int, Service | None] = {}


def _find_service(app: Any) -> Service | None:
    """The :class:`Service` behind uvicorn's loaded app (possibly wrapped by its middleware)."""
    for _ in range(8):
        if isinstance(app, PublicFastPath):
            return app.service
        app = getattr(app, "app", None)
        if app is None:
            break
    return None


class FastDocumentProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a one-write path for JWKS and discovery."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        key = id(self.app)
        if key not in _SERVICES:
            _SERVICES[key] = _find_service(self.app)
        self._service = _SERVICES[key]
        self._enabled = (
            self._service is not None
            and self.limit_concurrency is None
            and not self.access_log
            and not self.root_path
        )
        self._fast: bytes | None = None

    def on_headers_complete(self) -> None:
        self._fast = None
        if self._enabled and self._plain_get():
            response = self._response()
            if response is not None:
                self._fast = response
                return
        super().on_headers_complete()

    def _plain_get(self) -> bool:
        return (
            self.parser.get_method() == b"GET"
            and not self.pipeline
            and (self.cycle is None or self.cycle.response_complete)
            and not self.flow.write_paused
            and not self.parser.should_upgrade()
            and not any(name in _FALLBACK_HEADERS for name, _ in self.headers)
        )

    def _response(self) -> bytes | None:
        path = self.url.split(b"?", 1)[0]
        if not path.startswith(b"/p/") or b"%" in path:
            return None
        if path.endswith(_JWKS):
            name, project = "jwks", path[3 : -len(_JWKS)]
        elif path.endswith(_DISCOVERY):
            name, project = "discovery", path[3 : -len(_DISCOVERY)]
        else:
            return None
        service = self._service
        assert service is not None
        view = service.state.projects.get(project.decode("ascii", "replace"))
        if view is None:
            return None
        doc = view.jwks if name == "jwks" else view.discovery
        defaults = self.server_state.default_headers
        max_age = view.cache_max_age(service.clock())
        cache_key = (view.id, name)
        cached = _PREBUILT.get(cache_key)
        if cached is None or cached[0] is not defaults or cached[1] != doc.etag or (
            cached[2] != max_age
        ):
            head = [b"HTTP/1.1 200 OK\r\n"]
            head += [n + b": " + v + b"\r\n" for n, v in defaults]
            head += [
                b"etag: " + doc.etag.encode() + b"\r\n",
                b"cache-control: public, max-age=%d\r\n" % max_age,
                b"access-control-allow-origin: *\r\n",
                b"content-type: " + _CONTENT_TYPES[name] + b"\r\n",
                b"content-length: %d\r\n\r\n" % len(doc.body),
            ]
            cached = (defaults, doc.etag, max_age, b"".join(head) + doc.body)
            if len(_PREBUILT) >= _MAX_PREBUILT:
                _PREBUILT.clear()  # deleted projects' entries must not pile up
            _PREBUILT[cache_key] = cached
        count_document(name, "200")
        WIRE.inc()
        return cached[3]

    def on_body(self, body: bytes) -> None:
        if self._fast is None:
            super().on_body(body)

    def on_message_complete(self) -> None:
        response = self._fast
        if response is None:
            super().on_message_complete()
            return
        self._fast = None
        self.transport.write(response)
        self.server_state.total_requests += 1
        keep_alive = self.parser.get_http_version() != "1.0" and self.parser.should_keep_alive()
        if not keep_alive:
            self.transport.close()
            return
        self._unset_keepalive_if_required()
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )
