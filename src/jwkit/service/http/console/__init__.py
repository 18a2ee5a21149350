"""The web console at ``/console``: server-rendered pages plus a small script.

:func:`install` is called by the app factory (:func:`jwkit.service.http.app.create_app`): it
adds the console routes, its static assets, the console's admin API additions
(:mod:`jwkit.service.http.inspect`) and a redirect from ``/`` to ``/console``.
"""

from __future__ import annotations

import time
from pathlib import Path

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from jwkit.service.http import inspect
from jwkit.service.http.console.lockout import LoginThrottle
from jwkit.service.http.console.pages import router

__all__ = ["install"]

STATIC = Path(__file__).parent / "static"


async def _root(request: Request) -> Response:
    return RedirectResponse("/console", status_code=307)


def install(app: FastAPI) -> None:
    """Mount the console, its assets and the inspector/audit API on ``app``."""
    app.state.console_throttle = LoginThrottle(app.state.service.db, time.time)
    app.include_router(inspect.router)
    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
    if not any(getattr(r, "path", None) == "/" for r in app.router.routes):
        app.add_route("/", _root, methods=["GET"], include_in_schema=False)
