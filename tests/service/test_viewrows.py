"""The safety net compares a project's rows with those its view was built from
(``service/viewrows.py``) and rebuilds only the projects whose rows differ: this holds the
comparison to the build, on SQLite and PostgreSQL, for a change to every column it covers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, update

from jwkit.jose.jwk import JWK
from jwkit.service import viewrows
from jwkit.service.runtime import Service
from jwkit.service.store.models import ForeignPublicKey, Key, Project

from ..support.scale import seed_projects
from .conftest import FakeClock, make_settings

MODELS: dict[str, type] = {"projects": Project, "keys": Key, "foreign_keys": ForeignPublicKey}
# every column the comparison covers, but a row's own id and its project's (rows moved
# between projects are two projects changed: each is compared on its own)
COLUMNS = [
    (table, column.key)
    for table, model in MODELS.items()
    for column in inspect(model).column_attrs
    if column.key not in {"id", "project_id"} | viewrows.SEALED
]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def svc(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Iterator[Service]:
    url = str(request.getfixturevalue("pg_url")) if request.param == "postgres" else None
    service = Service.open(make_settings(tmp_path / "home", database_url=url), clock=clock)
    try:
        yield service
    finally:
        service.close()


def _projects(service: Service, count: int) -> list[str]:
    """``count`` projects as the service makes them (an active and a next key each), each
    with one foreign key in its period; all cached."""
    now = service.clock()
    pids = seed_projects(service.db, service.vault, count, now=now, max_exp=now + 600)
    with service.write() as session:
        for n, pid in enumerate(pids):
            public = JWK.generate("ES256").public()
            session.add(ForeignPublicKey(
                project_id=pid, kid=f"foreign-{n}", thumbprint=public.thumbprint(),
                public_jwk=json.dumps(public.to_dict()), source="body", created_at=now,
                until=now + 86400,
            ))  # fmt: skip
    service.state.reload()
    service.state.warm()
    return pids


def _other(value: Any) -> Any:
    """A different value of the same type (and no longer, for PostgreSQL's lengths)."""
    if isinstance(value, bool):
        return not value
    if value is None or isinstance(value, int):
        return (value or 0) + 1
    assert isinstance(value, str), value
    if value.startswith("{"):  # a JWK: still one (the build parses it)
        return json.dumps({**json.loads(value), "ext": True})
    return value[:-1] + ("a" if value[-1:] != "a" else "b")


def test_the_rows_read_back_agree_with_the_build(svc: Service) -> None:
    """Unchanged rows read back give each view's own fingerprint (so a round over unchanged
    projects rebuilds nothing), and a project that does not exist gives none."""
    pids = _projects(svc, 3)
    with svc.db.session() as session:
        found = viewrows.read_fingerprints(session, [*pids, "proj_missing"], svc.clock())
    views = {pid: svc.state.projects.peek(pid) for pid in pids}
    assert found == {pid: view.fingerprint for pid, view in views.items() if view is not None}
    assert len(set(found.values())) == 3 and None not in found.values()
    svc.state._recheck_queue = list(pids)
    builds, rechecked = svc.state.projects.builds, svc.state.rechecked
    assert svc.state._recheck_slice()
    assert svc.state.projects.builds == builds and svc.state.rechecked == rechecked + 3
    assert all(svc.state.projects.peek(pid) is views[pid] for pid in pids)


@pytest.mark.parametrize(("table", "column"), COLUMNS)
def test_a_change_by_hand_to_any_column_is_rebuilt_by_the_safety_net(
    svc: Service, table: str, column: str
) -> None:
    """A change written without naming its project, to any column the build could read, makes
    the safety net rebuild that project (and only that one)."""
    changed, untouched = _projects(svc, 2)
    model = MODELS[table]
    with svc.write() as session:
        owner = model.id if model is Project else model.project_id  # type: ignore[attr-defined]
        rows = session.execute(
            inspect(model).local_table.select().where(owner == changed)
        ).mappings()
        for row in list(rows):
            new = _other(row[column])
            pk = model.id  # type: ignore[attr-defined]
            session.execute(update(model).where(pk == row["id"]).values({column: new}))
    before = {pid: svc.state.projects.peek(pid) for pid in (changed, untouched)}
    builds = svc.state.projects.builds
    svc.state._recheck_queue = [changed, untouched]
    assert svc.state._recheck_slice()
    assert svc.state.projects.builds == builds + 1
    assert svc.state.projects.peek(untouched) is before[untouched]
    rebuilt = svc.state.projects.peek(changed)
    assert rebuilt is not None and rebuilt is not before[changed]


def test_a_project_deleted_by_hand_is_forgotten_and_a_due_change_rebuilt(
    svc: Service, clock: FakeClock
) -> None:
    """The two cases the rows alone do not show: a project removed without naming it leaves
    the replica in the round, and a view whose next key change has come is rebuilt even
    though its rows did not change."""
    gone, due, quiet = _projects(svc, 3)
    with svc.write() as session:
        session.execute(Project.__table__.delete().where(Project.id == gone))
    view = svc.state.projects.peek(due)
    assert view is not None
    view.next_change = clock()  # (as if its next key change had come with no sweep yet)
    kept = svc.state.projects.peek(quiet)
    svc.state._recheck_queue = [gone, due, quiet]
    assert svc.state._recheck_slice()
    assert svc.state.projects.peek(gone) is None and gone not in svc.state.projects
    assert svc.state.projects.peek(due) is not view
    assert svc.state.projects.peek(quiet) is kept
