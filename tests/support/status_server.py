"""A real HTTP server that plays a token issuer for the status-list tests.

It serves, on 127.0.0.1 and an ephemeral port, under ``/p/demo`` (the issuer):

- ``/p/demo/jwks.json``: a JWKS;
- ``/p/demo/statuslists/<n>``: Status List Tokens the test signs (``ETag``/``304``);
- ``/p/demo/events``: a Server-Sent Events stream (``retry:``, ``: ping`` comments, and the
  events the test publishes with :meth:`StatusServer.publish`), like the jwkit service's.

Every request is recorded; :meth:`wait_for` blocks on a condition variable until enough
requests arrived (no sleeping). :meth:`go_down` makes every path drop its connections.
"""

from __future__ import annotations

import hashlib
import json
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["PREFIX", "StatusServer"]

PREFIX = "/p/demo"


@dataclass(frozen=True)
class Seen:
    path: str
    headers: dict[str, str]


class StatusServer:
    def __init__(self) -> None:
        self._bodies: dict[str, tuple[bytes, str]] = {}
        self.requests: list[Seen] = []
        self._cond = threading.Condition()
        self._streams: list[queue.Queue[bytes | None]] = []
        self.down = False
        self.delay = 0.0
        self.retry_ms = 50
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> StatusServer:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.drop_streams()
        assert self._httpd is not None
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def origin(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def issuer(self) -> str:
        return self.origin + PREFIX

    @property
    def jwks_url(self) -> str:
        return self.issuer + "/jwks.json"

    def list_url(self, n: int = 1) -> str:
        return f"{self.issuer}/statuslists/{n}"

    # -- content ---------------------------------------------------------------------------
    def serve(self, path: str, body: bytes | str, content_type: str) -> None:
        data = body.encode() if isinstance(body, str) else body
        with self._cond:
            self._bodies[path] = (data, content_type)

    def serve_jwks(self, jwks: dict[str, Any]) -> None:
        self.serve(PREFIX + "/jwks.json", json.dumps(jwks), "application/json")

    def serve_list(self, token: str, n: int = 1) -> None:
        self.serve(f"{PREFIX}/statuslists/{n}", token, "application/statuslist+jwt")

    def publish(self, event: str, data: dict[str, Any], event_id: str = "1") -> None:
        """Send one event to every open ``/events`` connection."""
        frame = f"id: {event_id}\nevent: {event}\ndata: {json.dumps(data)}\n\n".encode()
        with self._cond:
            streams = list(self._streams)
        for stream in streams:
            stream.put(frame)

    def drop_streams(self) -> None:
        """Close every open ``/events`` connection (the listener must reconnect)."""
        with self._cond:
            streams, self._streams = self._streams, []
        for stream in streams:
            stream.put(None)

    # -- observation -----------------------------------------------------------------------
    def count(self, path: str | None = None) -> int:
        with self._cond:
            return sum(1 for r in self.requests if path is None or r.path == path)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Block until ``predicate()`` holds (checked whenever a request or stream changes)."""
        with self._cond:
            if not self._cond.wait_for(predicate, timeout):
                raise AssertionError("the expected requests did not arrive in time")

    def streams(self) -> int:
        with self._cond:
            return len(self._streams)

    # -- internals -------------------------------------------------------------------------
    def _record(self, seen: Seen) -> tuple[bytes, str] | None:
        with self._cond:
            self.requests.append(seen)
            self._cond.notify_all()
            return self._bodies.get(seen.path)

    def _open_stream(self) -> queue.Queue[bytes | None]:
        stream: queue.Queue[bytes | None] = queue.Queue()
        with self._cond:
            self._streams.append(stream)
            self._cond.notify_all()
        return stream

    def _close_stream(self, stream: queue.Queue[bytes | None]) -> None:
        with self._cond:
            if stream in self._streams:
                self._streams.remove(stream)
            self._cond.notify_all()


def _handler(server: StatusServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            found = server._record(Seen(path, dict(self.headers.items())))
            if server.down:
                self.close_connection = True
                return
            if server.delay:
                time.sleep(server.delay)  # a slow server, not synchronisation
            if path == PREFIX + "/events":
                self._events()
                return
            if found is None:
                self._send(404, b"not found", "text/plain", {})
                return
            body, ctype = found
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            if self.headers.get("If-None-Match") == etag:
                self._send(304, b"", ctype, {"ETag": etag})
                return
            self._send(200, body, ctype, {"ETag": etag, "Cache-Control": "max-age=60"})

        def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str]) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _events(self) -> None:
            self.close_connection = True
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            stream = server._open_stream()
            try:
                self.wfile.write(f"retry: {server.retry_ms}\n: hello\n\n".encode())
                self.wfile.flush()
                while True:
                    try:
                        frame = stream.get(timeout=0.5)
                    except queue.Empty:
                        frame = b": ping\n\n"
                    if frame is None:
                        return
                    self.wfile.write(frame)
                    self.wfile.flush()
            except OSError:
                return
            finally:
                server._close_stream(stream)

    return Handler
