"""No 500 from input: CSRF values, login fields and tokens an attacker or a typo can send.

The console's CSRF checks compare secrets in constant time; ``hmac.compare_digest`` refuses
``str`` with non-ASCII characters, which used to escape as a 500. The token inspector decodes
anything pasted into it, and its JSON answer must survive what JSON in a token can hold but
UTF-8 or strict JSON output cannot (lone surrogates, ``1e999``, deep nesting). Each case runs
through the real app; the header cases also over a real ``jwkit serve`` socket, byte for byte.
"""

from __future__ import annotations

import base64
import json
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote_from_bytes

import httpx
import pytest

from jwkit.service.http.app import create_app
from jwkit.service.http.console.pages import LOGIN_CSRF_COOKIE
from jwkit.service.http.inspect import MAX_SHOWN_DEPTH
from jwkit.service.runtime import Service

from .conftest import ADMIN_PASSWORD, AUTH, MASTER_KEY, SyncClient, make_settings

FORM = "application/x-www-form-urlencoded"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _form(**fields: bytes) -> bytes:
    """A urlencoded body from raw field bytes (not necessarily UTF-8)."""
    return b"&".join(f"{k}={quote_from_bytes(v)}".encode() for k, v in fields.items())


# -- the token inspector ------------------------------------------------------------------------

_DEEP = b'{"a":' + b"[" * 900 + b"]" * 900 + b"}"
INSPECT_CASES: list[tuple[str, bytes, bytes]] = [
    ("exp_1e999", b'{"alg":"HS256"}', b'{"exp": 1e999}'),
    ("exp_minus_1e999", b'{"alg":"HS256"}', b'{"exp": -1e999}'),
    ("time_claims_infinite", b'{"alg":"HS256"}', b'{"exp": 1, "nbf": 1e999, "iat": -1e999}'),
    ("exp_int_400_digits", b'{"alg":"HS256"}', b'{"exp": 1' + b"0" * 400 + b"}"),
    ("exp_int_5000_digits", b'{"alg":"HS256"}', b'{"exp": 1' + b"0" * 5000 + b"}"),
    ("exp_1e308", b'{"alg":"HS256"}', b'{"exp": 1e308, "nbf": 1e308, "iat": 1e308}'),
    ("deep_nesting_900", b'{"alg":"HS256"}', _DEEP),
    ("deep_nesting_4000", b'{"alg":"HS256"}', b"[" * 4000 + b"]" * 4000),
    ("deep_objects_800", b'{"alg":"HS256"}', b'{"a":' * 800 + b"1" + b"}" * 800),
    ("lone_surrogate_sub", b'{"alg":"HS256"}', b'{"sub": "\\ud800"}'),
    ("lone_surrogate_key", b'{"alg":"HS256"}', b'{"\\udfff": 1, "exp": 1}'),
    ("lone_surrogate_iss_aud", b'{"alg":"HS256"}', b'{"iss": "\\ud800", "aud": ["\\udc00"]}'),
    ("lone_surrogate_exp", b'{"alg":"HS256"}', b'{"exp": "\\ud800"}'),
    ("lone_surrogate_kid", b'{"alg":"HS256","kid":"\\ud800"}', b'{"exp": 1}'),
    ("lone_surrogate_alg", b'{"alg":"\\ud800"}', b'{"exp": 1}'),
    ("header_1e999", b'{"alg":"HS256","x":1e999}', b'{"exp": 1}'),
    ("nul_in_claims", b'{"alg":"HS256"}', b'{"sub": "\\u0000", "iss": "a\\u0000b"}'),
    ("invalid_utf8_payload", b'{"alg":"HS256"}', b'{"sub": "\xff\xfe"}'),
    ("payload_not_object", b'{"alg":"HS256"}', b"[1e999]"),
    ("header_not_object", b'"\\ud800"', b"{}"),
]


def _inspect(client: SyncClient, project: dict[str, Any], token: str) -> dict[str, Any]:
    r = client.post(
        f"/api/v1/projects/{project['id']}/tokens/inspect",
        content=json.dumps({"token": token}),
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = json.loads(r.content.decode("utf-8"))  # strict UTF-8, real JSON
    assert body["valid"] is False
    return body


@pytest.mark.parametrize(
    ("header", "payload"), [c[1:] for c in INSPECT_CASES], ids=[c[0] for c in INSPECT_CASES]
)
def test_inspector_answers_every_decodable_oddity(
    client: SyncClient, project: dict[str, Any], header: bytes, payload: bytes
) -> None:
    body = _inspect(client, project, f"{_b64(header)}.{_b64(payload)}.{_b64(b'sig')}")
    text = json.dumps(body)
    assert "Infinity" not in text and "NaN" not in text  # strict JSON out
    if body["format"]["ok"]:
        assert {c["claim"] for c in body["checks"]} >= {"exp", "iss", "aud"}


def test_inspector_shows_what_it_can(client: SyncClient, project: dict[str, Any]) -> None:
    """The oddities are shown for what they are, not dropped."""
    token = (
        _b64(b'{"alg":"HS256","kid":"k1"}')
        + "."
        + _b64(b'{"exp": 1e999, "sub": "xy", "a": ' + b"[" * 40 + b"]" * 40 + b"}")
        + ".c2ln"
    )
    body = _inspect(client, project, token)
    assert body["payload"]["exp"] == "inf" and body["payload"]["sub"] == "xy"
    exp = next(c for c in body["checks"] if c["claim"] == "exp")
    assert exp["ok"] is False
    nested, levels = body["payload"]["a"], 0
    while isinstance(nested, list):
        nested, levels = nested[0], levels + 1
    assert nested == f"(nested deeper than {MAX_SHOWN_DEPTH} levels, not shown)"
    assert MAX_SHOWN_DEPTH - 4 <= levels < MAX_SHOWN_DEPTH  # counted from the answer's root


@pytest.mark.parametrize(
    ("header", "payload"),
    [
        (b'{"alg":"HS256","kid":"\\ud800"}', b'{"sub": "x"}'),
        (b'{"alg":"HS256"}', b'{"sub": "x\\ud800y"}'),
    ],
    ids=["header", "claims"],
)
def test_inspector_names_a_lone_surrogate_as_malformed(
    client: SyncClient, project: dict[str, Any], header: bytes, payload: bytes
) -> None:
    """The JOSE core refuses lone surrogates in every path; the inspector says so (no 500)."""
    body = _inspect(client, project, f"{_b64(header)}.{_b64(payload)}.c2ln")
    assert body["format"]["ok"] is False
    assert "Infinity" not in json.dumps(body)


@pytest.mark.parametrize(
    "token",
    [
        "é.é.é",
        "\x00",
        "a" * 65536,
        "..",
        " . . ",
        "ey\u200b.ey.ey",
        "eyJhbGciOiJIUzI1NiJ9.\U0001f600.x",
    ],
    ids=["non_ascii", "nul", "max_length", "empty_parts", "spaces", "zero_width", "emoji"],
)
def test_inspector_answers_every_pasted_string(
    client: SyncClient, project: dict[str, Any], token: str
) -> None:
    body = _inspect(client, project, token)
    assert body["format"]["ok"] is False


@pytest.mark.parametrize(
    "token",
    ["\ud800", "\ud800.\udc00.x", "a" * 65537],
    ids=["surrogate", "surrogates_3_parts", "too_long"],
)
def test_inspector_refuses_a_body_that_is_not_a_token_string(
    client: SyncClient, project: dict[str, Any], token: str
) -> None:
    """A lone surrogate cannot be UTF-8 text: the request is invalid (422), not a crash."""
    r = client.post(
        f"/api/v1/projects/{project['id']}/tokens/inspect",
        content=json.dumps({"token": token}),
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "validation_error"


# -- CSRF values and login fields ---------------------------------------------------------------

ODD_VALUES = [
    pytest.param("é".encode(), id="utf8_e_acute"),
    pytest.param(b"\xe9", id="latin1_byte"),
    pytest.param(b"\xed\xa0\x80", id="utf8_encoded_surrogate"),
    pytest.param(b"\xff" * 300, id="invalid_utf8"),
    pytest.param("日本".encode() * 500, id="long_cjk"),
    pytest.param(b"\x00", id="nul"),
    pytest.param(b"", id="empty"),
]


def _login_form(client: SyncClient, *, cookie: str, **fields: bytes) -> httpx.Response:
    return client.post(
        "/console/login",
        content=_form(**fields),
        headers={"Content-Type": FORM, "Cookie": f"{LOGIN_CSRF_COOKIE}={cookie}"},
    )


@pytest.mark.parametrize("value", ODD_VALUES)
def test_login_csrf_field_of_any_bytes_is_a_403(client: SyncClient, value: bytes) -> None:
    r = _login_form(client, cookie="abc", username=b"admin", password=b"x", csrf_token=value)
    assert r.status_code == 403, r.text
    assert "The login form expired" in r.text


@pytest.mark.parametrize("value", ODD_VALUES)
def test_login_user_name_and_password_of_any_bytes(client: SyncClient, value: bytes) -> None:
    token = secrets.token_urlsafe(16)
    for fields in (
        {"username": value, "password": b"x"},
        {"username": b"admin", "password": value},
        {"username": value + b"admin", "password": ADMIN_PASSWORD.encode()},
    ):
        r = _login_form(client, cookie=token, csrf_token=token.encode(), **fields)
        if fields["username"] == b"admin" and fields["password"] == ADMIN_PASSWORD.encode():
            assert r.status_code == 303, r.text  # value was empty: the real login
        else:
            assert r.status_code in (401, 429), r.text


def _session(client: SyncClient) -> tuple[str, str]:
    token = secrets.token_urlsafe(16)
    r = _login_form(
        client,
        cookie=token,
        csrf_token=token.encode(),
        username=b"admin",
        password=ADMIN_PASSWORD.encode(),
    )
    assert r.status_code == 303, r.text
    session = r.cookies["jwkit_session"]
    page = client.get("/console/projects", headers={"Cookie": f"jwkit_session={session}"})
    csrf = page.text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    return session, csrf


@pytest.mark.parametrize("value", ODD_VALUES)
def test_logout_csrf_field_of_any_bytes_is_a_403(client: SyncClient, value: bytes) -> None:
    session, csrf = _session(client)
    r = client.post(
        "/console/logout",
        content=_form(csrf_token=value),
        headers={"Content-Type": FORM, "Cookie": f"jwkit_session={session}"},
    )
    assert r.status_code == 403, r.text
    assert "CSRF" in r.text
    still = client.get("/console/projects", headers={"Cookie": f"jwkit_session={session}"})
    assert still.status_code == 200  # the session was not ended
    ok = client.post(
        "/console/logout",
        content=_form(csrf_token=csrf.encode()),
        headers={"Content-Type": FORM, "Cookie": f"jwkit_session={session}"},
    )
    assert ok.status_code == 303


# -- the same over a real socket: header bytes no HTTP client library would send ----------------


def _raw(port: int, method: str, path: str, headers: list[bytes], body: bytes = b"") -> int:
    head = [
        f"{method} {path} HTTP/1.1".encode(),
        b"Host: 127.0.0.1",
        b"Connection: close",
        f"Content-Length: {len(body)}".encode(),
        *headers,
    ]
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"\r\n".join(head) + b"\r\n\r\n" + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1])


RAW_HEADER_VALUES = [b"\xe9", "é".encode(), b"\xff" * 64, "\U0001d4b3".encode(), b"abc\x80"]


def test_non_ascii_csrf_headers_and_cookies_over_a_real_server(spawn: Any) -> None:
    server = spawn()
    with httpx.Client(base_url=server.url, timeout=30) as http:
        token = secrets.token_urlsafe(16)
        login = http.post(
            "/console/login",
            data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": token},
            headers={"Cookie": f"{LOGIN_CSRF_COOKIE}={token}"},
        )
        assert login.status_code == 303
        session = login.cookies["jwkit_session"].encode()
    cookie = b"Cookie: jwkit_session=" + session
    form_type = b"Content-Type: " + FORM.encode()
    for value in RAW_HEADER_VALUES:
        cases = [
            # The admin API with a session cookie: the CSRF header decides (403, never 500).
            (
                "POST",
                "/api/v1/projects",
                [cookie, b"X-CSRF-Token: " + value, b"Content-Type: application/json"],
                b'{"name": "x"}',
                403,
            ),
            # The login form's CSRF cookie of any bytes against a field of any bytes.
            (
                "POST",
                "/console/login",
                [LOGIN_CSRF_COOKIE.encode().join([b"Cookie: ", b"="]) + value, form_type],
                _form(username=b"admin", password=b"x", csrf_token=value),
                403,
            ),
            # Logout with a CSRF field of any bytes, with a real session and with a session
            # cookie of any bytes (no session: back to the login page).
            ("POST", "/console/logout", [cookie, form_type], _form(csrf_token=value), 403),
            (
                "POST",
                "/console/logout",
                [b"Cookie: jwkit_session=" + value, form_type],
                _form(csrf_token=value),
                303,
            ),
            # An admin token of any bytes is just a wrong token.
            ("GET", "/api/v1/projects", [b"Authorization: Bearer " + value], b"", 401),
        ]
        for method, path, headers, body, expected in cases:
            assert _raw(server.port, method, path, headers, body) == expected, (path, value)
    assert "Traceback" not in server.log()


# -- a NUL anywhere: PostgreSQL text cannot hold one ------------------------------------------

NUL_GETS = [
    "/api/v1/audit/events?actor=%00",
    "/api/v1/audit/events?project_id=%00",
    "/api/v1/audit/events?action=a%00",
    "/api/v1/audit/events?kid=a%00",
    "/api/v1/projects/%00",
    "/api/v1/projects/a%00b/keys",
    "/api/v1/projects/a%00/clients",
    "/console/audit?actor=%00",
    "/console/audit?project_id=%00&kid=%00",
    "/console/projects/%00",
    "/console/projects/%00/keys",
    "/console/projects/%00/tokens",
    "/console/projects/%00/clients",
    "/p/%00/.well-known/jwks.json",
    "/p/%00/.well-known/openid-configuration",
]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SyncClient]:
    """An app over SQLite, or over the suite's real PostgreSQL."""
    overrides: dict[str, Any] = {}
    if request.param == "postgres":
        overrides = {"database_url": request.getfixturevalue("pg_url"), "master_key": MASTER_KEY}
    service = Service.open(make_settings(tmp_path / "home", **overrides))
    client = SyncClient(create_app(service.settings, service=service, background=False))
    try:
        yield client
    finally:
        client.close()
        service.close()


def test_a_nul_in_any_parameter_is_a_client_error(any_db: SyncClient) -> None:
    """A NUL never matches a stored value; PostgreSQL refuses even to compare it (DataError):
    the answer is 400 or 404 (or, for a filter on SQLite, no match), never 500."""
    session, _csrf = _session(any_db)
    cookie = {"Cookie": f"jwkit_session={session}"}
    for url in NUL_GETS:
        r = any_db.get(url, headers=AUTH if url.startswith("/api") else cookie)
        assert r.status_code in (400, 404) or (r.status_code == 200 and "audit" in url), (
            url,
            r.status_code,
            r.text,
        )
    bodies = [
        ("/api/v1/projects", {"name": "a\x00b"}),
        ("/api/v1/projects/%00/tokens/inspect", {"token": "a.b.c"}),
        ("/api/v1/projects/%00/keys", {"mode": "next"}),
    ]
    for url, body in bodies:
        r = any_db.post(url, json=body, headers=AUTH)
        assert r.status_code in (201, 400, 404, 422), (url, r.status_code, r.text)
    token = any_db.post(
        "/p/%00/oauth2/token",
        content=b"grant_type=client_credentials&client_id=%00&client_secret=%00",
        headers={"Content-Type": FORM},
    )
    assert token.status_code in (400, 401, 404), token.text
    for user in ("ad\x00min", "\x00"):
        r = _login_form(any_db, cookie="t", csrf_token=b"t", username=user.encode(), password=b"x")
        assert r.status_code == 401  # a name no one has, counted like any other
