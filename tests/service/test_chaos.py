"""Chaos on PostgreSQL: three ``jwkit serve`` replicas on one throwaway server, while tokens are
issued and keys rotated, replicas are SIGKILLed and restarted at random moments (one right after
a rotation it acknowledged), PostgreSQL is stopped with ``-m immediate`` and started again, then
frozen with SIGSTOP and resumed, and a replica with the wrong master key tries to join.

Invariants, checked throughout and printed with their numbers at the end:

* no token is ever rejected while valid: each one is verified at once against every live
  replica's JWKS by a cache-honouring :class:`~jwkit.Verifier` (``min_ttl=0``, and a cooldown
  long enough that an unknown ``kid`` is never refetched), and all of them again at the end;
* exactly one active key per project at every sample of the database;
* an acknowledged rotation survives the SIGKILL of the replica that acknowledged it;
* during the outages every live replica answers JWKS and discovery (200, from memory) and its
  admin API answers 503 with ``Retry-After`` within its deadline (never 500, never a hang);
  after them, every replica's admin API works again without a restart;
* a change made on one replica is served by the others within seconds.

The schedule comes from a seeded random (``JWKIT_CHAOS_SEED``, printed), so a failing run can be
replayed; timing is real, and every bound has slack for a loaded CI machine.
"""

from __future__ import annotations

import os
import random
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from jwkit.errors import InvalidToken, KeySourceError
from jwkit.verify.verifier import Verifier
from tests.support.postgres import PostgresCluster, fresh_database, own_postgres_server
from tests.support.serve import ServerProcess

from .conftest import AUTH, MASTER_KEY, server_env

pytestmark = [pytest.mark.postgres, pytest.mark.chaos, pytest.mark.timeout(300)]

DB_TIMEOUT = 2.0
#: An admin request during an outage: a ping, then at most one connection attempt, plus slack.
ADMIN_503_WITHIN = 2 * DB_TIMEOUT + 3
JWKS_MAX_AGE = 2
TOKEN_TTL = 600
CHAOS_SECONDS = 30.0


@dataclass
class Replica:
    name: str
    server: ServerProcess
    alive: bool = False
    starting: threading.Thread | None = None
    verifiers: dict[str, Verifier] = field(default_factory=dict)


@dataclass
class Project:
    id: str
    issuer: str
    audience: str
    client_id: str
    client_secret: str


class Chaos:
    def __init__(self, tmp_path: Path, cluster: PostgresCluster, seed: int) -> None:
        self.rng = random.Random(seed)
        self.cluster = cluster
        self.url = fresh_database(cluster.server)
        env = {"JWKIT_DATABASE_URL": self.url, "JWKIT_MASTER_KEY": MASTER_KEY,
               "JWKIT_DB_TIMEOUT": str(DB_TIMEOUT), "JWKIT_SCHEDULER_INTERVAL": "1",
               "JWKIT_PUBLIC_URL": "http://keys.chaos.test"}  # fmt: skip
        self.replicas = [
            Replica(name, ServerProcess(tmp_path / name, server_env(tmp_path / name, **env)))
            for name in ("a", "b", "c")
        ]
        self.projects: list[Project] = []
        self.tokens: list[tuple[str, str, str]] = []  # (project id, replica, token)
        self.n = Counter[str]()
        self.timings: dict[str, list[float]] = {}
        self.engine = create_engine(self.url, pool_pre_ping=True)

    # -- plumbing -------------------------------------------------------------------------

    def time(self, what: str, seconds: float) -> None:
        self.timings.setdefault(what, []).append(seconds)

    def live(self) -> list[Replica]:
        return [r for r in self.replicas if r.alive]

    def api(self, replica: Replica, method: str, path: str, body: Any = None,
            timeout: float = 30) -> httpx.Response:  # fmt: skip
        return httpx.request(method, f"{replica.server.url}/api/v1{path}", json=body,
                             headers=AUTH, timeout=timeout)  # fmt: skip

    def start(self, replica: Replica) -> None:
        """Start (or restart, on the same port) and wait until it serves. Its verifiers keep
        their caches across a restart, as a real verifier would."""
        started = time.monotonic()
        replica.server.start(timeout=90)
        self.time("replica start to first answer (s)", time.monotonic() - started)
        replica.alive = True

    def start_soon(self, replica: Replica) -> None:
        """Restart in the background: the load goes on meanwhile."""
        thread = threading.Thread(target=self.start, args=(replica,), daemon=True)
        replica.starting = thread
        thread.start()
        self.n["replicas restarted"] += 1

    def settle(self) -> None:
        for replica in self.replicas:
            if replica.starting is not None:
                replica.starting.join(120)
                replica.starting = None
            assert replica.alive, f"replica {replica.name} did not come back"

    def kill(self, replica: Replica) -> None:
        replica.server.kill()
        replica.alive = False
        self.n["replicas SIGKILLed"] += 1

    def verifier(self, replica: Replica, project: Project) -> Verifier:
        if project.id not in replica.verifiers:
            replica.verifiers[project.id] = Verifier.from_jwks_url(
                f"{replica.server.url}/p/{project.id}/.well-known/jwks.json",
                allow_insecure_http=True, issuer=project.issuer, audience=project.audience,
                min_ttl=0, cooldown=3600, token_cache=False, timeout=5,
                # keys are the point here; the status lists live at the shared public URL,
                # which no load balancer serves in this test
                check_status=False,
            )  # fmt: skip
        return replica.verifiers[project.id]

    def close(self) -> None:
        for replica in self.replicas:
            for verifier in replica.verifiers.values():
                verifier.close()
            replica.server.stop()
        self.engine.dispose()

    # -- invariants -----------------------------------------------------------------------

    def sample_active_keys(self) -> None:
        with self.engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT p.id, count(k.id) FROM projects p LEFT JOIN keys k "
                "ON k.project_id = p.id AND k.state = 'active' GROUP BY p.id")).all()  # fmt: skip
        counts = {r[0]: r[1] for r in rows}
        assert counts == {p.id: 1 for p in self.projects}, f"active keys per project: {counts}"
        self.n["active-key samples (exactly one each)"] += 1

    def verify_everywhere(self, project: Project, token: str) -> None:
        for replica in self.live():
            try:
                self.verifier(replica, project).verify(token)
            except InvalidToken as exc:
                pytest.fail(f"a valid token was rejected by replica {replica.name}: {exc!r}")
            except KeySourceError as exc:  # the replica is alive: its JWKS must answer
                pytest.fail(f"replica {replica.name} did not serve its JWKS: {exc!r}")
            self.n["verifications"] += 1

    def issue(self, project: Project, replica: Replica) -> None:
        r = httpx.post(f"{replica.server.url}/p/{project.id}/oauth2/token",
                       data={"grant_type": "client_credentials"},
                       auth=(project.client_id, project.client_secret), timeout=30)  # fmt: skip
        assert r.status_code == 200, (r.status_code, r.text)
        token = str(r.json()["access_token"])
        self.tokens.append((project.id, replica.name, token))
        self.n["tokens issued"] += 1
        self.verify_everywhere(project, token)

    def active_kid(self, replica: Replica, project: Project, *, new: bool = False) -> set[str]:
        """The kids ``replica`` serves as active; with ``new``, a project another replica has
        just created may still be unknown here (404: it learns of it within the change check)."""
        r = httpx.get(f"{replica.server.url}/p/{project.id}/.well-known/openid-configuration",
                      timeout=5)  # fmt: skip
        if new and r.status_code == 404:
            return set()
        assert r.status_code == 200
        return {k["kid"] for k in r.json()["jwkit_key_schedule"] if k["state"] == "active"}

    def wait_visible(
        self, project: Project, kid: str, origin: Replica | None, *, new: bool = False
    ) -> None:
        """Every other live replica serves ``kid`` as active within seconds (``new``: the
        project itself was just created on ``origin``)."""
        started = time.monotonic()
        for replica in self.live():
            if replica is origin:
                continue
            while kid not in self.active_kid(replica, project, new=new):
                assert time.monotonic() - started < 5, f"{replica.name} did not see {kid}"
                time.sleep(0.02)
        self.time("change visible on all replicas (s)", time.monotonic() - started)

    # -- actions --------------------------------------------------------------------------

    def setup(self) -> None:
        failures: list[BaseException] = []

        def start(replica: Replica) -> None:
            try:
                self.start(replica)
            except BaseException as exc:  # reported below with the replica's log
                failures.append(exc)

        # launched together on the fresh database: one migrates, all start
        threads = [threading.Thread(target=start, args=(r,)) for r in self.replicas]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        assert not failures, failures
        assert all(r.alive for r in self.replicas)
        for i in range(2):
            origin = self.replicas[i]
            created = self.api(
                origin,
                "POST",
                "/projects",
                {"name": f"chaos-{i}", "jwks_max_age": JWKS_MAX_AGE, "token_ttl": TOKEN_TTL},
            )
            assert created.status_code == 201, created.text
            p = created.json()
            client = self.api(origin, "POST", f"/projects/{p['id']}/clients", {"name": "svc"})
            assert client.status_code == 201
            c = client.json()
            project = Project(p["id"], p["issuer"], p["audience"], c["client_id"],
                              c["client_secret"])  # fmt: skip
            self.projects.append(project)
            self.wait_visible(project, self.active_kid(origin, project).pop(), origin, new=True)

    def rotate(self, replica: Replica, project: Project, *, kill_after: bool) -> bool:
        """A graceful rotation; ``kill_after`` SIGKILLs the replica the moment it answers.
        Returns whether it was killed."""
        r = self.api(replica, "POST", f"/projects/{project.id}/keys/rotate")
        if r.status_code == 409:
            assert r.json()["error"] == "rotation_too_early"
            self.n["rotations refused as too early (409)"] += 1
            return False
        assert r.status_code == 200, (r.status_code, r.text)
        self.n["graceful rotations"] += 1
        new = r.json()["active"]
        if kill_after:
            self.kill(replica)
            self.n["SIGKILLs right after an acknowledged rotation"] += 1
            with self.engine.connect() as conn:
                state = conn.execute(text("SELECT state FROM keys WHERE kid = :k"),
                                     {"k": new}).scalar_one()  # fmt: skip
            assert state == "active", "an acknowledged rotation was lost"
            origin = None
        else:
            origin = replica
        self.wait_visible(project, new, origin)
        return kill_after

    def chaos(self) -> None:
        """Tokens, rotations and kills for CHAOS_SECONDS."""
        ends = time.monotonic() + CHAOS_SECONDS
        dead_until: dict[str, float] = {}
        while time.monotonic() < ends:
            now = time.monotonic()
            for replica in self.replicas:
                if replica.starting is not None and not replica.starting.is_alive():
                    replica.starting.join()
                    replica.starting = None
                    assert replica.alive, f"replica {replica.name} did not restart"
                due = dead_until.get(replica.name)
                if due is not None and due <= now:
                    del dead_until[replica.name]
                    self.start_soon(replica)
            project = self.rng.choice(self.projects)
            live = self.live()
            roll = self.rng.random()
            # the random schedule, plus one kill by mid-run whatever the dice (and the machine's
            # speed, which decides how long restarts keep replicas away) said
            overdue = now > ends - CHAOS_SECONDS / 2 and not self.n["replicas SIGKILLed"]
            if (roll < 0.05 or overdue) and len(live) > 1:
                victim = self.rng.choice(live)
                self.kill(victim)
                dead_until[victim.name] = now + self.rng.uniform(0.2, 3.0)
            elif roll < 0.15:
                replica = self.rng.choice(live)
                first = not self.n["SIGKILLs right after an acknowledged rotation"]
                kill_after = len(live) > 1 and (first or self.rng.random() < 0.4)
                if self.rotate(replica, project, kill_after=kill_after) and kill_after:
                    dead_until[replica.name] = now + self.rng.uniform(0.2, 2.0)
            else:
                self.issue(project, self.rng.choice(live))
            if self.rng.random() < 0.2:
                self.sample_active_keys()
            time.sleep(self.rng.uniform(0.0, 0.1))
        for name in dead_until:
            self.start_soon(next(r for r in self.replicas if r.name == name))
        self.settle()

    def during_outage(self, kind: str) -> None:
        """Public documents from memory, admin 503 with Retry-After within the deadline."""
        for replica in self.live():
            for project in self.projects:
                for doc in ("jwks.json", "openid-configuration"):
                    started = time.monotonic()
                    r = httpx.get(f"{replica.server.url}/p/{project.id}/.well-known/{doc}",
                                  timeout=5)  # fmt: skip
                    assert r.status_code == 200, (kind, replica.name, doc, r.status_code)
                    self.time(f"{kind}: public document (s)", time.monotonic() - started)
                    self.n[f"{kind}: public documents answered"] += 1
            for method, path in (
                ("GET", "/projects"),
                ("POST", f"/projects/{self.projects[0].id}/keys/rotate"),
            ):
                started = time.monotonic()
                r = self.api(replica, method, path, timeout=30)
                took = time.monotonic() - started
                assert r.status_code == 503, (kind, replica.name, path, r.status_code, r.text)
                assert r.headers.get("retry-after"), "503 without Retry-After"
                assert took < ADMIN_503_WITHIN, f"{kind}: admin answered after {took:.1f}s"
                self.time(f"{kind}: admin 503 (s)", took)
                self.n[f"{kind}: admin 503s"] += 1
            started = time.monotonic()
            r = httpx.get(f"{replica.server.url}/readyz", timeout=5)
            assert r.status_code == 503
            self.time(f"{kind}: /readyz 503 (s)", time.monotonic() - started)

    def after_outage(self, kind: str, back: float) -> None:
        """Every replica's admin API works again, without a restart."""
        for replica in self.live():
            while True:
                r = self.api(replica, "GET", "/projects", timeout=30)
                if r.status_code == 200:
                    break
                assert r.status_code == 503, (r.status_code, r.text)
                assert time.monotonic() - back < 20, f"{replica.name}: admin API not back"
                time.sleep(0.05)
        self.time(f"{kind}: admin API back on every replica (s)", time.monotonic() - back)
        project = self.rng.choice(self.projects)
        origin = self.rng.choice(self.live())
        r = self.api(origin, "POST", f"/projects/{project.id}/keys", {"mode": "next"})
        assert r.status_code == 201, r.text
        next_kid = r.json()["kid"]
        started = time.monotonic()
        for replica in self.live():
            url = f"{replica.server.url}/p/{project.id}/.well-known/jwks.json"
            while next_kid not in {k["kid"] for k in httpx.get(url, timeout=5).json()["keys"]}:
                assert time.monotonic() - started < 5, f"{replica.name} missed a new key"
                time.sleep(0.02)
        self.time("change visible on all replicas (s)", time.monotonic() - started)
        self.sample_active_keys()
        self.issue(project, origin)

    def stop_database(self) -> None:
        self.cluster.stop("immediate")
        self.n["PostgreSQL stopped -m immediate"] += 1
        try:
            time.sleep(1.5)  # let the replicas' background syncs meet the outage
            self.during_outage("stopped")
        finally:
            self.cluster.start()
        self.after_outage("stopped", time.monotonic())

    def freeze_database(self) -> None:
        stopped = self.cluster.freeze()
        self.n["PostgreSQL processes frozen (SIGSTOP)"] += stopped
        try:
            time.sleep(1.5)
            self.during_outage("frozen")
        finally:
            self.cluster.thaw()
        self.after_outage("frozen", time.monotonic())

    def wrong_master_key(self, tmp_path: Path) -> None:
        env = server_env(tmp_path / "wrong", JWKIT_DATABASE_URL=self.url,
                         JWKIT_MASTER_KEY="22" * 32)  # fmt: skip
        intruder = ServerProcess(tmp_path / "wrong", env)
        with pytest.raises(RuntimeError, match="exited early") as info:
            intruder.start(timeout=60)
        assert "cannot be opened with this master key" in str(info.value)
        assert intruder.proc is not None and intruder.proc.returncode not in (0, None)
        self.n["replicas with the wrong master key refused"] += 1

    def final_check(self) -> None:
        by_id = {p.id: p for p in self.projects}
        for pid, _, token in self.tokens:
            self.verify_everywhere(by_id[pid], token)
        self.sample_active_keys()

    def report(self, seed: int, took: float) -> str:
        lines = [f"chaos on PostgreSQL: seed {seed}, {took:.0f}s, 3 replicas"]
        lines += [f"  {name}: {count}" for name, count in sorted(self.n.items())]
        for name, values in sorted(self.timings.items()):
            lines.append(f"  {name}: n={len(values)} median={statistics.median(values):.3f} "
                         f"max={max(values):.3f}")  # fmt: skip
        return "\n".join(lines)


def test_chaos_on_postgres(tmp_path: Path) -> None:
    seed = int(os.environ.get("JWKIT_CHAOS_SEED", "20261206"))
    started = time.monotonic()
    with own_postgres_server() as cluster:
        chaos = Chaos(tmp_path, cluster, seed)
        try:
            chaos.setup()
            chaos.sample_active_keys()
            chaos.chaos()
            chaos.stop_database()
            chaos.freeze_database()
            chaos.wrong_master_key(tmp_path)
            chaos.final_check()
        finally:
            print("\n" + chaos.report(seed, time.monotonic() - started))
            chaos.close()
    assert chaos.n["graceful rotations"] >= 2
    assert chaos.n["replicas SIGKILLed"] >= 2  # one of them right after a rotation
    assert chaos.n["SIGKILLs right after an acknowledged rotation"] >= 1
