"""Flows 2 and 3: projects, and the JSON Web Key panel end to end."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from jwkit.errors import KeyNotFound
from jwkit.verify import Verifier
from tests.browser.conftest import active_kid, shot

pytestmark = pytest.mark.browser


def test_create_open_rename_and_delete_a_project(
    admin_page: Any, api: httpx.Client, make_project: Any
) -> None:
    page = admin_page
    make_project(name="Billing API", algorithm="RS256")
    make_project(name="Mobile app", algorithm="EdDSA", token_ttl=300)
    page.reload()
    name = f"Payments {uuid.uuid4().hex[:6]}"
    page.get_by_label("Name").fill(name)
    page.get_by_label("Signing algorithm").select_option("ES384")
    page.get_by_label("Token lifetime (seconds)").fill("600")
    page.get_by_role("button", name="Create project").click()
    page.wait_for_url("**/console/projects/proj_*")
    project_id = page.url.rsplit("/", 1)[1]
    assert page.get_by_role("heading", name=name, level=1).is_visible()
    created = api.get(f"/api/v1/projects/{project_id}").json()
    assert (created["name"], created["algorithm"], created["token_ttl"]) == (name, "ES384", 600)

    page.goto("/console/projects")
    row = page.locator(f'#projects-table tr[data-project-id="{project_id}"]')
    assert name in row.inner_text() and "ES384" in row.inner_text()
    shot(page, "02-projects")
    row.get_by_role("link", name=name).click()
    page.wait_for_url(f"**/console/projects/{project_id}")
    shot(page, "03-project-overview")

    # Rename.
    page.locator("#ps-name").fill(name + " v2")
    page.get_by_role("button", name="Save changes").click()
    page.get_by_role("heading", name=name + " v2", level=1).wait_for()
    assert api.get(f"/api/v1/projects/{project_id}").json()["name"] == name + " v2"

    # Invalid input is explained, not a 500.
    page.locator("#ps-ttl").fill("0")
    page.get_by_role("button", name="Save changes").click()
    assert "whole number" in page.locator("#project-settings [data-error]").inner_text()

    # Delete with a typed confirmation; a wrong name keeps the button disabled.
    page.get_by_role("button", name="Delete project…").click()
    dialog = page.locator("#confirm-dialog")
    assert dialog.is_visible()
    confirm = dialog.get_by_role("button", name="Delete project")
    assert confirm.is_disabled()
    dialog.get_by_role("textbox").fill("wrong name")
    assert confirm.is_disabled()
    dialog.get_by_role("textbox").fill(name + " v2")
    assert confirm.is_enabled()
    confirm.click()
    page.wait_for_url("**/console/projects")
    assert page.locator(f'tr[data-project-id="{project_id}"]').count() == 0
    assert api.get(f"/api/v1/projects/{project_id}").status_code == 404
    # An unknown project is a 404 page, not a crash.
    r = page.goto(f"/console/projects/{project_id}")
    assert r.status == 404
    assert "no project" in page.locator(".alert-error").inner_text()


def _open_panel(page: Any) -> Any:
    page.get_by_role("button", name="JSON Web Key").click()
    panel = page.locator("#jwk-panel")
    panel.wait_for(state="visible")
    return panel


def test_json_web_key_panel_generate_download_and_verify(
    admin_page: Any, api: httpx.Client, make_project: Any, tmp_path: Path
) -> None:
    page = admin_page
    project = make_project()
    pid = project["id"]
    old_kid = active_kid(api, pid)
    old_token = api.post(f"/api/v1/projects/{pid}/tokens", json={"sub": "before"}).json()
    page.goto(f"/console/projects/{pid}")
    kit = page.get_by_role("region", name="Authentication Kit")
    assert "🔑" in kit.inner_text() and "JSON Web Key" in kit.inner_text()
    panel = _open_panel(page)
    box = panel.bounding_box()
    assert box["x"] + box["width"] >= 1279 and box["x"] > 500  # docked on the right side
    assert panel.locator("summary", has_text="Json Web Key").is_visible()
    body = panel.inner_text()
    assert "backend servers verify" in body and "encrypted" in body
    assert "invalidates the previous one" in body
    assert panel.locator("#latest-kid").inner_text() == old_kid

    # The checklist and the snippets carry this project's real values.
    checklist = panel.locator("#checklist").inner_text()
    assert project["issuer"] in checklist and project["audience"] in checklist
    assert "ES256" in checklist
    for lang in ("python", "fastapi", "node"):
        snippet = panel.locator(f"#snippet-{lang}").inner_text()
        assert project["issuer"] in snippet and pid in snippet
    assert "createRemoteJWKSet" in panel.locator("#snippet-node").inner_text()
    assert "BearerAuth" in panel.locator("#snippet-fastapi").inner_text()

    # Cancel leaves everything unchanged.
    panel.get_by_role("button", name="Generate Public Key JSON").click()
    dialog = page.locator("#confirm-dialog")
    dialog.wait_for(state="visible")
    assert old_kid in dialog.inner_text()
    dialog.get_by_role("button", name="Cancel").click()
    dialog.wait_for(state="hidden")
    assert panel.locator("#new-key").is_hidden()
    assert active_kid(api, pid) == old_kid
    assert panel.locator("#latest-kid").inner_text() == old_kid

    # Confirm: the new public key appears once.
    panel.get_by_role("button", name="Generate Public Key JSON").click()
    with page.expect_response(f"**/api/v1/projects/{pid}/keys") as created:
        dialog.get_by_role("button", name="Invalidate and generate").click()
    assert created.value.status == 201
    new_kid = active_kid(api, pid)
    assert new_kid != old_kid
    shown = panel.locator("#new-key-json").inner_text()
    jwk = json.loads(shown)
    assert list(jwk)[:7] == ["kty", "crv", "x", "y", "alg", "kid", "use"]
    assert (jwk["kid"], jwk["alg"], jwk["use"], jwk["crv"]) == (new_kid, "ES256", "sig", "P-256")
    assert "d" not in jwk
    assert "will not be shown again" in panel.locator("#new-key").inner_text()
    assert panel.locator("#latest-kid").inner_text() == new_kid
    assert panel.locator("#latest-created").get_attribute("datetime")
    shot(page, "04-jwk-panel-new-key", full_page=False)

    panel.get_by_role("button", name="Copy", exact=True).click()
    assert json.loads(page.evaluate("navigator.clipboard.readText()")) == jwk
    with page.expect_download() as dl:
        panel.get_by_role("button", name="Download").click()
    download = dl.value
    assert download.suggested_filename == "public_key.json"
    path = tmp_path / "public_key.json"
    download.save_as(path)
    assert json.loads(path.read_text()) == jwk
    panel.locator("#checklist").scroll_into_view_if_needed()
    shot(page, "04-jwk-panel-checklist", full_page=False)

    # Closing the panel forgets the key for good.
    panel.get_by_role("button", name="Close panel").click()
    panel.wait_for(state="hidden")
    panel = _open_panel(page)
    assert panel.locator("#new-key").is_hidden()
    assert panel.locator("#new-key-json").inner_text() == ""
    page.reload()
    panel = _open_panel(page)
    assert panel.locator("#latest-kid").inner_text() == new_kid
    assert panel.locator("#new-key-json").inner_text() == ""
    python_snippet = panel.locator("#snippet-python").inner_text()
    page.keyboard.press("Escape")

    # Mint a token in the console and verify it with the downloaded file.
    page.get_by_role("link", name="Token tools").click()
    page.get_by_label("Subject (sub)").fill("user-42")
    page.get_by_role("button", name="Mint token").click()
    page.locator("#minted").wait_for()
    token = page.locator("#minted-token").inner_text().strip()
    verifier = Verifier.from_jwk_file(path, issuer=project["issuer"], audience=pid)
    claims = verifier.verify(token)
    assert claims.sub == "user-42"
    assert claims.header["kid"] == new_kid
    with pytest.raises(KeyNotFound):  # the previous key was invalidated
        verifier.verify(old_token["access_token"])
    verifier.close()

    # The Python snippet runs as shown, next to the downloaded file.
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        scope: dict[str, Any] = {"token": token}
        exec(compile(python_snippet, "snippet.py", "exec"), scope)
        assert scope["claims"].sub == "user-42"
        scope["verifier"].close()
    finally:
        os.chdir(cwd)
