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
            s,
            projects.ProjectSpec(name="p", jwks_max_age=300, max_token_ttl=3600),
            now=clock(),
            actor="t",
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
    # published at clock() means committed before clock() + 1, and other replicas may serve
    # the older JWKS for SYNC_MARGIN seconds more
    assert info.value.earliest_safe_at == clock() + 300 + 1 + keys.SYNC_MARGIN
    old_active, old_next = by_state(service, pid, "active")[0], by_state(service, pid, "next")[0]
    clock.advance(300 + keys.SYNC_MARGIN)
    with pytest.raises(Conflict), service.write() as s:
        keys.rotate(s, pid, service.vault, now=clock(), actor="t")
    clock.advance(1)
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
        keys.raise_max_exp(s, key_id, clock() + 5000)
    clock.advance(300 + 1 + keys.SYNC_MARGIN)
    with service.write() as s:
        keys.rotate(s, pid, service.vault, now=clock(), actor="t")
    with pytest.raises(Conflict) as info, service.write() as s:
        keys.revoke_key(s, pid, active, service.vault, now=clock(), actor="t", clock_skew=skew)
    assert info.value.code == "key_still_in_use"
    assert info.value.earliest_safe_at == clock() - 306 + 5000 + skew
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
        keys.revoke_key(
            s, pid, active, service.vault, now=clock(), actor="t", clock_skew=60, emergency=True
        )
    assert states(service, pid)[active] == "revoked"
    assert len(by_state(service, pid, "active")) == 1
    assert len(by_state(service, pid, "next")) == 1


def test_replace_now_needs_confirmation(service: Service, clock: FakeClock, pid: str) -> None:
    old = by_state(service, pid, "active")[0]
    with pytest.raises(Conflict) as info, service.write() as s:
        keys.replace_now(s, pid, service.vault, now=clock(), actor="t")
    assert info.value.code == "confirmation_required"
    with service.write() as s:
        new = keys.replace_now(
            s, pid, service.vault, now=clock(), actor="t", confirm_invalidate=True, alg="EdDSA"
        )
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


@pytest.mark.parametrize("max_age", [1, 2, 7, 300])
def test_promotion_waits_past_the_second_the_key_was_published_in(
    service: Service, clock: FakeClock, max_age: int
) -> None:
    """Times are whole seconds: a next key stored as published at ``t`` may have gone out at
    ``t + 0.99``, so signing at ``t + max_age`` would meet verifiers that cached the JWKS
    just before it (the chaos run's rejected tokens). Every ``max_age``, to the second."""
    with service.write() as s:
        project = projects.create_project(
            s, projects.ProjectSpec(name="p", jwks_max_age=max_age), now=clock(), actor="t"
        )
        keys.bootstrap_keys(s, project, service.vault, now=clock(), actor="t")
        pid = project.id
    published = clock()
    for late in (max_age, max_age + 1, max_age + keys.SYNC_MARGIN):
        clock.now = published + late
        with pytest.raises(Conflict) as info, service.write() as s:
            keys.rotate(s, pid, service.vault, now=clock(), actor="t")
        assert info.value.earliest_safe_at == published + max_age + 1 + keys.SYNC_MARGIN
        view = service.state.projects[pid]
        assert view.cache_max_age(clock()) <= max_age
    clock.now = published + max_age + 1 + keys.SYNC_MARGIN
    with service.write() as s:
        keys.rotate(s, pid, service.vault, now=clock(), actor="t")


def test_no_cache_means_no_wait(service: Service, clock: FakeClock) -> None:
    with service.write() as s:
        project = projects.create_project(
            s, projects.ProjectSpec(name="p", jwks_max_age=0), now=clock(), actor="t"
        )
        keys.bootstrap_keys(s, project, service.vault, now=clock(), actor="t")
        keys.rotate(s, project.id, service.vault, now=clock(), actor="t")


def test_unconfirmed_snapshot_shortens_the_advertised_max_age(
    service: Service, clock: FakeClock, pid: str
) -> None:
    """A replica that has not heard from the database cannot vouch for its JWKS: past
    SYNC_MARGIN its max-age shrinks, so no verifier caches it beyond the time a key published
    meanwhile may start signing on another replica."""
    view = service.state.projects[pid]
    confirmed = clock()
    assert view.cache_max_age(clock()) == 300
    clock.advance(keys.SYNC_MARGIN - 1)
    assert view.cache_max_age(clock()) == 300
    clock.advance(100)
    age = view.cache_max_age(clock())
    assert clock() + 1 + age <= confirmed + keys.SYNC_MARGIN + 300
    clock.advance(1000)
    assert view.cache_max_age(clock()) == 0
    service.state.sync()  # the database answers again: back to the full max-age
    assert service.state.projects[pid].cache_max_age(clock()) == 300


def test_expiry_marks_are_recorded_before_tokens_reach_them(
    service: Service, clock: FakeClock, pid: str
) -> None:
    """The active key's ``max_exp`` is reserved ahead of signing (nothing to flush, nothing a
    SIGKILL can lose), topped up in the background, and only while the key is active. The key
    is opened lazily: its first mark is reserved when it is opened, before it signs."""
    view = service.state.projects[pid]
    assert view.signer_key_id is not None
    key_id = view.signer_key_id
    assert view.opened is None  # not decrypted until the project signs
    assert view.signer is not None  # opening it reserves the first mark

    def recorded() -> int:
        with service.read() as s:
            return int(s.execute(select(Key.max_exp).where(Key.id == key_id)).scalar_one())

    first = recorded()
    assert first >= clock() + view.token_ttl + service.settings.exp_headroom // 2
    assert service.state.exp_covered(key_id, clock() + view.token_ttl)
    assert not service.state.exp_covered(key_id, first + 1)
    clock.advance(service.settings.exp_headroom // 2 + 1)  # over half used: the sync tops it up
    assert service.state.exp_covered(key_id, clock() + view.token_ttl)
    service.state.sync()
    assert recorded() > first
    assert service.state.exp_covered(key_id, clock() + view.token_ttl)
    clock.advance(1 + keys.SYNC_MARGIN + 300)
    with service.write() as s:
        keys.rotate(s, pid, service.vault, now=clock(), actor="t")
    frozen = recorded()
    with service.write() as s:  # a replica that missed the rotation gets no reservation
        assert keys.reserve_exp(s, key_id, frozen + 10_000) is False
    assert recorded() == frozen
