"""Flows 2 and 3: projects, and the JSON Web Key panel end to end."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from jwkit.errors import KeyNotFound, StatusUnavailable
from jwkit.verify import Verifier
from tests.browser.conftest import active_kid, keys_of, shot

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
    expect(page.get_by_role("heading", name=name, level=1)).to_be_visible()
    created = api.get(f"/api/v1/projects/{project_id}").json()
    assert (created["name"], created["algorithm"], created["token_ttl"]) == (name, "ES384", 600)

    page.goto("/console/projects")
    row = page.locator(f'#projects-table tr[data-project-id="{project_id}"]')
    expect(row).to_contain_text(name)
    expect(row).to_contain_text("ES384")
    shot(page, "02-projects")
    row.get_by_role("link", name=name).click()
    page.wait_for_url(f"**/console/projects/{project_id}")
    shot(page, "03-project-overview")

    # Rename.
    page.locator("#ps-name").fill(name + " v2")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("heading", name=name + " v2", level=1)).to_be_visible()
    assert api.get(f"/api/v1/projects/{project_id}").json()["name"] == name + " v2"

    # Invalid input is explained, not a 500.
    page.locator("#ps-ttl").fill("0")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#project-settings [data-error]")).to_contain_text("whole number")

    # Delete with a typed confirmation; a wrong name keeps the button disabled.
    page.get_by_role("button", name="Delete project…").click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label(f"Type {name} v2 to confirm")).to_be_visible()
    expect(dialog.locator("#confirm-check")).to_be_hidden()  # typing is the confirmation here
    confirm = dialog.get_by_role("button", name="Delete project")
    expect(confirm).to_be_disabled()
    dialog.get_by_role("textbox").fill("wrong name")
    expect(confirm).to_be_disabled()
    dialog.get_by_role("textbox").fill(name + " v2")
    expect(confirm).to_be_enabled()
    confirm.click()
    page.wait_for_url("**/console/projects")
    expect(page.locator(f'tr[data-project-id="{project_id}"]')).to_have_count(0)
    assert api.get(f"/api/v1/projects/{project_id}").status_code == 404
    # An unknown project is a 404 page, not a crash.
    r = page.goto(f"/console/projects/{project_id}")
    assert r.status == 404
    expect(page.locator(".alert-error")).to_contain_text("no project")


def _snippet_accepts(folder: Path, token: str) -> str:
    """Run the console's Python snippet (``verify.py TOKEN``) as shown; return the ``sub``."""
    done = subprocess.run([sys.executable, "verify.py", token], cwd=folder,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.split()[0]


def _open_panel(page: Any) -> Any:
    page.get_by_role("button", name="JSON Web Key").click()
    panel = page.locator("#jwk-panel")
    expect(panel).to_be_visible()
    return panel


def test_json_web_key_panel_generate_download_and_verify(
    admin_page: Any, api: httpx.Client, make_project: Any, tmp_path: Path
) -> None:
    page = admin_page
    project = make_project()
    pid = project["id"]
    old_kid = active_kid(api, pid)
    old_token = api.post(f"/api/v1/projects/{pid}/tokens", json={"sub": "before"}).json()
    (old_public,) = [k["public_jwk"] for k in keys_of(api, pid) if k["kid"] == old_kid]
    page.goto(f"/console/projects/{pid}")
    kit = page.get_by_role("region", name="Authentication Kit")
    expect(kit).to_contain_text("🔑")
    expect(kit).to_contain_text("JSON Web Key")
    panel = _open_panel(page)
    box = panel.bounding_box()
    assert box["x"] + box["width"] >= 1279 and box["x"] > 500  # docked on the right side
    expect(panel.locator("summary", has_text="Json Web Key")).to_be_visible()
    expect(panel).to_contain_text("backend servers verify")
    expect(panel).to_contain_text("encrypted")
    # What a new key does, said per kind of verifier (a downloaded key keeps verifying).
    effect = panel.locator("#replace-effect")
    expect(effect).to_contain_text("follows the JWKS URL")
    expect(effect).to_contain_text(f"at most {project['jwks_max_age']} s later")
    expect(effect).to_contain_text("downloaded public_key.json is not told")
    expect(effect).to_contain_text("keeps accepting them until their exp")
    expect(effect).to_contain_text("refuses them once it fetches a list signed by the new key")
    expect(effect).to_contain_text("revoke it instead (token status lists)")
    expect(panel).not_to_contain_text("tokens it signed stop verifying")
    expect(panel.locator("#latest-kid")).to_have_text(old_kid)

    # The checklist and the snippets carry this project's real values.
    checklist = panel.locator("#checklist")
    for text in (project["issuer"], project["audience"], "ES256", "public key"):
        expect(checklist).to_contain_text(text)
    for lang in ("python", "fastapi", "node"):
        expect(panel.locator(f"#snippet-{lang}")).to_contain_text(project["issuer"])
        expect(panel.locator(f"#snippet-{lang}")).to_contain_text(pid)
    expect(panel.locator("#snippet-node")).to_contain_text("createRemoteJWKSet")
    expect(panel.locator("#snippet-fastapi")).to_contain_text("BearerAuth")

    # Cancel leaves everything unchanged.
    panel.get_by_role("button", name="Generate Public Key JSON").click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(old_kid)
    expect(dialog).to_contain_text("keeps accepting them until they expire if it checks only")
    expect(dialog.locator("#confirm-typed")).to_be_hidden()
    expect(dialog.locator("#confirm-check")).to_be_hidden()
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(panel.locator("#new-key")).to_be_hidden()
    assert active_kid(api, pid) == old_kid
    expect(panel.locator("#latest-kid")).to_have_text(old_kid)

    # Confirm: the new public key appears once.
    panel.get_by_role("button", name="Generate Public Key JSON").click()
    with page.expect_response(f"**/api/v1/projects/{pid}/keys") as created:
        dialog.get_by_role("button", name="Invalidate and generate").click()
    assert created.value.status == 201
    new_kid = active_kid(api, pid)
    assert new_kid != old_kid
    expect(panel.locator("#latest-kid")).to_have_text(new_kid)
    shown = panel.locator("#new-key-json").inner_text()
    jwk = json.loads(shown)
    assert list(jwk)[:7] == ["kty", "crv", "x", "y", "alg", "kid", "use"]
    assert (jwk["kid"], jwk["alg"], jwk["use"], jwk["crv"]) == (new_kid, "ES256", "sig", "P-256")
    assert "d" not in jwk
    expect(panel.locator("#new-key")).to_contain_text("will not be shown again")
    expect(panel.locator("#latest-created")).to_have_attribute("datetime", re.compile(r"^20"))
    shot(page, "04-jwk-panel-new-key", full_page=False)

    panel.get_by_role("button", name="Copy", exact=True).click()
    expect(page.locator("#toast")).to_have_text("Public key copied to the clipboard.")
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
    expect(panel).to_be_hidden()
    panel = _open_panel(page)
    expect(panel.locator("#new-key")).to_be_hidden()
    expect(panel.locator("#new-key-json")).to_have_text("")
    page.reload()
    panel = _open_panel(page)
    expect(panel.locator("#latest-kid")).to_have_text(new_kid)
    expect(panel.locator("#new-key-json")).to_have_text("")
    python_snippet = panel.locator("#snippet-python").inner_text()
    page.keyboard.press("Escape")

    # Mint a token in the console and verify it with the downloaded file.
    page.get_by_role("link", name="Token tools").click()
    page.get_by_label("Subject (sub)").fill("user-42")
    page.get_by_role("button", name="Mint token").click()
    expect(page.locator("#minted-token")).to_contain_text(".")
    token = page.locator("#minted-token").inner_text().strip()
    verifier = Verifier.from_jwk_file(
        path, issuer=project["issuer"], audience=pid, status_allow_insecure_http=True
    )
    claims = verifier.verify(token)
    assert claims.sub == "user-42"
    assert claims.header["kid"] == new_kid
    with pytest.raises(KeyNotFound):  # a verifier holding only the new key: old tokens fail
        verifier.verify(old_token["access_token"])
    verifier.close()

    # What the panel says about the previous key holds: a verifier that follows the JWKS
    # rejects the old token now; one holding the old downloaded key still accepts it when it
    # checks only signature and claims, and refuses it once it checks the status list (signed
    # with the new key).
    follower = Verifier.from_jwks_url(
        project["jwks_uri"], issuer=project["issuer"], audience=pid, allow_insecure_http=True
    )
    with pytest.raises(KeyNotFound):
        follower.verify(old_token["access_token"])
    follower.close()
    holder = Verifier.from_jwk(
        old_public, issuer=project["issuer"], audience=pid, check_status=False
    )
    assert holder.verify(old_token["access_token"]).sub == "before"
    with pytest.raises(KeyNotFound):
        holder.verify(token)
    holder.close()
    checker = Verifier.from_jwk(
        old_public, issuer=project["issuer"], audience=pid, status_allow_insecure_http=True
    )
    with pytest.raises(StatusUnavailable):
        checker.verify(old_token["access_token"])
    checker.close()

    # The Python snippet runs as shown, next to the downloaded file.
    (tmp_path / "verify.py").write_text(python_snippet)
    assert _snippet_accepts(tmp_path, token) == "user-42"


def test_hs256_secret_is_shown_once_with_copy_and_download_and_rotates_when_pre_shared(
    admin_page: Any, api: httpx.Client, tmp_path: Path
) -> None:
    page = admin_page
    name = f"HMAC {uuid.uuid4().hex[:6]}"
    page.get_by_label("Name").fill(name)
    page.get_by_label("Signing algorithm").select_option("HS256")
    page.get_by_text("Advanced").click()
    page.get_by_label("JWKS cache lifetime (seconds)").fill("0")
    page.get_by_role("button", name="Create project").click()

    # The secret key set, once, before leaving the page.
    dialog = page.locator("#project-secret-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Shown once; store it now.")
    shown = json.loads(dialog.locator("#project-secret-json").inner_text())
    assert [k["kty"] for k in shown["keys"]] == ["oct", "oct"]
    dialog.get_by_role("button", name="Copy").click()
    expect(page.locator("#toast")).to_have_text("Secret key set copied to the clipboard.")
    assert json.loads(page.evaluate("navigator.clipboard.readText()")) == shown
    with page.expect_download() as dl:
        dialog.get_by_role("button", name="Download secret_jwks.json").click()
    assert dl.value.suggested_filename == "secret_jwks.json"
    secret_file = tmp_path / "secret_jwks.json"
    dl.value.save_as(secret_file)
    assert json.loads(secret_file.read_text()) == shown
    shot(page, "03-hs256-secret-once", full_page=False)
    with page.expect_navigation():
        dialog.get_by_role("button", name="Done, I stored it").click()
    pid = page.url.rsplit("/", 1)[1]
    project = api.get(f"/api/v1/projects/{pid}").json()
    for k in shown["keys"]:
        assert k["k"] not in page.content()  # never shown again

    # The panel speaks of a shared secret: no public key, no public_key.json, no JWKS.
    page.get_by_role("button", name="Shared secret").click()
    panel = page.locator("#jwk-panel")
    expect(panel.locator("#jwk-panel-title")).to_have_text("🔑 Shared secret")
    expect(panel.locator("#checklist")).to_contain_text("shared secret")
    for text in (
        "public key",
        "Public Key",
        "public_key.json",
        "createRemoteJWKSet",
        "from_jwks_url",
        "stays in the service",
    ):
        expect(panel).not_to_contain_text(text)
    for lang in ("python", "fastapi", "node"):
        expect(panel.locator(f"#snippet-{lang}")).to_contain_text("secret_jwks.json")
    python_snippet = panel.locator("#snippet-python").inner_text()

    # A token verifies with the downloaded file, through the snippet as shown.
    token = api.post(f"/api/v1/projects/{pid}/tokens", json={"sub": "hs-user"}).json()
    (tmp_path / "verify.py").write_text(python_snippet)
    assert _snippet_accepts(tmp_path, token["access_token"]) == "hs-user"

    # Rotation promotes the next secret shared at creation; then no next secret exists, and
    # the console says so before the next rotation.
    assert api.post(f"/api/v1/projects/{pid}/keys/rotate", json={}).status_code == 200
    page.reload()
    expect(page.locator("[data-next-secret-warning]").first).to_contain_text(
        "No pre-shared next secret"
    )
    page.get_by_role("button", name="Shared secret").click()
    expect(panel.locator("#next-kid")).to_have_text("none shared yet")
    panel.get_by_role("button", name="Generate the next secret").click()
    box = panel.locator("#new-key")
    expect(box).to_contain_text("Shown once; store it now.")
    expect(box).to_contain_text('Add this key to the "keys" of secret_jwks.json')
    nxt = json.loads(panel.locator("#new-key-json").inner_text())
    expect(panel.locator("#next-kid")).to_have_text(nxt["kid"])
    expect(panel.locator("[data-next-secret-warning]")).to_be_hidden()
    with page.expect_download() as dl:
        panel.get_by_role("button", name="Download").click()
    assert json.loads(Path(dl.value.path()).read_text()) == nxt
    shot(page, "04-hs256-next-secret", full_page=False)
    secret_file.write_text(json.dumps({"keys": [*shown["keys"], nxt]}))
    rotated = api.post(f"/api/v1/projects/{pid}/keys/rotate", json={}).json()
    assert rotated["active"] == nxt["kid"]
    token = api.post(f"/api/v1/projects/{pid}/tokens", json={"sub": "after-rotation"}).json()
    assert _snippet_accepts(tmp_path, token["access_token"]) == "after-rotation"
    assert project["algorithm"] == "HS256"

    # Without a next secret, the Keys page warns, and a rotation is refused in plain words,
    # with no emergency path offered around it.
    page.goto(f"/console/projects/{pid}/keys")
    expect(page.locator("[data-next-secret-warning]")).to_contain_text("No pre-shared next secret")
    page.get_by_role("button", name="Rotate (graceful)").click()
    message = page.locator("#keys-message")
    expect(message).to_contain_text("no pre-shared next secret to rotate to")
    expect(message.get_by_role("button")).to_have_count(0)
    api.delete(f"/api/v1/projects/{pid}")
