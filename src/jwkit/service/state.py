"""What one replica holds in memory: published documents, signing keys, a client cache.

:class:`ServiceState` loads every project's published keys once, renders the JWKS and discovery
documents into bytes with a strong ETag, and decrypts each project's active key once. The public
routes read only from here. :meth:`ServiceState.sync` (called every ``sync_interval`` seconds)
polls the ``service_state.version`` counter, which every change bumps in its own transaction, and
rebuilds when it moved — so replicas sharing one database converge within one interval.

Two promises of :mod:`jwkit.service.domain.keys` are kept here:

* *Freshness*: the snapshot is vouched for from the last time the database confirmed it
  (:class:`Freshness`); once that is more than ``SYNC_MARGIN`` seconds ago, the advertised
  ``max-age`` shrinks so that no verifier caches a stale JWKS past the time a newer key may
  start signing elsewhere.
* *Reserved expiry*: a token is signed only if its ``exp`` is within the mark recorded in the
  database for its key (:meth:`ServiceState.exp_covered`). Each load and each sync tops the
  marks up (``exp_headroom`` ahead, one write per key every few minutes), so the hot path
  never waits on the database and a replica killed outright loses no record.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from jwkit.errors import JWKError
from jwkit.jose.jwt import Encoder
from jwkit.service.domain import admins, audit, foreign, keys
from jwkit.service.domain.clients import CLIENT_ID_MAX, ClientRecord, load_client, load_clients
from jwkit.service.domain.projects import issuer_for
from jwkit.service.domain.tokens import DPOP_ALGORITHMS, token_encoder
from jwkit.service.keys import LOCAL, Keyring, KeyUnavailable, Signer
from jwkit.service.settings import Settings
from jwkit.service.statuslists import StatusRegistry
from jwkit.service.store.db import Database
from jwkit.service.store.models import ForeignPublicKey, Key, Project
from jwkit.service.store.models import ServiceState as StateRow
from jwkit.service.vault import Vault

__all__ = ["Document", "Freshness", "ProjectView", "ServiceState"]

log = logging.getLogger("jwkit.service")
#: Known clients kept in memory (oldest dropped first); only ids found in the database get here.
_KNOWN_MAX = 100_000
#: Bytes of unknown ``client_id``s remembered as misses (each costs its length plus
#: ``_MISS_OVERHEAD``); the oldest misses go first. Misses never displace known clients.
_MISS_BYTES = 1 << 20
_MISS_OVERHEAD = 96
#: How many cached ids one query re-reads when a reload re-checks the known clients.
_REFRESH_BATCH = 500
#: How long /readyz waits for a database ping before it answers "not ready".
_READY_WAIT = 0.5


@dataclass(slots=True)
class Freshness:
    """When (service clock, whole seconds) the database last confirmed this replica's
    snapshot was current; shared by every :class:`ProjectView` of one replica."""

    confirmed_at: int | None = None


@dataclass(frozen=True, slots=True)
class Document:
    """A rendered response body with its strong ETag (RFC 9110 §8.8.3)."""

    body: bytes
    etag: str

    @classmethod
    def render(cls, data: Any) -> Document:
        body = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
        return cls(body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


@dataclass(slots=True)
class ProjectView:
    id: str
    issuer: str
    audience: str
    token_ttl: int
    max_token_ttl: int
    jwks_max_age: int
    jwks: Document
    discovery: Document
    next_change: int | None
    #: The active key, wherever it lives (:mod:`jwkit.service.keys`).
    signer: Signer | None
    signer_key_id: int | None
    max_exp: dict[int, int] = field(default_factory=dict)
    #: ``signer`` with its token header prepared, for the token endpoint.
    token_signer: Encoder | None = None
    #: Tokens carry a Token Status List ``status`` claim (the project's ``token_status``).
    token_status: bool = False
    freshness: Freshness | None = None
    #: When the first foreign key published here reaches its end (the JWKS is rebuilt then).
    foreign_until: int | None = None
    #: The token endpoint refuses requests without a DPoP proof (the project's setting).
    dpop_required: bool = False

    def cache_max_age(self, now: int) -> int:
        """``max-age`` never beyond the next scheduled key change (never negative), and never
        beyond ``confirmed + SYNC_MARGIN + jwks_max_age`` for a snapshot last confirmed at
        ``confirmed`` (``now`` is truncated, hence the extra second)."""
        age = self.jwks_max_age
        if self.next_change is not None:
            age = min(age, self.next_change - now)
        confirmed = self.freshness.confirmed_at if self.freshness is not None else None
        if confirmed is not None:
            age = min(age, confirmed + keys.SYNC_MARGIN + self.jwks_max_age - now - 1)
        return max(0, age)


def _token_signer(project_id: str, key: Signer | None) -> Encoder | None:
    if key is None:
        return None
    try:
        return token_encoder(key.jwk, sign=key.external)
    except JWKError:  # never for keys this service made; one bad row must not stop the rest
        log.error("project %s: its active key cannot sign tokens", project_id)
        return None


class ServiceState:
    """The replica's in-memory view; thread-safe swaps, lock-free reads."""

    def __init__(
        self, settings: Settings, db: Database, vault: Vault, clock: Callable[[], int]
    ) -> None:
        self.settings = settings
        self.db = db
        self.vault = vault
        self.clock = clock
        self.version = -1
        self.projects: dict[str, ProjectView] = {}
        self.admin_tokens: dict[str, str] = {}
        #: client id -> its record: clients the database knew when last asked (kept across
        #: reloads, which re-read them, so a database outage spares clients seen before).
        self._known: dict[str, ClientRecord] = {}
        #: unknown client ids (insertion-ordered, oldest first) and the bytes they cost.
        self._misses: dict[str, None] = {}
        self._miss_bytes = 0
        #: bumped by every reload: a lookup that started before one must not cache its answer.
        self._client_generation = 0
        self._client_lock = threading.Lock()
        self._signers: dict[int, Signer] = {}
        #: (kid, code) -> when this replica last raised a key custody alarm for it.
        self._alarms: dict[tuple[str, str], int] = {}
        self._alarm_lock = threading.Lock()
        self._covered: dict[int, int] = {}
        self.freshness = Freshness()
        self._lock = threading.Lock()
        self._exp_lock = threading.Lock()
        self._ping: _Ping | None = None
        self._ping_lock = threading.Lock()
        #: Status lists, index blocks and issuance records (token status).
        self.status = StatusRegistry(settings, db, clock, lambda: self.projects)
        self.status.key_alarm = lambda pid, exc, backend: self.key_alarm(pid, exc, backend=backend)
        #: Called with a project id when its published key set changed.
        self.key_listeners: list[Callable[[str], None]] = []

    # -- loading ------------------------------------------------------------------------

    def reload(self) -> None:
        """Rebuild every snapshot from the database (after a change here or elsewhere)."""
        with self._lock:
            confirmed = self.clock()
            with self.db.session() as session:
                version = session.execute(
                    select(StateRow.version).where(StateRow.id == 1)
                ).scalar_one()
                projects = list(session.execute(select(Project)).scalars())
                rows = list(
                    session.execute(
                        select(Key)
                        .where(Key.state.in_(keys.PUBLISHED_STATES))
                        .order_by(Key.created_at, Key.id)
                    ).scalars()
                )
                tokens = admins.token_hashes(session)
                foreign_keys = foreign.published_foreign_keys(session, confirmed)
                known = self._reread_clients(session)
            by_project: dict[str, list[Key]] = {}
            for row in rows:
                by_project.setdefault(row.project_id, []).append(row)
            signers: dict[int, Signer] = {}
            views: dict[str, ProjectView] = {}
            for project in projects:
                views[project.id] = self._build(
                    project,
                    by_project.get(project.id, []),
                    signers,
                    foreign_keys.get(project.id, []),
                )
            covered = {row.id: row.max_exp or 0 for row in rows if row.state == keys.ACTIVE}
            with self._exp_lock:
                for key_id, mark in covered.items():
                    covered[key_id] = max(mark, self._covered.get(key_id, 0))
                self._covered = covered
            self._signers = signers
            old, self.projects = self.projects, views
            self.admin_tokens = tokens
            with self._client_lock:
                self._client_generation += 1
                self._known = known
                self._misses = {}  # an id unknown before may name a client created since
                self._miss_bytes = 0
            self.version = version
            self.freshness.confirmed_at = confirmed
        try:
            self.reserve_exp()
        except Exception as exc:  # the database went away meanwhile: the next sync retries
            log.warning("could not reserve token expiry marks: %s", type(exc).__name__)
        self.status.load()
        if isinstance(self.vault, Keyring) and self.vault.holds_elsewhere:
            self.destroy_revoked()
        for pid, view in views.items():
            before = old.get(pid)
            if before is not None and before.jwks.etag != view.jwks.etag:
                for listener in list(self.key_listeners):
                    listener(pid)

    def _build(
        self,
        project: Project,
        rows: list[Key],
        signers: dict[int, Signer],
        foreign_rows: list[ForeignPublicKey] | None = None,
    ) -> ProjectView:
        now = self.clock()
        issuer = issuer_for(self.settings.public_url, project.id)
        published = [json.loads(k.public_jwk) for k in rows if k.public_jwk]
        # Foreign keys (domain.foreign) follow the project's own, until their end.
        shown = [f for f in foreign_rows or () if f.until > now]
        published += [json.loads(f.public_jwk) for f in shown]
        sched = keys.schedule(project, rows, self.settings.clock_skew)
        future = [t for s in sched for t in (s.activates_at, s.retires_at) if t and t > now]
        future += [f.until for f in shown]
        overdue = any(
            t is not None and t <= now and s.state != keys.ACTIVE
            for s in sched
            for t in (s.retires_at,)
        )
        next_change = min(future) if future else None
        if overdue:
            next_change = now + int(max(self.settings.scheduler_interval, 1))
        signer = signer_id = None
        active = [k for k in rows if k.state == keys.ACTIVE]
        if active:
            row = active[0]
            signer = self._signers.get(row.id) or self._open_signer(row)
            if signer is not None:
                signers[row.id] = signer
                signer_id = row.id
        algs = sorted({k.alg for k in rows}) or [project.algorithm]
        discovery = {
            "issuer": issuer,
            "jwks_uri": f"{issuer}/.well-known/jwks.json",
            "token_endpoint": f"{issuer}/oauth2/token",
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "revocation_endpoint": f"{issuer}/oauth2/revoke",
            "revocation_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
            ],
            "introspection_endpoint": f"{issuer}/oauth2/introspect",
            "introspection_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
            ],
            "id_token_signing_alg_values_supported": algs,
            # RFC 9449 §5.1: the token endpoint takes DPoP proofs signed with these.
            "dpop_signing_alg_values_supported": DPOP_ALGORITHMS,
            # RFC 8414 §2: no grant of ours uses an authorization endpoint, so none is listed
            # and no response_type is supported.
            "response_types_supported": [],
            "jwkit_key_schedule": [
                {
                    "kid": s.kid,
                    "state": s.state,
                    "activates_at": s.activates_at,
                    "retires_at": s.retires_at,
                }
                for s in sched
            ],
        }
        return ProjectView(
            id=project.id,
            issuer=issuer,
            audience=project.audience,
            token_ttl=project.token_ttl,
            max_token_ttl=project.max_token_ttl,
            jwks_max_age=project.jwks_max_age,
            jwks=Document.render({"keys": published}),
            discovery=Document.render(discovery),
            next_change=next_change,
            signer=signer,
            signer_key_id=signer_id,
            token_signer=_token_signer(project.id, signer),
            freshness=self.freshness,
            token_status=bool(project.token_status),
            foreign_until=min((f.until for f in shown), default=None),
            dpop_required=bool(project.dpop_required),
        )

    # -- key custody --------------------------------------------------------------------

    def _open_signer(self, row: Key) -> Signer | None:
        """The active key's signer (``local``: decrypted once; elsewhere: found by its
        label and checked against the stored public key). A key its backend cannot give
        back leaves the project without a signer (503 at the token endpoint) and raises an
        alarm; a wrong master key still stops the service, as it always has."""
        if not isinstance(self.vault, Keyring):
            return Signer(keys.open_key(row, self.vault))
        try:
            return self.vault.signer(row)
        except KeyUnavailable as exc:
            self.key_alarm(row.project_id, exc, kid=row.kid, backend=row.backend)
            return None

    def key_alarm(
        self,
        project_id: str,
        exc: KeyUnavailable,
        *,
        kid: str | None = None,
        backend: str | None = None,
    ) -> None:
        """A key could not sign (gone from its token, a bad signature, the token away): an
        error log line at once and a ``key.unavailable`` audit event, at most once a minute
        per key and reason on this replica (written aside: the caller answers 503 now)."""
        kid = kid or exc.kid or "?"
        log.error(
            "key custody alarm: project %s key %s (%s): %s [%s]",
            project_id,
            kid,
            backend or "?",
            exc.message,
            exc.code,
        )
        now = self.clock()
        with self._alarm_lock:
            last = self._alarms.get((kid, exc.code))
            if last is not None and now - last < 60:
                return
            self._alarms[(kid, exc.code)] = now
        detail = {"reason": exc.code, "backend": backend or "?", "message": exc.message}

        def write() -> None:
            try:
                with self.db.session() as session, session.begin():
                    audit.record(
                        session,
                        now=now,
                        actor="service",
                        action="key.unavailable",
                        project_id=project_id,
                        kid=kid,
                        detail=detail,
                        bump=False,
                    )
            except Exception as err:  # the log line above is the alarm of last resort
                log.warning("could not record the key alarm: %s", type(err).__name__)

        threading.Thread(target=write, name="jwkit-key-alarm", daemon=True).start()

    def destroy_revoked(self) -> list[str]:
        """Destroy revoked keys that live outside the database (a PKCS#11 token) once the
        revocation is committed; idempotent, and any replica may do it. Returns the kids."""
        assert isinstance(self.vault, Keyring)
        done: list[str] = []
        with self.db.session() as session:
            rows = list(
                session.execute(
                    select(Key).where(
                        Key.state == keys.REVOKED,
                        Key.backend != LOCAL,
                        Key.destroyed_at.is_(None),
                    )
                ).scalars()
            )
        for row in rows:
            try:
                found = self.vault.destroy(row)
            except KeyUnavailable as exc:
                log.warning("could not destroy revoked key %s: %s", row.kid, exc.message)
                continue
            now = self.clock()
            with self.db.session() as session, session.begin():
                marked = session.execute(
                    update(Key)
                    .where(Key.id == row.id, Key.destroyed_at.is_(None))
                    .values(destroyed_at=now)
                )
                if not getattr(marked, "rowcount", 0):
                    continue  # another replica got there first
                audit.record(
                    session,
                    now=now,
                    actor="service",
                    action="key.destroyed",
                    project_id=row.project_id,
                    kid=row.kid,
                    detail={"backend": row.backend, "found": found},
                    bump=False,
                )
            done.append(row.kid)
        return done

    # -- replication --------------------------------------------------------------------

    def sync(self) -> bool:
        """Top up the ``exp`` reservations and flush issuance records, then rebuild if another
        writer bumped the version (everything) or the status version (the lists that changed);
        either way the snapshot counts as confirmed now."""
        self.reserve_exp()
        self.status.flush()
        confirmed = self.clock()
        with self.db.session() as session:
            version = session.execute(select(StateRow.version).where(StateRow.id == 1)).scalar_one()
        if version != self.version or self._foreign_key_ended(confirmed):
            self.reload()
            return True
        self.freshness.confirmed_at = confirmed
        return self.status.refresh()

    def _foreign_key_ended(self, now: int) -> bool:
        """Whether a foreign key published here has reached its end (no database change
        marks it: every replica rebuilds on its own clock)."""
        return any(
            v.foreign_until is not None and v.foreign_until <= now for v in self.projects.values()
        )

    def exp_covered(self, key_id: int, exp: int) -> bool:
        """Whether a token of ``key_id`` expiring at ``exp`` is within the recorded mark (the
        token endpoint refuses with 503 otherwise: the database has been away too long)."""
        return exp <= self._covered.get(key_id, 0)

    def reserve_exp(self) -> None:
        """Record, for each active key this replica signs with, an ``exp`` mark
        ``exp_headroom`` seconds beyond the tokens it issues now, once less than half of that
        headroom is left. One transaction, usually nothing to do."""
        now = self.clock()
        headroom = self.settings.exp_headroom
        wanted: dict[int, int] = {}
        for view in self.projects.values():
            key_id = view.signer_key_id
            if key_id is None:
                continue
            horizon = now + view.token_ttl
            if self._covered.get(key_id, 0) < horizon + headroom // 2:
                wanted[key_id] = horizon + headroom
        if not wanted:
            return
        with self.db.session() as session, session.begin():
            granted = {
                key_id: mark
                for key_id, mark in sorted(wanted.items())
                if keys.reserve_exp(session, key_id, mark)
            }
        with self._exp_lock:
            for key_id, mark in granted.items():
                if self._covered.get(key_id, 0) < mark:
                    self._covered[key_id] = mark

    # -- clients --------------------------------------------------------------------------

    def cached_client(self, client_id: str) -> tuple[bool, ClientRecord | None]:
        """``(hit, record)``; a miss means the caller should :meth:`load_client`.

        An id longer than the column (``CLIENT_ID_MAX``) names no client: a hit with no record,
        never cached and never looked up."""
        record = self._known.get(client_id)
        if record is not None:
            return True, record
        if client_id in self._misses or len(client_id) > CLIENT_ID_MAX:
            return True, None
        return False, None

    def load_client(self, client_id: str) -> ClientRecord | None:
        """Look ``client_id`` up in the database and remember the answer."""
        if len(client_id) > CLIENT_ID_MAX:
            return None
        generation = self._client_generation
        with self.db.session() as session:
            record = load_client(session, client_id)
        with self._client_lock:
            if generation != self._client_generation:
                return record  # a reload ran meanwhile: this answer may already be stale
            if record is not None:
                self._misses.pop(client_id, None)  # (never there: a reload clears misses)
                if len(self._known) >= _KNOWN_MAX:
                    del self._known[next(iter(self._known))]
                self._known[client_id] = record
            elif client_id not in self._misses:
                self._miss_bytes += len(client_id) + _MISS_OVERHEAD
                self._misses[client_id] = None
                while self._miss_bytes > _MISS_BYTES:
                    oldest = next(iter(self._misses))
                    del self._misses[oldest]
                    self._miss_bytes -= len(oldest) + _MISS_OVERHEAD
        return record

    def _reread_clients(self, session: Session) -> dict[str, ClientRecord]:
        """The known clients as the database has them now: deleted or changed ones are
        dropped or refreshed, the others kept (in their order)."""
        ids = list(self._known)
        fresh: dict[str, ClientRecord] = {}
        for start in range(0, len(ids), _REFRESH_BATCH):
            fresh.update(load_clients(session, ids[start : start + _REFRESH_BATCH]))
        return {cid: fresh[cid] for cid in ids if cid in fresh}

    def ready(self) -> bool:
        """Database reachable and, once projects exist, a signing key loaded.

        Never waits more than ``_READY_WAIT``: the ping runs in its own thread (one at a time,
        bounded by the database deadline), and a ping still running means "not ready"."""
        if not self._database_answers():
            return False
        return not self.projects or any(v.signer is not None for v in self.projects.values())

    def _database_answers(self) -> bool:
        with self._ping_lock:
            ping = self._ping
            if ping is None or not ping.is_alive():
                ping = self._ping = _Ping(self.db)
                ping.start()
        ping.join(_READY_WAIT)
        return not ping.is_alive() and ping.ok


class _Ping(threading.Thread):
    """One database ping, run aside so that a frozen database cannot hold ``/readyz``."""

    def __init__(self, db: Database) -> None:
        super().__init__(name="jwkit-ready-ping", daemon=True)
        self.db = db
        self.ok = False

    def run(self) -> None:
        self.ok = self.db.ping()
