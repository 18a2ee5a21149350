"""Issue 18 at a few thousand projects: start-up, a change, a request and a scheduler pass
cost the same work whatever the number of projects. Work is counted (SQL statements, rows,
views built), never timed; the 100,000-project run belongs to ``benchmarks/scale.py``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, select, update

from jwkit.service.domain import keys, projects
from jwkit.service.runtime import Service
from jwkit.service.scheduler import due_projects, run_once
from jwkit.service.state import ServiceState
from jwkit.service.store.models import Project

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
