"""Shared fixtures for the framework integrations: keys, tokens, verifiers, servers.

Every framework test checks the same five answers (and the scope checks) with
:func:`expect`, so the frameworks cannot drift apart.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

# Starlette 1.x warns at import that its TestClient would rather run on "httpx2"; the
# TestClient works with httpx, which is what jwkit depends on. Import it once, quietly.
from starlette.exceptions import StarletteDeprecationWarning

from jwkit import JWK
from jwkit.jose import jwt
from jwkit.verify import Verifier

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    import starlette.testclient  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
REALM = "api"

# the five answers, as (status, body) with the default texts
NO_TOKEN = (401, {"error": "No token"})
INVALID = (401, {"error": "Invalid or expired token"})
FORBIDDEN = (403, {"error": "Insufficient scope"})
UNAVAILABLE = (503, {"error": "Authentication temporarily unavailable"})


@dataclass(frozen=True)
class Answer:
    """A response reduced to what the integrations promise, whatever the test client."""

    status: int
    headers: Mapping[str, str]  # lower-case names
    body: Any


def answer(response: Any) -> Answer:
    """Normalize an httpx, Starlette, Flask or Django test response."""
    status = getattr(response, "status_code", None)
    headers = {k.lower(): v for k, v in response.headers.items()}
    raw = response.content if hasattr(response, "content") else response.get_data()
    if isinstance(raw, str):
        raw = raw.encode()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = raw
    return Answer(int(status), headers, body)


def expect(response: Any, kind: str, code: str | None = None, scope: str | None = None) -> Answer:
    """Assert one of the documented answers: ok, no_token, invalid, forbidden, unavailable."""
    a = answer(response)
    www = a.headers.get("www-authenticate")
    if kind == "ok":
        assert a.status == 200, a
        assert www is None
    elif kind == "no_token":
        assert (a.status, a.body) == NO_TOKEN, a
        assert www == f'Bearer realm="{REALM}"'
        assert a.headers["content-type"].startswith("application/json")
    elif kind == "invalid":
        assert (a.status, a.body) == INVALID, a
        assert www == (
            f'Bearer realm="{REALM}", error="invalid_token", error_description="{code}"'
        ), www
        assert a.headers["content-type"].startswith("application/json")
    elif kind == "forbidden":
        assert (a.status, a.body) == FORBIDDEN, a
        assert www == (
            f'Bearer realm="{REALM}", error="insufficient_scope", '
            f'error_description="insufficient_scope", scope="{scope}"'
        ), www
    elif kind == "unavailable":
        assert (a.status, a.body) == UNAVAILABLE, a
        assert www is None
    else:  # pragma: no cover
        raise AssertionError(kind)
    return a


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# -- keys and tokens -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def signing_key() -> JWK:
    return JWK.generate("ES256")


@pytest.fixture(scope="session")
def jwk_file(signing_key: JWK, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "ec-p256-public.json"
    path.write_text(json.dumps(signing_key.public().to_dict()))
    return path


#: The aud of every test token; the example apps get it as JWKIT_EXAMPLE_AUDIENCE.
AUDIENCE = "https://api.example"


class Tokens:
    """Tokens for every case, signed on demand."""

    def __init__(self, key: JWK) -> None:
        self.key = key

    def make(self, key: JWK | None = None, **claims: Any) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {"sub": "alice", "aud": AUDIENCE, "iat": now, "exp": now + 600}
        payload.update(claims)
        return jwt.encode(payload, key or self.key)

    @property
    def reader(self) -> str:
        return self.make(scope="read")

    @property
    def admin(self) -> str:
        return self.make(scope="read admin")

    @property
    def expired(self) -> str:
        now = int(time.time())
        return self.make(scope="read admin", iat=now - 7200, exp=now - 3600)

    @property
    def forged(self) -> str:
        # same kid, another key: the signature cannot verify
        other = JWK.generate("ES256", kid=self.key.kid)
        return self.make(other, scope="read admin")


@pytest.fixture(scope="session")
def tokens(signing_key: JWK) -> Tokens:
    return Tokens(signing_key)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def verifier(signing_key: JWK) -> Verifier:
    return Verifier.from_jwk(signing_key.public().to_dict(), audience=None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def dead_url() -> str:
    """A JWKS URL on a 127.0.0.1 port nothing listens on."""
    return f"http://127.0.0.1:{free_port()}/.well-known/jwks.json"


@pytest.fixture
def down_verifier(dead_url: str) -> Verifier:
    return Verifier.from_jwks_url(dead_url, allow_insecure_http=True, timeout=2.0, audience=None)


# -- a real local JWKS server --------------------------------------------------------------


class _JWKSHandler(BaseHTTPRequestHandler):
    server: _JWKSServer

    def do_GET(self) -> None:
        status, body = self.server.answer
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _JWKSServer(ThreadingHTTPServer):
    daemon_threads = True
    answer: tuple[int, bytes]


@contextlib.contextmanager
def jwks_server(status: int, body: bytes) -> Iterator[str]:
    server = _JWKSServer(("127.0.0.1", 0), _JWKSHandler)
    server.answer = (status, body)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def jwks_url(signing_key: JWK) -> Iterator[str]:
    body = json.dumps({"keys": [signing_key.public().to_dict()]}).encode()
    with jwks_server(200, body) as url:
        yield url


@pytest.fixture
def broken_jwks_url() -> Iterator[str]:
    """A JWKS URL whose server answers 500."""
    with jwks_server(500, b'{"error": "boom"}') as url:
        yield url


# -- real server processes -----------------------------------------------------------------


@contextlib.contextmanager
def server_process(args: list[str], port: int, env: Mapping[str, str]) -> Iterator[str]:
    """Run a server in a subprocess until it accepts connections; yield its base URL."""
    full_env = {**os.environ, "JWKIT_EXAMPLE_AUDIENCE": AUDIENCE, **env, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                raise AssertionError(f"server exited with {proc.returncode}:\n{out}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("server did not start in 30 s") from None
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
            proc.wait(5)
        if proc.stdout:
            proc.stdout.close()


def check_five(base: str, tokens: Tokens, *, me: str = "/me", admin: str = "/admin") -> None:
    """The documented answers through a real server, with httpx."""
    with httpx.Client(base_url=base, timeout=10) as client:
        expect(client.get(me), "no_token")
        expect(client.get(me, headers={"Authorization": "Basic YTpi"}), "no_token")
        expect(client.get(me, headers=bearer("not-a-jwt")), "invalid", "malformed")
        expect(client.get(me, headers=bearer(tokens.expired)), "invalid", "expired")
        expect(client.get(me, headers=bearer(tokens.forged)), "invalid", "invalid_signature")
        ok = expect(client.get(me, headers=bearer(tokens.reader)), "ok")
        assert ok.body["sub"] == "alice"
        expect(client.get(admin, headers=bearer(tokens.reader)), "forbidden", scope="admin")
        expect(client.get(admin, headers=bearer(tokens.admin)), "ok")
