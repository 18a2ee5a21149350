"""Issue 18: a change rebuilds only the project it touched, on the replica that made it and on
the others, and the result is what a full rebuild gives.

Replica A (the service that writes) and replica B (a second :class:`ServiceState` over the same
database, which only learns of changes through :meth:`ServiceState.refresh`) follow a random
sequence of every kind of change; after each one, every project's rendered documents, signing
key, settings and every known client of both are compared with a state built from scratch.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from hashlib import sha256
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from jwkit.jose.jwk import JWK
from jwkit.service.domain import (
    admins,
    audit,
    clients,
    foreign,
    imports,
    keys,
    projects,
    revocation,
)
from jwkit.service.domain.common import ServiceError
from jwkit.service.runtime import Service
from jwkit.service.scheduler import run_once
from jwkit.service.state import ServiceState
from jwkit.service.store.models import Client, Project, ProjectChange

from .conftest import FakeClock

ALGS = ("ES256", "EdDSA", "RS256", "HS256")


def _fresh(service: Service) -> ServiceState:
    state = ServiceState(service.settings, service.db, service.vault, service.clock)
    state.reload()
    return state


def _version(service: Service) -> int:
    from jwkit.service.store.models import ServiceState as Row

    with service.read() as s:
        return int(s.execute(select(Row.version).where(Row.id == 1)).scalar_one())


def _picture(state: ServiceState, client_ids: list[str]) -> dict[str, Any]:
    """Everything a replica serves, comparable across replicas (builds every view)."""
    views = {}
    for pid in sorted(state.projects.ids):
        view = state.projects[pid]
        signer = view.signer
        views[pid] = (
            view.jwks,
            view.discovery,
            view.issuer,
            view.audience,
            view.token_ttl,
            view.max_token_ttl,
            view.jwks_max_age,
            view.next_change,
            view.token_status,
            view.dpop_required,
            view.foreign_until,
            view.signer_key_id,
            # the private key's digest: equal keys, and no key material in a failure message
            None
            if signer is None
            else sha256(signer.jwk.to_json(private=True).encode()).hexdigest(),
            view.token_signer is not None,
        )
    known = {}
    for cid in client_ids:  # a cached record must be the database's (a stale one shows here)
        hit, record = state.cached_client(cid)
        known[cid] = record if hit else state.load_client(cid)
    return {
        "views": views,
        "admin_tokens": dict(state.admin_tokens),
        "clients": known,
        "rules": {pid: state.status.rules_seen(pid) for pid in sorted(state.projects.ids)},
    }


FIELDS = "jwks discovery issuer audience token_ttl max_token_ttl jwks_max_age next_change "
FIELDS += "token_status signer_key_id signer token_signer"


def _diff(got: dict[str, Any], expected: dict[str, Any]) -> str:
    for part in expected:
        if part != "views" and got[part] != expected[part]:
            return f"{part}: {got[part]} != {expected[part]}"
    for pid, want in expected["views"].items():
        have = got["views"].get(pid)
        if have is None:
            return f"{pid} missing"
        for field, x, y in zip(FIELDS.split(), have, want, strict=True):
            if x != y:
                return f"{pid}.{field}: {x!r} != {y!r}"
    return f"extra projects {set(got['views']) - set(expected['views'])}"


class World:
    """The random changes, made through the domain as the admin API makes them."""

    def __init__(self, service: Service, clock: FakeClock, rng: random.Random) -> None:
        self.service, self.clock, self.rng = service, clock, rng
        self.kinds: dict[str, int] = {}
        #: Called when time moved: views hold time-derived values (``next_change``), which
        #: the periodic full rebuild refreshes, not the change path under test.
        self.ticked: list[Callable[[], None]] = []

    def pids(self) -> list[str]:
        with self.service.read() as s:
            return sorted(s.execute(select(Project.id)).scalars())

    def client_ids(self) -> list[str]:
        with self.service.read() as s:
            return sorted(s.execute(select(Client.id)).scalars())

    def change(self) -> str:
        ops: list[Callable[[], None]] = [self.create_project]
        if self.pids():
            ops += [
                self.update_project,
                self.delete_project,
                self.add_next,
                self.rotate,
                self.replace,
                self.revoke_next,
                self.revoke_active,
                self.scheduler,
                self.create_client,
                self.revoke_tokens,
                self.import_key,
                self.add_foreign_key,
                self.remove_foreign_key,
            ]
        if self.client_ids():
            ops += [self.delete_client, self.edit_client]
        ops += [self.admin_token]
        op = self.rng.choice(ops)
        try:
            op()
        except ServiceError:  # a refused change (e.g. HS rotation without a next secret)
            pass
        self.kinds[op.__name__] = self.kinds.get(op.__name__, 0) + 1
        return op.__name__

    def _pid(self) -> str:
        return self.rng.choice(self.pids())

    def create_project(self) -> None:
        spec = projects.ProjectSpec(
            name=f"p{self.rng.randrange(1000)}",
            algorithm=self.rng.choice(ALGS),
            rotation_days=self.rng.choice((None, 1)),
            token_status=self.rng.random() < 0.5,
            jwks_max_age=self.rng.choice((0, 300)),
        )
        with self.service.write() as s:
            project = projects.create_project(s, spec, now=self.clock(), actor="t")
            keys.bootstrap_keys(s, project, self.service.vault, now=self.clock(), actor="t")

    def update_project(self) -> None:
        field, value = self.rng.choice(
            [
                ("name", "renamed"),
                ("audience", f"aud-{self.rng.randrange(100)}"),
                ("token_ttl", self.rng.choice((60, 120))),
                ("jwks_max_age", self.rng.choice((0, 60, 300))),
                ("rotation_days", self.rng.choice((None, 1, 30))),
                ("token_status", self.rng.random() < 0.5),
                ("dpop_required", self.rng.random() < 0.5),
                ("algorithm", self.rng.choice(ALGS)),
            ]
        )
        with self.service.write() as s:
            projects.update_project(s, self._pid(), {field: value}, now=self.clock(), actor="t")

    def delete_project(self) -> None:
        with self.service.write() as s:
            projects.delete_project(s, self._pid(), now=self.clock(), actor="t")

    def add_next(self) -> None:
        with self.service.write() as s:
            keys.add_next_key(s, self._pid(), self.service.vault, now=self.clock(), actor="t")

    def rotate(self) -> None:
        with self.service.write() as s:
            keys.rotate(s, self._pid(), self.service.vault, now=self.clock(), actor="t",
                        emergency=self.rng.random() < 0.5)  # fmt: skip

    def replace(self) -> None:
        with self.service.write() as s:
            keys.replace_now(s, self._pid(), self.service.vault, now=self.clock(), actor="t",
                             confirm_invalidate=True)  # fmt: skip

    def _revoke(self, state: str) -> None:
        pid = self._pid()
        with self.service.read() as s:
            found = [k.kid for k in keys.list_keys(s, pid) if k.state == state]
        if not found:
            return
        with self.service.write() as s:
            keys.revoke_key(s, pid, found[-1], self.service.vault, now=self.clock(), actor="t",
                            clock_skew=0, emergency=True)  # fmt: skip

    def revoke_next(self) -> None:
        self._revoke(keys.NEXT)

    def revoke_active(self) -> None:
        self._revoke(self.rng.choice((keys.ACTIVE, keys.RETIRING)))

    def scheduler(self) -> None:
        self.clock.advance(self.rng.choice((60, 86400 + 400)))  # sometimes a rotation is due
        for tick in self.ticked:
            tick()
        run_once(self.service)

    def create_client(self) -> None:
        with self.service.write() as s:
            clients.create_client(s, self._pid(), name="c", scopes=["read"], now=self.clock(),
                                  actor="t")  # fmt: skip

    def delete_client(self) -> None:
        cid = self.rng.choice(self.client_ids())
        with self.service.write() as s:
            row = s.get(Client, cid)
            assert row is not None
            clients.delete_client(s, row.project_id, cid, now=self.clock(), actor="t")

    def edit_client(self) -> None:
        """A client's secret or scopes changed (no endpoint yet: the change names its project
        as every change must)."""
        cid = self.rng.choice(self.client_ids())
        with self.service.write() as s:
            row = s.get(Client, cid)
            assert row is not None
            row.scopes = self.rng.choice(("read", "read write"))
            row.secret_hash = clients.hash_secret(f"s{self.rng.randrange(1000)}")
            audit.bump_version(s, row.project_id)

    def revoke_tokens(self) -> None:
        with self.service.write() as s:
            revocation.revoke(s, self._pid(), "sub", f"u{self.rng.randrange(5)}",
                              now=self.clock(), actor="t", clock_skew=0,
                              effective_by=self.clock() + 60)  # fmt: skip

    def import_key(self) -> None:
        """Bring your own key: a key made elsewhere becomes the next key."""
        pid = self._pid()
        with self.service.read() as s:
            alg = projects.get_project(s, pid).algorithm
        with self.service.write() as s:
            imports.import_key(s, pid, self.service.vault, JWK.generate(alg), now=self.clock(),
                               actor="t", source="jwk")  # fmt: skip

    def add_foreign_key(self) -> None:
        """Another issuer's key, published for a while (it may end while the test runs)."""
        key = JWK.generate("ES256", kid=f"old-{self.rng.randrange(1000)}").public()
        with self.service.write() as s:
            foreign.add_foreign_keys(s, self._pid(), [key], source="body", now=self.clock(),
                                     until=self.clock() + self.rng.choice((120, 86400 * 3)),
                                     actor="t")  # fmt: skip

    def remove_foreign_key(self) -> None:
        pid = self._pid()
        with self.service.read() as s:
            kids = [row.kid for row in foreign.list_foreign_keys(s, pid)]
        if kids:
            with self.service.write() as s:
                foreign.remove_foreign_key(s, pid, kids[0], now=self.clock(), actor="t")

    def admin_token(self) -> None:
        with self.service.write() as s:
            admins.reset_admin(s, now=self.clock())


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_incremental_refresh_agrees_with_a_full_rebuild(
    service: Service, clock: FakeClock, seed: int
) -> None:
    rng = random.Random(seed)
    world = World(service, clock, rng)
    other = _fresh(service)  # replica B: learns of changes only by refreshing
    a, b = service.state, other
    a.reload()
    ticks = [0]

    def tick() -> None:  # the periodic full rebuild, after time moved
        ticks[0] += 1
        a.reload()
        b.reload()

    world.ticked.append(tick)
    full = (a.full_reloads, b.full_reloads)
    for step in range(40):
        # Both replicas cache every view, open every key and know every client first, so the
        # incremental path has stale entries to replace (not only new ones to build).
        cids = world.client_ids()
        for state in (a, b):
            _picture(state, cids)
            for cid in cids:
                state.load_client(cid)
        kind = world.change()
        moved = _version(service) != b.version
        assert b.refresh() == moved, kind
        b.status.refresh()
        a.status.refresh()
        expected = _picture(_fresh(service), world.client_ids())
        cids = world.client_ids()
        for name, state in (("replica that wrote", a), ("other replica", b)):
            got = _picture(state, cids)
            assert got == expected, f"step {step}: {kind} ({name}): {_diff(got, expected)}"
    # the changes never needed the safety net (only the ticks ran it)
    assert (a.full_reloads, b.full_reloads) == (full[0] + ticks[0], full[1] + ticks[0])
    assert a.refreshes > 0 and b.refreshes > 0
    # every kind of change ran at least once over the seeds (the random walk covers them)
    assert len(world.kinds) >= 8, world.kinds


def test_a_change_names_its_project_and_rebuilds_only_it(
    service: Service, clock: FakeClock
) -> None:
    world = World(service, clock, random.Random(7))
    for _ in range(5):
        world.create_project()
    pids = world.pids()
    other = _fresh(service)
    for pid in pids:
        assert other.projects[pid].jwks  # all cached
    builds = other.projects.builds
    with service.write() as s:
        keys.rotate(s, pids[2], service.vault, now=clock(), actor="t", emergency=True)
    with service.read() as s:
        version = s.execute(
            select(ProjectChange.version).where(ProjectChange.project_id == pids[2])
        )
        assert version.scalar_one() > other.version
    assert other.refresh()
    assert other.projects.builds == builds + 1  # that project only


def test_the_full_reload_stays_the_safety_net_for_a_gap(service: Service, clock: FakeClock) -> None:
    """A version bump no change row explains (e.g. a bulk import) makes the replica rebuild
    everything instead of guessing."""
    world = World(service, clock, random.Random(3))
    world.create_project()
    other = _fresh(service)
    before = other.full_reloads
    with service.write() as s:
        from jwkit.service.store.models import ServiceState as Row

        s.execute(select(Row).where(Row.id == 1)).scalar_one().version += 1
    other.refresh()
    assert other.full_reloads == before + 1


def test_deleted_projects_disappear_everywhere(service: Service, clock: FakeClock) -> None:
    world = World(service, clock, random.Random(4))
    world.create_project()
    (pid,) = world.pids()
    other = _fresh(service)
    assert pid in other.projects and other.projects.get(pid) is not None
    world.delete_project()
    other.refresh()
    assert pid not in other.projects and other.projects.get(pid) is None
    assert service.state.projects.get(pid) is None


def _eventually(check: Callable[[], bool], what: str, timeout: float = 15) -> None:
    """Poll another process until ``check`` holds (its sync runs every second: no event to
    wait on from outside the process)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_two_serve_processes_converge_on_every_change(spawn: Any, tmp_path: Path) -> None:
    """Two real ``jwkit serve`` replicas over one database: what one changes, the other
    serves (projects created, keys rotated, clients created and deleted, projects deleted)."""
    a = spawn(tmp_path, JWKIT_SYNC_INTERVAL="0.2")
    b = spawn(tmp_path, JWKIT_SYNC_INTERVAL="0.2")
    with a.api() as api_a, httpx.Client(base_url=b.url, timeout=10) as pub_b:
        created = api_a.post("/api/v1/projects", json={"name": "shared", "token_status": False})
        assert created.status_code == 201, created.text
        pid = created.json()["id"]

        def kids() -> list[str]:
            r = pub_b.get(f"/p/{pid}/.well-known/jwks.json")
            return [k["kid"] for k in r.json()["keys"]] if r.status_code == 200 else []

        _eventually(lambda: len(kids()) == 2, "B serves the new project")
        before = kids()
        rotated = api_a.post(f"/api/v1/projects/{pid}/keys/rotate", json={"emergency": True})
        assert rotated.status_code == 200, rotated.text
        _eventually(lambda: kids() != before and len(kids()) == 3, "B serves the rotation")
        made = api_a.post(f"/api/v1/projects/{pid}/clients", json={"name": "c", "scopes": []})
        assert made.status_code == 201, made.text
        cid, secret = made.json()["client_id"], made.json()["client_secret"]

        def token() -> int:
            return pub_b.post(
                f"/p/{pid}/oauth2/token",
                data={"grant_type": "client_credentials"},
                auth=(cid, secret),
            ).status_code

        _eventually(lambda: token() == 200, "B knows the new client")
        assert api_a.delete(f"/api/v1/projects/{pid}/clients/{cid}").status_code == 204
        _eventually(lambda: token() == 401, "B forgets the deleted client")
        assert api_a.delete(f"/api/v1/projects/{pid}").status_code == 204
        _eventually(
            lambda: pub_b.get(f"/p/{pid}/.well-known/jwks.json").status_code == 404,
            "B forgets the deleted project",
        )


def _create(api: httpx.Client, name: str) -> str:
    created = api.post("/api/v1/projects", json={"name": name, "token_status": False})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _rotate(api: httpx.Client, pid: str) -> str:
    """An emergency rotation; returns the new next key's kid."""
    rotated = api.post(f"/api/v1/projects/{pid}/keys/rotate", json={"emergency": True})
    assert rotated.status_code == 200, rotated.text
    return str(rotated.json()["next"])


def test_the_change_check_brings_a_rotation_between_two_syncs(spawn: Any, tmp_path: Path) -> None:
    """Replica B syncs once a minute here; its change check (every 0.05 s) alone makes it serve
    A's rotation (SQLite: no notification) long before its next sync."""
    env = {"JWKIT_SYNC_INTERVAL": "60", "JWKIT_CHANGE_CHECK_INTERVAL": "0.05"}
    a = spawn(tmp_path, **env)
    with a.api() as api_a:
        pid = _create(api_a, "quick")
        b = spawn(tmp_path, **env)
        path = f"/p/{pid}/.well-known/jwks.json"
        with httpx.Client(base_url=b.url, timeout=10) as pub_b:
            assert len(pub_b.get(path).json()["keys"]) == 2  # B read the project at start
            new = _rotate(api_a, pid)
            _eventually(
                lambda: new in [k["kid"] for k in pub_b.get(path).json()["keys"]],
                "B serves the rotation before its next sync",
            )


def test_a_stream_on_a_replica_that_never_served_the_project_hears_its_rotation(
    spawn: Any, tmp_path: Path
) -> None:
    """A replica started after the project existed holds no view of it (lazy start-up); an
    ``/events`` stream opened there still gets the ``keys`` event when another replica
    rotates (opening the stream builds the view)."""
    from .test_revocation_server import EventReader

    a = spawn(tmp_path, JWKIT_SYNC_INTERVAL="0.2", JWKIT_EVENTS_HEARTBEAT="0.5")
    with a.api() as api_a:
        pid = _create(api_a, "late")
        b = spawn(tmp_path, JWKIT_SYNC_INTERVAL="0.2", JWKIT_EVENTS_HEARTBEAT="0.5")
        reader = EventReader(f"{b.url}/p/{pid}/events")
        try:
            _rotate(api_a, pid)
            name, data = reader.next(timeout=10)
            assert name == "keys" and pid in data
        finally:
            reader.close()
