"""The console as it looks, at a 390 px phone and a 1280 px desktop: no page wider than the
viewport, every toast and dialog visible on top (what a person sees, not what is in the DOM),
the keys table inside its card, the timeline's "now" on screen. Screenshots of every screen at
both sizes go to ``tests/artifacts/screenshots/`` (``{width}-{screen}.png``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Server, login, new_context, shot

pytestmark = pytest.mark.browser

WIDTHS = (390, 1280)

#: Whether the element's centre is painted by it (or a descendant): on top, not covered.
_ON_TOP = """(el) => {
    const r = el.getBoundingClientRect();
    const x = r.left + r.width / 2, y = r.top + r.height / 2;
    if (x < 0 || y < 0 || x > innerWidth || y > innerHeight) return false;
    const saved = el.style.pointerEvents;  // a toast lets clicks through; hit-test it anyway
    el.style.pointerEvents = "auto";
    const hit = document.elementFromPoint(x, y);
    el.style.pointerEvents = saved;
    return !!hit && (hit === el || el.contains(hit));
}"""


_WHO = """(el) => {
    const r = el.getBoundingClientRect();
    const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    return `covered by ${hit && hit.outerHTML.slice(0, 120)} at ${JSON.stringify(r)}`;
}"""


def assert_on_top(locator: Any) -> None:
    expect(locator).to_be_visible()
    assert locator.evaluate(_ON_TOP), locator.evaluate(_WHO)


def assert_fits(page: Any, width: int, what: str) -> None:
    scroll = page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"{what} is {scroll}px wide at a {width}px viewport"


@pytest.fixture(scope="module")
def projects(api: httpx.Client) -> Iterator[dict[str, Any]]:
    """An ES256 project with active, next and retiring keys, a client and a minted token; an
    HS256 project; both deleted afterwards."""
    ec = api.post(
        "/api/v1/projects", json={"name": "Layout EC", "jwks_max_age": 0, "rotation_days": 30}
    ).json()
    api.post(f"/api/v1/projects/{ec['id']}/tokens", json={"sub": "before-rotation"})
    assert api.post(f"/api/v1/projects/{ec['id']}/keys/rotate", json={}).status_code == 200
    api.post(
        f"/api/v1/projects/{ec['id']}/clients",
        json={"name": "layout-client", "scopes": ["read", "write"]},
    )
    hs = api.post("/api/v1/projects", json={"name": "Layout HS", "algorithm": "HS256"}).json()
    yield {"ec": ec, "hs": hs}
    for p in (ec, hs):
        api.delete(f"/api/v1/projects/{p['id']}")


@pytest.fixture(params=WIDTHS, ids=[f"{w}px" for w in WIDTHS])
def sized(request: Any, browser: Any, server: Server) -> Iterator[tuple[Any, int]]:
    width = request.param
    ctx = new_context(browser, server, width=width, height=844 if width < 600 else 860)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page, width
    finally:
        ctx.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def test_every_screen_fits_and_is_captured(
    sized: tuple[Any, int], projects: dict[str, Any], api: httpx.Client
) -> None:
    page, width = sized
    ec, hs = projects["ec"]["id"], projects["hs"]["id"]
    page.goto("/console/login")
    assert_fits(page, width, "login")
    shot(page, f"{width}-01-login")
    login(page)
    screens = [
        ("02-projects", "/console/projects"),
        ("03-project-overview", f"/console/projects/{ec}"),
        ("03-project-overview-hs256", f"/console/projects/{hs}"),
        ("05-keys", f"/console/projects/{ec}/keys"),
        ("05-keys-hs256", f"/console/projects/{hs}/keys"),
        ("06-clients", f"/console/projects/{ec}/clients"),
        ("07-token-tools", f"/console/projects/{ec}/tokens"),
        ("08-audit", "/console/audit"),
        ("08-project-audit", f"/console/projects/{ec}/audit"),
    ]
    for name, path in screens:
        page.goto(path)
        expect(page.locator("h1")).to_be_visible()
        assert_fits(page, width, path)
        shot(page, f"{width}-{name}")

    # The side panels, scrolled to their checklist and code.
    for name, pid in (("04-jwk-panel", ec), ("04-secret-panel-hs256", hs)):
        page.goto(f"/console/projects/{pid}")
        page.locator("#open-jwk-panel").click()
        panel = page.locator("#jwk-panel")
        assert_on_top(panel.locator("#jwk-panel-title"))
        assert_fits(page, width, name)
        shot(page, f"{width}-{name}", full_page=False)
        panel.locator("#checklist").scroll_into_view_if_needed()
        shot(page, f"{width}-{name}-code", full_page=False)

    # The token inspector with its checks table (it once widened the phone page to 448 px).
    page.goto(f"/console/projects/{ec}/tokens")
    token = api.post(f"/api/v1/projects/{ec}/tokens", json={"sub": "layout"}).json()
    page.get_by_label("JWT").fill(token["access_token"])
    page.get_by_role("button", name="Inspect", exact=True).click()
    expect(page.locator("#verdict")).to_contain_text("Valid")
    expect(page.locator("#checks-table tbody tr").first).to_be_visible()
    assert_fits(page, width, "the token inspector")
    shot(page, f"{width}-07-token-inspector")


def test_keys_table_and_timeline_fit(sized: tuple[Any, int], projects: dict[str, Any]) -> None:
    page, width = sized
    login(page)
    page.goto(f"/console/projects/{projects['ec']['id']}/keys")
    rows = page.locator("#keys-table tbody tr")
    expect(rows).to_have_count(3)
    # Every Revoke button inside the card, with nothing to scroll to (a card per key on phones).
    card = page.locator("section.card", has=page.locator("#keys-table")).bounding_box()
    for button in page.locator("[data-revoke]").all():
        button.scroll_into_view_if_needed()
        assert_on_top(button)
        box = button.bounding_box()
        assert card["x"] <= box["x"] and box["x"] + box["width"] <= card["x"] + card["width"]
    wrap = page.locator("#keys-table").locator("xpath=..")
    assert wrap.evaluate("(el) => el.scrollWidth <= el.clientWidth")
    # The retiring key's remaining time is drawn (a scheduled bar from now on).
    kid = page.locator('#keys-table tr[data-state="retiring"]').get_attribute("data-kid")
    remaining = page.locator(f'#timeline g[data-kid="{kid}"] rect.bar-retiring.bar-planned')
    expect(remaining.first).to_have_attribute("class", "bar bar-retiring bar-planned")
    assert (
        max(float(w) for w in remaining.evaluate_all("rs => rs.map(r => r.getAttribute('width'))"))
        > 50
    )
    # Readable labels (the picture scrolls rather than shrinks on a phone).
    label = page.locator("#timeline .row-label").first.bounding_box()
    assert label["height"] >= 10, f"timeline labels are {label['height']}px high"
    # "now" is on screen without scrolling the timeline by hand.
    now = page.locator("#timeline .now-line")
    now.scroll_into_view_if_needed()
    box = now.bounding_box()
    assert 0 <= box["x"] <= width, f"'now' is at x={box['x']} on a {width}px screen"


def test_toasts_and_dialogs_are_on_top(sized: tuple[Any, int], projects: dict[str, Any]) -> None:
    page, width = sized
    login(page)
    page.goto(f"/console/projects/{projects['ec']['id']}")
    page.locator("#open-jwk-panel").click()
    panel = page.locator("#jwk-panel")
    copy = panel.get_by_role("button", name="Copy Python (jwkit) snippet")
    copy.scroll_into_view_if_needed()
    copy.click()
    toast = page.locator("#toast")
    expect(toast).to_have_text("Copied to the clipboard.")
    assert_on_top(toast)  # above the side panel (a modal dialog in the top layer)
    shot(page, f"{width}-10-toast-over-panel", full_page=False, keep_toast=True)

    # A confirmation over the panel: on top, and the toast above it too.
    page.get_by_role("button", name="Generate Public Key JSON").click()
    dialog = page.locator("#confirm-dialog")
    assert_on_top(dialog.get_by_role("button", name="Cancel"))
    expect(dialog.locator("#confirm-typed")).to_be_hidden()
    expect(dialog.locator("#confirm-check")).to_be_hidden()
    page.evaluate("document.querySelector('#confirm-ok').focus()")
    shot(page, f"{width}-11-confirm-over-panel", full_page=False)
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
