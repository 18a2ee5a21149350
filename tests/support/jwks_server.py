"""A real threaded HTTP server on 127.0.0.1 whose behaviour the test controls.

Every path answers with a :class:`Reply` the test sets (or 404). Helpers cover what a
JWKS endpoint does in the wild: a JWKS with ``Cache-Control``/``ETag`` and ``304`` on
``If-None-Match``, key rotation, an OpenID discovery document, an outage (connection
closed without an answer), a slow answer, a 5xx, invalid JSON, a huge body, a redirect.
Every request is recorded, so tests can count fetches.

Example::

    with JWKSServer() as server:
        server.serve_jwks({"keys": [...]}, max_age=60)
        url = server.jwks_url           # http://127.0.0.1:<port>/.well-known/jwks.json
        ...
        assert server.count(JWKS_PATH) == 1
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["DISCOVERY_PATH", "JWKS_PATH", "JWKSServer", "Reply", "Request"]

JWKS_PATH = "/.well-known/jwks.json"
DISCOVERY_PATH = "/.well-known/openid-configuration"


@dataclass(frozen=True)
class Reply:
    """What the server answers on one path.

    ``delay`` waits before the status line; ``drop`` closes the connection without any
    answer (the server looks down); ``etag`` enables ``304`` for a matching
    ``If-None-Match``; ``chunk``/``chunk_delay`` send the body slowly in pieces.
    ``script`` replaces the whole answer with raw steps: ``bytes`` are written as they are,
    a number pauses that many seconds (cut short when the server stops); the connection is
    closed afterwards. It lets a test stall or drip anywhere: in the status line, the
    headers or the body.
    """

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False
    etag: str | None = None
    chunk: int = 0
    chunk_delay: float = 0.0
    script: tuple[bytes | float, ...] = ()


@dataclass(frozen=True)
class Request:
    """One request the server received."""

    method: str
    path: str
    headers: Mapping[str, str]


class JWKSServer:
    """A controllable HTTP server on an ephemeral port of 127.0.0.1."""

    def __init__(self) -> None:
        self._routes: dict[str, Reply] = {}
        self._requests: list[Request] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> JWKSServer:
        handler = _make_handler(self)
        self._httpd = _QuietServer(("127.0.0.1", 0), handler)
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening: later connections are refused."""
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> JWKSServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """The base URL, without a trailing slash."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def jwks_url(self) -> str:
        return self.url + JWKS_PATH

    @property
    def discovery_url(self) -> str:
        return self.url + DISCOVERY_PATH

    # -- behaviour ---------------------------------------------------------------------------
    def set(self, path: str, reply: Reply) -> None:
        """Answer ``path`` with ``reply`` from now on."""
        with self._lock:
            self._routes[path] = reply

    def clear(self, path: str) -> None:
        with self._lock:
            self._routes.pop(path, None)

    def serve_json(
        self,
        document: Any,
        *,
        path: str = JWKS_PATH,
        max_age: int | None = 600,
        cache_control: str | None = None,
        etag: bool = True,
        status: int = 200,
        delay: float = 0.0,
    ) -> None:
        """Serve ``document`` as JSON with ``Cache-Control`` and a content-derived ``ETag``."""
        body = document if isinstance(document, bytes) else json.dumps(document).encode()
        headers = {"Content-Type": "application/json"}
        if cache_control is not None:
            headers["Cache-Control"] = cache_control
        elif max_age is not None:
            headers["Cache-Control"] = f"public, max-age={max_age}"
        tag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"' if etag else None
        self.set(path, Reply(status=status, body=body, headers=headers, etag=tag, delay=delay))

    def serve_jwks(self, jwks: Any, **options: Any) -> None:
        """Serve a JWKS (a mapping, a list of JWK dicts, or raw bytes) at ``JWKS_PATH``."""
        if isinstance(jwks, list):
            jwks = {"keys": jwks}
        self.serve_json(jwks, **options)

    def serve_discovery(
        self, *, issuer: str | None = None, jwks_uri: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        """Serve an OpenID discovery document pointing at this server's JWKS."""
        document: dict[str, Any] = {
            "issuer": issuer if issuer is not None else self.url,
            "jwks_uri": jwks_uri if jwks_uri is not None else self.jwks_url,
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            **extra,
        }
        self.serve_json(document, path=DISCOVERY_PATH)
        return document

    def fail(self, status: int = 500, *, path: str = JWKS_PATH, body: bytes = b"oops") -> None:
        self.set(path, Reply(status=status, body=body, headers={"Content-Type": "text/plain"}))

    def go_down(self, *, path: str = JWKS_PATH) -> None:
        """Close every connection on ``path`` without answering."""
        self.set(path, Reply(drop=True))

    def answer_slowly(self, delay: float, *, path: str = JWKS_PATH) -> None:
        """Keep the current reply on ``path`` but wait ``delay`` seconds before answering."""
        with self._lock:
            current = self._routes.get(path, Reply(status=404))
            self._routes[path] = Reply(**{**current.__dict__, "delay": delay})

    def serve_huge(self, size: int, *, path: str = JWKS_PATH, content_length: bool = True) -> None:
        """A body of ``size`` bytes that starts like JSON (``content_length=False`` streams it)."""
        body = b'{"keys": [' + b" " * max(0, size - 12) + b"]}"
        headers = {"Content-Type": "application/json"}
        self.set(
            path,
            Reply(body=body, headers=headers, chunk=0 if content_length else 65536),
        )

    def redirect(self, location: str, *, path: str = JWKS_PATH, status: int = 302) -> None:
        self.set(path, Reply(status=status, headers={"Location": location}))

    # -- observation -------------------------------------------------------------------------
    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    def count(self, path: str | None = None) -> int:
        """How many requests arrived (on ``path`` only, when given)."""
        with self._lock:
            return sum(1 for r in self._requests if path is None or r.path == path)

    def reset_counts(self) -> None:
        with self._lock:
            self._requests.clear()

    # -- internals ---------------------------------------------------------------------------
    def _record(self, request: Request) -> Reply | None:
        with self._lock:
            self._requests.append(request)
            return self._routes.get(request.path)

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout tests) is expected; anything else is printed.
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


def _make_handler(server: JWKSServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            return

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            reply = server._record(Request("GET", path, dict(self.headers.items())))
            if reply is None:
                reply = Reply(status=404, body=b"not found")
            server._wait(reply.delay)
            if reply.drop:
                self.close_connection = True
                return
            if reply.script:
                self.close_connection = True
                try:
                    for step in reply.script:
                        if isinstance(step, bytes):
                            self.wfile.write(step)
                            self.wfile.flush()
                        elif not server._stopping.is_set():
                            server._wait(step)
                except OSError:  # the client gave up: expected in timeout tests
                    pass
                return
            if reply.etag is not None and self.headers.get("If-None-Match") == reply.etag:
                self.send_response(304)
                self.send_header("ETag", reply.etag)
                for name, value in reply.headers.items():
                    if name.lower() == "cache-control":
                        self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if reply.etag is not None:
                self.send_header("ETag", reply.etag)
            if reply.chunk:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    for start in range(0, len(reply.body), reply.chunk):
                        piece = reply.body[start : start + reply.chunk]
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                        self.wfile.flush()
                        server._wait(reply.chunk_delay)
                        if server._stopping.is_set():
                            break
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                return
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            try:
                self.wfile.write(reply.body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    return Handler
