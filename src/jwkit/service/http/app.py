"""The app factory: ``create_app(settings) -> FastAPI``.

Opening the app migrates the database, stores or generates the admin credentials and loads
the published snapshots. While it runs (lifespan), a background task calls
:meth:`ServiceState.sync` every ``sync_interval`` seconds (and the cheap
:meth:`ServiceState.check` every ``change_check_interval`` seconds between and on every
PostgreSQL notification), the scheduler every
``scheduler_interval`` seconds, both in worker threads; with several worker processes, each
publishes its metric tallies every second (:func:`~jwkit.service.http.metrics.publishing_tallies`).

``/metrics`` and the admin API's OpenAPI document (``/api/v1/openapi.json``, its page at
``/api/docs``) are served to anyone, to admins only (the default) or not at all, as
``JWKIT_METRICS`` and ``JWKIT_API_DOCS`` say; the page loads Swagger UI from the package
(:mod:`~jwkit.service.http.apidocs`), never from a CDN. Admin request bodies are limited to
:data:`~jwkit.service.http.auth.MAX_BODY` bytes however they are framed (:class:`BodyLimit`).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI, HTTPException
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jwkit.service import notify, scheduler
from jwkit.service.domain.common import unix_now
from jwkit.service.http import admin, apidocs, metrics, migration, public
from jwkit.service.http import revocation as token_status
from jwkit.service.http.auth import MAX_BODY, AdminAuth, authenticate_request
from jwkit.service.http.errors import install_error_handlers
from jwkit.service.hugepages import Collapsed, HeapPages
from jwkit.service.runtime import Service
from jwkit.service.settings import Settings

__all__ = ["app_from_env", "create_app"]

log = logging.getLogger("jwkit.service")


async def _background(service: Service) -> None:
    """Sync the snapshot every ``sync_interval`` seconds, and check for changes every
    ``change_check_interval`` seconds in between and at once when PostgreSQL notifies one
    (one one-row read; a change found is applied at once); run the scheduler every
    ``scheduler_interval`` seconds. A notification applies the change only: the sync's
    periodic work (expiry marks, the safety net's slice) keeps its interval, however many
    changes are made a second."""
    interval = service.settings.sync_interval
    check_every = min(service.settings.change_check_interval, interval)
    sched_every = service.settings.scheduler_interval
    loop = asyncio.get_running_loop()
    next_schedule = loop.time() + min(sched_every, 2.0) if sched_every else None
    wake = asyncio.Event()
    listener = None
    collapsing: asyncio.Task[None] | None = None
    if service.db.dialect == "postgresql":
        listener = asyncio.create_task(notify.listen(service.db.url, wake))
    try:
        try:  # every project's documents in memory before /readyz says ready
            await run_in_threadpool(service.state.warm)
        except Exception as exc:  # the database went away: sync() goes on with it
            log.warning("warming the project cache failed: %s", type(exc).__name__)
        # The heap is built: into huge pages with it, aside (the change checks go on).
        pages = HeapPages(service.settings.huge_pages)
        collapsing = asyncio.create_task(_collapse(pages.collapse))
        next_sync = loop.time() + interval
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(wake.wait(), check_every)
            wake.clear()
            try:
                if loop.time() < next_sync:  # a notification, or the change check's turn
                    # a database away is reported by the sync (once a second), not here
                    with contextlib.suppress(Exception):
                        await run_in_threadpool(service.state.check)
                    continue
                next_sync = loop.time() + interval
                await run_in_threadpool(service.state.sync)
                if collapsing.done() and pages.due():
                    collapsing = asyncio.create_task(_collapse(pages.collapse))
                if next_schedule is not None and loop.time() >= next_schedule:
                    next_schedule = loop.time() + sched_every
                    await run_in_threadpool(scheduler.run_once, service)
            except Exception as exc:  # keep serving the last good snapshot
                log.warning("background sync failed: %s", type(exc).__name__)
    finally:
        if collapsing is not None:
            collapsing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await collapsing
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener


async def _collapse(step: Callable[[], Collapsed | None]) -> None:
    """Run a :class:`~jwkit.service.hugepages.HeapPages` step off the event loop; a kernel
    that refuses leaves the heap as it was (logged, never fatal)."""
    try:
        if await run_in_threadpool(step) is not None:
            metrics.HEAP_COLLAPSES.inc()
    except OSError as exc:
        log.warning("collapsing the heap into huge pages failed: %s", exc)


def create_app(
    settings: Settings | None = None,
    *,
    clock: Callable[[], int] = unix_now,
    service: Service | None = None,
    background: bool = True,
    fast_path: bool | None = None,
) -> FastAPI:
    """Build the ASGI app. Pass ``service`` to share one across apps (tests).

    ``fast_path`` (default: the ``fast_path`` setting) adds
    :class:`~jwkit.service.http.public.PublicFastPath` as a middleware; :func:`app_from_env`
    (what ``jwkit serve`` runs) wraps it outermost instead.
    """
    settings = settings or Settings()
    service = service or Service.open(settings, clock=clock)
    if fast_path is None:
        fast_path = settings.fast_path

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if background:
            service.state.warm_pending = True
        task = asyncio.create_task(_background(service)) if background else None
        try:
            async with metrics.publishing_tallies():
                yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await run_in_threadpool(service.state.status.flush)

    app = FastAPI(
        title="jwkit key service",
        version="1",
        lifespan=lifespan,
        docs_url=None,  # apidocs.install: Swagger UI from the package, not a CDN
        redoc_url=None,
        openapi_url=_OPENAPI_URL if settings.api_docs == "public" else None,
    )
    app.state.service = service
    app.state.auth = AdminAuth(service)
    install_error_handlers(app)
    app.add_middleware(BodyLimit)
    if fast_path:
        app.add_middleware(public.PublicFastPath, service=service)
    for route in public.public_routes():
        app.router.routes.append(route)
    app.router.routes.extend(token_status.routes())
    if settings.metrics != "off":
        endpoint = metrics.metrics_endpoint
        if settings.metrics == "admin":
            endpoint = _admin_only(endpoint)
        app.router.routes.append(Route("/metrics", endpoint, methods=["GET"]))
    if settings.api_docs == "admin":
        app.router.routes.append(Route(_OPENAPI_URL, _admin_only(_openapi), methods=["GET"]))
    app.include_router(admin.router)
    app.include_router(migration.router)
    apidocs.install(app, _OPENAPI_URL, settings.api_docs, _admin_only)
    _mount_console(app)
    return app


_OPENAPI_URL = "/api/v1/openapi.json"


def _admin_only(endpoint: Any) -> Any:
    """``endpoint`` behind the admin API's authentication (401/403 otherwise)."""

    async def guarded(request: Request) -> Response:
        await authenticate_request(request)
        response: Response = await endpoint(request)
        return response

    return guarded


async def _openapi(request: Request) -> Response:
    return JSONResponse(request.app.openapi())


class _TooLarge(HTTPException):
    def __init__(self) -> None:
        super().__init__(
            413,
            detail={
                "error": "payload_too_large",
                "message": f"request bodies are limited to {MAX_BODY} bytes",
            },
            headers={"Connection": "close"},
        )


class BodyLimit:
    """Admin and console request bodies stop at :data:`MAX_BODY` bytes, counted as they
    arrive: a chunked body (no ``Content-Length`` to check first) is refused with 413 as soon
    as it passes the limit, never read in full. The public token endpoint has its own, smaller
    limit (:data:`~jwkit.service.http.public.MAX_FORM`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > MAX_BODY:
                    raise _TooLarge()
            return message

        await self.app(scope, counted, send)


def _mount_console(app: FastAPI) -> None:
    """Mount the console (``jwkit.service.http.console``, whose ``install(app)`` adds its
    pages and API additions) when that package is present; its import errors propagate."""
    if importlib.util.find_spec("jwkit.service.http.console") is None:
        return
    console = importlib.import_module("jwkit.service.http.console")
    install = getattr(console, "install", None)
    if callable(install):
        install(app)


def app_from_env() -> ASGIApp:
    """Factory for ``uvicorn --factory`` (each worker builds its app from ``JWKIT_*``): the
    hot path wraps the app outermost, ahead of every middleware and the router."""
    settings = Settings()
    app = create_app(settings, fast_path=False)
    if not settings.fast_path:
        return app
    return public.PublicFastPath(app, app.state.service)
