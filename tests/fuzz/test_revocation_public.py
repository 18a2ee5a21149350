"""Hypothesis over the token-status endpoints of a real ``jwkit serve``: status lists, RFC 7009
revocation, RFC 7662 introspection and the ``/events`` stream (``test_public.py`` covers the
token endpoint and the documents, ``test_http.py`` the bytes of every path).

What must hold, besides no 5xx and no traceback in the server log:

* ``/statuslists/{n}``: 200 only for a list that exists, named by ASCII digits; 304 with no
  body on its ETag; 404 JSON otherwise.
* revocation (RFC 7009): a client that did not authenticate gets 401 ``invalid_client`` with a
  ``Basic`` challenge (§2.1, RFC 6749 §5.2); an authenticated client gets 200 for any token it
  may revoke and any token that is unknown, malformed, expired or not ours (§2.2); a valid token
  of another client is refused with 400 ``unauthorized_client``.
* introspection (RFC 7662): exactly ``{"active": false}`` for anything not active (§2.2).
* ``/events``: hostile ``Last-Event-ID`` and ``Accept`` get a stream or uvicorn's 400; a HEAD
  ends; streams opened and dropped in every way free their places (the listener count returns
  to zero: all ``events_max_listeners`` places can be taken again, one more is 503).
"""

from __future__ import annotations

import base64
import os
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jwkit.jose import jwt
from jwkit.jose.jwk import JWK

from .http import LiveService, parse_answers, parser_refused

EXAMPLES = int(os.environ.get("JWKIT_PUBLIC_FUZZ_EXAMPLES", "120"))
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
LISTENERS = 4


@dataclass
class Tokens:
    """The tokens and clients the fuzzer presents."""

    live: LiveService
    other_id: str  # a second client of the same project
    other_secret: str
    stranger_id: str  # a client of the HMAC project
    stranger_secret: str
    mine: str  # issued to live.client_id
    others: str  # issued to the second client
    minted: str  # minted by an admin (no client_id)
    expired: str
    foreign: str  # the HMAC project's
    forged: str  # signed by a key nobody knows, this project's claims
    status_path: str  # the path of the status list the tokens are in


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tokens]:
    live = LiveService.start(
        Path(tmp_path_factory.mktemp("fuzz-status")),
        JWKIT_EVENTS_MAX_LISTENERS=str(LISTENERS),
        JWKIT_EVENTS_HEARTBEAT="0.5",
        JWKIT_CLOCK_SKEW="0",
    )
    try:
        with live.server.api() as api:
            other = api.post(
                f"/api/v1/projects/{live.project}/clients", json={"name": "o", "scopes": ["read"]}
            ).json()
            stranger = api.post(
                f"/api/v1/projects/{live.hmac_project}/clients", json={"name": "s"}
            ).json()
            minted = api.post(f"/api/v1/projects/{live.project}/tokens", json={"sub": "m"}).json()
            expired = api.post(
                f"/api/v1/projects/{live.project}/tokens", json={"sub": "x", "ttl": 1}
            ).json()

        def token(project: str, client: tuple[str, str]) -> str:
            answer = httpx.post(
                f"{live.server.url}/p/{project}/oauth2/token",
                data={"grant_type": "client_credentials"},
                auth=client,
            )
            return str(answer.raise_for_status().json()["access_token"])

        mine = token(live.project, (live.client_id, live.client_secret))
        claims = jwt.decode_unverified(mine)[1]
        forged = jwt.encode(
            {**claims, "jti": "forged"}, JWK.generate("ES256"), headers={"typ": "at+jwt"}
        )
        uri = claims["status"]["status_list"]["uri"]
        yield Tokens(
            live,
            other["client_id"],
            other["client_secret"],
            stranger["client_id"],
            stranger["client_secret"],
            mine,
            token(live.project, (other["client_id"], other["client_secret"])),
            minted["access_token"],
            expired["access_token"],
            token(live.hmac_project, (stranger["client_id"], stranger["client_secret"])),
            forged,
            uri[uri.index("/p/") :],
        )
    finally:
        live.stop()
    log = live.server.log()
    assert "Traceback" not in log, log[-4000:]


@pytest.fixture(scope="module")
def http(tokens: Tokens) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=tokens.live.server.url, timeout=10) as client:
        yield client


def _basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


# -- RFC 7009 and RFC 7662 -------------------------------------------------------------------


@pytest.mark.timeout(600)
def test_revoke_and_introspect_answer_per_rfc_7009_and_7662(
    tokens: Tokens, http: httpx.Client
) -> None:
    live = tokens.live
    exp = jwt.decode_unverified(tokens.expired)[1]["exp"]
    while time.time() <= exp + 1:  # the server's clock is the machine's: wait it out
        time.sleep(0.2)
    me = (live.client_id, live.client_secret)
    # (who, Authorization, form credentials): who is "me", "other" (a client of the project),
    # or None (not an authenticated client of this project).
    auths = st.sampled_from(
        [
            ("me", _basic(*me), {}),
            ("me", None, {"client_id": me[0], "client_secret": me[1]}),
            ("other", _basic(tokens.other_id, tokens.other_secret), {}),
            (None, _basic(tokens.stranger_id, tokens.stranger_secret), {}),
            (None, _basic(me[0], "wrong"), {}),
            (None, None, {"client_id": me[0], "client_secret": "wrong"}),
            (None, None, {"client_id": me[0]}),
            (None, None, {}),
            (None, "Basic !!!", {}),
            (None, "Bearer " + tokens.mine, {}),
            (None, _basic("é" * 300, "\u2028"), {}),
            (None, "Basic " + base64.b64encode(b"\xff\xfe:\xed\xa0\x80").decode(), {}),
        ]
    )
    valid = {"mine": tokens.mine, "others": tokens.others, "minted": tokens.minted}
    invalid = {
        "expired": tokens.expired,
        "foreign": tokens.foreign,
        "forged": tokens.forged,
        "truncated": tokens.mine[:-3],
        "swapped": ".".join(reversed(tokens.mine.split("."))),
        "garbage": "a.b.c",
        "empty-ish": " ",
        "non-ascii": "ünïcødé.tökén.∞",
        "surrogate-escape": "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJcdWQ4MDAifQ.AAAA",
        "huge": "e" * 8000,
    }
    names = st.sampled_from([*valid, *invalid]) | st.text(max_size=40).map(lambda t: "text:" + t)
    hints = st.none() | st.sampled_from(["access_token", "refresh_token", "nope", ""])
    raws = st.none() | st.sampled_from(
        [b"token=%ED%A0%80", b"token=%ff", b"token=a&token=b", b"token", b"=", b"\x00" * 9]
    )
    content_types = st.sampled_from(
        ["application/x-www-form-urlencoded"] * 4 + ["application/json", "text/plain", ""]
    )
    projects = st.sampled_from([live.project] * 5 + ["nope"])
    seen: dict[str, int] = {}

    @FUZZ
    @given(
        endpoint=st.sampled_from(["revoke", "introspect"]),
        project=projects,
        auth=auths,
        name=names,
        hint=hints,
        raw=raws,
        content_type=content_types,
    )
    def run(
        endpoint: str,
        project: str,
        auth: tuple[str | None, str | None, dict[str, str]],
        name: str,
        hint: str | None,
        raw: bytes | None,
        content_type: str,
    ) -> None:
        who, authorization, credentials = auth
        token = name[5:] if name.startswith("text:") else {**valid, **invalid}[name]
        form = {"token": token, **credentials}
        if hint is not None:
            form["token_type_hint"] = hint
        body = raw if raw is not None else str(httpx.QueryParams(form)).encode()
        headers = {"content-type": content_type}
        if authorization is not None:
            headers["authorization"] = authorization
        try:
            answer = http.post(f"/p/{project}/oauth2/{endpoint}", content=body, headers=headers)
        except httpx.LocalProtocolError:
            return
        status = answer.status_code
        assert status < 500, answer.text
        if parser_refused(answer):
            return
        assert answer.headers["content-type"].startswith("application/json"), answer.headers
        out: dict[str, Any] = answer.json()
        if project == "nope":
            assert status == 404, answer.text
            return
        assert answer.headers.get("cache-control") == "no-store", answer.headers
        key = f"{endpoint} {status} {out.get('error', '')}"
        seen[key] = seen.get(key, 0) + 1
        if status != 200:
            assert status in (400, 401), answer.text
            assert out["error"] in {"invalid_request", "invalid_client", "unauthorized_client"}
            if status == 401:
                assert out["error"] == "invalid_client"
                assert answer.headers["www-authenticate"].startswith("Basic"), answer.headers
        well_formed = (
            raw is None
            and content_type == "application/x-www-form-urlencoded"
            and len(body) <= 8192
            and token != ""
            and not (authorization is not None and "client_secret" in form)
        )
        if not well_formed:
            return
        if who is None:  # RFC 7009 §2.1, RFC 7662 §2.1 (RFC 6749 §5.2)
            assert (status, out["error"]) == (401, "invalid_client"), answer.text
            return
        if endpoint == "revoke":
            own = (name, who) in (("mine", "me"), ("others", "other"))
            if name in valid and not own:
                assert (status, out["error"]) == (400, "unauthorized_client"), answer.text
            else:  # RFC 7009 §2.2: revoked, or unknown/invalid: 200 either way
                assert (status, out) == (200, {}), (name, answer.text)
            return
        assert status == 200, answer.text
        if name not in valid:  # RFC 7662 §2.2
            assert out == {"active": False}, (name, answer.text)
        elif out["active"]:
            assert out["iss"] == f"{live.server.url}/p/{live.project}"
            assert out["exp"] > time.time() - 5 and out["token_type"] == "Bearer"
            assert name == "minted" or out["client_id"] in (me[0], tokens.other_id)
        else:
            assert out == {"active": False}

    run()
    # The strategy reached every kind of answer (a fuzzer that only saw refusals proves little).
    assert any(k.startswith("revoke 200") for k in seen), seen
    assert any(k.startswith("introspect 200") for k in seen), seen
    assert any(k.endswith("invalid_client") for k in seen), seen


def test_a_revoked_token_is_inactive_and_revoking_it_again_is_200(tokens: Tokens) -> None:
    live = tokens.live
    url = f"{live.server.url}/p/{live.project}/oauth2"
    me = (live.client_id, live.client_secret)
    fresh = httpx.post(
        f"{live.server.url}/p/{live.project}/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=me,
    ).json()["access_token"]
    assert httpx.post(f"{url}/introspect", data={"token": fresh}, auth=me).json()["active"]
    for _ in range(2):
        answer = httpx.post(f"{url}/revoke", data={"token": fresh}, auth=me)
        assert (answer.status_code, answer.json()) == (200, {})
    gone = httpx.post(f"{url}/introspect", data={"token": fresh}, auth=me)
    assert gone.json() == {"active": False}


def test_an_expired_token_is_invalid_to_revoke_whoever_presents_it(tokens: Tokens) -> None:
    """Found by this fuzzer: an expired token not issued to the caller was refused with 400
    ``unauthorized_client``; expired (past the clock skew, here 0) it is invalid: 200 (RFC 7009
    §2.2), as the module's docstring always said."""
    live = tokens.live
    exp = jwt.decode_unverified(tokens.expired)[1]["exp"]
    while time.time() <= exp + 1:  # the server's clock is the machine's: wait it out
        time.sleep(0.2)
    url = f"{live.server.url}/p/{live.project}/oauth2"
    for auth in ((live.client_id, live.client_secret), (tokens.other_id, tokens.other_secret)):
        answer = httpx.post(f"{url}/revoke", data={"token": tokens.expired}, auth=auth)
        assert (answer.status_code, answer.json()) == (200, {}), answer.text
        seen = httpx.post(f"{url}/introspect", data={"token": tokens.expired}, auth=auth)
        assert seen.json() == {"active": False}
    # A live token of another client is still refused (RFC 7009 §2.1).
    other = httpx.post(
        f"{url}/revoke", data={"token": tokens.others}, auth=(live.client_id, live.client_secret)
    )
    assert (other.status_code, other.json()["error"]) == (400, "unauthorized_client")


# -- status lists ----------------------------------------------------------------------------


@pytest.mark.timeout(600)
def test_status_lists_answer_200_304_or_404(tokens: Tokens, http: httpx.Client) -> None:
    base, number = tokens.status_path.rsplit("/", 1)
    etag = http.get(tokens.status_path).headers["etag"]
    numbers = st.sampled_from(
        [
            number,
            "0" + number,
            "0",
            "99999",
            "9" * 10,
            "-1",
            "\u00b2",
            "\u0661",
            "\uff11",
            "1.0",
            "%00",
            "",
        ]
    ) | st.text(max_size=12)

    @FUZZ
    @given(
        name=numbers,
        method=st.sampled_from(["GET", "GET", "HEAD", "POST", "DELETE"]),
        inm=st.none() | st.sampled_from([etag, "*", '"x"', "W/" + etag]) | st.text(max_size=20),
        project=st.sampled_from([base, "/p/nope/statuslists", base.upper()]),
    )
    def run(name: str, method: str, inm: str | None, project: str) -> None:
        headers = {} if inm is None else {"if-none-match": inm}
        try:
            # One path segment, as sent ("1#" is not list 1 with a fragment).
            answer = http.request(method, f"{project}/{quote(name, safe='')}", headers=headers)
        except (httpx.LocalProtocolError, httpx.InvalidURL, UnicodeEncodeError):
            return
        status = answer.status_code
        assert status < 500, (name, answer.text)
        if parser_refused(answer):
            return
        if status == 307:  # "n/" (decoded from n%2F): Starlette's redirect to "n", same origin
            assert answer.headers["location"].startswith(tokens.live.server.url), answer.headers
            return
        assert status in (200, 304, 404, 405, 400), (name, status, answer.text)
        canonical = name.isascii() and name.isdigit() and int(name) == int(number)
        if status in (200, 304):
            assert project == base and canonical, (project, name, status)
            assert answer.headers["etag"] == etag
            if status == 304 or method == "HEAD":
                assert answer.content == b""
            else:
                assert answer.headers["content-type"] == "application/statuslist+jwt"
                assert answer.content.count(b".") == 2
        elif status == 404 and method != "HEAD":
            assert answer.json()["error"] == "not_found"

    run()


@pytest.mark.parametrize("number", ["%C2%B2", "%D9%A1", "%EF%BC%91"])
def test_a_status_list_number_is_ascii_digits_only(tokens: Tokens, number: str) -> None:
    """Found by this fuzzer: SUPERSCRIPT TWO is ``isdigit()`` but not ``int()`` (a 500), and
    ARABIC-INDIC DIGIT ONE or FULLWIDTH DIGIT ONE named list 1 under a second URL."""
    base = tokens.status_path.rsplit("/", 1)[0]
    answer = httpx.get(f"{tokens.live.server.url}{base}/{number}")
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"] == "not_found"


# -- /events ---------------------------------------------------------------------------------


def _events_request(project: str, *lines: bytes, method: bytes = b"GET") -> bytes:
    head = [method + b" /p/" + project.encode() + b"/events HTTP/1.1", b"Host: localhost"]
    return b"\r\n".join([*head, *lines]) + b"\r\n\r\n"


def _read_head(sock: socket.socket) -> bytes:
    """Bytes up to the end of the first response's headers (or what came before the close)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def _capacity(live: LiveService) -> bool:
    """Whether every listener place is free: LISTENERS streams open, one more is 503."""
    socks = []
    try:
        for _ in range(LISTENERS):
            sock = socket.create_connection(("127.0.0.1", live.server.port), timeout=10)
            socks.append(sock)
            sock.sendall(_events_request(live.project))
            if not _read_head(sock).startswith(b"HTTP/1.1 200 "):
                return False
        extra = httpx.get(f"{live.server.url}/p/{live.project}/events", timeout=10)
        assert extra.status_code == 503 and extra.headers["retry-after"], extra.text
        return True
    finally:
        for sock in socks:
            sock.close()


def _capacity_comes_back(live: LiveService) -> None:
    # The server learns of a drop when its socket reports it: poll, with a deadline.
    deadline = time.monotonic() + 15
    while not _capacity(live):
        assert time.monotonic() < deadline, "dropped /events listeners were never released"
        time.sleep(0.1)


@pytest.mark.timeout(600)
def test_events_take_hostile_headers_and_free_every_place(tokens: Tokens) -> None:
    live = tokens.live
    values = st.binary(max_size=60) | st.sampled_from(
        [b"", b"0", b"-1", b"\xff" * 40, b"9" * 4000, "é€".encode(), b"\x00\x01"]
    )

    @FUZZ
    @given(
        last_event_id=st.none() | values,
        accept=st.none()
        | st.sampled_from([b"text/event-stream", b"text/html", b"*/*", b"", b"\xe9"])
        | values,
        method=st.sampled_from([b"GET", b"GET", b"HEAD"]),
        project=st.sampled_from([live.project, live.project, "nope"]),
    )
    def run(last_event_id: bytes | None, accept: bytes | None, method: bytes, project: str) -> None:
        lines = []
        if last_event_id is not None:
            lines.append(b"Last-Event-ID: " + last_event_id)
        if accept is not None:
            lines.append(b"Accept: " + accept)
        with socket.create_connection(("127.0.0.1", live.server.port), timeout=10) as sock:
            sock.sendall(_events_request(project, *lines, method=method))
            data = _read_head(sock)
            status = int(data[9:12])
            assert status < 500, data
            if status == 400 and b"connection: close" in data.lower():
                return  # uvicorn's parser refused a control byte (test_http.py's rules)
            if project == "nope":
                assert status == 404, data
            elif method == b"HEAD":
                # A HEAD ends: the connection answers the next request.
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
                more = _read_head(sock)
                assert more.startswith(b"HTTP/1.1 200 "), (data, more)
            else:
                assert status in (200, 503), data
                if status == 200:
                    assert b"text/event-stream" in data.lower()

    run()
    _capacity_comes_back(live)


def test_streams_opened_and_dropped_in_every_way_leak_nothing(tokens: Tokens) -> None:
    live = tokens.live
    request = _events_request(live.project)
    for round_ in range(25):
        for how in ("close", "rst", "half-close", "mid-request", "after-head"):
            sock = socket.create_connection(("127.0.0.1", live.server.port), timeout=10)
            if how == "mid-request":
                sock.sendall(request[: 10 + round_])
            else:
                sock.sendall(request)
            if how == "after-head":
                _read_head(sock)
            elif how == "half-close":
                sock.shutdown(socket.SHUT_WR)
            elif how == "rst":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
    _capacity_comes_back(live)
    assert live.healthy()


def test_a_head_of_events_ends_and_holds_no_place(tokens: Tokens) -> None:
    """Found by this fuzzer: ``HEAD /events`` was answered with a stream that never ended,
    holding the connection (a pipelined request was never answered) and a listener's place."""
    live = tokens.live
    socks = []
    try:
        for _ in range(LISTENERS + 2):
            sock = socket.create_connection(("127.0.0.1", live.server.port), timeout=10)
            socks.append(sock)
            sock.sendall(
                _events_request(live.project, method=b"HEAD")
                + b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
            )
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
            answers = parse_answers(data, heads=1)
            assert [a.status for a in answers] == [200, 200], data
            assert answers[0].headers[b"content-type"].startswith(b"text/event-stream")
            assert answers[0].body == b""
        _capacity_comes_back(live)  # the HEADs on still-open sockets took no place
    finally:
        for sock in socks:
            sock.close()
