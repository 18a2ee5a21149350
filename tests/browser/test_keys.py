"""Flow 4: keys table, timeline, graceful and emergency rotation, revoke, rotation policy.

Every read after an action is a Playwright web-first assertion (``expect(...)``), which waits
for the page to render the answer: the CI failure this replaced read ``#keys-message`` before
the refusal had been written into it.
"""

from __future__ import annotations

import re
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
    expect(page.locator("#keys-table tbody tr")).to_have_count(2)
    expect(page.locator(f'#keys-table tr[data-kid="{old_active}"] .badge')).to_have_text("active")
    expect(page.locator(f'#keys-table tr[data-kid="{old_next}"] .badge')).to_have_text("next")
    expect(page.locator("#timeline rect.bar-active").first).to_be_attached()
    expect(page.locator("#timeline rect.bar-next").first).to_be_attached()

    # Graceful rotation is refused: the next key was published less than 300 s ago.
    with page.expect_response(f"**/api/v1/projects/{pid}/keys/rotate") as resp:
        page.get_by_role("button", name="Rotate (graceful)").click()
    assert resp.value.status == 409
    message = page.locator("#keys-message")
    expect(message).to_contain_text("has not been published long enough")
    expect(message).to_contain_text("The earliest safe time is")
    expect(message).to_contain_text(re.compile(r"in [45] minutes"))
    expect(message).not_to_contain_text("rotation_too_early")
    shot(page, "05-keys-refusal")
    assert _states(api, pid) == before

    # The emergency path sits behind an explicit confirmation (a visible checkbox, no typing).
    message.get_by_role("button", name="Use the emergency path…").click()
    dialog = page.locator("#confirm-dialog")
    proceed = dialog.get_by_role("button", name="Proceed anyway")
    expect(proceed).to_be_disabled()
    expect(dialog.get_by_label("I understand that valid tokens may be rejected")).to_be_visible()
    expect(dialog.locator("#confirm-typed")).to_be_hidden()
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert _states(api, pid) == before
    message.get_by_role("button", name="Use the emergency path…").click()
    dialog.get_by_label("I understand that valid tokens may be rejected").check()
    with page.expect_navigation():
        proceed.click()
    after = _states(api, pid)
    assert after[old_active] == "retiring" and after[old_next] == "active"
    expect(page.locator(f'#keys-table tr[data-kid="{old_active}"] .badge')).to_have_text("retiring")
    expect(page.locator("#keys-table tbody tr")).to_have_count(3)
    expect(page.locator("#timeline rect.bar-retiring").first).to_be_attached()

    # Revoking the retiring key now is refused too (tokens it signed may still be valid). Its
    # dialog shows neither the typed box nor the previous dialog's checkbox and label.
    page.locator(f'button[data-revoke="{old_active}"]').click()
    expect(dialog.locator("#confirm-check")).to_be_hidden()
    expect(dialog.locator("#confirm-typed")).to_be_hidden()
    expect(dialog).not_to_contain_text("I understand")
    with page.expect_response(f"**/keys/{old_active}/revoke") as resp:
        dialog.get_by_role("button", name="Revoke key").click()
    assert resp.value.status == 409
    expect(message).to_contain_text("would break tokens it signed")
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
    expect(page.locator("#toast")).to_contain_text("is now the active key")
    assert _states(api, pid)[old_next] == "active"

    page.get_by_label("Rotate the signing key automatically").check()
    page.get_by_label("Rotate every (days)").fill("30")
    with page.expect_navigation():
        page.get_by_role("button", name="Save policy").click()
    expect(page.get_by_label("Rotate the signing key automatically")).to_be_checked()
    assert api.get(f"/api/v1/projects/{pid}").json()["rotation_days"] == 30
    # The schedule shows when the active key retires.
    expect(page.locator(f'#keys-table tr[data-kid="{old_next}"]')).to_contain_text("retires")
    page.get_by_label("Rotate the signing key automatically").uncheck()
    with page.expect_navigation():
        page.get_by_role("button", name="Save policy").click()
    expect(page.get_by_label("Rotate the signing key automatically")).not_to_be_checked()
    assert api.get(f"/api/v1/projects/{pid}").json()["rotation_days"] is None
