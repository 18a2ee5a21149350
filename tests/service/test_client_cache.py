"""The token endpoint's client cache: known clients survive reloads, unknown ids cannot pin
memory or push the known ones out, and ids too long to exist cost no database query.

Everything runs on the real SQLite database of the ``service`` fixture; queries of the clients
table are counted with SQLAlchemy's ``before_cursor_execute`` event on the service's engine.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from jwkit.service import state as state_module
from jwkit.service.domain.clients import CLIENT_ID_MAX
from jwkit.service.runtime import Service

from .conftest import AUTH, SyncClient

FORM = {"content-type": "application/x-www-form-urlencoded"}


def _recorded(service: Service, keep: str = "") -> Iterator[list[str]]:
    """The SQL statements the service's engine runs (those containing ``keep``)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if keep in statement:
            seen.append(statement)

    event.listen(service.db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(service.db.engine, "before_cursor_execute", record)


@pytest.fixture
def queries(service: Service) -> Iterator[list[str]]:
    yield from _recorded(service, "FROM clients")


def _token(client: SyncClient, project: dict[str, Any], client_id: str, secret: str) -> Any:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return client.post(
        f"/p/{project['id']}/oauth2/token",
        content=b"grant_type=client_credentials",
        headers=FORM | {"Authorization": f"Basic {raw}"},
    )


def test_known_clients_survive_a_reload_and_deleted_ones_do_not(
    client: SyncClient,
    project: dict[str, Any],
    oauth_client: dict[str, Any],
    service: Service,
    queries: list[str],
) -> None:
    cid, secret = oauth_client["client_id"], oauth_client["client_secret"]
    other = client.post(
        f"/api/v1/projects/{project['id']}/clients", json={"name": "other"}, headers=AUTH
    ).json()
    assert _token(client, project, cid, secret).status_code == 200
    assert _token(client, project, other["client_id"], other["client_secret"]).status_code == 200
    # An unrelated change reloads the snapshot; a deletion too.
    assert (
        client.post("/api/v1/projects", json={"name": "unrelated"}, headers=AUTH).status_code == 201
    )
    assert (
        client.delete(
            f"/api/v1/projects/{project['id']}/clients/{other['client_id']}", headers=AUTH
        ).status_code
        == 204
    )
    assert service.state.cached_client(cid)[0]  # still known, without asking the database
    assert not service.state.cached_client(other["client_id"])[0]
    queries.clear()
    assert _token(client, project, cid, secret).status_code == 200
    assert queries == []
    assert _token(client, project, other["client_id"], other["client_secret"]).status_code == 401


def test_a_reload_refreshes_a_client_that_changed(
    client: SyncClient,
    project: dict[str, Any],
    oauth_client: dict[str, Any],
    service: Service,
) -> None:
    from jwkit.service.store.models import Client

    cid, secret = oauth_client["client_id"], oauth_client["client_secret"]
    assert _token(client, project, cid, secret).json()["scope"] == "read write"
    from jwkit.service.domain import audit

    with service.write() as session:  # a change made by another replica or a future endpoint
        row = session.get(Client, cid)
        assert row is not None
        row.scopes = "read"
        audit.bump_version(session, project["id"])  # every change names its project
    assert _token(client, project, cid, secret).json()["scope"] == "read"


def test_the_safety_net_keeps_an_unchanged_record_and_repairs_one_changed_by_hand(
    client: SyncClient,
    project: dict[str, Any],
    oauth_client: dict[str, Any],
    service: Service,
) -> None:
    """A slice re-reads the clients of its projects: a record whose row is as cached stays
    the same object (nothing is reallocated a hundred times a second), and a row changed
    without naming its project (by hand, in SQL) is picked up within the round."""
    from jwkit.service.store.models import Client

    cid, secret = oauth_client["client_id"], oauth_client["client_secret"]
    other = client.post(
        f"/api/v1/projects/{project['id']}/clients", json={"name": "other"}, headers=AUTH
    ).json()
    assert _token(client, project, cid, secret).status_code == 200
    assert _token(client, project, other["client_id"], other["client_secret"]).status_code == 200
    state = service.state
    kept = state.cached_client(cid)[1]
    with service.write() as session:  # no change row names it
        row = session.get(Client, other["client_id"])
        assert row is not None
        row.scopes = "read"
    state._recheck_queue = [project["id"]]
    assert state._recheck_slice()
    assert state.cached_client(cid)[1] is kept
    changed = state.cached_client(other["client_id"])[1]
    assert changed is not None and changed.scopes == frozenset({"read"})
    token = _token(client, project, other["client_id"], other["client_secret"])
    assert token.json()["scope"] == "read"


def test_ids_longer_than_the_column_are_refused_without_a_query(
    client: SyncClient,
    project: dict[str, Any],
    service: Service,
    queries: list[str],
) -> None:
    for size in (CLIENT_ID_MAX + 1, 4096):
        long_id = "c" * size
        r = client.post(
            f"/p/{project['id']}/oauth2/token",
            content=f"grant_type=client_credentials&client_id={long_id}&client_secret=x".encode(),
            headers=FORM,
        )
        assert r.status_code == 401 and r.json()["error"] == "invalid_client"
        assert _token(client, project, long_id, "x").status_code == 401
    assert queries == []
    assert service.state._misses == {} and service.state._miss_bytes == 0
    # One character shorter is a possible id: looked up once, then remembered as a miss.
    r = _token(client, project, "c" * CLIENT_ID_MAX, "x")
    assert r.status_code == 401 and len(queries) == 1
    assert _token(client, project, "c" * CLIENT_ID_MAX, "x").status_code == 401
    assert len(queries) == 1


def test_unknown_ids_are_bounded_by_bytes_and_never_evict_known_clients(
    client: SyncClient,
    project: dict[str, Any],
    oauth_client: dict[str, Any],
    service: Service,
    monkeypatch: pytest.MonkeyPatch,
    queries: list[str],
) -> None:
    monkeypatch.setattr(state_module, "_MISS_BYTES", 16 * 1024)
    monkeypatch.setattr(state_module, "_KNOWN_MAX", 4)
    cid, secret = oauth_client["client_id"], oauth_client["client_secret"]
    assert _token(client, project, cid, secret).status_code == 200
    state = service.state
    per_entry = CLIENT_ID_MAX + state_module._MISS_OVERHEAD
    unknown = [f"cli_{n:060d}" for n in range(3 * 16 * 1024 // per_entry)]
    for cid_unknown in unknown:
        assert state.load_client(cid_unknown) is None
    assert state._miss_bytes <= 16 * 1024
    assert state._miss_bytes == sum(len(c) + state_module._MISS_OVERHEAD for c in state._misses)
    assert list(state._misses) == unknown[-len(state._misses) :]  # the oldest went first
    assert len(state._misses) >= 16 * 1024 // per_entry - 1
    queries.clear()
    assert _token(client, project, cid, secret).status_code == 200  # still known
    assert queries == []


@pytest.fixture
def statements(service: Service) -> Iterator[list[str]]:
    yield from _recorded(service)


def test_a_projects_first_token_reads_its_client_and_key_in_one_transaction(
    client: SyncClient,
    project: dict[str, Any],
    oauth_client: dict[str, Any],
    service: Service,
    statements: list[str],
) -> None:
    view = service.state.projects[project["id"]]
    assert view.opened is None  # nothing signed here yet
    statements.clear()
    r = _token(client, project, oauth_client["client_id"], oauth_client["client_secret"])
    assert r.status_code == 200, r.text
    assert service.state.projects[project["id"]].opened is not None
    begins = [n for n, s in enumerate(statements) if s.startswith("BEGIN")]
    read_client = next(n for n, s in enumerate(statements) if "FROM clients" in s)
    read_key = next(n for n, s in enumerate(statements) if "FROM keys" in s)
    # one transaction holds both reads (the key's exp mark is written after it, in its own)
    opened_by = max(b for b in begins if b < read_client)
    assert opened_by < read_client < read_key
    assert not [b for b in begins if read_client < b < read_key]
    assert len([s for s in statements if "FROM clients" in s]) == 1
    assert len([s for s in statements if "FROM keys" in s]) == 1
    # the second token reads nothing
    statements.clear()
    r = _token(client, project, oauth_client["client_id"], oauth_client["client_secret"])
    assert r.status_code == 200
    assert [s for s in statements if "SELECT" in s] == []


@pytest.mark.parametrize("who", ["unknown", "other project"])
def test_a_request_that_is_not_the_projects_client_does_not_open_its_key(
    client: SyncClient, project: dict[str, Any], service: Service, who: str
) -> None:
    if who == "unknown":
        cid, secret = "cli_nobody", "whatever"
    else:
        other = client.post("/api/v1/projects", json={"name": "other"}, headers=AUTH).json()
        made = client.post(
            f"/api/v1/projects/{other['id']}/clients", json={"name": "theirs"}, headers=AUTH
        ).json()
        cid, secret = made["client_id"], made["client_secret"]
    for _ in range(2):  # an uncached lookup, then a cached one
        r = _token(client, project, cid, secret)
        assert r.status_code == 401
        assert r.json()["error"] == "invalid_client"
    assert service.state.projects[project["id"]].opened is None


class _CountingDict(dict):  # type: ignore[type-arg]
    """A dict that counts how often it is walked (iteration, keys, items, values, copies)."""

    walks = 0

    def __iter__(self) -> Any:
        _CountingDict.walks += 1
        return super().__iter__()

    def keys(self) -> Any:
        _CountingDict.walks += 1
        return super().keys()

    def items(self) -> Any:
        _CountingDict.walks += 1
        return super().items()

    def values(self) -> Any:
        _CountingDict.walks += 1
        return super().values()


def _seeded_clients(service: Service, count: int) -> tuple[list[str], list[str]]:
    from ..support.scale import client_id, seed_projects

    ids = seed_projects(service.db, service.vault, count, now=service.clock(), clients=True)
    service.state.reload()
    for n in range(count):
        assert service.state.load_client(client_id("proj_seed", n)) is not None
    return [client_id("proj_seed", n) for n in range(count)], ids


def test_a_change_re_reads_its_projects_clients_without_walking_the_others(
    client: SyncClient, service: Service, queries: list[str]
) -> None:
    from jwkit.service.domain import audit
    from jwkit.service.store.models import Client

    cids, pids = _seeded_clients(service, 2000)
    state = service.state
    state._known = _CountingDict(state._known)
    _CountingDict.walks = 0
    queries.clear()
    with service.write() as session:  # project 7's client loses a scope; project 8's is deleted
        row = session.get(Client, cids[7])
        assert row is not None
        row.scopes = "none"
        audit.bump_version(session, pids[7])
        gone = session.get(Client, cids[8])
        session.delete(gone)
        audit.bump_version(session, pids[8])
    # (the write applied the change on this replica as it committed)
    assert _CountingDict.walks == 0  # found through the per-project index
    rereads = [q for q in queries if q.startswith("SELECT") and " IN (" in q]
    assert len(rereads) == 1 and rereads[0].endswith("IN (?, ?)")  # the two, in one query
    assert state.cached_client(cids[7])[1].scopes == frozenset({"none"})  # type: ignore[union-attr]
    assert state.cached_client(cids[8]) == (False, None)  # forgotten: looked up again
    assert state.cached_client(cids[9])[0]  # the others stay known
    assert len(state._known) == 1999
    assert set(state._known_of) == set(pids) - {pids[8]}


def test_the_per_project_index_follows_evictions(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state_module, "_KNOWN_MAX", 50)
    cids, pids = _seeded_clients(service, 120)
    state = service.state
    assert list(state._known) == cids[-50:]  # the oldest went first
    assert {c for ids in state._known_of.values() for c in ids} == set(cids[-50:])
    assert set(state._known_of) == set(pids[-50:])
    state.reload()  # the safety net re-reads them all and keeps the index
    assert {c for ids in state._known_of.values() for c in ids} == set(state._known)
