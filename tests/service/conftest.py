"""Fixtures for the key service tests: real SQLite files, a real PostgreSQL, real servers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jwkit.service.http.app import create_app
from jwkit.service.runtime import Service
from jwkit.service.settings import Settings
from tests.support import serve
from tests.support.postgres import PostgresServer, fresh_database, postgres_server  # noqa: F401
from tests.support.serve import ServerProcess, free_port  # noqa: F401  (re-exported)

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


def server_env(home: Path, **extra: str) -> dict[str, str]:
    return serve.server_env(home, admin_token=ADMIN_TOKEN, admin_password=ADMIN_PASSWORD, **extra)


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
