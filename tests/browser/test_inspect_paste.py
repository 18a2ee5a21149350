"""The token inspector says what is wrong with a pasted token, and shows no empty "Times"
heading (issue 13, item 8)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_inspector_names_the_paste_slip_and_hides_empty_times(
    admin_page: Any, api: httpx.Client, make_project: Any
) -> None:
    page = admin_page
    pid = make_project()["id"]
    token = api.post(f"/api/v1/projects/{pid}/tokens", json={"sub": "alice"}).json()
    token = token["access_token"]
    page.goto(f"/console/projects/{pid}/tokens")
    format_reason = page.locator("#checks-table tbody tr").first.locator("td").nth(2)
    times = page.locator("#inspect-times-box")

    cases = [
        (f"Bearer {token}", "remove the 'Bearer ' prefix"),
        (token[:40] + "\n" + token[40:], "contains a line break"),
    ]
    for pasted, advice in cases:
        page.get_by_label("JWT").fill(pasted)
        page.get_by_role("button", name="Inspect", exact=True).click()
        expect(format_reason).to_contain_text(advice)
        expect(page.locator("#verdict")).to_contain_text("Invalid")
        expect(times).to_be_hidden()  # nothing to show: no "Times" heading either

    page.get_by_label("JWT").fill(token)
    page.get_by_role("button", name="Inspect", exact=True).click()
    expect(page.locator("#verdict")).to_contain_text("Valid")
    expect(times).to_be_visible()
    expect(page.locator('#inspect-times dd[data-claim="exp"]')).to_be_visible()
