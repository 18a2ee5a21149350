"""The admin API's interactive docs (``/api/docs``) and the site icon, served from the package.

Swagger UI comes from the ``swagger-ui-bundle-v2`` distribution (Swagger UI's own ``dist``
files, Apache-2.0), so the docs page works offline and loads nothing from a CDN. Its start-up
script is a file too, so the page keeps a ``script-src 'self'`` Content Security Policy.
``/favicon.ico`` answers with jwkit's icon (a PNG, which every browser accepts there).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

__all__ = ["DOCS_URL", "install"]

DOCS_URL = "/api/docs"
Endpoint = Callable[[Request], Awaitable[Response]]
_ASSETS = DOCS_URL + "/assets"
_ICON = (Path(__file__).with_name("favicon.png")).read_bytes()
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def _assets_dir() -> Path:
    from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

    return Path(str(swagger_ui_path))


def _page(openapi_url: str) -> str:
    title = "jwkit key service — admin API"
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="/favicon.ico">
<link rel="stylesheet" href="{_ASSETS}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi_url}"></div>
<script src="{_ASSETS}/swagger-ui-bundle.js"></script>
<script src="{DOCS_URL}/init.js"></script>
</body>
</html>
"""


_INIT = """window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-openapi-url"),
    dom_id: "#swagger-ui",
    deepLinking: true,
    persistAuthorization: false,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
});
"""


def _headers() -> dict[str, str]:
    return {
        "Content-Security-Policy": _CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
    }


def install(
    app: FastAPI,
    openapi_url: str,
    mode: str,
    admin_only: Callable[[Endpoint], Endpoint],
) -> None:
    """Add ``/favicon.ico`` and, unless ``mode`` (``JWKIT_API_DOCS``) is ``"off"``,
    ``/api/docs`` with its assets; with ``"admin"`` the page is behind ``admin_only``, as the
    OpenAPI document is (Swagger UI's own files are public: they hold nothing of ours). Create
    the app with ``docs_url=None`` so FastAPI's CDN-based page is not added as well."""
    page = _page(json.dumps(openapi_url)[1:-1])

    async def docs(request: Request) -> Response:
        return HTMLResponse(page, headers=_headers())

    async def init(request: Request) -> Response:
        headers = {**_headers(), "Cache-Control": "public, max-age=3600"}
        return Response(_INIT, media_type="text/javascript", headers=headers)

    async def favicon(request: Request) -> Response:
        headers = {"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"}
        return Response(_ICON, media_type="image/png", headers=headers)

    routes: list[BaseRoute] = [Route("/favicon.ico", favicon, methods=["GET", "HEAD"])]
    if mode != "off":
        endpoint = admin_only(docs) if mode == "admin" else docs
        routes += [
            Route(DOCS_URL, endpoint, methods=["GET", "HEAD"]),
            Route(DOCS_URL + "/init.js", init, methods=["GET", "HEAD"]),
            Mount(_ASSETS, StaticFiles(directory=_assets_dir()), name="swagger-ui"),
        ]
    app.router.routes.extend(routes)
