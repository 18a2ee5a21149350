"""Issue 18 at a few thousand projects: start-up, a change, a request and a scheduler pass
cost the same work whatever the number of projects. Work is counted (SQL statements, rows,
views built), never timed; the 100,000-project run belongs to ``benchmarks/scale.py``."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, select, update

from jwkit.jose.jwk import JWK
from jwkit.service.domain import foreign, keys, projects
from jwkit.service.runtime import Service
from jwkit.service.scheduler import due_projects, run_once
from jwkit.service.state import ServiceState
from jwkit.service.statuslists import STATUS_EXP
from jwkit.service.store.models import Key, Project

from ..support.scale import seed_projects
from .conftest import AUTH, FakeClock, SyncClient

MANY = 3000
_QUERIES = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE"})


class Statements:
    """Counts the SQL statements a block runs and the rows they return."""

    def __init__(self) -> None:
        self.sql: list[str] = []
        self.rows = 0

    def __len__(self) -> int:
        return len(self.sql)


@contextmanager
def counting(service: Service) -> Iterator[Statements]:
    seen = Statements()

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.split()[0].upper() in _QUERIES:  # not PRAGMA, BEGIN, COMMIT, ...
            seen.sql.append(statement[:120])

    def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if cursor.description is not None and cursor.rowcount and cursor.rowcount > 0:
            seen.rows += cursor.rowcount

    engine = service.db.engine
    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)


@pytest.fixture
def many(service: Service, clock: FakeClock) -> list[str]:
    ids = seed_projects(service.db, service.vault, MANY, now=clock())
    service.state.reload()
    return ids


def test_start_up_reads_the_ids_and_builds_nothing(service: Service, many: list[str]) -> None:
    replica = ServiceState(service.settings, service.db, service.vault, service.clock)
    with counting(service) as work:
        replica.reload()
    assert len(replica.projects) == MANY
    assert replica.projects.builds == 0  # no document rendered, no key opened
    assert len(work) <= 6, work.sql  # version, ids, admin tokens, ... : not per project


def test_a_change_costs_the_same_at_3000_projects(
    service: Service, many: list[str], client: SyncClient
) -> None:
    for pid in many[:50]:  # some views cached, as in a running replica
        assert client.get(f"/p/{pid}/.well-known/jwks.json").status_code == 200
    other = ServiceState(service.settings, service.db, service.vault, service.clock)
    other.reload()
    builds = service.state.projects.builds
    with counting(service) as work:
        r = client.post("/api/v1/projects", json={"name": "one more"}, headers=AUTH)
        assert r.status_code == 201, r.text
    assert service.state.projects.builds == builds + 1  # the new project only
    assert len(work) <= 45, work.sql  # the create's own statements plus a constant refresh
    with counting(service) as refresh:
        assert other.refresh()
    assert other.projects.builds == 1
    assert len(refresh) <= 8, refresh.sql
    assert refresh.rows <= 10  # the change row, the project, its keys: nothing per project


def test_requests_build_one_view_each_and_only_once(
    service: Service, many: list[str], client: SyncClient
) -> None:
    builds = service.state.projects.builds
    pid = many[MANY // 2]
    for _ in range(3):
        r = client.get(f"/p/{pid}/.well-known/jwks.json")
        assert r.status_code == 200 and r.json()["keys"]
    assert service.state.projects.builds == builds + 1
    assert client.get("/p/proj_nope/.well-known/jwks.json").status_code == 404
    assert service.state.projects.builds == builds + 1  # unknown: answered from the id set


def test_views_share_the_numbers_their_projects_share(
    service: Service, many: list[str], client: SyncClient
) -> None:
    """A request spread over many projects reads each view's ``jwks_max_age``: the views hold
    one int object per value (``state.shared_int``), not one per project, and the values are
    the projects' own."""
    views = [service.state.projects.get(pid) for pid in many[:50]]
    assert all(v is not None for v in views)
    assert len({v.jwks_max_age for v in views if v}) == 1  # the seeded projects' default
    for name in ("jwks_max_age", "token_ttl", "max_token_ttl"):
        assert len({id(getattr(v, name)) for v in views}) == 1, name
    pid = many[0]
    r = client.patch(f"/api/v1/projects/{pid}", json={"jwks_max_age": 1234}, headers=AUTH)
    assert r.status_code == 200, r.text
    view = service.state.projects.get(pid)
    assert view is not None and view.jwks_max_age == 1234 == r.json()["jwks_max_age"]


def test_the_lru_holds_at_most_state_cache_views(service: Service, many: list[str]) -> None:
    state = ServiceState(
        service.settings.model_copy(update={"state_cache": 100}),
        service.db,
        service.vault,
        service.clock,
    )
    state.reload()
    for pid in many[:250]:
        assert state.projects.get(pid) is not None
    assert len(state.projects.cached()) == 100
    assert state.projects.peek(many[0]) is None  # the least recently used went first
    assert state.projects.peek(many[249]) is not None
    assert state.projects.get(many[0]) is not None  # and comes back on its next request


SIGNING = 100  # projects whose key this replica opened (it tops their expiry marks up)
FOREIGN = 5  # projects publishing another issuer's key for a while


@pytest.fixture
def busy(service: Service, many: list[str], clock: FakeClock) -> dict[str, Any]:
    """Every one of the 3000 projects cached, some signing, some with a foreign key."""
    state = service.state
    assert state.warm() == MANY
    opened = {}
    for pid in many[:SIGNING]:
        signer = state.projects[pid].token_signer
        assert signer is not None
        opened[pid] = state.projects[pid].signer_key_id
    ended = {}
    for pid in many[-FOREIGN:]:
        key = JWK.generate("ES256", kid=f"old-{pid}").public()
        with service.write() as s:
            foreign.add_foreign_keys(s, pid, [key], until=clock() + 120, source="body",
                                     now=clock(), actor="t")  # fmt: skip
        ended[pid] = key.kid
    assert len(state.projects.cached()) == MANY
    return {"opened": opened, "foreign": ended}


class Scans:
    """Counts the calls that walk every cached view."""

    def __init__(self, state: ServiceState) -> None:
        self.calls = 0
        walk = state.projects.cached

        def counted() -> list[Any]:
            self.calls += 1
            return walk()

        state.projects.cached = counted  # type: ignore[method-assign]


def test_a_sync_pass_with_nothing_due_costs_nothing_per_project(
    service: Service, busy: dict[str, Any]
) -> None:
    state = service.state
    scans = Scans(state)
    seen = state.projects.due_seen
    with counting(service) as work:
        assert state.sync() is False
    assert scans.calls == 0  # no walk over the 3000 cached views
    assert state.projects.due_seen == seen  # nothing due: no entry of the due indexes looked at
    assert len(work) <= 3 and work.rows <= 3, work.sql  # the change counters, nothing per project


def test_a_sync_pass_still_handles_what_is_due(
    service: Service, busy: dict[str, Any], clock: FakeClock
) -> None:
    state = service.state
    opened: dict[str, int] = busy["opened"]
    scans = Scans(state)
    seen = state.projects.due_seen
    # the foreign keys end: their 5 projects are rebuilt without them, and only those
    clock.advance(121)
    builds = state.projects.builds
    assert state.sync() is True
    assert state.projects.builds == builds + FOREIGN
    assert state.projects.due_seen == seen + FOREIGN
    for pid, kid in busy["foreign"].items():
        kids = [k["kid"] for k in json.loads(state.projects[pid].jwks.body)["keys"]]
        assert kid not in kids and kids  # gone, the project's own keys still there

    def marks() -> dict[int, int]:
        with service.read() as s:
            rows = s.execute(select(Key.id, Key.max_exp).where(Key.id.in_(opened.values())))
            return {kid: int(mark or 0) for kid, mark in rows}

    # half the headroom gone: the 100 opened keys get their marks topped up, in one pass
    before = marks()
    clock.advance(service.settings.exp_headroom // 2 - 120)
    seen = state.projects.due_seen
    state.sync()
    assert state.projects.due_seen == seen + SIGNING
    after = marks()
    assert all(after[k] > before[k] for k in before)
    assert all(state.exp_covered(k, clock() + state.projects[pid].token_ttl)
               for pid, k in opened.items())  # fmt: skip
    assert scans.calls == 0
    # each is due again only when half the new headroom is gone
    seen = state.projects.due_seen
    state.sync()
    assert state.projects.due_seen == seen


def _projects_with_a_list(client: SyncClient, count: int) -> list[str]:
    """``count`` new projects, each with a status list (a token minted for each)."""
    pids = []
    for n in range(count):
        r = client.post("/api/v1/projects", json={"name": f"s{n}"}, headers=AUTH)
        assert r.status_code == 201, r.text
        pid = r.json()["id"]
        minted = client.post(f"/api/v1/projects/{pid}/tokens", json={"sub": "u"}, headers=AUTH)
        assert minted.status_code in (200, 201), minted.text
        pids.append(pid)
    return pids


def test_status_lists_are_looked_at_only_when_one_is_due_for_re_signing(
    service: Service, client: SyncClient, clock: FakeClock
) -> None:
    state = service.state
    pids = _projects_with_a_list(client, 3)
    state.sync()
    state.sync()
    docs = [d for pid in pids for d in state.status.snapshots[pid].docs.values()]
    assert len(docs) == 3
    scans, seen = state.status.resign_scans, state.status.resign_seen
    for _ in range(3):
        state.sync()
    assert state.status.resign_scans == scans  # none due: no list looked at
    assert state.status.resign_seen == seen
    clock.advance(STATUS_EXP // 4)
    (late,) = _projects_with_a_list(client, 1)
    state.sync()
    clock.advance(STATUS_EXP // 4)
    state.sync()
    # the three lists due are looked at and re-signed; the late one is not looked at
    assert state.status.resign_seen == seen + 3
    assert state.status.resign_scans == scans
    fresh = [d for pid in pids for d in state.status.snapshots[pid].docs.values()]
    assert [d.iat for d in fresh] == [clock()] * 3  # every list re-signed at half its life
    (late_doc,) = state.status.snapshots[late].docs.values()
    assert late_doc.iat == clock() - STATUS_EXP // 4
    state.sync()
    assert state.status.resign_seen == seen + 3
    clock.advance(STATUS_EXP // 4)
    state.sync()  # now the late one
    assert state.status.resign_seen == seen + 4
    assert state.status.snapshots[late].docs[late_doc.number].iat == clock()
    clock.advance(-60)  # a clock set back re-signs (a list must not claim to come from later)
    state.sync()
    assert state.status.resign_scans == scans + 1
    # the list signed "later" than the clock is re-signed; the older ones stay as they are
    assert state.status.snapshots[late].docs[late_doc.number].iat == clock()
    assert all(
        d.iat == clock() + 60 - STATUS_EXP // 4
        for pid in pids
        for d in state.status.snapshots[pid].docs.values()
    )
    seen_now = state.status.resign_seen
    state.sync()  # and then nothing is due again
    assert state.status.resign_scans == scans + 1 and state.status.resign_seen == seen_now


def test_the_change_check_reads_one_row_then_applies_only_the_change(
    service: Service, many: list[str], clock: FakeClock
) -> None:
    other = ServiceState(service.settings, service.db, service.vault, service.clock)
    other.reload()
    pid = many[7]
    assert other.projects.get(pid) is not None
    with counting(service) as idle:
        assert other.check() is False
    assert len(idle) == 1 and idle.rows <= 1, idle.sql  # the change counters' row
    with service.write() as s:
        new = keys.rotate(s, pid, service.vault, now=clock(), actor="t", emergency=True)
    builds = other.projects.builds
    with counting(service) as work:
        assert other.check() is True
    assert other.projects.builds == builds + 1  # the rotated project only
    assert len(work) <= 10 and work.rows <= 12, work.sql
    kids = [k["kid"] for k in json.loads(other.projects[pid].jwks.body)["keys"]]
    assert new.next in kids


def test_a_scheduler_pass_touches_only_due_projects(
    service: Service, many: list[str], clock: FakeClock
) -> None:
    with counting(service) as idle:
        assert run_once(service) == []
    assert len(idle) == 1 and idle.rows == 0, idle.sql  # one indexed read, nothing due
    # three projects get a rotation policy that is due now: the pass handles those three
    due = many[10:13]
    with service.write() as s:
        for pid in due:
            projects.update_project(s, pid, {"rotation_days": 1}, now=clock(), actor="t")
    clock.advance(2 * keys.DAY)
    assert sorted(due_projects(service, clock())) == due
    done = run_once(service)
    assert sorted({line.split(":")[0] for line in done}) == due
    with service.read() as s:
        later = s.execute(select(Project.next_due_at).where(Project.id.in_(due))).scalars()
        assert all(t is not None and t > clock() for t in later)  # rotated, next due later
    with counting(service) as after:
        assert run_once(service) == []
    assert len(after) == 1


def test_next_due_at_follows_every_key_transition(service: Service, clock: FakeClock) -> None:
    """The domain keeps ``next_due_at`` true: a retiring key makes the project due when it may
    leave the JWKS, a policy when the rotation is due, nothing else makes it due."""
    with service.write() as s:
        project = projects.create_project(
            s, projects.ProjectSpec(name="d", rotation_days=None), now=clock(), actor="t"
        )
        keys.bootstrap_keys(s, project, service.vault, now=clock(), actor="t")
        pid = project.id

    def due() -> int | None:
        with service.read() as s:
            return s.execute(select(Project.next_due_at).where(Project.id == pid)).scalar_one()

    assert due() is None
    with service.write() as s:
        keys.rotate(s, pid, service.vault, now=clock(), actor="t", emergency=True)
    retiring_due = due()
    assert retiring_due is not None and retiring_due > clock()
    clock.advance(retiring_due - clock())
    assert pid in due_projects(service, clock())
    run_once(service)  # without the clock-skew setting the rotation set it early, never late:
    skewed = due()  # the pass found the key not yet safe and stored the time with the skew
    assert skewed == retiring_due + service.settings.clock_skew
    clock.advance(service.settings.clock_skew)
    assert any("revoked" in line for line in run_once(service))
    assert due() is None  # retired: nothing left to do
    with service.write() as s:
        s.execute(update(Project).where(Project.id == pid).values(next_due_at=None))
        projects.update_project(s, pid, {"rotation_days": 1}, now=clock(), actor="t")
    assert due() == clock()  # the policy changed: the next pass recomputes
    run_once(service)
    rotation = due()
    assert rotation is not None and clock() < rotation <= clock() + keys.DAY  # the policy's day


def test_the_safety_net_re_reads_the_cached_projects_a_slice_per_sync(
    service: Service, many: list[str], client: SyncClient
) -> None:
    """Every ``FULL_SYNC_EVERY`` seconds the replica re-reads every cached project, but a
    slice per sync: a change written without naming its project (by hand, in SQL) is
    repaired within the round, and no sync rebuilds thousands of projects at once."""
    from jwkit.service import state as state_module

    state = service.state
    state.warm()  # every project cached, as a running replica holds them
    assert len(state.projects.cached()) == MANY
    hidden = many[1234]
    with service.write() as session:  # no change row names it: the refresh cannot see it
        session.execute(update(Project).where(Project.id == hidden).values(audience="by-hand"))
    assert state.projects[hidden].audience != "by-hand"
    full, builds, rechecked = state.full_reloads, state.projects.builds, state.rechecked
    state._full_at = time.monotonic() - state_module.FULL_SYNC_EVERY - 1  # the round is due
    passes = 0
    while True:
        before = state.projects.builds
        state.sync()
        passes += 1
        assert state.projects.builds - before <= state_module._RECHECK_SLICE
        if not state._recheck_queue:
            break
    assert passes == -(-MANY // state_module._RECHECK_SLICE)
    assert state.rechecked == rechecked + MANY  # each cached project compared once
    assert state.projects.builds == builds + 1  # and only the one changed rebuilt
    assert state.projects[hidden].audience == "by-hand"
    assert state.full_reloads == full and state.rechecks == 1
    state.sync()  # the next round waits for FULL_SYNC_EVERY
    assert state.projects.builds == builds + 1 and state.rechecked == rechecked + MANY
    assert state.rechecks == 1


def test_a_safety_net_slice_reads_without_the_lock_and_a_change_made_meanwhile_wins(
    service: Service, many: list[str], client: SyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slice reads and builds its projects without holding the state lock: a change made
    through the API after it has read is applied at once (its refresh does not wait for the
    slice), and the slice's older read of that project does not replace the newer view."""
    state = service.state
    state.warm()
    state._start_recheck()
    target = state._recheck_queue[-1]  # in the first slice
    other = state._recheck_queue[-2]
    with service.write() as session:  # changed by hand: the slice rebuilds both
        session.execute(
            update(Project).where(Project.id.in_([target, other])).values(audience="by-hand")
        )
    read = state._read_changed
    answers: list[int] = []

    def read_then_change(seen: dict[str, Any]) -> Any:
        views = read(seen)
        if target in seen and not answers:  # the slice has read target's old state

            def change() -> None:
                body = {"audience": "changed meanwhile"}
                r = client.patch(f"/api/v1/projects/{target}", json=body, headers=AUTH)
                answers.append(r.status_code)

            writer = threading.Thread(target=change)
            writer.start()
            writer.join(60)
            assert not writer.is_alive(), "the change waited for the safety net's slice"
        return views

    monkeypatch.setattr(state, "_read_changed", read_then_change)
    builds = state.projects.builds
    assert state._recheck_slice()
    assert answers == [200]
    changed_view = state.projects.peek(target)
    assert changed_view is not None and changed_view.audience == "changed meanwhile"
    # the other project the slice rebuilt was swapped in as usual
    # put in: target by the change, other by the slice (its read of target was dropped)
    assert state.projects.builds == builds + 2
    other_view = state.projects.peek(other)
    assert other_view is not None and other_view.audience == "by-hand"
    monkeypatch.undo()
    assert state._recheck_slice()  # the next slice leaves target alone
    assert state.projects.peek(target) is changed_view


def test_a_safety_net_slice_re_reads_the_status_lists_of_the_projects_it_rebuilt_only(
    service: Service, client: SyncClient
) -> None:
    """A slice that finds a project's rows as its view has them leaves its status lists
    alone (they were signed for that view; the round's start re-reads every list): at
    100,000 projects a slice runs every second, and re-reading a hundred projects' lists
    each time was about a third of its cost. A project the slice rebuilds gets its lists
    re-read, as a change naming it would."""
    state = service.state
    pids = _projects_with_a_list(client, 3)
    state.reload()  # views built from the rows as they are now (the minting reserved marks)
    hidden = pids[1]
    with service.write() as session:  # no change row names it
        session.execute(update(Project).where(Project.id == hidden).values(audience="by-hand"))
    state._start_recheck()
    kept = dict(state.status.snapshots)
    assert set(pids) <= set(kept)
    state._recheck_queue = [p for p in state._recheck_queue if p not in pids] + pids[::-1]
    with counting(service) as calm:  # a slice of the three: one rebuilt
        assert state._recheck_slice()
    assert state.projects[hidden].audience == "by-hand"
    assert state.status.snapshots[hidden] is not kept[hidden]
    assert all(state.status.snapshots[p] is kept[p] for p in pids if p != hidden)
    assert len([q for q in calm.sql if q.startswith("SELECT status_lists.")]) == 1
    (rules,) = [q for q in calm.sql if "FROM revocations" in q]
    assert "IN (?) " in rules  # the rebuilt project's lists only
    state._recheck_queue = list(pids)  # again: nothing differs now
    with counting(service) as quiet:
        assert state._recheck_slice()
    assert not [q for q in quiet.sql if "status_lists" in q or "revocations" in q]
    assert all(state.status.snapshots[p] is kept[p] for p in pids if p != hidden)


def test_a_status_change_rebuilds_only_the_snapshots_of_the_projects_it_touched(
    service: Service, client: SyncClient
) -> None:
    """A change to one project's lists (a revocation, a project change) rebuilds that
    project's status snapshot in place; the other projects' snapshots are not copied or
    rebuilt, so the cost does not grow with the projects that have lists."""
    state = service.state
    pids = _projects_with_a_list(client, 4)
    state.sync()
    snapshots = state.status.snapshots
    kept = dict(snapshots)
    assert set(pids) <= set(kept)
    target = pids[1]
    revoked = client.post(
        f"/api/v1/projects/{target}/revocations",
        json={"sub": "u"},
        headers=AUTH,
    )
    assert revoked.status_code in (200, 201), revoked.text
    state.sync()  # the status version moved: the lists changed since are re-read
    assert state.status.snapshots is snapshots
    assert snapshots[target] is not kept[target]
    assert snapshots[target].rules_seen > kept[target].rules_seen
    assert all(snapshots[p] is kept[p] for p in pids if p != target)
    changed = client.patch(f"/api/v1/projects/{pids[2]}", json={"name": "x"}, headers=AUTH)
    assert changed.status_code == 200, changed.text  # a project change: its lists reloaded
    assert state.status.snapshots is snapshots
    assert snapshots[pids[2]] is not kept[pids[2]]
    assert snapshots[pids[0]] is kept[pids[0]] and snapshots[pids[3]] is kept[pids[3]]
    gone = client.delete(f"/api/v1/projects/{pids[3]}", headers=AUTH)
    assert gone.status_code in (200, 204), gone.text
    assert pids[3] not in state.status.snapshots  # its lists are no longer served
