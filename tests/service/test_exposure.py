"""Settings for what the service exposes (``JWKIT_METRICS``, ``JWKIT_API_DOCS``), the
``/readyz`` check's one-second cache, and a bug's 500: answered once, logged once.

In-process: the app over httpx's ASGI transport, on the real SQLite database."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from starlette.requests import Request
from starlette.routing import Route

from jwkit.service.http.app import create_app
from jwkit.service.runtime import Service

from .conftest import AUTH, FakeClock, SyncClient, make_settings


@contextlib.contextmanager
def _client(tmp_path: Path, **settings: Any) -> Iterator[tuple[SyncClient, Service]]:
    service = Service.open(make_settings(tmp_path / "home", **settings), clock=FakeClock())
    client = SyncClient(create_app(service.settings, service=service, background=False))
    try:
        yield client, service
    finally:
        client.close()
        service.close()


@pytest.mark.parametrize("mode", ["public", "admin", "off"])
def test_metrics_exposure(tmp_path: Path, mode: str) -> None:
    with _client(tmp_path, metrics=mode) as (client, _):
        anonymous, admin = client.get("/metrics"), client.get("/metrics", headers=AUTH)
        expected = {"public": (200, 200), "admin": (401, 200), "off": (404, 404)}[mode]
        assert (anonymous.status_code, admin.status_code) == expected
        if admin.status_code == 200:
            assert "jwkit_tokens_issued_total" in admin.text
        if anonymous.status_code == 401:
            assert anonymous.json()["error"] == "unauthorized"
            assert "jwkit_" not in anonymous.text


@pytest.mark.parametrize("mode", ["public", "admin", "off"])
def test_api_docs_exposure(tmp_path: Path, mode: str) -> None:
    with _client(tmp_path, api_docs=mode) as (client, _):
        expected = {"public": (200, 200), "admin": (401, 200), "off": (404, 404)}[mode]
        for path in ("/api/v1/openapi.json", "/api/docs"):
            anonymous, admin = client.get(path), client.get(path, headers=AUTH)
            assert (anonymous.status_code, admin.status_code) == expected, path
        if mode != "off":
            doc = client.get("/api/v1/openapi.json", headers=AUTH).json()
            assert "/api/v1/projects" in doc["paths"]
            page = client.get("/api/docs", headers=AUTH)
            assert "text/html" in page.headers["content-type"]
            assert "/api/v1/openapi.json" in page.text


def test_defaults_keep_metrics_and_docs_for_admins(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    assert (settings.metrics, settings.api_docs) == ("admin", "admin")


def test_readyz_asks_the_database_at_most_once_a_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jwkit.service.http import public

    now = [1000.0]
    monkeypatch.setattr(public.time, "monotonic", lambda: now[0])
    with _client(tmp_path) as (client, service):
        pings: list[str] = []

        def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if statement.strip() == "SELECT 1":
                pings.append(statement)

        event.listen(service.db.engine, "before_cursor_execute", count)
        for _ in range(5):
            assert client.get("/readyz").json() == {"status": "ready"}
        assert len(pings) == 1
        now[0] += 0.5
        assert client.get("/readyz").status_code == 200 and len(pings) == 1
        now[0] += public.READY_TTL
        assert client.get("/readyz").status_code == 200 and len(pings) == 2
        event.remove(service.db.engine, "before_cursor_execute", count)


def test_a_bug_is_answered_500_once_and_not_passed_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The exception stops at the app: uvicorn would log it again and drop the connection.
    ``raise_app_exceptions=True`` makes httpx raise it if it ever leaves the app."""

    async def broken(request: Request) -> Any:
        raise RuntimeError("a bug")

    settings = make_settings(tmp_path / "home")
    service = Service.open(settings, clock=FakeClock())
    app = create_app(settings, service=service, background=False)
    app.router.routes.insert(0, Route("/broken", broken))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)

    async def call() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get("/broken")

    try:
        with caplog.at_level(logging.ERROR):
            r = asyncio.run(call())
    finally:
        service.close()
    assert r.status_code == 500
    assert r.json() == {"error": "internal_error", "message": "an unexpected error occurred"}
    bugs = [rec for rec in caplog.records if rec.exc_info]
    assert len(bugs) == 1 and "unhandled RuntimeError" in bugs[0].getMessage()
    assert "a bug" not in r.text
