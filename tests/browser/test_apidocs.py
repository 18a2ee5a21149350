"""The admin API docs render in Chromium with every request outside the service blocked
(offline, no CDN). Issue 13, item 15."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Server, shot

pytestmark = pytest.mark.browser


def test_api_docs_render_offline(admin_page: Any, server: Server) -> None:
    page = admin_page  # JWKIT_API_DOCS=admin (the default): a console session opens the docs
    outside: list[str] = []

    def only_local(route: Any) -> None:
        if route.request.url.startswith(server.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.goto("/api/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("jwkit key service")
    expect(page.locator(".opblock-summary-path").first).to_be_visible()
    assert outside == []
    shot(page, "api-docs")
