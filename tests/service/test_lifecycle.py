"""The key lifecycle rules, driven through the domain on a real SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from jwkit.service import scheduler
from jwkit.service.domain import keys, projects
from jwkit.service.domain.common import Conflict
from jwkit.service.runtime import Service
from jwkit.service.store.models import Key

from .conftest import FakeClock


@pytest.fixture
def pid(service: Service, clock: FakeClock) -> Iterator[str]:
    with service.write() as s:
        project = projects.create_project(
            s, projects.ProjectSpec(name="p", jwks_max_age=300, max_token_ttl=3600),
            now=clock(), actor="t",
        )
        keys.bootstrap_keys(s, project, service.vault, now=clock(), actor="t")
        project_id = project.id
    yield project_id


def states(service: Service, pid: str) -> dict[str, str]:
    with service.read() as s:
        return {k.kid: k.state for k in keys.list_keys(s, pid)}


def by_state(service: Service, pid: str, state: str) -> list[str]:
    return [kid for kid, st in states(service, pid).items() if st == state]


def test_new_project_has_one_active_and_one_next(service: Service, pid: str) -> None:
    assert sorted(states(service, pid).values()) == ["active", "next"]


def test_rotation_waits_for_the_jwks_cache_lifetime(
    service: Service, clock: FakeClock, pid: str
) -> None:
    with pytest.raises(Conflict) as info, service.write() as s:
        keys.rotate(s, pid, service.vault, now=clock(), actor="t")
    assert info.value.code == "rotation_too_early"
    assert info.value.earliest_safe_at == clock() + 300
    old_active, old_next = by_state(service, pid, "active")[0], by_state(service, pid, "next")[0]
    clock.advance(300)
    with service.write() as s:
        result = keys.rotate(s, pid, service.vault, now=clock(), actor="t")
    assert (result.active, result.retiring) == (old_next, old_active)
    assert states(service, pid)[old_active] == "retiring"
    assert by_state(service, pid, "next") == [result.next]


def test_emergency_rotation_skips_the_wait(service: Service, clock: FakeClock, pid: str) -> None:
    with service.write() as s:
        result = keys.rotate(s, pid, service.vault, now=clock(), actor="t", emergency=True)
    assert by_state(service, pid, "active") == [result.active]


def test_retiring_key_stays_until_its_last_token_expires(
    service: Service, clock: FakeClock, pid: str
) -> None:
    skew = service.settings.clock_skew
    active = by_state(service, pid, "active")[0]
    with service.write() as s:
        key_id = s.execute(select(Key.id).where(Key.kid == active)).scalar_one()
        keys.raise_max_exp(s, key_id, clock() + 1000)
    clock.advance(300)
    with service.write() as s:
        keys.rotate(s, pid, service.vault, now=clock(), actor="t")
    with pytest.raises(Conflict) as info, service.write() as s:
        keys.revoke_key(s, pid, active, service.vault, now=clock(), actor="t", clock_skew=skew)
    assert info.value.code == "key_still_in_use"
    assert info.value.earliest_safe_at == clock() - 300 + 1000 + skew
    clock.now = info.value.earliest_safe_at
    with service.write() as s:
        keys.revoke_key(s, pid, active, service.vault, now=clock(), actor="t", clock_skew=skew)
    assert states(service, pid)[active] == "revoked"
    with service.write() as s:  # idempotent
        keys.revoke_key(s, pid, active, service.vault, now=clock(), actor="t", clock_skew=skew)


def test_active_key_cannot_be_revoked_without_emergency(
    service: Service, clock: FakeClock, pid: str
) -> None:
    active = by_state(service, pid, "active")[0]
    with pytest.raises(Conflict) as info, service.write() as s:
        keys.revoke_key(s, pid, active, service.vault, now=clock(), actor="t", clock_skew=60)
    assert info.value.code == "key_is_active"
    with service.write() as s:
        keys.revoke_key(s, pid, active, service.vault, now=clock(), actor="t", clock_skew=60,
                        emergency=True)
    assert states(service, pid)[active] == "revoked"
    assert len(by_state(service, pid, "active")) == 1
    assert len(by_state(service, pid, "next")) == 1


def test_replace_now_needs_confirmation(service: Service, clock: FakeClock, pid: str) -> None:
    old = by_state(service, pid, "active")[0]
    with pytest.raises(Conflict) as info, service.write() as s:
        keys.replace_now(s, pid, service.vault, now=clock(), actor="t")
    assert info.value.code == "confirmation_required"
    with service.write() as s:
        new = keys.replace_now(s, pid, service.vault, now=clock(), actor="t",
                               confirm_invalidate=True, alg="EdDSA")
        new_kid = new.kid
    assert states(service, pid)[old] == "revoked"
    assert by_state(service, pid, "active") == [new_kid]


def test_database_allows_only_one_active_key(service: Service, pid: str) -> None:
    with service.read() as s:
        active = s.execute(select(Key).where(Key.state == "active")).scalar_one()
        values: dict[str, Any] = {c.name: getattr(active, c.name) for c in Key.__table__.columns}
    values.pop("id")
    values["kid"] = "duplicate-active"
    with pytest.raises(IntegrityError), service.write() as s:
        s.add(Key(**values))
        s.flush()


def test_next_key_revocation_prepublishes_a_replacement(
    service: Service, clock: FakeClock, pid: str
) -> None:
    nxt = by_state(service, pid, "next")[0]
    with service.write() as s:
        keys.revoke_key(s, pid, nxt, service.vault, now=clock(), actor="t", clock_skew=60)
    assert states(service, pid)[nxt] == "revoked"
    assert len(by_state(service, pid, "next")) == 1


def test_scheduler_rotates_by_policy_and_retires(
    service: Service, clock: FakeClock, pid: str
) -> None:
    with service.write() as s:
        projects.update_project(s, pid, {"rotation_days": 1}, now=clock(), actor="t")
    assert scheduler.run_once(service) == []
    first_active = by_state(service, pid, "active")[0]
    clock.advance(86400)
    done = scheduler.run_once(service)
    assert len(done) == 1 and "rotated" in done[0]
    assert states(service, pid)[first_active] == "retiring"
    assert scheduler.run_once(service) == []  # idempotent
    clock.advance(keys.SYNC_MARGIN + service.settings.clock_skew)
    done = scheduler.run_once(service)
    assert any("revoked" in d for d in done)
    assert states(service, pid)[first_active] == "revoked"


def test_schedule_bounds_jwks_cache_age(service: Service, clock: FakeClock, pid: str) -> None:
    view = service.state.projects[pid]
    assert view.cache_max_age(clock()) == 300
    with service.write() as s:
        projects.update_project(s, pid, {"rotation_days": 1}, now=clock(), actor="t")
    clock.advance(86400 - 100)
    service.state.reload()
    assert service.state.projects[pid].cache_max_age(clock()) == 100
