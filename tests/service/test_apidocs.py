"""``/api/docs`` loads Swagger UI from the package (no CDN) and ``/favicon.ico`` answers
(issue 13, item 15)."""

from __future__ import annotations

import re

from .conftest import AUTH, SyncClient


def test_docs_page_references_only_its_own_assets(client: SyncClient) -> None:
    page = client.get("/api/docs", headers=AUTH)  # JWKIT_API_DOCS=admin, the default
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert urls and all(u.startswith("/") for u in urls), urls  # nothing from elsewhere
    assert "<script>" not in page.text  # no inline script: the CSP forbids it
    for url in urls:
        asset = client.get(url, headers=AUTH)
        assert asset.status_code == 200, url
        assert len(asset.content) > 0
    bundle = client.get("/api/docs/assets/swagger-ui-bundle.js")
    assert "SwaggerUIBundle" in bundle.text
    openapi = client.get("/api/v1/openapi.json", headers=AUTH).json()
    assert openapi["info"]["title"] == "jwkit key service"
    assert client.get("/api/docs/assets/swagger-ui.css").status_code == 200  # Swagger's own


def test_favicon(client: SyncClient) -> None:
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200
    assert icon.headers["content-type"] == "image/png"
    assert icon.content.startswith(b"\x89PNG\r\n\x1a\n")
