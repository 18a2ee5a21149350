"""Keys page: import your own key, publish and remove another issuer's keys (migration).

Web-first assertions after every action; the PEM comes from the real ``openssl`` binary.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from jwkit.jose.jwk import JWK
from tests.browser.conftest import keys_of, shot
from tests.support.byok import openssl_ec, openssl_rsa, pem_body_lines

pytestmark = pytest.mark.browser


def test_import_form_adds_the_next_key_and_refuses_a_weak_one(
    admin_page: Any, api: httpx.Client, make_project: Any, tmp_path: Path
) -> None:
    page = admin_page
    pid = make_project(algorithm="ES256")["id"]
    page.goto(f"/console/projects/{pid}/keys")
    form = page.locator("#import-key")

    weak = openssl_rsa(tmp_path / "weak.pem", 1024)
    form.get_by_label("Private key (PEM or JWK)").fill(weak)
    form.get_by_role("button", name="Import as next key").click()
    expect(form.locator("[data-error]")).to_contain_text("too weak")
    assert [k["state"] for k in keys_of(api, pid)].count("next") == 1

    pem = openssl_ec(tmp_path / "ec.pem")
    form.get_by_label("Private key (PEM or JWK)").fill(pem)
    with page.expect_navigation():
        form.get_by_role("button", name="Import as next key").click()
    (imported,) = [k for k in keys_of(api, pid) if k["state"] == "next"]
    expect(page.locator("#toast")).to_contain_text(f"Key {imported['kid']} imported")
    row = page.locator(f'#keys-table tr[data-kid="{imported["kid"]}"]')
    expect(row.locator(".badge")).to_have_text("next")
    expect(page.get_by_label("Private key (PEM or JWK)")).to_have_value("")
    html = page.content()
    for line in pem_body_lines(pem):
        assert line not in html
    shot(page, "custody-import")


def test_foreign_keys_form_publishes_lists_and_removes(
    admin_page: Any, api: httpx.Client, make_project: Any
) -> None:
    page = admin_page
    project = make_project(algorithm="ES256")
    pid = project["id"]
    old = JWK.generate("RS256", kid="auth0-old-1")
    page.goto(f"/console/projects/{pid}/keys")
    expect(page.locator("#foreign-empty")).to_have_text("No foreign keys.")
    form = page.locator("#add-foreign")
    until = (datetime.now() + timedelta(days=30)).replace(second=0, microsecond=0)
    form.get_by_label("Or paste the JWK Set").fill(json.dumps({"keys": [old.public().to_dict()]}))
    form.get_by_label("Publish until").fill(until.strftime("%Y-%m-%dT%H:%M"))
    with page.expect_navigation():
        form.get_by_role("button", name="Publish foreign keys").click()
    row = page.locator('#foreign-table tr[data-foreign-kid="auth0-old-1"]')
    expect(row).to_be_visible()
    expect(row).to_contain_text("RSA RS256")
    expect(page.locator("#toast")).to_contain_text("Published foreign key auth0-old-1")
    jwks = httpx.get(project["jwks_uri"]).json()
    assert "auth0-old-1" in [k["kid"] for k in jwks["keys"]]

    # a kid of the project's own keys is refused, in words
    own = keys_of(api, pid)[0]["kid"]
    clash = JWK.generate("ES256", kid=own).public().to_dict()
    form = page.locator("#add-foreign")
    form.get_by_label("Or paste the JWK Set").fill(json.dumps({"keys": [clash]}))
    form.get_by_label("Publish until").fill(until.strftime("%Y-%m-%dT%H:%M"))
    form.get_by_role("button", name="Publish foreign keys").click()
    expect(form.locator("[data-error]")).to_contain_text("already a key of this project")
    shot(page, "custody-foreign")

    page.set_viewport_size({"width": 390, "height": 860})
    expect(page.locator("#add-foreign")).to_be_visible()
    overflow = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    assert not overflow
    page.set_viewport_size({"width": 1280, "height": 860})

    row.get_by_role("button", name="Remove").click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_contain_text("Remove foreign key auth0-old-1?")
    with page.expect_navigation():
        dialog.get_by_role("button", name="Remove").click()
    expect(page.locator("#foreign-empty")).to_be_visible()
    assert "auth0-old-1" not in httpx.get(project["jwks_uri"]).text
