"""Browser tests of the console: a real ``jwkit serve`` subprocess and Debian's Chromium.

Screenshots of the main screens go to ``tests/artifacts/screenshots/`` (gitignored).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

CHROMIUM = "/usr/bin/chromium"
ADMIN_TOKEN = "browser-test-admin-token-0123456789"
ADMIN_PASSWORD = "browser test password 42"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
LAUNCH_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """One ``jwkit serve`` process on a free loopback port with its own ``JWKIT_HOME``."""

    home: Path
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10,
                            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})

    def log(self) -> str:
        return (self.home / "server.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start_server(home: Path, **env_extra: str) -> Server:
    home.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JWKIT_")}
    env.update(
        JWKIT_HOME=str(home / ".jwkit"),
        JWKIT_ADMIN_TOKEN=ADMIN_TOKEN,
        JWKIT_ADMIN_PASSWORD=ADMIN_PASSWORD,
        JWKIT_LOG_LEVEL="warning",
        JWKIT_SCHEDULER_INTERVAL="0",
    )
    env.update(env_extra)
    with open(home / "server.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jwkit.cli", "serve", "--port", str(port)],
            cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    server = Server(home, port, proc)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jwkit serve exited early:\n{server.log()}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"jwkit serve did not start:\n{server.log()}")


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
        base_url=server.url, viewport={"width": width, "height": height},
        accept_downloads=True, timezone_id="Europe/Paris", locale="en-GB",
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


def shot(page: Any, name: str, *, full_page: bool = True) -> Path:
    """Save a screenshot of the current screen as a test artifact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.evaluate("document.fonts.ready")
    page.evaluate(_HIDE_TOAST)
    page.screenshot(path=str(path), full_page=full_page)
    return path


def keys_of(api: httpx.Client, project_id: str) -> list[dict[str, Any]]:
    r = api.get(f"/api/v1/projects/{project_id}/keys")
    assert r.status_code == 200, r.text
    return list(r.json()["keys"])


def active_kid(api: httpx.Client, project_id: str) -> str:
    (active,) = [k for k in keys_of(api, project_id) if k["state"] == "active"]
    return str(active["kid"])
