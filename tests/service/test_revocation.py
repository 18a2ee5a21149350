"""Token status in the key service (issue 12): status claims, Status List Tokens, revocations,
RFC 7009 revocation, RFC 7662 introspection, on a real SQLite database through the ASGI app."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.exc import OperationalError

from jwkit.jose import jwt
from jwkit.jose.jwk import JWKSet
from jwkit.jose.statuslist import INVALID, SUSPENDED, VALID, StatusList
from jwkit.service.domain import revocation
from jwkit.service.http.app import create_app
from jwkit.service.runtime import Service
from jwkit.service.store.db import Database

from .conftest import AUTH, FakeClock, SyncClient, make_settings


def _token(client: SyncClient, project: dict[str, Any], cl: dict[str, Any]) -> str:
    r = client.post(
        f"/p/{project['id']}/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(cl["client_id"], cl["client_secret"]),
    )
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def _mint(client: SyncClient, pid: str, sub: str, sid: str | None = None) -> str:
    body: dict[str, Any] = {"sub": sub}
    if sid is not None:
        body["sid"] = sid
    r = client.post(f"/api/v1/projects/{pid}/tokens", json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def _claims(client: SyncClient, project: dict[str, Any], token: str) -> dict[str, Any]:
    jwks = JWKSet.from_json(client.get(f"/p/{project['id']}/.well-known/jwks.json").content)
    return jwt.decode(
        token, jwks, algorithms=["ES256"], issuer=project["issuer"], typ="at+jwt"
    ).to_dict()


def _list(client: SyncClient, project: dict[str, Any], uri: str) -> tuple[StatusList, Any]:
    path = uri.removeprefix("http://testserver")
    r = client.get(path)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/statuslist+jwt"
    jwks = JWKSet.from_json(client.get(f"/p/{project['id']}/.well-known/jwks.json").content)
    claims = jwt.decode(
        r.text, jwks, algorithms=["ES256"], typ="statuslist+jwt", issuer=project["issuer"]
    )
    assert claims["sub"] == uri
    return StatusList.decode(claims["status_list"]), claims


def _status(client: SyncClient, project: dict[str, Any], token: str) -> int:
    ref = _claims(client, project, token)["status"]["status_list"]
    lst, _ = _list(client, project, ref["uri"])
    return lst[ref["idx"]]


def test_tokens_carry_a_status_claim_under_the_issuer(
    client: SyncClient, project: dict[str, Any], oauth_client: dict[str, Any]
) -> None:
    assert project["token_status"] is True
    first = _claims(client, project, _token(client, project, oauth_client))
    second = _claims(client, project, _token(client, project, oauth_client))
    ref1, ref2 = first["status"]["status_list"], second["status"]["status_list"]
    assert ref1["uri"] == f"{project['issuer']}/statuslists/1"
    assert ref2["uri"] == ref1["uri"]
    assert ref2["idx"] == ref1["idx"] + 1
    minted = _claims(client, project, _mint(client, project["id"], "alice", sid="sess-1"))
    assert minted["sid"] == "sess-1"
    assert minted["status"]["status_list"]["uri"] == ref1["uri"]


def test_status_list_token_is_signed_cached_and_conditional(
    client: SyncClient, project: dict[str, Any], oauth_client: dict[str, Any]
) -> None:
    token = _token(client, project, oauth_client)
    uri = _claims(client, project, token)["status"]["status_list"]["uri"]
    lst, claims = _list(client, project, uri)
    assert lst.bits == 1  # 1 bit while nothing in the list is suspended
    assert len(lst) == revocation.LIST_SIZE
    assert claims["iss"] == project["issuer"]
    assert claims["ttl"] == 60
    assert claims["exp"] > claims["iat"]
    path = uri.removeprefix("http://testserver")
    r = client.get(path)
    assert r.headers["cache-control"] == "public, max-age=60, stale-if-error=60"
    header, _ = jwt.decode_unverified(r.text)
    assert header["typ"] == "statuslist+jwt"
    assert header["kid"] == project["active_kid"]
    again = client.get(path, headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""
    assert client.get(f"/p/{project['id']}/statuslists/2").status_code == 404
    assert client.get(f"/p/{project['id']}/statuslists/x").status_code == 404
    assert client.get("/p/nope/statuslists/1").status_code == 404


def test_revoke_by_sub_sid_jti_and_client(
    client: SyncClient, project: dict[str, Any], oauth_client: dict[str, Any], clock: FakeClock
) -> None:
    pid = project["id"]
    alice1 = _mint(client, pid, "alice", sid="s1")
    alice2 = _mint(client, pid, "alice", sid="s2")
    bob = _mint(client, pid, "bob", sid="s3")
    machine = _token(client, project, oauth_client)
    url = f"/api/v1/projects/{pid}/revocations"

    r = client.post(url, json={"sid": "s1"}, headers=AUTH)
    assert r.status_code == 201, r.text
    assert r.json()["count"] == 1
    assert _status(client, project, alice1) == INVALID
    assert _status(client, project, alice2) == VALID

    r = client.post(url, json={"sub": "alice"}, headers=AUTH)
    assert r.json()["count"] == 1  # alice1 was already invalid
    assert r.json()["effective_by"] == revocation_time(clock() + 60 + 1)
    assert _status(client, project, alice2) == INVALID
    assert _status(client, project, bob) == VALID

    r = client.post(url, json={"client_id": oauth_client["client_id"]}, headers=AUTH)
    assert r.json()["count"] == 1
    assert _status(client, project, machine) == INVALID

    jti = _claims(client, project, bob)["jti"]
    r = client.post(url, json={"jti": jti, "status": "suspended"}, headers=AUTH)
    assert r.json()["count"] == 1
    assert _status(client, project, bob) == SUSPENDED
    r = client.post(url, json={"jti": jti, "status": "valid"}, headers=AUTH)
    assert _status(client, project, bob) == VALID
    # Lifting never un-revokes.
    r = client.post(url, json={"sub": "alice", "status": "valid"}, headers=AUTH)
    assert r.json()["count"] == 0
    assert _status(client, project, alice2) == INVALID

    listed = client.get(url, headers=AUTH, params={"limit": 2}).json()
    assert [x.get("sub") for x in listed["revocations"]] == ["alice", None]
    assert listed["revocations"][1]["jti"] == jti
    rest = client.get(
        url, headers=AUTH, params={"limit": 50, "cursor": listed["next_cursor"]}
    ).json()
    assert len(rest["revocations"]) == 4
    assert rest["next_cursor"] is None
    assert rest["revocations"][-1]["sid"] == "s1"

    events = client.get(
        f"/api/v1/projects/{pid}/events", headers=AUTH, params={"limit": 1000}
    ).json()["events"]
    actions = [e["action"] for e in events]
    assert actions.count("token.revoked") == 3
    assert actions.count("token.suspended") == 1
    assert actions.count("token.reinstated") == 2


def revocation_time(ts: int) -> str:
    from jwkit.service.domain.common import isoformat

    return str(isoformat(ts))


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"sub": "a", "sid": "b"},
        {"sub": ""},
        {"sid": "has space"},
        {"sub": "a", "x": 1},
        {"sub": "a", "status": "gone"},
    ],
)
def test_revocation_body_is_checked(
    client: SyncClient, project: dict[str, Any], body: dict[str, Any]
) -> None:
    r = client.post(f"/api/v1/projects/{project['id']}/revocations", json=body, headers=AUTH)
    assert r.status_code == 422, r.text


def test_mint_sid_is_validated(client: SyncClient, project: dict[str, Any]) -> None:
    for sid in ["", "a b", "x" * 129, "é"]:
        r = client.post(
            f"/api/v1/projects/{project['id']}/tokens", json={"sub": "a", "sid": sid}, headers=AUTH
        )
        assert r.status_code == 422, sid
    r = client.post(
        f"/api/v1/projects/{project['id']}/tokens",
        json={"sub": "a", "claims": {"sid": "x"}},
        headers=AUTH,
    )
    assert r.status_code == 422


def test_find_tokens(client: SyncClient, project: dict[str, Any]) -> None:
    pid = project["id"]
    _mint(client, pid, "carol", sid="c1")
    _mint(client, pid, "carol", sid="c2")
    found = client.get(
        f"/api/v1/projects/{pid}/tokens", params={"sub": "carol"}, headers=AUTH
    ).json()["tokens"]
    assert sorted(t["sid"] for t in found) == ["c1", "c2"]
    assert all(t["status"] == "valid" for t in found)
    assert client.get(f"/api/v1/projects/{pid}/tokens", headers=AUTH).status_code == 422


def test_token_ids_with_a_status_sort_in_issue_order(
    client: SyncClient, project: dict[str, Any], oauth_client: dict[str, Any]
) -> None:
    # The batched issuance insert appends to its B-tree only if ids issued from one block
    # sort in issue order (domain.tokens.new_jti); the random part keeps them unguessable.
    tokens = [_token(client, project, oauth_client) for _ in range(40)]
    tokens.append(_mint(client, project["id"], "alice"))
    jtis = [_claims(client, project, t)["jti"] for t in tokens]
    assert jtis == sorted(jtis)
    assert len(set(jtis)) == len(jtis)
    assert len({j[16:] for j in jtis}) == len(jtis) and all(len(j) == 32 for j in jtis)


def test_status_off_keeps_tokens_as_before(
    client: SyncClient, oauth_client: dict[str, Any], project: dict[str, Any]
) -> None:
    r = client.patch(
        f"/api/v1/projects/{project['id']}", json={"token_status": False}, headers=AUTH
    )
    assert r.json()["token_status"] is False
    claims = _claims(client, project, _token(client, project, oauth_client))
    assert "status" not in claims
    assert len(claims["jti"]) == 22  # 128 random bits, nothing else


def test_oauth_revoke_and_introspect(
    client: SyncClient, project: dict[str, Any], oauth_client: dict[str, Any]
) -> None:
    pid = project["id"]
    creds = (oauth_client["client_id"], oauth_client["client_secret"])
    token = _token(client, project, oauth_client)
    r = client.post(f"/p/{pid}/oauth2/introspect", data={"token": token}, auth=creds)
    assert r.status_code == 200
    body = r.json()
    assert body["active"] is True
    assert body["client_id"] == oauth_client["client_id"]
    assert body["sub"] == oauth_client["client_id"]
    for junk in ["nope", token[:-4] + "AAAA", _mint(client, pid, "someone-else") + "x"]:
        r = client.post(f"/p/{pid}/oauth2/introspect", data={"token": junk}, auth=creds)
        assert r.json() == {"active": False}
    # Unauthenticated or wrong secret: 401, like the token endpoint.
    assert client.post(f"/p/{pid}/oauth2/introspect", data={"token": token}).status_code == 401
    assert (
        client.post(
            f"/p/{pid}/oauth2/introspect", data={"token": token}, auth=(creds[0], "wrong")
        ).status_code
        == 401
    )
    # A token the client does not own is refused; junk is accepted and ignored.
    other = _mint(client, pid, "dave")
    r = client.post(f"/p/{pid}/oauth2/revoke", data={"token": other}, auth=creds)
    assert r.status_code == 400
    assert r.json()["error"] == "unauthorized_client"
    assert (
        client.post(f"/p/{pid}/oauth2/revoke", data={"token": "garbage"}, auth=creds).status_code
        == 200
    )
    r = client.post(
        f"/p/{pid}/oauth2/revoke",
        data={"token": token, "token_type_hint": "access_token"},
        auth=creds,
    )
    assert r.status_code == 200
    assert _status(client, project, token) == INVALID
    r = client.post(f"/p/{pid}/oauth2/introspect", data={"token": token}, auth=creds)
    assert r.json() == {"active": False}
    discovery = client.get(f"/p/{pid}/.well-known/openid-configuration").json()
    assert discovery["revocation_endpoint"] == f"{project['issuer']}/oauth2/revoke"
    assert discovery["introspection_endpoint"] == f"{project['issuer']}/oauth2/introspect"
    assert "client_secret_basic" in discovery["introspection_endpoint_auth_methods_supported"]


def test_a_token_signed_on_another_replica_just_before_a_revocation_is_caught(
    tmp_path: Path,
) -> None:
    """Replica B signs a token whose record is still in its memory; replica A revokes the
    subject; B writes its batch afterwards: the token is INVALID in both replicas' lists."""
    clock = FakeClock()
    settings = make_settings(tmp_path / "home")
    a = Service.open(settings, clock=clock)
    b = Service.open(settings, clock=clock)
    app_a = SyncClient(create_app(settings, service=a, background=False))
    app_b = SyncClient(create_app(settings, service=b, background=False))
    try:
        project = app_a.post("/api/v1/projects", json={"name": "r"}, headers=AUTH).json()
        pid = project["id"]
        cl = app_a.post(f"/api/v1/projects/{pid}/clients", json={"name": "c"}, headers=AUTH).json()
        b.state.sync()
        early = _token(app_b, project, cl)  # on B, not written yet
        assert b.state.status.pending() == 1
        r = app_a.post(
            f"/api/v1/projects/{pid}/revocations", json={"client_id": cl["client_id"]}, headers=AUTH
        )
        assert r.json()["count"] == 0  # A could not see it ...
        b.state.sync()  # ... B's batch meets the rule
        a.state.sync()
        assert _status(app_b, project, early) == INVALID
        assert _status(app_a, project, early) == INVALID
        later = _token(app_b, project, cl)  # after B heard of the revocation: valid
        b.state.sync()
        a.state.sync()
        assert _status(app_a, project, later) == VALID
        # Blocks: B and A hand out disjoint indices of the same list.
        on_a = _claims(app_a, project, _token(app_a, project, cl))["status"]["status_list"]
        on_b = _claims(app_b, project, later)["status"]["status_list"]
        assert on_a["uri"] == on_b["uri"]
        assert abs(on_a["idx"] - on_b["idx"]) >= revocation.BLOCK - 2
    finally:
        app_a.close()
        app_b.close()
        a.close()
        b.close()


def test_lists_roll_over_and_are_reused_only_after_their_tokens_expired(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    settings = make_settings(tmp_path / "home")
    svc = Service.open(settings, clock=clock)
    try:
        with svc.write() as session:
            from jwkit.service.domain import keys, projects

            p = projects.create_project(
                session, projects.ProjectSpec(name="roll"), now=clock(), actor="t"
            )
            keys.bootstrap_keys(session, p, svc.vault, now=clock(), actor="t")
            pid = p.id

        def reserve() -> revocation.Block:
            with svc.db.session() as s, s.begin():
                return revocation.reserve_block(
                    s, pid, now=clock(), clock_skew=60, list_ttl=60, size=8, block=4
                )

        blocks = [reserve() for _ in range(4)]
        assert [(b.number, b.start, b.end) for b in blocks] == [
            (1, 0, 4),
            (1, 4, 8),
            (2, 0, 4),
            (2, 4, 8),
        ]
        assert reserve().number == 3  # nothing expired yet: a new list
        clock.advance(revocation.BLOCK_LIFETIME + 24 * 3600 + 60 + 60 + 1)
        assert (reserve().number, reserve().number) == (3, 1)  # list 3's room first, then 1
        assert reserve().number == 1
        assert reserve().number == 2
    finally:
        svc.close()


def test_migration_keeps_existing_projects_without_status(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    db = Database(url)
    from alembic import command

    from jwkit.service.store.db import _alembic_config

    with db.engine.begin() as conn:
        cfg = _alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0002")
        conn.execute(
            text(
                "INSERT INTO projects (id, name, audience, algorithm, token_ttl, max_token_ttl, "
                "jwks_max_age, created_at) VALUES ('p_old', 'old', 'a', 'ES256', 60, 60, 60, 0)"
            )
        )
    db.migrate()
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT token_status FROM projects")).scalar_one() in (0, False)
    engine.dispose()
    db.dispose()


def test_openapi_documents_the_revocation_api(client: SyncClient) -> None:
    doc = client.get("/api/v1/openapi.json", headers=AUTH).json()
    path = doc["paths"]["/api/v1/projects/{project_id}/revocations"]
    assert set(path) == {"get", "post"}
    body = path["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][body.rsplit("/", 1)[1]]
    assert set(schema["properties"]) == {"jti", "sub", "sid", "client_id", "status"}
    assert "get" in doc["paths"]["/api/v1/projects/{project_id}/tokens"]
    assert "sid" in doc["components"]["schemas"]["TokenMint"]["properties"]
    # The public routes stay out of it, like the JWKS and the token endpoint.
    assert not any("statuslists" in p or "oauth2" in p for p in doc["paths"])


def _reserved(service: Service, pid: str) -> int:
    """How many indices the project's lists have handed out in blocks (the database's view)."""
    with service.read() as session:
        return int(
            session.execute(
                text("SELECT COALESCE(SUM(next_index), 0) FROM status_lists WHERE project_id = :p"),
                {"p": pid},
            ).scalar_one()
        )


def _unverified(token: str) -> dict[str, Any]:
    """The claims, for a test whose clock runs ahead of the wall clock (the index only)."""
    return jwt.decode_unverified(token)[1]


def _join_block_threads(service: Service) -> None:
    """Until the background reserver has done what it was asked."""
    assert service.state.status.wait_refills(10)


def test_the_next_block_is_reserved_in_the_background_while_indices_are_left(
    service: Service,
    client: SyncClient,
    clock: FakeClock,
    project: dict[str, Any],
    oauth_client: dict[str, Any],
) -> None:
    pid = project["id"]
    first = _unverified(_token(client, project, oauth_client))
    assert first["status"]["status_list"]["idx"] == 0
    assert _reserved(service, pid) == revocation.BLOCK  # the first token waited for its block
    clock.advance(revocation.BLOCK_LIFETIME // 2)  # the block runs low (by age)
    status = service.state.status
    assert status.ready(pid)  # indices are left: the request goes on ...
    _join_block_threads(service)  # ... while a background thread reserved the next block
    assert _reserved(service, pid) == 2 * revocation.BLOCK
    assert status.ready(pid)  # a spare block: nothing more to reserve
    assert _reserved(service, pid) == 2 * revocation.BLOCK
    second = _unverified(_token(client, project, oauth_client))
    assert second["status"]["status_list"]["idx"] == 1  # still the first block
    clock.advance(revocation.BLOCK_LIFETIME // 2)  # the first block is too old now
    third = _unverified(_token(client, project, oauth_client))
    assert third["status"]["status_list"]["idx"] == revocation.BLOCK  # the spare, no wait
    ref = _unverified(_token(client, project, oauth_client))["status"]["status_list"]
    assert ref["idx"] == revocation.BLOCK + 1
    _join_block_threads(service)  # that block is half its age: its successor was reserved meanwhile
    assert _reserved(service, pid) == 3 * revocation.BLOCK
    assert status.status_of(pid, ref["uri"], ref["idx"]) == VALID  # its list is published


def _projects_with_a_block(client: SyncClient, count: int) -> list[str]:
    """``count`` projects that issued a token each (so each holds its first block)."""
    pids = []
    for n in range(count):
        r = client.post("/api/v1/projects", json={"name": f"b{n}"}, headers=AUTH)
        project = r.json()
        cl = client.post(
            f"/api/v1/projects/{project['id']}/clients", json={"name": "c"}, headers=AUTH
        ).json()
        _token(client, project, cl)
        pids.append(project["id"])
    return pids


def test_blocks_running_low_together_are_reserved_together(
    service: Service, client: SyncClient, clock: FakeClock
) -> None:
    """One background reserver for the replica, a transaction per batch of projects: 100,000
    projects whose blocks run low every few minutes cost a share of a write each, not a
    write and a thread each."""
    pids = _projects_with_a_block(client, 6)
    commits: list[int] = []
    event.listen(service.db.engine, "commit", lambda conn: commits.append(1))
    clock.advance(revocation.BLOCK_LIFETIME // 2)  # every block runs low (by age)
    status = service.state.status
    threads = set()
    batch = status._refill_batch

    def reserving(project_ids: list[str]) -> list[str]:
        threads.add(threading.current_thread())
        return batch(project_ids)

    status._refill_batch = reserving  # type: ignore[method-assign]
    with status._refill_lock:  # the reserver may take the first ask, then waits: the rest pile up
        for pid in pids:
            assert status.ready(pid)
    _join_block_threads(service)
    assert [_reserved(service, pid) for pid in pids] == [2 * revocation.BLOCK] * len(pids)
    assert 1 <= len(commits) <= 2, commits
    assert threads == {status._reserver}
    service.close()  # the reserver stops with the service
    assert status._reserver is None


def test_one_project_failing_does_not_hold_back_the_others_reserved_with_it(
    service: Service, client: SyncClient, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    pids = _projects_with_a_block(client, 3)
    reserve = revocation.reserve_blocks

    def fails_for_one(
        session: Any, project_ids: list[str], **kwargs: Any
    ) -> dict[str, revocation.Block]:
        if pids[1] in project_ids:
            raise OperationalError("SELECT", {}, Exception("locked"))
        return reserve(session, project_ids, **kwargs)

    monkeypatch.setattr(revocation, "reserve_blocks", fails_for_one)
    clock.advance(revocation.BLOCK_LIFETIME // 2)
    status = service.state.status
    with status._refill_lock:
        for pid in pids:
            assert status.ready(pid)
    _join_block_threads(service)
    assert [_reserved(service, pid) for pid in pids] == [
        2 * revocation.BLOCK, revocation.BLOCK, 2 * revocation.BLOCK
    ]  # fmt: skip
    assert set(status._refill_failed) == {pids[1]}  # retried after a second, not at once
    monkeypatch.setattr(revocation, "reserve_blocks", reserve)
    assert status.ready(pids[1])
    _join_block_threads(service)
    assert _reserved(service, pids[1]) == revocation.BLOCK  # not retried within the second


def _database_down(calls: list[list[str]]) -> Any:
    """A ``reserve_blocks`` that records the projects of each attempt and fails as an outage
    does."""

    def down(session: Any, project_ids: list[str], **kwargs: Any) -> dict[str, revocation.Block]:
        calls.append(list(project_ids))
        raise OperationalError("SELECT", {}, Exception("the database is down"))

    return down


def test_an_outage_costs_the_reserver_a_few_attempts_not_one_per_project(
    service: Service, client: SyncClient, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    pids = _projects_with_a_block(client, 6)
    calls: list[list[str]] = []
    monkeypatch.setattr(revocation, "reserve_blocks", _database_down(calls))
    clock.advance(revocation.BLOCK_LIFETIME // 2)
    status = service.state.status
    with status._refill_lock:  # one batch of all six
        for pid in pids:
            assert status.ready(pid)
        assert status._wanted or len(status._refilling) == len(pids)
    _join_block_threads(service)
    assert set(status._refill_failed) == set(pids)
    assert len(calls) <= 6  # at most: a batch, then two singly, twice (one per project: 7+)


def test_a_failing_background_reservation_is_retried_at_most_once_a_second(
    service: Service,
    client: SyncClient,
    clock: FakeClock,
    project: dict[str, Any],
    oauth_client: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A database outage must not start one thread per token request; the block in hand keeps
    issuing tokens meanwhile."""
    pid = project["id"]
    _token(client, project, oauth_client)
    calls: list[list[str]] = []
    monkeypatch.setattr(revocation, "reserve_blocks", _database_down(calls))
    clock.advance(revocation.BLOCK_LIFETIME // 2)
    started = time.monotonic()
    for _ in range(50):
        assert service.state.status.ready(pid)
        _join_block_threads(service)
        _token(client, project, oauth_client)  # from the block in hand
    assert calls and {p for attempt in calls for p in attempt} == {pid}
    assert len(calls) <= 1 + time.monotonic() - started  # not 50


def test_a_status_list_is_signed_by_its_own_projects_key_after_signers_are_freed(
    service: Service,
) -> None:
    """A rebuilt view frees its signer, and CPython gives the next object of that size the
    same address: the encoder cache must not hand a new signer the freed one's encoder (a
    project's list signed with another project's key, which its verifiers cannot find)."""
    from jwkit import JWK
    from jwkit.service.keys import Signer

    status = service.state.status
    reused = 0
    for _ in range(50):
        first = Signer(JWK.generate("ES256"))
        status._encoder(first)
        del first
        second = Signer(JWK.generate("ES256"))
        token = status._encoder(second).encode({"sub": "x"})
        assert jwt.decode_unverified(token)[0]["kid"] == second.kid
        # What the cache must survive: without it holding the first, its address comes back.
        third = Signer(JWK.generate("ES256"))
        address = id(third)
        del third
        reused += id(Signer(JWK.generate("ES256"))) == address
    assert reused
