"""The HTTP target: raw bytes over a socket to a real ``jwkit serve``.

:func:`requests` generates what a hostile client sends: pipelines of one to three requests
built from the service's own paths, methods and headers (so the parser-level fast path of
``service/http/wire.py`` and the ASGI routes both see them), with wrong lengths, chunked and
conflicting framing, bad versions, control bytes, then byte-level mutations and truncation;
and plain garbage. :func:`exchange` sends one input and holds the server to HTTP:

* every answer is a well-formed HTTP/1.x response (status line, header lines, a body framed
  by ``Content-Length`` or chunked encoding), never a 5xx;
* an answer that says ``Connection: close``, and every answer to an unparseable request
  (uvicorn's plain-text 400), is followed by the server closing the connection;
* nothing hangs: once the client has sent everything and half-closed, the server finishes
  and closes within :data:`DEADLINE` seconds;
* the server still answers ``/healthz`` afterwards (checked by the caller).
"""

from __future__ import annotations

import base64
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from hypothesis import strategies as st

from jwkit.jose import jwt
from tests.support.serve import ServerProcess, server_env

ADMIN_TOKEN = "fuzz-admin-token-0123456789abcdef"
#: Seconds the server gets to finish and close after the client half-closed.
DEADLINE = 5.0
#: Seconds of silence after which the client stops waiting for more answers.
IDLE = 0.3


@dataclass
class LiveService:
    """A ``jwkit serve`` with one project of each kind of key and an OAuth client."""

    server: ServerProcess
    project: str
    hmac_project: str
    client_id: str
    client_secret: str
    #: The path of the status list the project's tokens are in (``/p/{project}/statuslists/1``).
    status_path: str = ""

    @classmethod
    def start(cls, home: Path, **env: str) -> LiveService:
        server = ServerProcess(
            home,
            server_env(home, admin_token=ADMIN_TOKEN, admin_password="fuzz password 1234", **env),
        ).start(timeout=120)  # a busy CI machine can take a while to import everything
        with server.api() as api:
            project = api.post("/api/v1/projects", json={"name": "fuzz"}).json()["id"]
            hmac_project = api.post(
                "/api/v1/projects", json={"name": "fuzz hmac", "algorithm": "HS256"}
            ).json()["id"]
            client = api.post(
                f"/api/v1/projects/{project}/clients", json={"name": "c", "scopes": ["read"]}
            ).json()
        live = cls(server, project, hmac_project, client["client_id"], client["client_secret"])
        # One good token request, so the client is in the replica's cache (the fast path).
        token = httpx.post(
            f"{server.url}/p/{project}/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=(live.client_id, live.client_secret),
        )
        uri = jwt.decode_unverified(token.raise_for_status().json()["access_token"])[1]["status"]
        live.status_path = uri["status_list"]["uri"][len(server.url) :]
        return live

    def stop(self) -> None:
        self.server.stop()

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.server.url}/healthz", timeout=10).status_code == 200
        except httpx.HTTPError:
            return False


# -- what a hostile client sends ------------------------------------------------------------


def requests(live: LiveService) -> st.SearchStrategy[bytes]:
    """Raw request bytes for ``live``'s paths (see the module docstring)."""
    basic = base64.b64encode(f"{live.client_id}:{live.client_secret}".encode()).decode()
    texts = st.text(st.characters(codec="latin-1"), max_size=40).map(lambda s: s.encode("latin-1"))
    paths = (
        st.sampled_from(
            [
                f"/p/{live.project}/.well-known/jwks.json",
                f"/p/{live.project}/.well-known/openid-configuration",
                f"/p/{live.project}/oauth2/token",
                live.status_path,
                live.status_path + "?x",
                live.status_path[:-1] + "99",
                live.status_path[:-1] + "%C2%B2",
                f"/p/{live.project}/statuslists/",
                "/p/nope/statuslists/1",
                f"/p/{live.project}/oauth2/revoke",
                f"/p/{live.project}/oauth2/introspect",
                "/p/nope/oauth2/revoke",
                f"/p/{live.project}/events",
                "/p/nope/events",
                f"/p/{live.hmac_project}/.well-known/jwks.json",
                f"/p/{live.hmac_project}/oauth2/token",
                "/p/nope/.well-known/jwks.json",
                "/p/nope/oauth2/token",
                f"/p/{live.project}%2F/.well-known/jwks.json",
                f"/p/{live.project}/.well-known/jwks.json?x=1",
                f"/p//{live.project}/.well-known/jwks.json",
                "/healthz",
                "/readyz",
                "/metrics",
                "/api/v1/projects",
                f"/api/v1/projects/{live.project}/keys",
                "/api/v1/openapi.json",
                "/console",
                "/",
                "*",
                "http://example.com/healthz",
            ]
        ).map(str.encode)
        | texts
    )
    methods = (
        st.sampled_from(
            [b"GET", b"HEAD", b"POST", b"PUT", b"PATCH", b"DELETE", b"OPTIONS", b"CONNECT", b"PRI"]
        )
        | texts
    )
    versions = st.sampled_from(
        [b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/0.9", b"HTTP/1.1x", b""]
    )
    form = st.sampled_from(
        [
            b"grant_type=client_credentials",
            b"grant_type=client_credentials&scope=read",
            b"grant_type=client_credentials&scope=write",
            b"grant_type=password",
            b"grant_type=client_credentials&grant_type=client_credentials",
            b"grant_type=client_credentials&scope=%ff%fe",
            f"grant_type=client_credentials&client_id={live.client_id}"
            f"&client_secret={live.client_secret}".encode(),
            b"token=a.b.c",
            b"token=a.b.c&token_type_hint=access_token",
            b"token=%ED%A0%80",
            b"token=" + b"e" * 9000,
            f"token=x&client_id={live.client_id}&client_secret={live.client_secret}".encode(),
        ]
    )
    bodies = form | st.binary(max_size=200) | st.just(b"")
    header = st.sampled_from(
        [
            b"Host: localhost",
            b"Connection: close",
            b"Connection: keep-alive",
            b"Connection: upgrade",
            b"Upgrade: websocket",
            b"Upgrade: h2c",
            b"If-None-Match: *",
            b'If-None-Match: "x", W/"y"',
            b"Accept-Encoding: gzip",
            b"Expect: 100-continue",
            b"Transfer-Encoding: chunked",
            b"Transfer-Encoding: gzip, chunked",
            b"Transfer-Encoding: identity",
            b"Content-Type: application/x-www-form-urlencoded",
            b"Content-Type: application/json",
            b"Content-Type: application/x-www-form-urlencoded; charset=utf-16",
            b"Authorization: Basic " + basic.encode(),
            b"Authorization: Basic !!!!",
            b"Authorization: Basic " + base64.b64encode(b"\xff:\xfe"),
            b"Authorization: Bearer " + ADMIN_TOKEN.encode(),
            b"Authorization: Bearer \xff",
            b"Cookie: jwkit_session=x; jwkit_csrf=\xe9",
            b"X-CSRF-Token: \xe9\xe9",
            b"X-Forwarded-For: 10.0.0.1",
            b"Last-Event-ID: 1-1",
            b"Last-Event-ID: \xff\xfe",
            b"Accept: text/event-stream",
            b"Content-Length: 0",
            b"Content-Length: -1",
            b"Content-Length: 99999999999999999999",
            b"Content-Length: 5",
            b"Content-Length: 3, 3",
        ]
    ) | st.tuples(texts, texts).map(lambda kv: kv[0] + b": " + kv[1])

    @st.composite
    def one(draw: Any) -> bytes:
        method = draw(methods)
        body = draw(bodies) if draw(st.booleans()) else b""
        lines = [method + b" " + draw(paths) + b" " + draw(versions)]
        lines += draw(st.lists(header, max_size=6))
        framing = draw(st.sampled_from(["length", "chunked", "none", "wrong length"]))
        if framing == "length":
            lines.append(b"Content-Length: %d" % len(body))
        elif framing == "wrong length":
            lines.append(b"Content-Length: %d" % (len(body) + draw(st.integers(-3, 3))))
        elif framing == "chunked":
            lines.append(b"Transfer-Encoding: chunked")
            body = (b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n") if body else b"0\r\n\r\n"
        return b"\r\n".join(lines) + b"\r\n\r\n" + body

    @st.composite
    def mutated(draw: Any) -> bytes:
        raw = b"".join(draw(st.lists(one(), min_size=1, max_size=3)))
        for _ in range(draw(st.integers(0, 3))):
            at = draw(st.integers(0, len(raw)))
            action = draw(st.sampled_from(["insert", "delete", "replace", "truncate"]))
            byte = bytes([draw(st.integers(0, 255))])
            if action == "insert":
                raw = raw[:at] + byte + raw[at:]
            elif action == "delete":
                raw = raw[:at] + raw[at + 1 :]
            elif action == "replace":
                raw = raw[:at] + byte + raw[at + 1 :]
            else:
                raw = raw[:at]
        return raw

    return one() | mutated() | st.binary(min_size=1, max_size=300)


# -- what the server must answer --------------------------------------------------------------

_STATUS = re.compile(rb"HTTP/1\.[01] ([1-5][0-9][0-9]) [^\r\n]*\r\n")
_HEADER = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([^\r\n]*)\r\n")
UNPARSEABLE = b"Invalid HTTP request received."


@dataclass
class Answer:
    status: int
    headers: dict[bytes, bytes]
    body: bytes


class Finding(AssertionError):
    """The server broke HTTP (see the module docstring); the message says how."""


def parse_answers(data: bytes, heads: int) -> list[Answer]:
    """Split ``data`` into well-formed responses; up to ``heads`` of them may be answers to
    HEAD requests (no body although ``Content-Length`` says otherwise)."""
    answers: list[Answer] = []
    skipped = 0
    at = 0
    while at < len(data):
        status = _STATUS.match(data, at)
        if status is None:
            raise Finding(f"not a status line at byte {at}: {data[at : at + 80]!r}")
        at = status.end()
        headers: dict[bytes, bytes] = {}
        while not data.startswith(b"\r\n", at):
            line = _HEADER.match(data, at)
            if line is None:
                raise Finding(f"not a header line at byte {at}: {data[at : at + 80]!r}")
            name = line.group(1).lower()
            if name in headers and name in (b"content-length", b"transfer-encoding"):
                raise Finding(f"repeated {name!r} header")
            headers[name] = line.group(2)
            at = line.end()
        at += 2
        code = int(status.group(1))
        streaming = headers.get(b"content-type", b"").startswith(b"text/event-stream")
        if streaming and b"transfer-encoding" in headers and _open_stream(data, at):
            # An event stream never ends on its own: the client ended it (the last answer).
            answers.append(Answer(code, headers, data[at:]))
            break
        if b"transfer-encoding" in headers:
            if headers[b"transfer-encoding"].lower() != b"chunked":
                raise Finding(f"unknown transfer-encoding {headers[b'transfer-encoding']!r}")
            body = b""
            while True:
                size = re.compile(rb"([0-9a-fA-F]+)\r\n").match(data, at)
                if size is None:
                    raise Finding("bad chunk size line")
                n = int(size.group(1), 16)
                at = size.end()
                body += data[at : at + n]
                if not data.startswith(b"\r\n", at + n):
                    raise Finding("chunk not followed by CRLF")
                at += n + 2
                if n == 0:
                    break
        elif code in (204, 304) or 100 <= code < 200:
            body = b""
        elif b"content-length" in headers:
            if not headers[b"content-length"].isdigit():
                raise Finding(f"bad content-length {headers[b'content-length']!r}")
            n = int(headers[b"content-length"])
            if skipped < heads and n and (at == len(data) or _STATUS.match(data, at)):
                n = 0  # the answer to a HEAD
                skipped += 1
            if len(data) - at < n:
                raise Finding(f"body shorter than content-length {n}")
            body = data[at : at + n]
            at += n
        elif skipped < heads:
            body = b""  # the answer to a HEAD need not say how long a GET's body would be
            skipped += 1
        else:
            raise Finding("a response without framing")
        answers.append(Answer(code, headers, body))
    return answers


def _open_stream(data: bytes, at: int) -> bool:
    """Whether ``data[at:]`` is chunks without the end chunk, the last perhaps cut short: an
    event stream the client ended (it never ends on its own)."""
    while at < len(data):
        size = _CHUNK.match(data, at)
        if size is None:
            return re.fullmatch(rb"[0-9a-fA-F]*\r?", data[at:]) is not None
        n = int(size.group(1), 16)
        end = size.end() + n
        if n == 0 or (len(data) >= end + 2 and data[end : end + 2] != b"\r\n"):
            return False  # ended, or malformed: the ordinary parse says which
        if len(data) < end + 2:
            return len(data) <= end or b"\r\n".startswith(data[end:])
        at = end + 2
    return True


_CHUNK = re.compile(rb"([0-9a-fA-F]+)\r\n")


def exchange(port: int, raw: bytes) -> list[Answer]:
    """Send ``raw`` on a fresh connection and check the answers (raises :class:`Finding`)."""
    data = b""
    closed = False
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as sock:
        try:
            sock.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server already refused and closed: read what it said
        # Read until the server closes or falls silent.
        sock.settimeout(IDLE)
        try:
            while chunk := sock.recv(65536):
                data += chunk
            closed = True
        except TimeoutError:
            pass
        except ConnectionResetError:
            closed = True
        if not closed:
            # Everything sent: half-close and give the server DEADLINE seconds to finish.
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            sock.settimeout(DEADLINE)
            end = time.monotonic() + DEADLINE
            try:
                while chunk := sock.recv(65536):
                    data += chunk
                    if time.monotonic() > end:
                        raise Finding(f"still sending {DEADLINE}s after the client finished")
            except TimeoutError:
                raise Finding(f"connection open {DEADLINE}s after the client finished") from None
            except ConnectionResetError:
                pass
    heads = raw.count(b"HEAD")
    answers = parse_answers(data, heads)
    for answer in answers:
        if answer.status >= 500:
            raise Finding(f"{answer.status}: {answer.body[:200]!r}")
    # An answer that announces the end of the connection must be the last, and it must have
    # come before the client half-closed (the server closed on its own).
    for index, answer in enumerate(answers):
        closing = answer.headers.get(b"connection", b"").lower() == b"close"
        if answer.body == UNPARSEABLE and not closing:
            raise Finding("an unparseable request answered without Connection: close")
        if closing and index != len(answers) - 1:
            raise Finding("answers after Connection: close")
    streaming = answers and answers[-1].headers.get(b"content-type", b"").startswith(
        b"text/event-stream"
    )
    if (
        answers
        and not streaming
        and answers[-1].headers.get(b"connection", b"").lower() == b"close"
        and not closed
    ):
        # Perhaps only slow (the machine is busy): again, without half-closing, and longer.
        if not _closes_by_itself(port, raw):
            raise Finding("Connection: close, but the connection stayed open")
    return answers


def _closes_by_itself(port: int, raw: bytes) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as sock:
        try:
            sock.sendall(raw)
            while sock.recv(65536):
                pass
        except TimeoutError:
            return False
        except OSError:
            pass
    return True


def parser_refused(answer: httpx.Response) -> bool:
    """uvicorn's HTTP parser refused the request (a control byte in a header value, say)
    before jwkit saw it: exchange() holds those answers to their own rules."""
    return (
        answer.status_code == 400
        and answer.headers.get("connection") == "close"
        and answer.headers.get("content-type", "").startswith("text/plain")
        and answer.content in (UNPARSEABLE, b"")
    )
