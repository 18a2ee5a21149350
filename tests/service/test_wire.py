"""The one-write JWKS/discovery path of `jwkit serve` (service/http/wire.py), over raw sockets.

Every test talks to a real `jwkit serve` process. The fast path must answer byte for byte what
the ASGI path answers, keep HTTP/1.1 semantics (keep-alive, pipelining order, Connection:
close, HTTP/1.0) and step aside for anything unusual.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
from typing import Any

import httpx
import pytest

from jwkit.jose import jwt
from jwkit.jose.jwk import JWKSet

from .conftest import AUTH, ServerProcess

#: Tests that count answers of the wire path; the others hold with JWKIT_FAST_PATH=false too.
wire_only = pytest.mark.skipif(
    os.environ.get("JWKIT_FAST_PATH", "").lower() in ("false", "0"),
    reason="the parser-level fast path is off (JWKIT_FAST_PATH)",
)


def _project(server: ServerProcess, **body: Any) -> dict[str, Any]:
    r = httpx.post(f"{server.url}/api/v1/projects", json={"name": "wire", **body}, headers=AUTH)
    r.raise_for_status()
    return dict(r.json())


def _wire_count(server: ServerProcess) -> float:
    text = httpx.get(f"{server.url}/metrics", headers=AUTH).text
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


@wire_only
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
        # The stale windows too (documents.document_lifetime): both end before a key published
        # now could sign (test_cdn_cache.py holds the bound against the rotation rules).
        fields = dict(re.findall(r"([a-z-]+)=(\d+)", fh["cache-control"]))
        stale = int(fields.get("stale-while-revalidate", 0))
        assert stale == int(fields.get("stale-if-error", 0))
        assert int(fields["max-age"]) + stale <= 300 + 5 - 1
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


@wire_only
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
    r = httpx.post(
        f"{server.url}/api/v1/projects/{project['id']}/keys",
        json={"mode": "replace", "confirm_invalidate": True},
        headers=AUTH,
    )
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


@wire_only
def test_repeated_document_requests_follow_the_snapshot(server: ServerProcess) -> None:
    """The same request on one connection: the same answer while nothing changes, the new
    keys right after a rotation, and the normal path's 404 once the project is gone."""
    project = _project(server, jwks_max_age=0)
    jwks = _get(f"/p/{project['id']}/.well-known/jwks.json")
    before = _wire_count(server)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        answers = []
        for _ in range(4):  # one send per request
            sock.sendall(jwks)
            answers.append(_split(_read_one(sock)))
        r = httpx.post(
            f"{server.url}/api/v1/projects/{project['id']}/keys",
            json={"mode": "replace", "confirm_invalidate": True},
            headers=AUTH,
        )
        assert r.status_code == 201
        sock.sendall(jwks)
        rotated = _split(_read_one(sock))
        assert (
            httpx.delete(f"{server.url}/api/v1/projects/{project['id']}", headers=AUTH).status_code
            == 204
        )
        sock.sendall(jwks)
        gone = _split(_read_one(sock))
        sock.sendall(_get("/healthz"))  # the connection still works after the fall-back
        assert _split(_read_one(sock))[2] == b'{"status":"ok"}'
    assert _wire_count(server) == before + 5
    for status, headers, body in answers[1:]:
        assert (status, body) == answers[0][::2]
        assert {k: v for k, v in headers.items() if k != "date"} == {
            k: v for k, v in answers[0][1].items() if k != "date"
        }
    assert rotated[0] == "HTTP/1.1 200 OK" and rotated[1]["etag"] != answers[0][1]["etag"]
    assert r.json()["kid"].encode() in rotated[2]
    assert gone[0] == "HTTP/1.1 404 Not Found"


@wire_only
def test_pipelined_identical_requests_are_each_answered(server: ServerProcess) -> None:
    project = _project(server)
    jwks = _get(f"/p/{project['id']}/.well-known/jwks.json")
    _exchange(server, jwks, 1)
    before = _wire_count(server)
    responses = _exchange(server, jwks * 3, 3)
    assert [_split(r)[0] for r in responses[:3]] == ["HTTP/1.1 200 OK"] * 3
    assert responses[3] == b"<open>"
    assert _wire_count(server) == before + 3


def _client(server: ServerProcess, project: dict[str, Any], *scopes: str) -> tuple[str, str]:
    r = httpx.post(
        f"{server.url}/api/v1/projects/{project['id']}/clients",
        json={"name": "wire", "scopes": list(scopes)},
        headers=AUTH,
    )
    r.raise_for_status()
    return r.json()["client_id"], r.json()["client_secret"]


def _token_request(
    project: dict[str, Any],
    form: str,
    *extra: str,
    chunked: bool = False,
    ctype: str = "application/x-www-form-urlencoded",
) -> bytes:
    """A token POST; ``chunked`` sends the same form with chunked framing, which the wire
    path leaves to the ASGI path."""
    body = form.encode()
    framing = ["Transfer-Encoding: chunked"] if chunked else [f"Content-Length: {len(body)}"]
    lines = [
        f"POST /p/{project['id']}/oauth2/token HTTP/1.1",
        "Host: 127.0.0.1",
        f"Content-Type: {ctype}",
        *framing,
        *extra,
        "",
        "",
    ]
    if chunked:
        body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n"
    return "\r\n".join(lines).encode() + body


def _basic(client_id: str, secret: str) -> str:
    return "Authorization: Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


@wire_only
def test_token_fast_and_asgi_paths_answer_alike(server: ServerProcess) -> None:
    project = _project(server)
    client_id, secret = _client(server, project, "read", "write")
    auth = _basic(client_id, secret)
    form = "grant_type=client_credentials&scope=read"
    before = _wire_count(server)
    # The client is not cached yet: the ASGI path looks it up (and caches it).
    first = _split(_exchange(server, _token_request(project, form, auth), 1)[0])
    assert _wire_count(server) == before
    fast = _split(_exchange(server, _token_request(project, form, auth), 1)[0])
    assert _wire_count(server) == before + 1
    slow = _split(_exchange(server, _token_request(project, form, auth, chunked=True), 1)[0])
    assert _wire_count(server) == before + 1
    jwks = JWKSet.from_json(httpx.get(project["jwks_uri"]).text)
    for status, headers, body in (first, fast, slow):
        assert status == "HTTP/1.1 200 OK"
        assert headers["cache-control"] == "no-store" and headers["pragma"] == "no-cache"
        assert headers["content-type"] == "application/json"
        answer = json.loads(body)
        assert list(answer) == ["access_token", "token_type", "expires_in", "scope"]
        assert answer["token_type"] == "Bearer" and answer["scope"] == "read"
        assert body == json.dumps(answer).encode()  # the same serialisation
        claims = jwt.decode(
            answer["access_token"],
            jwks,
            algorithms=["ES256"],
            issuer=project["issuer"],
            audience=project["audience"],
            typ="at+jwt",
        )
        assert claims["sub"] == claims["client_id"] == client_id and claims["scope"] == "read"
    assert set(fast[1]) == set(slow[1]) == set(first[1])

    # Refusals: the wire path answers them like the ASGI path, byte for byte.
    cases = [
        ("grant_type=client_credentials", _basic(client_id, "wrong")),
        ("grant_type=password", auth),
        ("grant_type=client_credentials&scope=admin", auth),
        ("grant_type=client_credentials&scope=+", auth),  # "scope=" alone counts as omitted
        ("grant_type=client_credentials&client_secret=x", auth),
        ("grant_type=client_credentials&client_id=cli_other", auth),
        ("grant_type=client_credentials&grant_type=client_credentials", auth),
        ("%zz=1&&", auth),
        ("", auth),
    ]
    for form, authorization in cases:
        count = _wire_count(server)
        fast_raw = _exchange(server, _token_request(project, form, authorization), 1)[0]
        assert _wire_count(server) == count + 1, form
        slow_raw = _exchange(server, _token_request(project, form, authorization, chunked=True), 1)[
            0
        ]
        (fs, fh, fb), (ss, sh, sb) = _split(fast_raw), _split(slow_raw)
        assert (fs, fb) == (ss, sb), form
        assert fs.split()[1] in ("400", "401"), (form, fs)
        fh.pop("date"), sh.pop("date")
        sh.pop("transfer-encoding", None)
        assert fh == sh, form


@wire_only
def test_token_requests_the_wire_path_leaves_to_asgi(server: ServerProcess) -> None:
    project = _project(server)
    client_id, secret = _client(server, project, "read")
    auth = _basic(client_id, secret)
    _exchange(server, _token_request(project, "grant_type=client_credentials", auth), 1)
    before = _wire_count(server)
    post_auth = f"grant_type=client_credentials&client_id={client_id}&client_secret={secret}"
    for raw in (
        _token_request(project, post_auth),  # client_secret_post
        _token_request(project, "grant_type=client_credentials", auth, ctype="text/plain"),
        _token_request(project, "grant_type=client_credentials", auth, "Expect: 100-continue"),
        _token_request(project, "grant_type=client_credentials", auth, auth),  # repeated
        _token_request(project, "grant_type=client_credentials", "Authorization: Basic !!"),
    ):
        status = _split(_exchange(server, raw, 1)[0])[0]
        assert status.split()[1] in ("100", "200", "400", "401"), status
    assert _wire_count(server) == before
    # An unknown client is looked up once, then refused on the wire like a wrong secret.
    unknown = _basic("cli_unknown", "x")
    for _ in range(2):
        raw = _exchange(
            server, _token_request(project, "grant_type=client_credentials", unknown), 1
        )[0]
        assert raw.startswith(b"HTTP/1.1 401")
    assert _wire_count(server) == before + 1


def test_token_keep_alive_close_and_http_1_0(server: ServerProcess) -> None:
    project = _project(server)
    client_id, secret = _client(server, project, "read")
    auth = _basic(client_id, secret)
    form = "grant_type=client_credentials"
    _exchange(server, _token_request(project, form, auth), 1)
    both = _exchange(server, _token_request(project, form, auth) + _get("/healthz"), 2)
    assert both[0].startswith(b"HTTP/1.1 200") and both[1].endswith(b'{"status":"ok"}')
    assert both[2] == b"<open>"
    closing = _exchange(server, _token_request(project, form, auth, "Connection: close"), 1)
    assert closing[0].startswith(b"HTTP/1.1 200") and closing[1] == b"<closed>"
    assert _split(closing[0])[1]["connection"] == "close"
    old = _token_request(project, form, auth).replace(b"HTTP/1.1\r\n", b"HTTP/1.0\r\n", 1)
    answered = _exchange(server, old, 1)
    assert answered[0].startswith(b"HTTP/1.1 200") and answered[1] == b"<closed>"


def test_a_request_under_way_is_not_cut_by_the_keep_alive_timeout(
    server: ServerProcess,
) -> None:
    """After an answer of the wire path, a request that takes longer than the keep-alive
    timeout (5 s) to arrive is still answered: only idle connections are closed."""
    import time

    project = _project(server)
    client_id, secret = _client(server, project, "read")
    token = _token_request(project, "grant_type=client_credentials", _basic(client_id, secret))
    _exchange(server, token, 1)  # the client is cached: the next ones go on the wire
    jwks = _get(f"/p/{project['id']}/.well-known/jwks.json")
    address = ("127.0.0.1", server.port)
    with socket.create_connection(address, timeout=15) as headers_late, \
            socket.create_connection(address, timeout=15) as body_late:  # fmt: skip
        for sock in (headers_late, body_late):
            sock.sendall(jwks)
            assert _read_one(sock).startswith(b"HTTP/1.1 200")
        headers_late.sendall(jwks[:20])
        body_late.sendall(token[:-5])
        time.sleep(6.5)
        headers_late.sendall(jwks[20:])
        body_late.sendall(token[-5:])
        assert _read_one(headers_late).startswith(b"HTTP/1.1 200 OK")
        answer = _read_one(body_late)
        assert answer.startswith(b"HTTP/1.1 200 OK") and b'"access_token"' in answer


def test_busy_wire_connections_stay_open(server: ServerProcess) -> None:
    """Requests answered on the wire keep a connection alive."""
    import time

    project = _project(server)
    jwks = _get(f"/p/{project['id']}/.well-known/jwks.json")
    with socket.create_connection(("127.0.0.1", server.port), timeout=15) as busy:
        started = time.monotonic()
        while time.monotonic() - started < 7.5:
            busy.sendall(jwks)
            assert _read_one(busy).startswith(b"HTTP/1.1 200"), "busy connection was closed"
            time.sleep(1.0)
        busy.settimeout(7)
        assert busy.recv(65536) == b"", "idle connection was not closed"
