"""Browser tests of the console: a real ``jwkit serve`` subprocess and Debian's Chromium.

Screenshots of the main screens go to ``tests/artifacts/screenshots/`` (gitignored). With
``JWKIT_DOCS_SCREENSHOTS=1``, those a docs page shows (``docs/screenshots/<name>.png``) are
also written there, to be committed with the change that alters them:
``JWKIT_DOCS_SCREENSHOTS=1 .venv/bin/pytest tests/browser``.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.serve import ServerProcess, server_env

CHROMIUM = "/usr/bin/chromium"
ADMIN_TOKEN = "browser-test-admin-token-0123456789"
ADMIN_PASSWORD = "browser test password 42"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
DOCS = Path(__file__).resolve().parents[2] / "docs"
DOCS_SCREENSHOTS = DOCS / "screenshots"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


Server = ServerProcess


def start_server(home: Path, **env_extra: str) -> Server:
    env = server_env(
        home,
        admin_token=ADMIN_TOKEN,
        admin_password=ADMIN_PASSWORD,
        JWKIT_SCHEDULER_INTERVAL="0",
        **env_extra,
    )
    return ServerProcess(home, env).start()


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("console"))
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="package")
def api(server: Server) -> Iterator[httpx.Client]:
    with server.api() as client:
        yield client


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Debian's Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def new_context(browser: Any, server: Server, *, width: int = 1280, height: int = 860) -> Any:
    context = browser.new_context(
        base_url=server.url,
        viewport={"width": width, "height": height},
        accept_downloads=True,
        timezone_id="Europe/Paris",
        locale="en-GB",
        reduced_motion="reduce",
    )
    context.set_default_timeout(10_000)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    return context


@pytest.fixture
def context(browser: Any, server: Server) -> Iterator[Any]:
    ctx = new_context(browser, server)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def page(context: Any) -> Any:
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.js_errors = errors
    yield pg
    assert not errors, f"JavaScript errors on the page: {errors}"


def login(page: Any, password: str = ADMIN_PASSWORD) -> None:
    page.goto("/console/login")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/console/projects")


@pytest.fixture
def admin_page(page: Any) -> Any:
    login(page)
    return page


@pytest.fixture
def make_project(api: httpx.Client) -> Iterator[Any]:
    """Create projects through the admin API; they are deleted after the test."""
    made: list[str] = []

    def make(**body: Any) -> dict[str, Any]:
        body.setdefault("name", f"proj-{uuid.uuid4().hex[:8]}")
        r = api.post("/api/v1/projects", json=body)
        assert r.status_code == 201, r.text
        made.append(r.json()["id"])
        return dict(r.json())

    yield make
    for pid in made:
        assert api.delete(f"/api/v1/projects/{pid}").status_code in (204, 404)


_HIDE_TOAST = """() => {
    const t = document.getElementById('toast');
    if (t) { t.textContent = ''; t.classList.remove('show'); }
    document.querySelectorAll('.table-wrap, .timeline-wrap').forEach(e => { e.scrollLeft = 0; });
}"""


def shot(page: Any, name: str, *, full_page: bool = True, keep_toast: bool = False) -> Path:
    """Save a screenshot of the current screen as a test artifact (without the passing toast,
    unless the toast is the point)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.evaluate("document.fonts.ready")
    if not keep_toast:
        page.evaluate(_HIDE_TOAST)
    page.screenshot(path=str(path), full_page=full_page)
    if os.environ.get("JWKIT_DOCS_SCREENSHOTS") == "1" and _shown_in_docs(name):
        shutil.copyfile(path, DOCS_SCREENSHOTS / path.name)
    return path


def _shown_in_docs(name: str) -> bool:
    """Whether a page of the docs shows ``screenshots/<name>.png``."""
    wanted = f"screenshots/{name}.png)"
    return any(wanted in page.read_text(encoding="utf-8") for page in DOCS.rglob("*.md"))


def keys_of(api: httpx.Client, project_id: str) -> list[dict[str, Any]]:
    r = api.get(f"/api/v1/projects/{project_id}/keys")
    assert r.status_code == 200, r.text
    return list(r.json()["keys"])


def active_kid(api: httpx.Client, project_id: str) -> str:
    (active,) = [k for k in keys_of(api, project_id) if k["state"] == "active"]
    return str(active["kid"])
