"""The one-write JWKS/discovery path of `jwkit serve` (service/http/wire.py), over raw sockets.

Every test talks to a real `jwkit serve` process. The fast path must answer byte for byte what
the ASGI path answers, keep HTTP/1.1 semantics (keep-alive, pipelining order, Connection:
close, HTTP/1.0) and step aside for anything unusual.
"""

from __future__ import annotations

import re
import socket
from typing import Any

import httpx
import pytest

from .conftest import AUTH, ServerProcess


def _project(server: ServerProcess, **body: Any) -> dict[str, Any]:
    r = httpx.post(f"{server.url}/api/v1/projects", json={"name": "wire", **body}, headers=AUTH)
    r.raise_for_status()
    return dict(r.json())


def _wire_count(server: ServerProcess) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    match = re.search(r"^jwkit_wire_responses_total ([0-9.e+]+)$", text, re.M)
    assert match, text
    return float(match.group(1))


def _exchange(server: ServerProcess, raw: bytes, responses: int) -> list[bytes]:
    """Send raw request bytes on one connection; read `responses` complete responses."""
    out: list[bytes] = []
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(raw)
        buf = b""
        while len(out) < responses:
            head_end = buf.find(b"\r\n\r\n")
            if head_end >= 0:
                head = buf[:head_end].decode("latin-1")
                length = re.search(r"(?im)^content-length: (\d+)", head)
                size = int(length.group(1)) if length else 0
                if len(buf) >= head_end + 4 + size:
                    out.append(buf[: head_end + 4 + size])
                    buf = buf[head_end + 4 + size :]
                    continue
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
        if responses and len(out) == responses:
            sock.settimeout(0.5)
            try:
                rest = sock.recv(65536)
            except TimeoutError:
                rest = None  # still open (keep-alive)
            out.append(b"<closed>" if rest == b"" else b"<open>")
    return out


def _read_one(sock: socket.socket) -> bytes:
    """One whole response (headers and Content-Length body) from a keep-alive socket."""
    buf = b""
    while True:
        head_end = buf.find(b"\r\n\r\n")
        if head_end >= 0:
            length = re.search(rb"(?im)^content-length: (\d+)", buf[:head_end])
            size = int(length.group(1)) if length else 0
            if len(buf) >= head_end + 4 + size:
                return buf
        chunk = sock.recv(65536)
        if not chunk:
            return buf
        buf += chunk


def _get(path: str, *extra: str, version: str = "1.1") -> bytes:
    lines = [f"GET {path} HTTP/{version}", "Host: 127.0.0.1", *extra, "", ""]
    return "\r\n".join(lines).encode()


def _split(response: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines)}
    return status, headers, body


@pytest.fixture
def server(spawn: Any) -> ServerProcess:
    started: ServerProcess = spawn()
    return started


def test_fast_and_asgi_paths_answer_alike(server: ServerProcess) -> None:
    project = _project(server)
    for doc in ("jwks.json", "openid-configuration"):
        path = f"/p/{project['id']}/.well-known/{doc}"
        before = _wire_count(server)
        fast = _exchange(server, _get(path), 1)[0]
        assert _wire_count(server) == before + 1
        # A non-matching If-None-Match makes the request conditional: the ASGI path answers.
        slow = _exchange(server, _get(path, 'If-None-Match: "nope"'), 1)[0]
        assert _wire_count(server) == before + 1
        (fs, fh, fb), (ss, sh, sb) = _split(fast), _split(slow)
        assert fs == ss == "HTTP/1.1 200 OK"
        assert fb == sb and fb
        for name in ("etag", "cache-control", "content-type", "content-length",
                     "access-control-allow-origin"):  # fmt: skip
            assert fh[name] == sh[name], name
        assert set(fh) == set(sh)
    assert b'"d"' not in fb


def test_keep_alive_and_pipelining_keep_order(server: ServerProcess) -> None:
    project = _project(server)
    jwks = f"/p/{project['id']}/.well-known/jwks.json"
    disc = f"/p/{project['id']}/.well-known/openid-configuration"
    raw = _get(jwks) + _get("/healthz") + _get(disc) + _get(jwks)
    responses = _exchange(server, raw, 4)
    bodies = [_split(r)[2] for r in responses[:4]]
    assert bodies[0].startswith(b'{"keys":') and bodies[3] == bodies[0]
    assert bodies[1] == b'{"status":"ok"}'
    assert b'"jwks_uri"' in bodies[2]
    assert responses[4] == b"<open>"


def test_connection_close_and_http_1_0_close_the_socket(server: ServerProcess) -> None:
    project = _project(server)
    jwks = f"/p/{project['id']}/.well-known/jwks.json"
    closing = _exchange(server, _get(jwks, "Connection: close"), 1)
    assert closing[0].startswith(b"HTTP/1.1 200") and closing[1] == b"<closed>"
    old = _exchange(server, _get(jwks, version="1.0"), 1)
    assert old[0].startswith(b"HTTP/1.1 200") and old[1] == b"<closed>"


def test_unusual_requests_take_the_normal_path(server: ServerProcess) -> None:
    project = _project(server)
    jwks = f"/p/{project['id']}/.well-known/jwks.json"
    before = _wire_count(server)
    with_body = _get(jwks, "Content-Length: 5")[:-2] + b"\r\nhello"
    assert _exchange(server, with_body, 1)[0].startswith(b"HTTP/1.1 200")
    etag = _split(_exchange(server, _get(jwks), 1)[0])[1]["etag"]
    not_modified = _exchange(server, _get(jwks, f"If-None-Match: {etag}"), 1)[0]
    assert not_modified.startswith(b"HTTP/1.1 304")
    assert _exchange(server, _get("/p/proj_nope/.well-known/jwks.json"), 1)[0].startswith(
        b"HTTP/1.1 404"
    )
    encoded = jwks.replace("jwks", "jwk%73")
    assert _exchange(server, _get(encoded), 1)[0].startswith(b"HTTP/1.1 200")
    head = b"HEAD " + jwks.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head)
        assert sock.recv(65536).startswith(b"HTTP/1.1 ")
    assert _wire_count(server) == before + 1  # only the plain GET for the etag


def test_key_changes_show_at_once(server: ServerProcess) -> None:
    project = _project(server, jwks_max_age=0)
    jwks = f"/p/{project['id']}/.well-known/jwks.json"
    first = _split(_exchange(server, _get(jwks), 1)[0])
    r = httpx.post(f"{server.url}/api/v1/projects/{project['id']}/keys",
                   json={"mode": "replace", "confirm_invalidate": True}, headers=AUTH)
    assert r.status_code == 201
    second = _split(_exchange(server, _get(jwks), 1)[0])
    assert second[1]["etag"] != first[1]["etag"]
    assert r.json()["kid"].encode() in second[2]


def test_idle_keep_alive_connections_are_closed_and_busy_ones_are_not(
    server: ServerProcess,
) -> None:
    """uvicorn's keep-alive timeout (5 s) still holds for connections the fast path served."""
    import time

    project = _project(server)
    jwks = _get(f"/p/{project['id']}/.well-known/jwks.json")
    with socket.create_connection(("127.0.0.1", server.port), timeout=15) as busy, \
            socket.create_connection(("127.0.0.1", server.port), timeout=15) as idle:  # fmt: skip
        for sock in (busy, idle):
            sock.sendall(jwks)
            assert _read_one(sock).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        while time.monotonic() - started < 7.5:  # a request every second on `busy`
            time.sleep(1.0)
            busy.sendall(_get("/healthz"))
            assert _read_one(busy).startswith(b"HTTP/1.1 200"), "busy connection was closed"
        idle.settimeout(5)
        assert idle.recv(65536) == b"", "idle connection was not closed"
