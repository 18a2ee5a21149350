"""Flows 5, 6 and 7: OAuth clients, token tools (mint and inspect), the audit log."""

from __future__ import annotations

import base64
import json
import re
import time
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Server, active_kid, shot

pytestmark = pytest.mark.browser


def test_oauth_client_secret_is_shown_once_and_works(
    admin_page: Any, api: httpx.Client, make_project: Any, server: Server
) -> None:
    page = admin_page
    project = make_project()
    pid = project["id"]
    page.goto(f"/console/projects/{pid}/clients")
    expect(page.locator("#clients-empty")).to_be_visible()
    page.get_by_label("Name").fill("billing-backend")
    page.get_by_label("Scopes").fill("read write")
    page.get_by_role("button", name="Create client").click()
    dialog = page.locator("#secret-dialog")
    expect(dialog).to_contain_text("shown only once")
    expect(dialog.locator("#new-client-id")).to_contain_text("cli_")
    client_id = dialog.locator("#new-client-id").inner_text()
    secret = dialog.locator("#new-client-secret").inner_text()
    assert client_id.startswith("cli_") and len(secret) >= 43
    shot(page, "06-client-secret", full_page=False)
    dialog.get_by_role("button", name="Copy secret").click()
    expect(page.locator("#toast")).to_have_text("Client secret copied to the clipboard.")
    assert page.evaluate("navigator.clipboard.readText()") == secret

    # The secret works at the token endpoint (client credentials grant).
    r = httpx.post(
        project["token_endpoint"],
        data={"grant_type": "client_credentials", "scope": "read"},
        auth=(client_id, secret),
    )
    assert r.status_code == 200, r.text
    assert r.json()["token_type"] == "Bearer"

    with page.expect_navigation():
        dialog.get_by_role("button", name="Done").click()
    row = page.locator(f'#clients-table tr[data-client-id="{client_id}"]')
    expect(row).to_contain_text("billing-backend")
    expect(row).to_contain_text("write")
    assert secret not in page.content()  # never shown again
    shot(page, "06-clients")

    row.get_by_role("button", name="Delete").click()
    with page.expect_navigation():
        page.locator("#confirm-dialog").get_by_role("button", name="Delete client").click()
    expect(page.locator("#clients-empty")).to_be_visible()
    assert api.get(f"/api/v1/projects/{pid}/clients").json()["clients"] == []


def _tamper(token: str) -> str:
    head, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "mallory"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{head}.{forged}.{sig}"


def _inspect(page: Any, token: str) -> dict[str, str]:
    """Inspect ``token`` and read the checks table once it shows this token's answer."""
    page.evaluate("document.querySelector('#checks-table tbody').textContent = ''")
    page.get_by_label("JWT").fill(token)
    with page.expect_response("**/tokens/inspect") as resp:
        page.get_by_role("button", name="Inspect", exact=True).click()
    assert resp.value.status == 200
    rows = page.locator("#checks-table tbody tr")
    expect(rows.first).to_be_visible()  # rendered from this answer (the table was emptied)
    out = {}
    for i in range(rows.count()):
        cells = rows.nth(i).locator("td")
        verdict, reason = cells.nth(1).inner_text(), cells.nth(2).inner_text()
        out[cells.nth(0).inner_text()] = f"{verdict} | {reason}"
    return out


def test_mint_and_inspect_tokens(admin_page: Any, api: httpx.Client, make_project: Any) -> None:
    page = admin_page
    project = make_project()
    pid = project["id"]
    kid = active_kid(api, pid)
    page.goto(f"/console/projects/{pid}/tokens")

    # Bad extra claims are explained before and after the service sees them.
    page.get_by_label("Subject (sub)").fill("alice")
    page.get_by_label("Extra claims (JSON object, optional)").fill("[1, 2")
    page.get_by_role("button", name="Mint token").click()
    expect(page.locator("#mint-token [data-error]")).to_contain_text("must be a JSON object")
    page.get_by_label("Extra claims (JSON object, optional)").fill('{"iss": "https://evil"}')
    page.get_by_role("button", name="Mint token").click()
    expect(page.locator("#mint-token [data-error]")).to_contain_text("may not set iss")

    page.get_by_label("Extra claims (JSON object, optional)").fill('{"role": "tester"}')
    page.get_by_role("button", name="Mint token").click()
    expect(page.locator("#minted-token")).to_contain_text(".")
    token = page.locator("#minted-token").inner_text().strip()

    page.get_by_role("button", name="Inspect this token").click()
    expect(page.locator("#verdict")).to_contain_text("Valid")
    checks = {}
    rows = page.locator("#checks-table tbody tr")
    for i in range(rows.count()):
        cells = rows.nth(i).locator("td")
        checks[cells.nth(0).inner_text()] = cells.nth(1).inner_text()
    assert checks == {
        "format": "pass",
        "key": "pass",
        "signature": "pass",
        "exp": "pass",
        "iat": "pass",
        "iss": "pass",
        "aud": "pass",
    }
    expect(page.locator("#checks-table")).to_contain_text(kid)
    payload = json.loads(page.locator("#inspect-payload").inner_text())
    assert payload["sub"] == "alice" and payload["role"] == "tester"
    assert json.loads(page.locator("#inspect-header").inner_text())["kid"] == kid
    expect(page.locator('#inspect-times dd[data-claim="exp"]')).to_contain_text(
        re.compile(r"in 1[45] minutes")
    )
    shot(page, "07-token-tools")

    # A forged payload: decoded, but the signature fails.
    result = _inspect(page, _tamper(token))
    assert result["signature"].startswith("fail")
    expect(page.locator("#verdict")).to_contain_text("Invalid")

    # An expired token: exp fails with the reason spelled out.
    # An expired token: minted with a 1 s lifetime, inspected once the service's clock says it
    # expired (polling the service, not sleeping a guessed time).
    short = api.post(f"/api/v1/projects/{pid}/tokens", json={"sub": "bob", "ttl": 1}).json()
    url = f"/api/v1/projects/{pid}/tokens/inspect"

    def expired() -> bool:
        checks = api.post(url, json={"token": short["access_token"]}).json()["checks"]
        return any(c["claim"] == "exp" and not c["ok"] for c in checks)

    deadline = time.monotonic() + 10
    while not expired():  # polls the condition; no guessed sleep
        assert time.monotonic() < deadline, "the 1 s token did not expire within 10 s"
        time.sleep(0.1)
    result = _inspect(page, short["access_token"])
    assert result["exp"].startswith("fail") and "expired" in result["exp"]
    assert result["signature"].startswith("pass")

    # A token of another project: unknown kid, wrong issuer and audience.
    other = make_project()
    foreign = api.post(f"/api/v1/projects/{other['id']}/tokens", json={"sub": "eve"}).json()
    result = _inspect(page, foreign["access_token"])
    assert result["key"].startswith("fail") and "not a key of this project" in result["key"]
    assert result["iss"].startswith("fail") and project["issuer"] in result["iss"]
    assert result["aud"].startswith("fail")

    # Garbage is a result, not an error.
    result = _inspect(page, "not-a-jwt")
    assert result["format"].startswith("fail") and "three segments" in result["format"]


def test_inspect_api_rejects_bad_input_without_a_500(
    server: Server, make_project: Any, api: httpx.Client
) -> None:
    pid = make_project()["id"]
    url = f"/api/v1/projects/{pid}/tokens/inspect"
    assert (
        api.post(
            url, content=b"{not json", headers={"Content-Type": "application/json"}
        ).status_code
        == 422
    )
    assert api.post(url, json={"token": 5}).status_code == 422
    assert api.post(url, json={"token": "a.b.c", "extra": 1}).status_code == 422
    assert (
        api.post(
            "/api/v1/projects/proj_missing/tokens/inspect", json={"token": "a.b.c"}
        ).status_code
        == 404
    )
    assert httpx.post(server.url + url, json={"token": "a.b.c"}).status_code == 401
    r = api.post(url, json={"token": "e30.e30.AAAA"})
    assert r.status_code == 200 and r.json()["format"]["ok"] is False
    assert api.get("/api/v1/audit/events", params={"limit": 0}).status_code == 422


def test_audit_log_filters_and_chain_verification(
    admin_page: Any, api: httpx.Client, make_project: Any
) -> None:
    page = admin_page
    project = make_project()
    pid = project["id"]
    api.post(f"/api/v1/projects/{pid}/clients", json={"name": "audited"})
    page.get_by_role("link", name="Audit log").click()
    page.wait_for_url("**/console/audit")
    chain = page.locator("#chain-result")
    expect(chain).to_contain_text("Chain intact")
    count = api.get("/api/v1/audit/verify").json()["count"]
    expect(chain).to_contain_text(f"all {count} entries verified")

    # A text field: a drop-down of every project would not scale to thousands.
    page.get_by_label("Project ID").fill(pid)
    page.get_by_label("Action").select_option("key.")
    with page.expect_navigation():
        page.get_by_role("button", name="Filter").click()
    actions = page.locator("#audit-table tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.action)"
    )
    assert actions and all(a.startswith("key.") for a in actions)
    assert page.locator("#audit-table").inner_text().count(pid) == len(actions)
    shot(page, "08-audit")

    page.get_by_label("Action").select_option("client.")
    with page.expect_navigation():
        page.get_by_role("button", name="Filter").click()
    actions = page.locator("#audit-table tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.action)"
    )
    assert actions == ["client.created"]

    api.post(f"/api/v1/projects/{pid}/clients", json={"name": "one more"})
    with page.expect_response("**/api/v1/audit/verify"):
        page.get_by_role("button", name="Verify again").click()
    expect(page.locator("#chain-result")).to_contain_text(f"all {count + 1} entries verified")


def test_project_audit_tab_keeps_the_project_tabs(
    admin_page: Any, api: httpx.Client, make_project: Any
) -> None:
    page = admin_page
    project = make_project()
    other = make_project()
    page.goto(f"/console/projects/{project['id']}/keys")
    page.get_by_role("navigation", name="Project sections").get_by_role(
        "link", name="Audit log"
    ).click()
    page.wait_for_url(f"**/console/projects/{project['id']}/audit")
    tabs = page.get_by_role("navigation", name="Project sections")
    expect(tabs.locator('[aria-current="page"]')).to_have_text("Audit log")
    expect(page.get_by_role("heading", level=1)).to_have_text(project["name"])
    rows = page.locator("#audit-table tbody tr")
    expect(rows.first).to_be_visible()
    expect(page.locator("#audit-table")).not_to_contain_text(other["id"])
    page.get_by_label("Action").select_option("key.")
    with page.expect_navigation():
        page.get_by_role("button", name="Filter").click()
    assert page.url.split("?")[0].endswith(f"/console/projects/{project['id']}/audit")
    actions = rows.evaluate_all("rows => rows.map(r => r.dataset.action)")
    assert actions and all(a.startswith("key.") for a in actions)
