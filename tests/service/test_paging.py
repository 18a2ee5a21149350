"""The admin lists page with opaque keyset cursors (``limit``, ``cursor`` -> ``next_cursor`` and
a ``Link: rel="next"``), search projects and clients, and refuse a bad cursor or limit with
422, never a 500. Thousands of rows are seeded straight into the real SQLite database."""

from __future__ import annotations

import base64
import json
import string
from typing import Any

import pytest

from jwkit.service.runtime import Service
from tests.service.conftest import AUTH, SyncClient
from tests.support.scale_api import seed_clients, seed_projects

# Before the FakeClock's "now": projects made through the API during a test sort after these.
SEEDED_AT = 1_000_000_000


def _walk(client: SyncClient, url: str, key: str, **params: Any) -> list[list[dict[str, Any]]]:
    """Every page of ``url``, following ``next_cursor`` (and checking ``Link`` agrees)."""
    pages = []
    cursor = None
    while True:
        query = dict(params) | ({"cursor": cursor} if cursor else {})
        r = client.get(url, params=query, headers=AUTH)
        assert r.status_code == 200, r.text
        body = r.json()
        pages.append(body[key])
        cursor = body["next_cursor"]
        if cursor is None:
            assert "link" not in r.headers
            return pages
        assert r.links["next"]["url"].startswith(url + "?")
        assert (
            client.get(r.links["next"]["url"], headers=AUTH).json()
            == client.get(url, params=dict(params) | {"cursor": cursor}, headers=AUTH).json()
        )
        assert len(pages) < 1000


def _ids(pages: list[list[dict[str, Any]]], field: str = "id") -> list[str]:
    return [row[field] for page in pages for row in page]


@pytest.fixture
def seeded(service: Service) -> list[str]:
    return seed_projects(service.settings.resolved_database_url, 3000, at=SEEDED_AT)


def test_projects_page_through_thousands_in_order(client: SyncClient, seeded: list[str]) -> None:
    pages = _walk(client, "/api/v1/projects", "projects", limit=1000)
    assert [len(p) for p in pages] == [1000, 1000, 1000]
    assert _ids(pages) == seeded  # oldest first, ties broken by id, nothing twice
    default = client.get("/api/v1/projects", headers=AUTH).json()
    assert len(default["projects"]) == 100 and default["next_cursor"]


def test_pages_are_stable_while_projects_come_and_go(client: SyncClient, seeded: list[str]) -> None:
    first = client.get("/api/v1/projects", params={"limit": 500}, headers=AUTH).json()
    assert _ids([first["projects"]]) == seeded[:500]
    # Meanwhile: one project on the next page is deleted, one on this page too, one is created.
    assert client.delete(f"/api/v1/projects/{seeded[700]}", headers=AUTH).status_code == 204
    assert client.delete(f"/api/v1/projects/{seeded[10]}", headers=AUTH).status_code == 204
    new = client.post("/api/v1/projects", json={"name": "late"}, headers=AUTH).json()["id"]
    rest = _walk(client, "/api/v1/projects", "projects", limit=1000, cursor=first["next_cursor"])
    expected = [p for p in seeded[500:] if p != seeded[700]] + [new]
    assert _ids(rest) == expected  # no row repeated, none skipped (OFFSET would skip one)


def test_project_search_by_name_prefix_or_id(client: SyncClient, seeded: list[str]) -> None:
    def search(q: str, **params: Any) -> list[str]:
        return _ids(_walk(client, "/api/v1/projects", "projects", q=q, **params))

    names = [f"tenant-{i:05d}" for i in range(420, 430)]
    by_prefix = search("tenant-0042", limit=4)  # three pages of a search
    assert by_prefix == [seeded[i - 1] for i in range(420, 430)]
    listed = client.get("/api/v1/projects", params={"q": "tenant-0042"}, headers=AUTH).json()
    assert [p["name"] for p in listed["projects"]] == names
    assert search("TENANT-0042") == by_prefix  # case ignored
    assert search(seeded[41]) == [seeded[41]]  # an id
    assert search("tenant_") == search("tenant%") == search("enant") == []  # literal, prefix
    assert search("", limit=1000) == seeded  # an empty search is no search


def test_a_cursor_belongs_to_its_search(client: SyncClient, seeded: list[str]) -> None:
    r = client.get("/api/v1/projects", params={"q": "tenant-00", "limit": 2}, headers=AUTH)
    cursor = r.json()["next_cursor"]
    for params in ({"cursor": cursor}, {"cursor": cursor, "q": "tenant-01"}):
        r = client.get("/api/v1/projects", params=params, headers=AUTH)
        assert r.status_code == 422 and r.json()["error"] == "invalid_cursor", r.text
        assert r.json()["detail"][0]["loc"] == ["query", "cursor"]


def _b64(value: Any) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


BAD_CURSORS = [
    "!!!!",
    "abc",  # not base64 of anything whole
    "a" * 401,
    _b64(b"\xff\xfe"),
    _b64(b"not json"),
    _b64({"projects": 1}),
    _b64(["projects"]),
    _b64(["projects", 1, "proj_x", "extra"]),
    _b64(["projects", "1", "proj_x"]),
    _b64(["projects", True, "proj_x"]),
    _b64(["projects", 1.5, "proj_x"]),
    _b64(["projects", -1, "proj_x"]),
    _b64(["projects", 2**63, "proj_x"]),
    _b64(["projects", 1, "x" * 256]),
    _b64(["projects", 1, None]),
    _b64(["elsewhere", 1, "proj_x"]),
    _b64(["projects", 1, "proj_x"]) + "==",
]


@pytest.mark.parametrize("cursor", BAD_CURSORS)
def test_bad_cursors_are_422_never_500(
    client: SyncClient, project: dict[str, Any], cursor: str
) -> None:
    pid = project["id"]
    for url in (
        "/api/v1/projects",
        f"/api/v1/projects/{pid}/keys",
        f"/api/v1/projects/{pid}/clients",
        f"/api/v1/projects/{pid}/events",
        "/api/v1/audit/events",
    ):
        r = client.get(url, params={"cursor": cursor}, headers=AUTH)
        assert r.status_code == 422, (url, r.text)
        assert r.json()["error"] in ("invalid_cursor", "validation_error"), r.text


@pytest.mark.parametrize("limit", ["0", "-1", "1001", "x", "1.5", "99999999999999999999999"])
def test_bad_limits_are_422(client: SyncClient, project: dict[str, Any], limit: str) -> None:
    for url in ("/api/v1/projects", f"/api/v1/projects/{project['id']}/clients"):
        assert client.get(url, params={"limit": limit}, headers=AUTH).status_code == 422


def test_keys_page_oldest_or_newest_first(client: SyncClient, project: dict[str, Any]) -> None:
    pid = project["id"]
    for _ in range(3):  # each supersedes the previous next key (revoked, still listed)
        assert (
            client.post(
                f"/api/v1/projects/{pid}/keys", json={"mode": "next"}, headers=AUTH
            ).status_code
            == 201
        )
    oldest = _walk(client, f"/api/v1/projects/{pid}/keys", "keys", limit=2)
    assert [len(p) for p in oldest] == [2, 2, 1]
    kids = _ids(oldest, "kid")
    assert len(set(kids)) == 5 and [k["state"] for k in oldest[0]] == ["active", "revoked"]
    newest = _ids(
        _walk(client, f"/api/v1/projects/{pid}/keys", "keys", limit=3, order="newest"), "kid"
    )
    assert newest == kids[::-1]
    active = [k for p in oldest for k in p if k["state"] == "active"]
    assert active[0]["retires_at"] is None and active[0]["activates_at"]  # schedule still there


def test_clients_page_and_search(
    client: SyncClient, service: Service, project: dict[str, Any]
) -> None:
    pid = project["id"]
    seeded = seed_clients(service.settings.resolved_database_url, pid, 250, at=SEEDED_AT)
    pages = _walk(client, f"/api/v1/projects/{pid}/clients", "clients", limit=100)
    assert [len(p) for p in pages] == [100, 100, 50]
    assert _ids(pages, "client_id") == seeded
    found = _walk(client, f"/api/v1/projects/{pid}/clients", "clients", q="CLIENT-0012")
    assert _ids(found, "client_id") == seeded[119:129]  # client-00120 .. client-00129
    by_id = _walk(client, f"/api/v1/projects/{pid}/clients", "clients", q=seeded[7])
    assert _ids(by_id, "client_id") == [seeded[7]]


def test_project_events_page_by_cursor_and_after(
    client: SyncClient, project: dict[str, Any]
) -> None:
    pid = project["id"]
    for i in range(5):
        client.post(f"/api/v1/projects/{pid}/clients", json={"name": f"c{i}"}, headers=AUTH)
    url = f"/api/v1/projects/{pid}/events"
    everything = client.get(url, params={"limit": 1000}, headers=AUTH).json()
    assert everything["next_cursor"] is None
    seqs = [e["seq"] for e in everything["events"]]
    assert seqs == sorted(seqs) and len(seqs) >= 6
    assert [
        e["seq"] for e in (p for page in _walk(client, url, "events", limit=2) for p in page)
    ] == seqs
    after = _walk(client, url, "events", limit=2, after=seqs[1])
    assert [e["seq"] for page in after for e in page] == seqs[2:]


def test_audit_log_pages_newest_first(client: SyncClient, project: dict[str, Any]) -> None:
    for i in range(4):
        client.post(
            f"/api/v1/projects/{project['id']}/clients", json={"name": f"c{i}"}, headers=AUTH
        )
    pages = _walk(client, "/api/v1/audit/events", "events", limit=3)
    seqs = [e["seq"] for page in pages for e in page]
    assert seqs == sorted(seqs, reverse=True) and len(seqs) == len(set(seqs)) >= 6
    filtered = _walk(client, "/api/v1/audit/events", "events", limit=2, action="client.")
    assert [e["action"] for page in filtered for e in page] == ["client.created"] * 4


NAMES = [
    "Tenant-1",
    "tenant1",
    "tenant-10",
    "TENANT-2",
    "tenant_x",
    "tenant%y",
    "tenant",
    "tenan",
    "Émile",
    "émile",
    "zeta",
    "tenant-\U0010ffff",
]


@pytest.mark.parametrize(
    "dialect", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
@pytest.mark.parametrize(
    "q",
    [
        "tenant",
        "TENANT-1",
        "tenant-",
        "tenant_",
        "tenant%",
        "Ém",
        "é",
        "z",
        "tenant-\U0010ffff",
        "x",
    ],
)
def test_name_prefix_search_agrees_with_startswith(
    request: pytest.FixtureRequest, tmp_path: Any, dialect: str, q: str
) -> None:
    """The range on lower(name) finds exactly the names that start with the search, case
    ignored, on SQLite (ASCII letters) and PostgreSQL (COLLATE "C", whatever the database's
    own collation would say of ``-`` and ``_``)."""
    from jwkit.service.domain import projects
    from jwkit.service.store.db import Database

    url = (
        f"sqlite:///{tmp_path / 'jwkit.db'}"
        if dialect == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    db = Database(url)
    try:
        db.migrate()
        for i, name in enumerate(NAMES):
            seed_projects(url, 1, name=name, at=SEEDED_AT + 10 * i, start=i + 1)
        with db.session() as s:
            found, cursor = [], None
            while True:  # two at a time: the keyset cursor on both databases
                page = projects.page_projects(s, limit=2, cursor=cursor, search=q)
                found += [p.name for p in page.rows]
                if (cursor := page.next_cursor) is None:
                    break
        ascii_lower = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
        low = q.lower() if dialect == "postgres" else q.translate(ascii_lower)
        expected = [
            n
            for n in NAMES
            if (n.lower() if dialect == "postgres" else n.translate(ascii_lower)).startswith(low)
        ]
        assert found == expected
    finally:
        db.dispose()
