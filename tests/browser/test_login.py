"""Flow 1: log in and out, session cookie flags, login CSRF and the lockout."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ADMIN_PASSWORD, Server, login, new_context, shot, start_server

pytestmark = pytest.mark.browser


def test_login_sets_a_strict_http_only_session_and_logout_ends_it(
    page: Any, server: Server
) -> None:
    page.goto("/console")
    page.wait_for_url("**/console/login")
    shot(page, "01-login")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#login-error")).to_contain_text("Wrong username or password")

    login(page)
    expect(page.get_by_role("heading", name="Projects", exact=True)).to_be_visible()
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "jwkit_session"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["secure"] is False  # plain http on loopback; Secure behind https
    assert page.evaluate("document.cookie").find("jwkit_session") == -1  # not readable by JS

    # The session authenticates the admin API (safe methods need only the cookie).
    r = httpx.get(f"{server.url}/api/v1/projects", cookies={"jwkit_session": cookie["value"]})
    assert r.status_code == 200

    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/console/login")
    r = httpx.get(f"{server.url}/api/v1/projects", cookies={"jwkit_session": cookie["value"]})
    assert r.status_code == 401
    page.goto("/console/projects")
    page.wait_for_url("**/console/login")


def test_login_form_requires_its_csrf_token(page: Any, server: Server) -> None:
    page.goto("/console/login")
    # A cross-site style post: right password, no token from the form.
    r = page.request.post(
        "/console/login", form={"username": "admin", "password": ADMIN_PASSWORD}, max_redirects=0
    )
    assert r.status == 403
    assert "login form expired" in r.text()
    assert not [c for c in page.context.cookies() if c["name"] == "jwkit_session"]
    # Garbage bodies are refused, never a 500.
    r = page.request.post(
        "/console/login",
        data=b"\xff\x00garbage",
        headers={"Content-Type": "multipart/form-data; boundary=x"},
        max_redirects=0,
    )
    assert r.status == 403


def test_repeated_bad_passwords_lock_the_login_out(browser: Any, tmp_path: Any) -> None:
    srv = start_server(tmp_path / "lockout")
    ctx = new_context(browser, srv)
    try:
        page = ctx.new_page()
        statuses = []
        for attempt in range(5):
            page.goto("/console/login")
            page.get_by_label("Password").fill(f"wrong guess {attempt}")
            with page.expect_response("**/console/login") as info:
                page.get_by_role("button", name="Log in").click()
            statuses.append(info.value.status)
        assert statuses == [401, 401, 401, 401, 429]
        expect(page.locator("#login-error")).to_contain_text("Too many failed attempts")
        shot(page, "01-login-locked")
        # Even the right password is refused while locked, before it is checked.
        page.goto("/console/login")
        page.get_by_label("Password").fill(ADMIN_PASSWORD)
        with page.expect_response("**/console/login") as info:
            page.get_by_role("button", name="Log in").click()
        assert info.value.status == 429
        assert int(info.value.headers["retry-after"]) > 0
        expect(page.locator("#login-error")).to_contain_text("Too many failed attempts")
        assert not [c for c in ctx.cookies() if c["name"] == "jwkit_session"]
    finally:
        ctx.close()
        srv.stop()


def test_session_cookie_is_secure_behind_https(tmp_path: Any) -> None:
    srv = start_server(tmp_path / "https", JWKIT_PUBLIC_URL="https://keys.example.test")
    try:
        with httpx.Client(base_url=srv.url) as client:
            page = client.get("/console/login")
            assert "Secure" in page.headers["set-cookie"]
            token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
            # A Secure cookie is not sent over plain http: hand it over as a TLS proxy would.
            cookie = page.headers["set-cookie"].split(";", 1)[0]
            client.cookies.clear()
            r = client.post(
                "/console/login",
                headers={"Cookie": cookie},
                data={"username": "admin", "csrf_token": token, "password": ADMIN_PASSWORD},
            )
            assert r.status_code == 303 and r.headers["location"] == "/console/projects"
            cookie = r.headers["set-cookie"]
            assert cookie.startswith("jwkit_session=")
            for flag in ("HttpOnly", "Secure", "SameSite=strict", "Path=/"):
                assert flag in cookie
    finally:
        srv.stop()
