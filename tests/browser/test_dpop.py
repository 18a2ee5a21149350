"""The project settings' "Require DPoP" box: checked, saved, shown again, and the token
endpoint follows it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import shot

pytestmark = pytest.mark.browser


def test_require_dpop_toggle(admin_page: Any, api: httpx.Client, make_project: Any) -> None:
    page = admin_page
    project = make_project(name="Payments DPoP")
    page.goto(f"/console/projects/{project['id']}")
    box = page.get_by_label("Require DPoP: issue sender-constrained tokens only (RFC 9449)")
    expect(box).to_be_visible()
    expect(box).not_to_be_checked()
    box.check()
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("status").filter(has_text="Project saved.")).to_be_visible()
    expect(box).to_be_checked()  # after the reload, from the saved project
    assert api.get(f"/api/v1/projects/{project['id']}").json()["dpop_required"] is True
    shot(page, "dpop-require-toggle")
    client = api.post(
        f"/api/v1/projects/{project['id']}/clients", json={"name": "c", "scopes": ["read"]}
    ).json()
    refused = httpx.post(
        project["token_endpoint"],
        data={"grant_type": "client_credentials"},
        auth=(client["client_id"], client["client_secret"]),
    )
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_dpop_proof"

    box.uncheck()
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("status").filter(has_text="Project saved.")).to_be_visible()
    expect(box).not_to_be_checked()
    assert api.get(f"/api/v1/projects/{project['id']}").json()["dpop_required"] is False
