"""Flow 4: keys table, timeline, graceful and emergency rotation, revoke, rotation policy."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import keys_of, shot

pytestmark = pytest.mark.browser


def _states(api: httpx.Client, pid: str) -> dict[str, str]:
    return {k["kid"]: k["state"] for k in keys_of(api, pid)}


def test_rotation_refusal_is_plain_language_and_emergency_needs_confirmation(
    admin_page: Any, api: httpx.Client, make_project: Any
) -> None:
    page = admin_page
    project = make_project(jwks_max_age=300)
    pid = project["id"]
    before = _states(api, pid)
    (old_active,) = [k for k, s in before.items() if s == "active"]
    (old_next,) = [k for k, s in before.items() if s == "next"]
    page.goto(f"/console/projects/{pid}/keys")
    rows = page.locator("#keys-table tbody tr")
    assert rows.count() == 2
    assert page.locator(f'#keys-table tr[data-kid="{old_active}"] .badge').inner_text() == "active"
    assert page.locator(f'#keys-table tr[data-kid="{old_next}"] .badge').inner_text() == "next"
    assert page.locator("#timeline rect.bar-active").count() >= 1
    assert page.locator("#timeline rect.bar-next").count() >= 1

    # Graceful rotation is refused: the next key was published less than 300 s ago.
    with page.expect_response(f"**/api/v1/projects/{pid}/keys/rotate") as resp:
        page.get_by_role("button", name="Rotate (graceful)").click()
    assert resp.value.status == 409
    message = page.locator("#keys-message")
    message.wait_for()
    text = message.inner_text()
    assert "has not been published long enough" in text
    assert "The earliest safe time is" in text
    assert "in 5 minutes" in text or "in 4 minutes" in text
    assert "rotation_too_early" not in text
    shot(page, "05-keys-refusal")
    assert _states(api, pid) == before

    # The emergency path sits behind an explicit confirmation.
    message.get_by_role("button", name="Use the emergency path…").click()
    dialog = page.locator("#confirm-dialog")
    proceed = dialog.get_by_role("button", name="Proceed anyway")
    assert proceed.is_disabled()
    dialog.get_by_role("button", name="Cancel").click()
    assert _states(api, pid) == before
    message.get_by_role("button", name="Use the emergency path…").click()
    dialog.get_by_label("I understand that valid tokens may be rejected").check()
    with page.expect_navigation():
        proceed.click()
    after = _states(api, pid)
    assert after[old_active] == "retiring" and after[old_next] == "active"
    page.locator(f'#keys-table tr[data-kid="{old_active}"] .badge', has_text="retiring").wait_for()
    assert page.locator("#keys-table tbody tr").count() == 3
    assert page.locator("#timeline rect.bar-retiring").count() >= 1

    # Revoking the retiring key now is refused too (tokens it signed may still be valid).
    page.locator(f'button[data-revoke="{old_active}"]').click()
    with page.expect_response(f"**/keys/{old_active}/revoke") as resp:
        dialog.get_by_role("button", name="Revoke key").click()
    assert resp.value.status == 409
    expect(message).to_contain_text("would break tokens it signed")  # the JS writes it after
    assert _states(api, pid)[old_active] == "retiring"
    shot(page, "05-keys")


def test_graceful_rotation_and_rotation_policy(
    admin_page: Any, api: httpx.Client, make_project: Any
) -> None:
    page = admin_page
    pid = make_project(jwks_max_age=0)["id"]
    before = _states(api, pid)
    (old_next,) = [k for k, s in before.items() if s == "next"]
    page.goto(f"/console/projects/{pid}/keys")
    with page.expect_navigation():
        page.get_by_role("button", name="Rotate (graceful)").click()
    assert _states(api, pid)[old_next] == "active"
    assert "is now the active key" in page.locator("#toast").inner_text()

    page.get_by_label("Rotate the signing key automatically").check()
    page.get_by_label("Rotate every (days)").fill("30")
    with page.expect_navigation():
        page.get_by_role("button", name="Save policy").click()
    assert api.get(f"/api/v1/projects/{pid}").json()["rotation_days"] == 30
    assert page.get_by_label("Rotate the signing key automatically").is_checked()
    # The schedule shows when the active key retires.
    assert "retires" in page.locator(f'#keys-table tr[data-kid="{old_next}"]').inner_text()
    page.get_by_label("Rotate the signing key automatically").uncheck()
    with page.expect_navigation():
        page.get_by_role("button", name="Save policy").click()
    assert api.get(f"/api/v1/projects/{pid}").json()["rotation_days"] is None
