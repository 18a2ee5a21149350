"""Flows 5, 6 and 7: OAuth clients, token tools (mint and inspect), the audit log."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import pytest

from tests.browser.conftest import Server, active_kid, shot

pytestmark = pytest.mark.browser


def test_oauth_client_secret_is_shown_once_and_works(
    admin_page: Any, api: httpx.Client, make_project: Any, server: Server
) -> None:
    page = admin_page
    project = make_project()
    pid = project["id"]
    page.goto(f"/console/projects/{pid}/clients")
    assert page.locator("#clients-empty").is_visible()
    page.get_by_label("Name").fill("billing-backend")
    page.get_by_label("Scopes").fill("read write")
    page.get_by_role("button", name="Create client").click()
    dialog = page.locator("#secret-dialog")
    dialog.wait_for()
    assert "shown only once" in dialog.inner_text()
    client_id = dialog.locator("#new-client-id").inner_text()
    secret = dialog.locator("#new-client-secret").inner_text()
    assert client_id.startswith("cli_") and len(secret) >= 43
    shot(page, "06-client-secret", full_page=False)
    dialog.get_by_role("button", name="Copy secret").click()
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
    assert "billing-backend" in row.inner_text() and "write" in row.inner_text()
    assert secret not in page.content()  # never shown again
    shot(page, "06-clients")

    row.get_by_role("button", name="Delete").click()
    with page.expect_navigation():
        page.locator("#confirm-dialog").get_by_role("button", name="Delete client").click()
    assert page.locator("#clients-empty").is_visible()
    assert api.get(f"/api/v1/projects/{pid}/clients").json()["clients"] == []


def _tamper(token: str) -> str:
    head, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "mallory"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{head}.{forged}.{sig}"


def _inspect(page: Any, token: str) -> dict[str, str]:
    page.get_by_label("JWT").fill(token)
    with page.expect_response("**/tokens/inspect") as resp:
        page.get_by_role("button", name="Inspect", exact=True).click()
    assert resp.value.status == 200
    page.locator("#inspection").wait_for()
    rows = page.locator("#checks-table tbody tr")
    page.wait_for_function("document.querySelectorAll('#checks-table tbody tr').length > 0")
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
    assert "must be a JSON object" in page.locator("#mint-token [data-error]").inner_text()
    page.get_by_label("Extra claims (JSON object, optional)").fill('{"iss": "https://evil"}')
    page.get_by_role("button", name="Mint token").click()
    page.locator("#mint-token [data-error]", has_text="may not set iss").wait_for()

    page.get_by_label("Extra claims (JSON object, optional)").fill('{"role": "tester"}')
    page.get_by_role("button", name="Mint token").click()
    page.locator("#minted").wait_for()
    token = page.locator("#minted-token").inner_text().strip()

    page.get_by_role("button", name="Inspect this token").click()
    page.locator("#verdict", has_text="Valid").wait_for()
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
    assert kid in page.locator("#checks-table").inner_text()
    payload = json.loads(page.locator("#inspect-payload").inner_text())
    assert payload["sub"] == "alice" and payload["role"] == "tester"
    assert json.loads(page.locator("#inspect-header").inner_text())["kid"] == kid
    exp_text = page.locator('#inspect-times dd[data-claim="exp"]').inner_text()
    assert "in 15 minutes" in exp_text or "in 14 minutes" in exp_text
    shot(page, "07-token-tools")

    # A forged payload: decoded, but the signature fails.
    result = _inspect(page, _tamper(token))
    assert result["signature"].startswith("fail")
    assert "Invalid" in page.locator("#verdict").inner_text()

    # An expired token: exp fails with the reason spelled out.
    short = api.post(f"/api/v1/projects/{pid}/tokens", json={"sub": "bob", "ttl": 1}).json()
    time.sleep(2.2)
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
    assert "Chain intact" in chain.inner_text()
    count = api.get("/api/v1/audit/verify").json()["count"]
    assert f"all {count} entries verified" in chain.inner_text()

    page.get_by_label("Project").select_option(pid)
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
    page.locator("#chain-result", has_text=f"all {count + 1} entries verified").wait_for()
