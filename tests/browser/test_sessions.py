"""Sessions and revocation (issue 12): find a user's live tokens, revoke them behind a
confirmation, and see the revocation in the list the service publishes; at 1280 and 390 px."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from jwkit.jose import jwt
from jwkit.jose.jwk import JWKSet
from jwkit.jose.statuslist import INVALID, VALID, StatusList
from tests.browser.conftest import Server, login, new_context, shot

pytestmark = pytest.mark.browser


def _status(server: Server, project: dict[str, Any], token: str) -> int:
    ref = jwt.decode_unverified(token)[1]["status"]["status_list"]
    body = httpx.get(server.url + ref["uri"][ref["uri"].index("/p/") :]).text
    jwks = JWKSet.from_json(httpx.get(project["jwks_uri"]).content)
    claims = jwt.decode(body, jwks, algorithms=["ES256"], typ="statuslist+jwt")
    return StatusList.decode(claims["status_list"])[ref["idx"]]


@pytest.mark.parametrize("width", [1280, 390])
def test_find_and_revoke_a_users_sessions(
    browser: Any, server: Server, api: httpx.Client, make_project: Any, width: int
) -> None:
    project = make_project()
    pid = project["id"]
    tokens = [
        api.post(
            f"/api/v1/projects/{pid}/tokens", json={"sub": "mallory", "sid": f"tab-{n}"}
        ).json()["access_token"]
        for n in range(2)
    ]
    other = api.post(f"/api/v1/projects/{pid}/tokens", json={"sub": "trent"}).json()
    context = new_context(browser, server, width=width)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        login(page)
        page.goto(f"/console/projects/{pid}")
        page.get_by_role("link", name="Sessions & revocation").click()
        expect(page.get_by_role("heading", name="Find live tokens")).to_be_visible()
        expect(page.locator("#revocations-empty")).to_be_visible()

        page.get_by_label("Find by").select_option("sub")
        page.locator("#ft-value").fill("mallory")
        page.get_by_role("button", name="Find tokens").click()
        expect(page.locator("#found-summary")).to_have_text("2 live tokens, 2 not revoked.")
        expect(page.locator("#found-table tbody tr")).to_have_count(2)
        expect(page.locator("#found-table tbody")).to_contain_text("tab-1")

        page.get_by_role("button", name="Revoke all").click()
        dialog = page.locator("#confirm-dialog")
        expect(dialog).to_be_visible()
        expect(dialog.locator("#confirm-body")).to_contain_text(
            "The 2 live tokens of user “mallory” will be marked INVALID"
        )
        expect(dialog.locator("#confirm-body")).to_contain_text("ttl (60 s) by")
        shot(page, f"12-revoke-confirm-{width}", full_page=False)
        # Cancelling changes nothing.
        dialog.get_by_role("button", name="Cancel").click()
        expect(dialog).to_be_hidden()
        assert _status(server, project, tokens[0]) == VALID

        page.get_by_role("button", name="Revoke all").click()
        with page.expect_navigation():
            dialog.get_by_role("button", name="Revoke").click()
        row = page.locator("#revocations-table tbody tr").first
        expect(row).to_contain_text("mallory")
        expect(row.locator("td").nth(4)).to_have_text("2")
        expect(row.locator(".propagation")).to_contain_text("propagating: every verifier within")
        shot(page, f"12-sessions-{width}")
        assert [_status(server, project, t) for t in tokens] == [INVALID, INVALID]
        assert _status(server, project, other["access_token"]) == VALID

        # Searching again shows them revoked, and no button to revoke them twice.
        page.locator("#ft-value").fill("mallory")
        page.get_by_role("button", name="Find tokens").click()
        expect(page.locator("#found-summary")).to_have_text("2 live tokens, 0 not revoked.")
        expect(page.get_by_role("button", name="Revoke all")).to_be_hidden()

        # Revoke directly by session, with a validation error first.
        page.get_by_role("button", name="Revoke…").click()
        expect(page.locator("#revoke-direct [data-error]")).to_have_text("Enter a value to revoke.")
        page.get_by_label("Revoke by").select_option("sub")
        page.locator("#rd-value").fill("trent")
        page.get_by_role("button", name="Revoke…").click()
        expect(dialog.locator("#confirm-body")).to_contain_text(
            "Every live token of user “trent” will be marked INVALID"
        )
        with page.expect_navigation():
            dialog.get_by_role("button", name="Revoke").click()
        expect(page.locator("#revocations-table tbody tr")).to_have_count(2)
        assert _status(server, project, other["access_token"]) == INVALID
        assert not errors, errors
    finally:
        context.close()
