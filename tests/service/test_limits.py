"""Request-head limits and deadline, and the admin body limit, against real ``jwkit serve``
processes over raw sockets: once with the parser-level fast path and once without it
(``JWKIT_FAST_PATH=false``), with a one-second head deadline so the tests stay short."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import ADMIN_TOKEN, AUTH, ServerProcess, server_env

TIMEOUT = 1.0  # JWKIT_HEADER_TIMEOUT of these servers (seconds)


@pytest.fixture(scope="module", params=["true", "false"], ids=["fast-path", "no-fast-path"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    home: Path = tmp_path_factory.mktemp("limits")
    env = server_env(home, JWKIT_HEADER_TIMEOUT=str(TIMEOUT), JWKIT_FAST_PATH=request.param)
    started = ServerProcess(home, env).start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def jwks_path(server: ServerProcess) -> str:
    r = httpx.post(f"{server.url}/api/v1/projects", json={"name": "limits"}, headers=AUTH)
    r.raise_for_status()
    return f"/p/{r.json()['id']}/.well-known/jwks.json"


def _connect(server: ServerProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def _read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes the connection."""
    out = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return out
        if not chunk:
            return out
        out += chunk


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    """Send what the server takes; it may close the connection before the end."""
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


def _status(response: bytes) -> int:
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", response)
    assert match, response[:200]
    return int(match.group(1))


def _head(path: str, *fields: str) -> bytes:
    return "\r\n".join([f"GET {path} HTTP/1.1", "Host: 127.0.0.1", *fields, "", ""]).encode()


def test_heads_within_the_limits_are_answered(server: ServerProcess, jwks_path: str) -> None:
    fields = [f"X-Pad-{n}: " + "a" * 7000 for n in range(4)]  # 28 KiB, each line < 8 KiB
    with _connect(server) as sock:
        sock.sendall(_head(jwks_path, *fields, "Connection: close"))
        answer = _read_all(sock)
    assert _status(answer) == 200 and b'"keys"' in answer


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        (["X-Long: " + "a" * 8200], 431),  # one line over 8 KiB
        ([f"X-Pad-{n}: " + "a" * 7000 for n in range(5)], 431),  # 35 KiB in all
        ([f"X-{n}: a" for n in range(5000)], 431),  # many small fields
    ],
    ids=["line", "total", "many"],
)
def test_heads_over_the_limits_are_refused_and_closed(
    server: ServerProcess, jwks_path: str, fields: list[str], status: int
) -> None:
    with _connect(server) as sock:
        _send_quietly(sock, _head(jwks_path, *fields))
        answer = _read_all(sock)  # returns only once the server closed the connection
    assert _status(answer) == status
    assert b"connection: close" in answer.lower()
    assert b'"error":"header_fields_too_large"' in answer


def test_a_long_request_target_is_refused(server: ServerProcess, jwks_path: str) -> None:
    with _connect(server) as sock:
        _send_quietly(sock, _head(jwks_path + "?" + "q" * 9000))
        answer = _read_all(sock)
    assert _status(answer) == 414


def test_a_header_line_that_never_ends_is_not_read_in_full(
    server: ServerProcess, jwks_path: str
) -> None:
    """100 MiB offered in one header line: refused and closed long before the end."""
    sent = 0
    with _connect(server) as sock:
        start = _head(jwks_path)[:-2] + b"X-Huge: "
        chunk = b"a" * 65536

        def flood() -> None:
            nonlocal sent
            _send_quietly(sock, start)
            try:
                for _ in range(1600):
                    sock.sendall(chunk)
                    sent += len(chunk)
            except OSError:
                pass

        sender = threading.Thread(target=flood)
        sender.start()
        answer = _read_all(sock)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sender.join(30)
    assert _status(answer) == 431
    assert sent < 16 * 1024 * 1024  # (socket buffers hold a few MiB the server never read)


def test_a_silent_connection_is_closed_after_the_head_timeout(server: ServerProcess) -> None:
    with _connect(server) as sock:
        opened = time.monotonic()
        assert _read_all(sock) == b""  # closed without an answer: nothing was asked
        waited = time.monotonic() - opened
    assert TIMEOUT <= waited < TIMEOUT * 1.5 + 2


def test_an_incomplete_head_gets_408_and_is_closed(server: ServerProcess, jwks_path: str) -> None:
    with _connect(server) as sock:
        sock.sendall(_head(jwks_path)[:-2])  # the blank line never comes
        sent = time.monotonic()
        answer = _read_all(sock)
        waited = time.monotonic() - sent
    assert _status(answer) == 408 and b"connection: close" in answer.lower()
    assert TIMEOUT <= waited < TIMEOUT * 1.5 + 2


def test_a_busy_connection_is_not_closed_by_the_head_deadline(
    server: ServerProcess, jwks_path: str
) -> None:
    """Requests keep coming for three timeouts, each head trickled in over half of one."""
    request = _head(jwks_path)
    with _connect(server) as sock:
        started = time.monotonic()
        while time.monotonic() - started < 3 * TIMEOUT:
            sock.sendall(request[:10])
            time.sleep(TIMEOUT / 2)
            sock.sendall(request[10:])
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(65536)
                assert chunk, "the connection was closed"
                head += chunk
            assert _status(head) == 200
            length = int(re.search(rb"content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
            body = head.split(b"\r\n\r\n", 1)[1]
            while len(body) < length:
                body += sock.recv(65536)


def _chunked_post(server: ServerProcess, path: str, body: bytes, piece: int = 65536) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    framed = (
        b"".join(
            b"%x\r\n%s\r\n" % (len(body[i : i + piece]), body[i : i + piece])
            for i in range(0, len(body), piece)
        )
        + b"0\r\n\r\n"
    )
    with _connect(server) as sock:
        sender = threading.Thread(target=_send_quietly, args=(sock, head + framed))
        sender.start()
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sender.join(30)
    return answer


def test_chunked_admin_bodies_are_held_to_the_body_limit(server: ServerProcess) -> None:
    small = b'{"name": "chunked"}'
    assert _status(_chunked_post(server, "/api/v1/projects", small, piece=5)) == 201
    padding = b" " * (2 * 1024 * 1024)  # valid JSON whitespace: only the size is wrong
    answer = _chunked_post(server, "/api/v1/projects", small[:-1] + padding + b"}")
    assert _status(answer) == 413, answer[:300]
    assert b"payload_too_large" in answer or b"connection: close" in answer.lower()
