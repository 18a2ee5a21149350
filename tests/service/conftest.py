"""Fixtures for the key service tests: real SQLite files, a real PostgreSQL, real servers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from jwkit.service.http.app import create_app
from jwkit.service.runtime import Service
from jwkit.service.settings import Settings
from tests.support.postgres import PostgresServer, fresh_database, postgres_server  # noqa: F401

ADMIN_TOKEN = "test-admin-token-0123456789abcdef"
ADMIN_PASSWORD = "correct horse battery staple"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
MASTER_KEY = "11" * 32


class FakeClock:
    """Integer Unix seconds that tests move forward by hand."""

    def __init__(self) -> None:
        self.now = int(time.time())

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: int) -> None:
        self.now += seconds


class SyncClient:
    """httpx over the ASGI app, driven from sync tests through a private event loop."""

    def __init__(self, app: Any, base_url: str = "http://testserver") -> None:
        self._loop = asyncio.new_event_loop()
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        self._client = httpx.AsyncClient(transport=transport, base_url=base_url)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self._loop.run_until_complete(self._client.request(method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)

    def close(self) -> None:
        self._loop.run_until_complete(self._client.aclose())
        self._loop.run_until_complete(self._loop.shutdown_default_executor())
        self._loop.close()


def make_settings(home: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "home": home,
        "public_url": "http://testserver",
        "admin_token": ADMIN_TOKEN,
        "admin_password": ADMIN_PASSWORD,
        "scheduler_interval": 0,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "home")


@pytest.fixture
def service(settings: Settings, clock: FakeClock) -> Iterator[Service]:
    svc = Service.open(settings, clock=clock)
    try:
        yield svc
    finally:
        svc.close()


@pytest.fixture
def client(service: Service) -> Iterator[SyncClient]:
    app = create_app(service.settings, service=service, background=False)
    c = SyncClient(app)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def project(client: SyncClient) -> dict[str, Any]:
    r = client.post("/api/v1/projects", json={"name": "demo"}, headers=AUTH)
    assert r.status_code == 201, r.text
    return dict(r.json())


@pytest.fixture
def oauth_client(client: SyncClient, project: dict[str, Any]) -> dict[str, Any]:
    r = client.post(
        f"/api/v1/projects/{project['id']}/clients",
        json={"name": "backend", "scopes": ["read", "write"]},
        headers=AUTH,
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


# -- real server processes ---------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    """One ``jwkit serve`` subprocess."""

    home: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> ServerProcess:
        log = open(self.home / f"server-{self.port}.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jwkit.cli", "serve", "--port", str(self.port)],
            cwd=self.home, env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not start:\n{self.log()}")

    def log(self) -> str:
        return (self.home / f"server-{self.port}.log").read_text(errors="replace")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def server_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JWKIT_")}
    env.update(
        JWKIT_HOME=str(home / ".jwkit"),
        JWKIT_ADMIN_TOKEN=ADMIN_TOKEN,
        JWKIT_ADMIN_PASSWORD=ADMIN_PASSWORD,
        JWKIT_LOG_LEVEL="warning",
    )
    env.update(extra)
    return env


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Any]:
    """``spawn(**env)`` starts a ``jwkit serve`` process; all are stopped after the test."""
    started: list[ServerProcess] = []

    def _spawn(home: Path | None = None, **extra: str) -> ServerProcess:
        base = home or tmp_path
        server = ServerProcess(base, server_env(base, **extra))
        started.append(server)
        return server.start()

    try:
        yield _spawn
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> str:  # noqa: F811
    return fresh_database(postgres_server)
