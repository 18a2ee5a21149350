"""``JWKIT_FAST_PATH=false`` changes nothing a client can see: two real ``jwkit serve``
processes share one SQLite database (so the same keys, documents and ETags), one with the
parser-level fast path and ``PublicFastPath`` and one serving everything through the plain
routes, and every public answer — 200, ``HEAD``, 304, 404, 405 and the token endpoint's
answers and refusals — must be byte for byte the same but for the ``date`` field.

This is the byte-parity test of ``service/http/documents.py``: the wire path (plain ``GET``
and cached-client token requests), ``PublicFastPath`` (304, token requests from unknown
clients) and the routes (everything on the second server) all serialise its answers.
"""

from __future__ import annotations

import base64
import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import AUTH, ServerProcess, server_env


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, ...]]:
    home: Path = tmp_path_factory.mktemp("parity")
    servers: list[ServerProcess] = []
    try:
        for fast in ("true", "false"):
            env = server_env(
                home,
                JWKIT_FAST_PATH=fast,
                JWKIT_SYNC_INTERVAL="0.2",
                JWKIT_PUBLIC_URL="https://issuer.example",
            )  # one issuer for both
            servers.append(ServerProcess(home, env).start())
        yield tuple(servers)
    finally:
        for server in servers:
            server.stop()


def _exchange(server: ServerProcess, raw: bytes) -> bytes:
    """One request on its own connection (``Connection: close``): the whole answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(raw)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
    return out


def _request(method: str, path: str, *fields: str, body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *fields]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return "\r\n".join([*lines, "Connection: close", "", ""]).encode() + body


def _without_date(answer: bytes) -> bytes:
    """``answer`` without its ``date``, and with Starlette's ``allow`` list sorted (it lists a
    set of methods, in an order that differs from process to process)."""
    answer = re.sub(rb"(?im)^date: [^\r]*\r\n", b"", answer)
    return re.sub(
        rb"(?im)^allow: ([^\r]*)",
        lambda m: b"allow: " + b", ".join(sorted(m.group(1).split(b", "))),
        answer,
    )


def _same_everywhere(pair: tuple[ServerProcess, ...], raw: bytes) -> bytes:
    fast, plain = (_without_date(_exchange(server, raw)) for server in pair)
    assert fast == plain, (raw, fast, plain)
    return fast


@pytest.fixture(scope="module")
def setup(pair: tuple[ServerProcess, ...]) -> dict[str, Any]:
    fast = pair[0]
    project = httpx.post(
        f"{fast.url}/api/v1/projects", json={"name": "parity"}, headers=AUTH
    ).json()
    client = httpx.post(
        f"{fast.url}/api/v1/projects/{project['id']}/clients",
        json={"name": "c", "scopes": ["read"]},
        headers=AUTH,
    ).json()
    path = f"/p/{project['id']}/.well-known/jwks.json"
    for server in pair:  # until the other replica has synced the new project
        for _ in range(100):
            if httpx.get(server.url + path).status_code == 200:
                break
        assert httpx.get(server.url + path).status_code == 200
    return {"project": project, "client": client}


def test_documents_answer_alike(pair: tuple[ServerProcess, ...], setup: dict[str, Any]) -> None:
    pid = setup["project"]["id"]
    for doc in ("jwks.json", "openid-configuration"):
        path = f"/p/{pid}/.well-known/{doc}"
        ok = _same_everywhere(pair, _request("GET", path))
        assert ok.startswith(b"HTTP/1.1 200 OK\r\n")
        etag = re.search(rb"(?im)^etag: ([^\r]*)", ok).group(1).decode()  # type: ignore[union-attr]
        head = _same_everywhere(pair, _request("HEAD", path))
        assert head == ok.split(b"\r\n\r\n")[0] + b"\r\n\r\n"  # GET's fields, no body
        unchanged = _same_everywhere(pair, _request("GET", path, f"If-None-Match: {etag}"))
        assert unchanged.startswith(b"HTTP/1.1 304 ") and unchanged.endswith(b"\r\n\r\n")
        assert _same_everywhere(pair, _request("GET", path, 'If-None-Match: "x"')) == ok
        assert _same_everywhere(pair, _request("GET", path + "?x=1")) == ok
        missing = _same_everywhere(pair, _request("GET", f"/p/proj_nope/.well-known/{doc}"))
        assert missing.startswith(b"HTTP/1.1 404 ") and b'"no such project"' in missing
        assert _same_everywhere(pair, _request("HEAD", f"/p/proj_nope/.well-known/{doc}")
                                ).startswith(b"HTTP/1.1 404 ")  # fmt: skip
        assert _same_everywhere(pair, _request("POST", path)).startswith(b"HTTP/1.1 405 ")
    for path in ("/healthz", "/readyz", "/nowhere"):
        _same_everywhere(pair, _request("GET", path))


def _basic(client_id: str, secret: str) -> str:
    return "Authorization: Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def test_token_endpoint_answers_alike(
    pair: tuple[ServerProcess, ...], setup: dict[str, Any]
) -> None:
    pid, client = setup["project"]["id"], setup["client"]
    path = f"/p/{pid}/oauth2/token"
    form = "Content-Type: application/x-www-form-urlencoded"
    good = _basic(client["client_id"], client["client_secret"])
    cases = [
        (path, [form, _basic(client["client_id"], "wrong")], b"grant_type=client_credentials"),
        (path, [form, good], b"grant_type=password"),
        (path, [form, good], b"grant_type=client_credentials&scope=admin"),
        (path, [form, good], b"grant_type=client_credentials&grant_type=x"),
        (path, [form, _basic("cli_unknown", "x")], b"grant_type=client_credentials"),
        (path, [form, _basic("c" * 100, "x")], b"grant_type=client_credentials"),
        (path, ["Content-Type: text/plain", good], b"grant_type=client_credentials"),
        (path, [form], b"grant_type=client_credentials&client_id=x"),
        ("/p/proj_nope/oauth2/token", [form, good], b"grant_type=client_credentials"),
    ]
    for _ in range(2):  # the second time every client is cached: the wire path answers
        for target, fields, body in cases:
            answer = _same_everywhere(pair, _request("POST", target, *fields, body=body))
            assert re.match(rb"HTTP/1\.1 (400|401|404) ", answer), answer
    for _ in range(2):
        issued = [_without_date(_exchange(server, _request(
            "POST", path, form, good, body=b"grant_type=client_credentials")))
            for server in pair]  # fmt: skip
        heads = [a.split(b"\r\n\r\n")[0] for a in issued]
        raw_bodies = [a.split(b"\r\n\r\n", 1)[1] for a in issued]
        for head, raw in zip(heads, raw_bodies, strict=True):
            assert b"content-length: %d\r\n" % len(raw) in head.lower() + b"\r\n"
        # Tokens differ in length (their jti and status-list index): compare the rest.
        heads = [re.sub(rb"(?im)^content-length: \d+", b"", h) for h in heads]
        bodies = [json.loads(raw) for raw in raw_bodies]
        assert heads[0] == heads[1] and heads[0].startswith(b"HTTP/1.1 200 OK")
        assert [list(b) for b in bodies] == [["access_token", "token_type", "expires_in",
                                              "scope"]] * 2  # fmt: skip
        assert {b["scope"] for b in bodies} == {"read"}


def test_status_lists_answer_alike(pair: tuple[ServerProcess, ...], setup: dict[str, Any]) -> None:
    """A Status List Token: the wire path's plain ``GET`` and the route's (a non-matching
    ``If-None-Match`` sends it there) write the same bytes; 404s alike on both servers."""
    pid, client = setup["project"]["id"], setup["client"]
    fast = pair[0]
    issued = httpx.post(
        f"{fast.url}/p/{pid}/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(client["client_id"], client["client_secret"]),
    )
    assert issued.status_code == 200, issued.text
    path = f"/p/{pid}/statuslists/1"
    for _ in range(100):  # the list is signed once its first index is handed out
        if httpx.get(fast.url + path).status_code == 200:
            break
    plain = _without_date(_exchange(fast, _request("GET", path)))
    routed = _without_date(_exchange(fast, _request("GET", path, 'If-None-Match: "x"')))
    assert plain.startswith(b"HTTP/1.1 200 OK\r\n") and plain == routed
    assert b"content-type: application/statuslist+jwt\r\n" in plain
    # documents.status_list_lifetime: stale only on error, for one ttl (JWKIT_STATUS_LIST_TTL)
    assert re.search(rb"(?m)^cache-control: public, max-age=(\d+), stale-if-error=\1\r$", plain)
    etag = re.search(rb"(?im)^etag: ([^\r]*)", plain).group(1).decode()  # type: ignore[union-attr]
    unchanged = _without_date(_exchange(fast, _request("GET", path, f"If-None-Match: {etag}")))
    assert unchanged.startswith(b"HTTP/1.1 304 ")
    head = _without_date(_exchange(fast, _request("HEAD", path)))
    assert head.split(b"\r\n\r\n")[0] == plain.split(b"\r\n\r\n")[0]
    for missing in (f"/p/{pid}/statuslists/999", f"/p/{pid}/statuslists/x"):
        answer = _same_everywhere(pair, _request("GET", missing))
        assert answer.startswith(b"HTTP/1.1 404 ") and b"no such status list" in answer
