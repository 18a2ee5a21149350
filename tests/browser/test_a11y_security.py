"""Keyboard-only dialogs, the 390 px phone layout, and CSRF on every change."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Server, active_kid, login, new_context, shot

pytestmark = pytest.mark.browser

_ACTIVE_IN = "(id) => !!document.activeElement && !!document.activeElement.closest('#' + id)"


def test_keyboard_only_dialogs_trap_focus_and_close_on_escape(
    admin_page: Any, api: httpx.Client, make_project: Any
) -> None:
    page = admin_page
    pid = make_project()["id"]
    old_kid = active_kid(api, pid)
    page.goto(f"/console/projects/{pid}")
    opener = page.locator("#open-jwk-panel")
    # Reach the kit item from the tab order, then use only the keyboard.
    page.keyboard.press("Tab")
    for _ in range(20):
        if page.evaluate("document.activeElement.id") == "open-jwk-panel":
            break
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "open-jwk-panel"
    page.keyboard.press("Enter")
    expect(page.locator("#jwk-panel")).to_be_visible()
    page.wait_for_function(_ACTIVE_IN, arg="jwk-panel")
    for _ in range(30):  # focus never leaves the open panel
        page.keyboard.press("Tab")
        assert page.evaluate(_ACTIVE_IN, "jwk-panel")
    page.locator("#generate-key").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#confirm-dialog")).to_be_visible()
    expect(page.get_by_role("button", name="Cancel")).to_be_focused()
    for key in ["Tab", "Tab", "Tab", "Shift+Tab", "Shift+Tab", "Shift+Tab", "Shift+Tab"]:
        page.keyboard.press(key)
        assert page.evaluate(_ACTIVE_IN, "confirm-dialog")
    page.keyboard.press("Escape")
    expect(page.locator("#confirm-dialog")).to_be_hidden()
    expect(page.locator("#generate-key")).to_be_focused()
    assert active_kid(api, pid) == old_kid  # Escape is a cancel
    expect(page.locator("#jwk-panel")).to_be_visible()

    # Confirm with the keyboard: Tab from Cancel to the confirm button, Enter.
    page.keyboard.press("Enter")
    expect(page.locator("#confirm-dialog")).to_be_visible()
    # the dialog focuses Cancel as it opens: Tab only from there
    expect(page.get_by_role("button", name="Cancel")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("#confirm-ok")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#new-key")).to_be_visible()
    expect(page.locator("#copy-key")).to_be_focused()
    assert active_kid(api, pid) != old_kid
    page.keyboard.press("Escape")
    expect(page.locator("#jwk-panel")).to_be_hidden()
    expect(opener).to_be_focused()
    expect(opener).to_be_visible()
    expect(page.locator("#new-key-json")).to_have_text("")


def test_phone_viewport(browser: Any, server: Server, make_project: Any) -> None:
    ctx = new_context(browser, server, width=390, height=844)
    try:
        page = ctx.new_page()
        login(page)
        project = make_project(name="Phone project")
        pages = [
            "/console/projects",
            f"/console/projects/{project['id']}",
            f"/console/projects/{project['id']}/keys",
            f"/console/projects/{project['id']}/clients",
            f"/console/projects/{project['id']}/tokens",
            "/console/audit",
        ]
        for path in pages:
            page.goto(path)
            expect(page.locator("h1")).to_be_visible()
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"{path} is {width}px wide at a 390px viewport"
        page.goto(f"/console/projects/{project['id']}")
        shot(page, "09-phone-project")
        page.get_by_role("button", name="JSON Web Key").click()
        panel = page.locator("#jwk-panel")
        expect(panel).to_be_visible()
        box = panel.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390.5
        generate = panel.get_by_role("button", name="Generate Public Key JSON")
        generate.scroll_into_view_if_needed()
        generate.click()
        dialog = page.locator("#confirm-dialog")
        dialog.get_by_role("button", name="Invalidate and generate").click()
        expect(panel.locator("#new-key")).to_be_visible()
        download = panel.get_by_role("button", name="Download")
        download.scroll_into_view_if_needed()
        b = download.bounding_box()
        assert b["x"] >= 0 and b["x"] + b["width"] <= 390.5
        shot(page, "09-phone-jwk-panel", full_page=False)
    finally:
        ctx.close()


def test_changes_without_the_csrf_header_are_refused(
    admin_page: Any, api: httpx.Client, make_project: Any
) -> None:
    page = admin_page
    pid = make_project()["id"]
    fetch = """async ([path, method, body, csrf]) => {
        const headers = {"Content-Type": "application/json"};
        const meta = document.querySelector('meta[name="csrf-token"]');
        if (csrf) headers["X-CSRF-Token"] = meta.content;
        const r = await fetch(path, {method, headers, body: body && JSON.stringify(body)});
        return [r.status, await r.json().catch(() => null)];
    }"""
    status, body = page.evaluate(fetch, ["/api/v1/projects", "POST", {"name": "no-csrf"}, False])
    assert status == 403 and body["error"] == "csrf_failed"
    status, _ = page.evaluate(fetch, [f"/api/v1/projects/{pid}", "DELETE", None, False])
    assert status == 403
    assert api.get(f"/api/v1/projects/{pid}").status_code == 200
    status, _ = page.evaluate(
        fetch,
        [
            f"/api/v1/projects/{pid}/keys",
            "POST",
            {"mode": "replace", "confirm_invalidate": True},
            False,
        ],
    )
    assert status == 403
    # The same requests with the page's token go through.
    status, body = page.evaluate(fetch, ["/api/v1/projects", "POST", {"name": "with-csrf"}, True])
    assert status == 201 and body["name"] == "with-csrf"
    assert api.delete(f"/api/v1/projects/{body['id']}").status_code == 204
    # Logging out needs the form's token too.
    r = page.request.post("/console/logout", form={"csrf_token": "forged"}, max_redirects=0)
    assert r.status == 403
    page.goto("/console/projects")
    assert page.url.endswith("/console/projects")  # still logged in


def test_names_are_rendered_as_text(admin_page: Any, make_project: Any) -> None:
    page = admin_page
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    name = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    project = make_project(name=name)
    page.goto("/console/projects")
    expect(page.get_by_role("link", name=name)).to_be_visible()
    page.goto(f"/console/projects/{project['id']}")
    expect(page.get_by_role("heading", name=name, level=1)).to_be_visible()
    expect(page.locator("#main img")).to_have_count(0)
    page.get_by_role("button", name="Delete project…").click()
    expect(page.locator("#confirm-title")).to_contain_text(name)
    page.keyboard.press("Escape")
    expect(page.locator("#confirm-dialog")).to_be_hidden()
    assert dialogs == []
