"""What one replica holds in memory: published documents, signing keys, a client cache.

:class:`ServiceState` knows every project id (one read at start-up) and builds a project's
:class:`ProjectView` (its JWKS and discovery documents rendered into bytes with a strong ETag)
on first request, kept in a bounded LRU (:class:`ProjectViews`, ``state_cache`` projects). A
project's active key is decrypted the first time it signs, not at start. The public routes read
only from memory once a project is cached.

Every change bumps ``service_state.version`` and records, in ``project_changes``, the project it
touched at that version (:mod:`jwkit.service.domain.audit`). :meth:`ServiceState.refresh` (run
after each local write, on each PostgreSQL notification, when :meth:`ServiceState.check` finds
the counter moved, every ``change_check_interval`` seconds, and in every :meth:`ServiceState.sync`)
reads "projects changed since my version" with one indexed query and rebuilds only those; the
full :meth:`ServiceState.reload` runs when the change rows do not explain a version gap, and a
safety net re-reads every cached project in rounds (every ``FULL_SYNC_EVERY`` seconds, a slice
per sync, so that no round stalls a worker holding 100,000 projects). Replicas sharing one
database converge within one change check. The periodic work of :meth:`ServiceState.sync`
(expiry marks, foreign keys that ended) is indexed by due time, so a pass costs what is due.

Two promises of :mod:`jwkit.service.domain.keys` are kept here:

* *Freshness*: the snapshot is vouched for from the last time the database confirmed it
  (:class:`Freshness`); once that is more than ``SYNC_MARGIN`` seconds ago, the advertised
  ``max-age`` shrinks so that no verifier caches a stale JWKS past the time a newer key may
  start signing elsewhere.
* *Reserved expiry*: a token is signed only if its ``exp`` is within the mark recorded in the
  database for its key (:meth:`ServiceState.exp_covered`). Opening a key reserves its first
  mark before it signs; each sync tops the marks of opened keys up (``exp_headroom`` ahead,
  one write per key every few minutes), so the hot path never waits on the database and a
  replica killed outright loses no record.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import logging
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session, defer

from jwkit.errors import JWKError
from jwkit.jose.jwt import Encoder
from jwkit.service import viewrows
from jwkit.service.domain import admins, audit, foreign, keys
from jwkit.service.domain.clients import CLIENT_ID_MAX, ClientRecord, load_client, load_clients
from jwkit.service.domain.projects import DEFAULT_JWKS_MAX_AGE, issuer_for
from jwkit.service.domain.tokens import DPOP_ALGORITHMS, token_encoder
from jwkit.service.keys import LOCAL, Keyring, KeyUnavailable, Signer
from jwkit.service.published import JSON, JWKS, Document
from jwkit.service.settings import Settings
from jwkit.service.statuslists import StatusRegistry
from jwkit.service.store.db import Database
from jwkit.service.store.models import ForeignPublicKey, Key, Project, ProjectChange
from jwkit.service.store.models import ServiceState as StateRow
from jwkit.service.vault import Vault

__all__ = ["QUIET_AGE", "Freshness", "OpenedKey", "ProjectView", "ProjectViews", "ServiceState"]

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
#: How many projects /readyz tries to open a signing key of (until one succeeds, once).
_READY_TRIES = 3
#: Projects built per batch of reads (two queries each).
_BATCH = 500
#: More changed projects than this since the last sync: a full :meth:`ServiceState.reload`.
_INCREMENTAL_MAX = 5000
#: Seconds between two rounds of the safety net behind the incremental refresh (every cached
#: project re-read, :meth:`ServiceState.sync`).
FULL_SYNC_EVERY = 300.0
#: Cached projects the safety net re-reads per sync (a few ms of work): a round over 100,000
#: projects takes about 17 minutes of syncs instead of one stall of tens of seconds.
_RECHECK_SLICE = 100
#: The ``jwks_max_age`` of the projects :class:`ProjectViews` can put in its quiet index (the
#: default: one value, so that one ``cache-control`` per second answers them all).
QUIET_AGE = DEFAULT_JWKS_MAX_AGE
#: :meth:`ProjectViews.quiet_until` of a project with no key change scheduled.
_ALWAYS = sys.maxsize


@dataclass(slots=True)
class Freshness:
    """When (service clock, whole seconds) the database last confirmed this replica's
    snapshot was current; shared by every :class:`ProjectView` of one replica."""

    confirmed_at: int | None = None


@dataclass(slots=True)
class OpenedKey:
    """A project's active key as this replica opened it to sign, with its prepared token
    encoder (``None`` when the key cannot sign tokens)."""

    key_id: int
    signer: Signer
    encoder: Encoder | None


@dataclass(slots=True)
class ProjectView:
    """What the public routes need of one project: rendered documents and, opened on first
    use only, its signing key (:attr:`signer`).

    The fields a JWKS or discovery answer reads come first, next to the object's header: a
    request for one of 100,000 projects finds them in as few lines of memory as it can."""

    jwks: Document
    discovery: Document
    jwks_max_age: int
    next_change: int | None
    freshness: Freshness | None
    id: str
    issuer: str
    audience: str
    token_ttl: int
    max_token_ttl: int
    signer_key_id: int | None
    #: Tokens carry a Token Status List ``status`` claim (the project's ``token_status``).
    token_status: bool = False
    #: When the first foreign key published here reaches its end (the JWKS is rebuilt then).
    foreign_until: int | None = None
    #: The token endpoint refuses requests without a DPoP proof (the project's setting).
    dpop_required: bool = False
    #: Decrypts the active key (the replica's :meth:`ServiceState._open_signer`).
    opener: Callable[[ProjectView], OpenedKey | None] | None = None
    opened: OpenedKey | None = None
    #: Why the active key could not be opened the last time it was tried (its backend could
    #: not give it back); tried again on the next signature.
    open_error: KeyUnavailable | None = None
    #: :func:`~jwkit.service.viewrows.fingerprint` of the rows it was built from (the safety
    #: net rebuilds it only when the database's differ).
    fingerprint: int | None = None

    def _signing(self) -> OpenedKey | None:
        opened = self.opened
        if opened is None and self.signer_key_id is not None and self.opener is not None:
            opened = self.opened = self.opener(self)
        return opened

    @property
    def signer(self) -> Signer | None:
        """The active key, wherever it lives (:mod:`jwkit.service.keys`): opened (decrypted,
        or found in its token) the first time this project signs."""
        opened = self._signing()
        return None if opened is None else opened.signer

    @property
    def token_signer(self) -> Encoder | None:
        """:attr:`signer` with its token header prepared, for the token endpoint."""
        opened = self._signing()
        return None if opened is None else opened.encoder

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


#: One int object per value of the per-project numbers most projects share (a JWKS max-age,
#: token lifetimes): read by every request, they are not one object per project to reach.
_SHARED_INTS: dict[int, int] = {}


def shared_int(value: int) -> int:
    """``value``, as the one object kept for it (up to 4,096 values kept)."""
    kept = _SHARED_INTS.get(value)
    if kept is None:
        if len(_SHARED_INTS) >= 4096:
            return value
        kept = _SHARED_INTS[value] = value
    return kept


def _token_signer(project_id: str, key: Signer) -> Encoder | None:
    try:
        return token_encoder(key.jwk, sign=key.external)
    except JWKError:  # never for keys this service made; one bad row must not stop the rest
        log.error("project %s: its active key cannot sign tokens", project_id)
        return None


class ProjectViews(Mapping[str, ProjectView]):
    """Every project id (a set: the index that answers "no such project" without I/O) and a
    bounded LRU of built views; a view not cached is built on first request (one read).

    Eviction drops the least recently used view (documents and decrypted key together) once
    more than ``capacity`` are cached. Iterating builds nothing: :meth:`cached` lists the views
    held, ``values()``/``items()`` (from :class:`Mapping`) would build them all — no caller
    in the service does that."""

    def __init__(
        self,
        build: Callable[[str], ProjectView | None],
        capacity: int,
        clock: Callable[[], int] | None = None,
        freshness: Freshness | None = None,
    ) -> None:
        self._build = build
        self.capacity = max(1, capacity)
        self.ids: set[str] = set()
        self._cache: OrderedDict[str, ProjectView] = OrderedDict()
        self._lock = threading.Lock()
        #: bumped by each invalidation: a build that started before one is not cached.
        self._generation = 0
        self.builds = 0
        #: Entries of the due indexes looked at (tests: a pass costs what is due).
        self.due_seen = 0
        #: ``(foreign_until, project id)`` of cached views, soonest first: which views a
        #: foreign key's end makes stale, without looking at the others. Entries of views
        #: evicted or rebuilt since are skipped when popped (and dropped by a compaction).
        self._foreign_due: list[tuple[int, str]] = []
        #: The quiet index: the documents of the cached views that are quiet now
        #: (:meth:`quiet_until`), by project id. A quiet view's JWKS and discovery answers
        #: carry the replica-wide ``cache-control`` of the second
        #: (:func:`jwkit.service.http.documents.quiet_cache_control`), so a request spread
        #: over 100,000 projects reads one dictionary and the document, not the view and its
        #: schedule (``docs/benchmarks.md``). Every change of the cache keeps it; time takes
        #: views out of it through :meth:`quiet_sweep`. Empty without a ``clock``.
        self.quiet_jwks: dict[str, Document] = {}
        self.quiet_discovery: dict[str, Document] = {}
        #: ``(last quiet second, project id)`` of the quiet views, soonest first (entries of
        #: views rebuilt or evicted since are skipped when popped).
        self._quiet_due: list[tuple[int, str]] = []
        self._clock = clock
        self._freshness = freshness

    def peek(self, project_id: str) -> ProjectView | None:
        """The cached view, without building or touching the LRU order."""
        return self._cache.get(project_id)

    def get(  # type: ignore[override]
        self, project_id: str, default: ProjectView | None = None
    ) -> ProjectView | None:
        view = self._cache.get(project_id)
        if view is not None:
            with contextlib.suppress(KeyError):  # evicted meanwhile: still a good answer
                self._cache.move_to_end(project_id)
            return view
        if project_id not in self.ids:
            return default
        generation = self._generation
        try:
            view = self._build(project_id)
        except Exception as exc:  # the database is away: this project is not served now
            log.warning("project %s: cannot load its state (%s)", project_id, type(exc).__name__)
            return default
        if view is None:
            return default
        with self._lock:
            if generation == self._generation:
                self._put(view)
        return view

    def __getitem__(self, project_id: str) -> ProjectView:
        view: ProjectView | None = self.get(project_id)
        if view is None:
            raise KeyError(project_id)
        return view

    def __contains__(self, project_id: object) -> bool:
        return project_id in self.ids

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.ids))

    def cached(self) -> list[ProjectView]:
        return list(self._cache.values())

    def _put(self, view: ProjectView) -> None:
        self.builds += 1
        old = self._cache.get(view.id)
        until = view.foreign_until
        self._index_quiet(view)
        self._cache[view.id] = view
        if until is not None and (old is None or old.foreign_until != until):
            heapq.heappush(self._foreign_due, (until, view.id))
            if len(self._foreign_due) > 2 * len(self._cache) + 1024:
                self._compact_foreign_due()
        self._cache.move_to_end(view.id)
        while len(self._cache) > self.capacity:
            self._drop_quiet(self._cache.popitem(last=False)[0])

    # -- the quiet index --------------------------------------------------------------------

    def quiet_until(self, view: ProjectView) -> int | None:
        """The last second (service clock) at which ``view`` is quiet: its documents' answers
        then carry the replica-wide ``cache-control`` because its project's ``jwks_max_age`` is
        :data:`QUIET_AGE`, it shares this replica's :class:`Freshness`, and its next key change
        is at least ``jwks_max_age`` away (``documents.document_lifetime`` caps ``max-age`` by
        nothing else of the project's). ``None``: never quiet."""
        if (
            self._clock is None
            or view.jwks_max_age != QUIET_AGE
            or view.freshness is not self._freshness
        ):
            return None
        change = view.next_change
        return _ALWAYS if change is None else change - QUIET_AGE

    def _index_quiet(self, view: ProjectView) -> None:
        """Put ``view``'s documents in the quiet index if it is quiet now, else take its
        project out (under the lock: :meth:`quiet_sweep` reads the clock under it too, so a
        view is never added for a second the sweep has already passed)."""
        last = self.quiet_until(view)
        if last is None or self._clock is None or last < self._clock():
            self._drop_quiet(view.id)
            return
        self.quiet_jwks[view.id] = view.jwks
        self.quiet_discovery[view.id] = view.discovery
        if last != _ALWAYS:
            heapq.heappush(self._quiet_due, (last, view.id))
            if len(self._quiet_due) > 2 * len(self._cache) + 1024:
                self._compact_quiet_due((last, view.id))

    def _compact_quiet_due(self, newest: tuple[int, str]) -> None:
        """The due list rebuilt from the quiet views cached, and ``newest`` (a view being
        put: the cache still holds its project's previous view)."""
        due = [newest]
        for pid, view in self._cache.items():
            if pid != newest[1] and pid in self.quiet_jwks:
                last = self.quiet_until(view)
                if last is not None and last != _ALWAYS:
                    due.append((last, pid))
        heapq.heapify(due)
        self._quiet_due = due

    def _drop_quiet(self, project_id: str) -> None:
        self.quiet_jwks.pop(project_id, None)
        self.quiet_discovery.pop(project_id, None)

    def quiet_sweep(self, now: int) -> bool:
        """Take out of the quiet index the views no longer quiet at ``now``; costs what is
        due. False, with nothing done, while a change holds the lock: the caller must not
        answer from the index at ``now`` then (it asks again on its next request)."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            due = self._quiet_due
            while due and due[0][0] < now:
                pid = heapq.heappop(due)[1]
                self.due_seen += 1
                view = self._cache.get(pid)
                if view is not None:
                    last = self.quiet_until(view)
                    if last is None or last < now:
                        self._drop_quiet(pid)
            return True
        finally:
            self._lock.release()

    def _compact_foreign_due(self) -> None:
        due = [
            (until, v.id) for v in self._cache.values() if (until := v.foreign_until) is not None
        ]
        heapq.heapify(due)
        self._foreign_due = due

    def foreign_ended(self, now: int) -> list[str]:
        """The cached projects one of whose foreign keys has ended by ``now`` (taken off the
        index: the caller rebuilds them, or hands them back with :meth:`foreign_retry`). Costs
        what is due, not the number of cached views; :attr:`due_seen` counts the entries."""
        ended: list[str] = []
        with self._lock:
            due = self._foreign_due
            while due and due[0][0] <= now:
                until, pid = heapq.heappop(due)
                self.due_seen += 1
                view = self._cache.get(pid)
                if view is not None and view.foreign_until == until and pid not in ended:
                    ended.append(pid)
        return ended

    def foreign_retry(self, pids: Iterable[str]) -> None:
        """Put ``pids`` (from :meth:`foreign_ended`, not rebuilt) back on the index."""
        with self._lock:
            for pid in pids:
                view = self._cache.get(pid)
                if view is not None and view.foreign_until is not None:
                    heapq.heappush(self._foreign_due, (view.foreign_until, pid))

    def fill(self, views: Iterable[ProjectView]) -> None:
        """Cache ``views`` of projects still known and not cached meanwhile (a warm-up must
        not replace a view a change rebuilt while it read), without evicting any."""
        with self._lock:
            for view in views:
                if view.id in self.ids and view.id not in self._cache:
                    if len(self._cache) >= self.capacity:
                        return
                    self._put(view)

    def replace(
        self, ids: set[str] | None, gone: Iterable[str], views: Iterable[ProjectView]
    ) -> None:
        """Swap in rebuilt ``views`` and forget ``gone`` (``ids``: the whole new id set)."""
        with self._lock:
            self._generation += 1
            if ids is not None:
                self.ids = ids
                for pid in [p for p in list(self._cache) if p not in ids]:
                    del self._cache[pid]
                    self._drop_quiet(pid)
            for pid in gone:
                self.ids.discard(pid)
                self._cache.pop(pid, None)
                self._drop_quiet(pid)
            for view in views:
                self.ids.add(view.id)
                self._put(view)


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
        self.freshness = Freshness()
        self.projects = ProjectViews(self._load_one, settings.state_cache, clock, self.freshness)
        self.admin_tokens: dict[str, str] = {}
        #: client id -> its record: clients the database knew when last asked (kept across
        #: reloads, which re-read them, so a database outage spares clients seen before).
        self._known: dict[str, ClientRecord] = {}
        #: project id -> the ids of its clients in :attr:`_known`: a change re-reads the
        #: clients of the projects it names without looking at the others.
        self._known_of: dict[str, tuple[str, ...]] = {}
        #: unknown client ids (insertion-ordered, oldest first) and the bytes they cost.
        self._misses: dict[str, None] = {}
        self._miss_bytes = 0
        #: bumped by every reload and change: a lookup that started before one must not cache
        #: its answer.
        self._client_generation = 0
        self._client_lock = threading.Lock()
        #: (kid, code) -> when this replica last raised a key custody alarm for it.
        self._alarms: dict[tuple[str, str], int] = {}
        self._alarm_lock = threading.Lock()
        #: key id -> the ``exp`` mark recorded for it (keys this replica opened to sign).
        self._covered: dict[int, int] = {}
        #: ``(when its mark needs topping up, key id, project id)`` of opened keys, soonest
        #: first: a sync tops up what is due without looking at every cached view.
        self._marks_due: list[tuple[int, int, str]] = []
        self._lock = threading.Lock()
        self._exp_lock = threading.Lock()
        self._ping: _Ping | None = None
        self._ping_lock = threading.Lock()
        self._can_sign = False
        #: Set by the app when it starts its background work: not ready until :meth:`warm`
        #: has built the views (tests without background work never set it).
        self.warm_pending = False
        self._full_at: float | None = None
        #: How many incremental refreshes and full rebuilds ran (tests, metrics).
        self.refreshes = 0
        self.full_reloads = 0
        #: Rounds of the periodic safety net started, and the cached projects its round has
        #: still to re-read (:meth:`_start_recheck`).
        self.rechecks = 0
        #: Projects the safety net has compared with the database (rebuilt only if changed).
        self.rechecked = 0
        self._recheck_queue: list[str] = []
        #: Status lists, index blocks and issuance records (token status).
        self.status = StatusRegistry(settings, db, clock, lambda: self.projects)
        self.status.key_alarm = lambda pid, exc, backend: self.key_alarm(pid, exc, backend=backend)
        #: Called with a project id when its published key set changed.
        self.key_listeners: list[Callable[[str], None]] = []

    # -- loading ------------------------------------------------------------------------

    def reload(self) -> None:
        """Re-read every project id, rebuild every cached view (in batches), re-read admin
        tokens and known clients, at once. Start-up runs it with nothing cached (one read of
        the project ids), :meth:`refresh` when the change rows do not explain a version gap;
        the periodic safety net re-reads the cached projects a slice at a time instead
        (:meth:`_start_recheck`)."""
        with self._lock:
            confirmed = self.clock()
            cached = self.projects.cached()
            with self.db.session() as session:
                version = self._read_version(session)
                # interned: the index, the views and the cached clients share one string
                ids = set(map(sys.intern, session.execute(select(Project.id)).scalars()))
                views = self._load_views(session, [v.id for v in cached if v.id in ids])
                tokens = admins.token_hashes(session)
                known = self._reread_clients(session)
            before = {v.id: v for v in cached}
            self._carry_signers(before, views)
            self.projects.replace(ids, (), views.values())
            self.admin_tokens = tokens
            self._update_clients(*known)
            self.version = version
            self.freshness.confirmed_at = confirmed
            self.full_reloads += 1
            self._full_at = time.monotonic()
            self._recheck_queue = []  # all re-read just now
            with self._exp_lock:
                live = {v.signer_key_id for v in views.values() if v.opened is not None}
                self._covered = {k: m for k, m in self._covered.items() if k in live}
        try:
            self.reserve_exp()
        except Exception as exc:  # the database went away meanwhile: the next sync retries
            log.warning("could not reserve token expiry marks: %s", type(exc).__name__)
        self.status.load()
        if isinstance(self.vault, Keyring) and self.vault.holds_elsewhere:
            self.destroy_revoked()
        self._announce(before, views)

    def refresh(self) -> bool:
        """Catch up with the changes made since this replica's version (here or on another
        replica): rebuild only the projects they name (one indexed read), forget deleted
        ones, re-read admin tokens when those changed. ``True`` if anything changed."""
        if self.version < 0:
            self.reload()
            return True
        with self._lock:
            confirmed = self.clock()
            with self.db.session() as session:
                version = self._read_version(session)
                if version == self.version:
                    self.freshness.confirmed_at = confirmed
                    return False
                changed = set(
                    session.execute(
                        select(ProjectChange.project_id).where(ProjectChange.version > self.version)
                    ).scalars()
                )
                everything = not changed or len(changed) > _INCREMENTAL_MAX
                if not everything:
                    tokens = (
                        admins.token_hashes(session) if audit.GLOBAL_CHANGE in changed else None
                    )
                    changed.discard(audit.GLOBAL_CHANGE)
                    pids = sorted(changed)
                    views = self._load_views(session, pids)
                    known = self._reread_clients(session, changed)
            if not everything:
                before = self._swap_in(pids, views, known)
                if tokens is not None:
                    self.admin_tokens = tokens
                self.version = version
                self.freshness.confirmed_at = confirmed
                self.refreshes += 1
        if everything:  # a gap (no change named): the safety net
            self.reload()
            return True
        self._rebuilt(pids, before, views)
        return True

    def _swap_in(
        self,
        pids: list[str],
        views: dict[str, ProjectView],
        known: tuple[dict[str, ClientRecord], list[str]],
    ) -> dict[str, ProjectView]:
        """Under :attr:`_lock`: put ``pids``' rebuilt ``views`` in place (keeping opened keys),
        forget those of them that no longer exist, apply their re-read clients. Returns the
        views replaced (for :meth:`_rebuilt`)."""
        before = {pid: v for pid in pids if (v := self.projects.peek(pid)) is not None}
        self._carry_signers(before, views)
        self.projects.replace(None, [p for p in pids if p not in views], views.values())
        self._update_clients(*known)
        return before

    def _rebuilt(
        self, pids: list[str], before: dict[str, ProjectView], views: dict[str, ProjectView]
    ) -> None:
        """After :meth:`_swap_in`, outside the lock: those projects' status lists, revoked
        keys held elsewhere, and key listeners."""
        if pids:
            self.status.load(pids)
            if isinstance(self.vault, Keyring) and self.vault.holds_elsewhere:
                self.destroy_revoked(pids)  # a revocation named its project
        self._announce(before, views)

    def _start_recheck(self) -> None:
        """A round of the periodic safety net: re-read the project ids and admin tokens now
        and queue every cached project, re-read :data:`_RECHECK_SLICE` at a time by
        :meth:`_recheck_slice` (a change written without naming its project is repaired
        within the round, and no round holds the lock or the interpreter for long)."""
        with self._lock:
            with self.db.session() as session:
                ids = set(map(sys.intern, session.execute(select(Project.id)).scalars()))
                tokens = admins.token_hashes(session)
            cached = self.projects.cached()
            self.projects.replace(ids, (), ())
            self.admin_tokens = tokens
            self._recheck_queue = [v.id for v in cached if v.id in ids]
            self._full_at = time.monotonic()
            self.rechecks += 1
            with self._exp_lock:
                live = {v.opened.key_id for v in cached if v.opened is not None}
                self._covered = {k: m for k, m in self._covered.items() if k in live}
        self.status.load()

    def _recheck_slice(self) -> bool:
        """Re-read the next :data:`_RECHECK_SLICE` projects of the safety net's round, as a
        change naming them would, but without holding :attr:`_lock` while reading and
        building (a creation or a change applied meanwhile does not wait for the round): a
        project whose view another refresh replaced meanwhile keeps that newer view. ``True``
        if any was re-read."""
        with self._lock:
            pids = self._recheck_queue[-_RECHECK_SLICE:]
            if not pids:
                return False
            del self._recheck_queue[-_RECHECK_SLICE:]
            seen = {pid: self.projects.peek(pid) for pid in pids}
        views, missing, (fresh, gone) = self._read_changed(seen)
        with self._lock:
            # rebuilt, evicted or reloaded since it was read: what is cached now is newer
            pids = [pid for pid in pids if self.projects.peek(pid) is seen[pid]]
            kept = set(pids)
            changed = [pid for pid in pids if pid in views or pid in missing]
            views = {pid: view for pid, view in views.items() if pid in kept}
            fresh = {cid: r for cid, r in fresh.items() if r.project_id in kept}
            gone = [cid for cid in gone if (r := self._known.get(cid)) and r.project_id in kept]
            before = self._swap_in(changed, views, (fresh, gone))
        self.rechecked += len(pids)
        self._rebuilt(changed, before, views)
        return True

    def _read_changed(
        self, seen: dict[str, ProjectView | None]
    ) -> tuple[dict[str, ProjectView], set[str], tuple[dict[str, ClientRecord], list[str]]]:
        """For the safety net: the rows of ``seen``'s projects compared with those their views
        were built from (:mod:`.viewrows`). Returns the rebuilt views of those whose rows
        differ or whose next key change is due, the projects that no longer exist, and their
        clients re-read."""
        now = self.clock()
        with self.db.session() as session:
            found = viewrows.read_fingerprints(session, list(seen), now)
            stale = [
                pid
                for pid, view in seen.items()
                if pid in found
                and (
                    view is None
                    or view.fingerprint != found[pid]
                    or (view.next_change is not None and view.next_change <= now)
                )
            ]
            views = self._load_views(session, stale) if stale else {}
            missing = {pid for pid in seen if pid not in found}
            return views, missing, self._reread_clients(session, set(seen))

    def check_master_key(self) -> None:
        """Open one active key per key-encryption key in use: a replica started with the
        wrong master key fails at start (:class:`~jwkit.service.vault.VaultError`), as when
        every key was opened at start, while the others stay sealed until they sign."""
        with self.db.session() as session:
            sealed = (Key.state == keys.ACTIVE, Key.backend == LOCAL)  # HSM keys: no master key
            kek_ids = list(session.execute(select(Key.kek_id).where(*sealed).distinct()).scalars())
            for kek_id in kek_ids:
                row = session.execute(
                    select(Key).where(*sealed, Key.kek_id == kek_id).limit(1)
                ).scalar_one()
                keys.open_key(row, self.vault)
        if kek_ids:
            self._can_sign = True

    def warm(self) -> int:
        """Build the views of the projects not cached yet, up to the cache's capacity, in
        batches (run once in the background after start-up, so start-up itself stays an id
        load): a replica then serves every project's documents from memory, as it must
        through a database outage. Keys stay sealed until they sign. Returns how many views
        were built; stops at the first database error (the next :meth:`sync` goes on)."""
        built = 0
        views = self.projects
        todo = [pid for pid in sorted(views.ids) if views.peek(pid) is None]
        todo = todo[: max(0, views.capacity - len(views.cached()))]
        for start in range(0, len(todo), _BATCH):
            chunk = todo[start : start + _BATCH]
            with self._lock:
                with self.db.session() as session:
                    fresh = self._load_views(session, chunk)
                views.fill(fresh.values())
            built += len(fresh)
        self.warm_pending = False
        return built

    def _read_version(self, session: Session) -> int:
        return int(session.execute(select(StateRow.version).where(StateRow.id == 1)).scalar_one())

    def _announce(self, before: dict[str, ProjectView], after: dict[str, ProjectView]) -> None:
        for pid, view in after.items():
            old = before.get(pid)
            if old is not None and old.jwks.etag != view.jwks.etag:
                for listener in list(self.key_listeners):
                    listener(pid)

    def _carry_signers(self, before: dict[str, ProjectView], after: dict[str, ProjectView]) -> None:
        """A rebuilt view keeps the key its predecessor opened when the active key is the same
        (its mark indexed again, sooner, when the token lifetime grew)."""
        for pid, view in after.items():
            old = before.get(pid)
            if old is not None and old.opened is not None:
                if old.opened.key_id == view.signer_key_id:
                    view.opened = old.opened
                    if view.token_ttl > old.token_ttl:
                        self._mark_due(old.opened.key_id, view)

    def _load_one(self, project_id: str) -> ProjectView | None:
        with self.db.session() as session:
            return self._load_views(session, [project_id]).get(project_id)

    def _load_views(self, session: Session, pids: list[str]) -> dict[str, ProjectView]:
        """Build the views of ``pids`` that exist, in batches (two reads per batch)."""
        views: dict[str, ProjectView] = {}
        for start in range(0, len(pids), _BATCH):
            chunk = pids[start : start + _BATCH]
            projects = list(session.execute(select(Project).where(Project.id.in_(chunk))).scalars())
            rows = session.execute(
                select(Key)
                .options(defer(Key.wrapped_dek), defer(Key.ciphertext))
                .where(Key.project_id.in_(chunk), Key.state.in_(keys.PUBLISHED_STATES))
                .order_by(Key.created_at, Key.id)
            ).scalars()
            by_project: dict[str, list[Key]] = {}
            for row in rows:
                by_project.setdefault(row.project_id, []).append(row)
            shown = foreign.published_foreign_keys(session, self.clock(), chunk)
            for project in projects:
                views[project.id] = self._build(
                    project, by_project.get(project.id, []), shown.get(project.id, [])
                )
            session.expunge_all()  # no ORM object outlives the build
        return views

    def _open_signer(self, view: ProjectView) -> OpenedKey | None:
        """Open ``view``'s active key (its first signature on this replica: decrypted, or
        found in its token) and reserve its ``exp`` mark before any token is signed. ``None``
        (the caller answers 503) when the database is away or the key cannot sign."""
        if view.signer_key_id is None:
            return None
        try:
            with self.db.session() as session:
                found = self._read_signer(session, view)
        except Exception as exc:  # the session's end failed (the database went away)
            log.warning("project %s: cannot open its signing key (%s)", view.id, type(exc).__name__)
            return None
        return None if found is None else self._opened(view, *found)

    def _read_signer(self, session: Session, view: ProjectView) -> tuple[Signer, int] | None:
        """The first half of :meth:`_open_signer`: the active key's row read in ``session``,
        its signer and recorded ``exp`` mark (``None`` when it cannot be opened)."""
        key_id = view.signer_key_id
        try:
            row = session.get(Key, key_id)
            if row is None:
                return None
            signer = self._signer_for(row)
            mark = row.max_exp or 0
        except KeyUnavailable as exc:  # alarmed already; the admin API answers with its code
            view.open_error = exc
            return None
        except Exception as exc:
            log.warning("project %s: cannot open its signing key (%s)", view.id, type(exc).__name__)
            return None
        view.open_error = None
        return signer, mark

    def _opened(self, view: ProjectView, signer: Signer, mark: int) -> OpenedKey:
        """The second half of :meth:`_open_signer`, outside the read's transaction (SQLite
        would wait on its own lock): the mark reserved, the key set on ``view``."""
        key_id = view.signer_key_id
        assert key_id is not None
        with self._exp_lock:
            self._covered[key_id] = max(mark, self._covered.get(key_id, 0))
        try:
            self._reserve({key_id: self.clock() + view.token_ttl})
        except Exception as exc:  # the token endpoint answers 503 until the next sync
            log.warning("could not reserve token expiry marks: %s", type(exc).__name__)
        self._can_sign = True
        # set here, before it is indexed, so that a sync never finds it indexed and not opened
        opened = view.opened = OpenedKey(key_id, signer, _token_signer(view.id, signer))
        self._mark_due(key_id, view)
        return opened

    def _build(
        self, project: Project, rows: list[Key], foreign_rows: list[ForeignPublicKey] | None = None
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
        active = [k for k in rows if k.state == keys.ACTIVE]
        signer_id = active[0].id if active else None
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
            id=sys.intern(project.id),
            issuer=issuer,
            audience=project.audience,
            token_ttl=shared_int(project.token_ttl),
            max_token_ttl=shared_int(project.max_token_ttl),
            jwks_max_age=shared_int(project.jwks_max_age),
            jwks=Document.render({"keys": published}, JWKS),
            discovery=Document.render(discovery, JSON),
            next_change=next_change,
            signer_key_id=signer_id,
            freshness=self.freshness,
            token_status=bool(project.token_status),
            foreign_until=min((f.until for f in shown), default=None),
            dpop_required=bool(project.dpop_required),
            opener=self._open_signer,
            fingerprint=viewrows.fingerprint(project, rows, foreign_rows or ()),
        )

    # -- key custody --------------------------------------------------------------------

    def _signer_for(self, row: Key) -> Signer:
        """The active key's signer (``local``: decrypted; elsewhere: found by its label and
        checked against the stored public key). A key its backend cannot give back raises an
        alarm and :class:`KeyUnavailable` (the project has no signer until it is back: 503)."""
        if not isinstance(self.vault, Keyring):
            return Signer(keys.open_key(row, self.vault))
        try:
            return self.vault.signer(row)
        except KeyUnavailable as exc:
            self.key_alarm(row.project_id, exc, kid=row.kid, backend=row.backend)
            raise

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

    def destroy_revoked(self, projects: list[str] | None = None) -> list[str]:
        """Destroy revoked keys that live outside the database (a PKCS#11 token) once the
        revocation is committed, of ``projects`` (default: all); idempotent, and any replica
        may do it. Returns the kids."""
        assert isinstance(self.vault, Keyring)
        done: list[str] = []
        where = [Key.state == keys.REVOKED, Key.backend != LOCAL, Key.destroyed_at.is_(None)]
        if projects is not None:
            where.append(Key.project_id.in_(projects))
        with self.db.session() as session:
            rows = list(session.execute(select(Key).where(*where)).scalars())
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

    def check(self) -> bool:
        """The cheap change check (every ``change_check_interval`` seconds between syncs):
        one read of the change counters; only when one moved, :meth:`refresh` (the projects
        the changes name) or the status lists' refresh, after writing this replica's pending
        issuance records (a revocation made elsewhere then applies to the tokens signed here
        a moment before it, without waiting for the next sync). It also runs on every
        PostgreSQL notification. ``True`` if anything changed."""
        if self.version < 0:
            return self.refresh()
        confirmed = self.clock()
        with self.db.session() as session:
            version, status_version = session.execute(
                select(StateRow.version, StateRow.status_version).where(StateRow.id == 1)
            ).one()
        changed = False
        if version != self.version:
            changed = self.refresh()
        else:
            with self._lock:
                if version == self.version:  # the snapshot is current as of the read
                    stamp = self.freshness.confirmed_at
                    self.freshness.confirmed_at = max(confirmed, stamp or confirmed)
        if status_version != self.status.version:
            self.status.flush()
            changed = self.status.refresh() or changed
        return changed

    def sync(self) -> bool:
        """Top up the ``exp`` reservations and flush issuance records, then catch up with the
        changes made elsewhere (:meth:`refresh`), re-read the next slice of the safety net's
        round (every ``FULL_SYNC_EVERY`` seconds, or when the previous round ends if it took
        longer, a round re-reads every cached project, :data:`_RECHECK_SLICE` per sync), and
        catch up with the foreign keys that ended and with the status lists that changed;
        either way the snapshot counts as confirmed now. The reservations and
        the foreign keys are indexed by when they are due: a pass with nothing due costs the
        same at any number of cached projects."""
        if self.warm_pending:
            self.warm()
        self.reserve_exp()
        self.status.flush()
        full_at = self._full_at
        if full_at is None:
            self.reload()
            return True
        if not self._recheck_queue and time.monotonic() - full_at >= FULL_SYNC_EVERY:
            self._start_recheck()  # (a round over many projects outlasts the interval)
        changed = self.refresh()
        changed = self._recheck_slice() or changed
        changed = self._expire_foreign_keys() or changed
        return self.status.refresh() or changed

    def _expire_foreign_keys(self) -> bool:
        """Rebuild the cached projects one of whose foreign keys reached its end (no database
        change marks that: every replica rebuilds them on its own clock). ``True`` if any."""
        ended = self.projects.foreign_ended(self.clock())
        if not ended:
            return False
        try:
            with self._lock:
                with self.db.session() as session:
                    views = self._load_views(session, ended)
                before = {pid: v for pid in ended if (v := self.projects.peek(pid)) is not None}
                self._carry_signers(before, views)
                self.projects.replace(None, [p for p in ended if p not in views], views.values())
        except BaseException:
            self.projects.foreign_retry(ended)  # the next sync tries them again
            raise
        self._announce(before, views)
        return True

    def exp_covered(self, key_id: int, exp: int) -> bool:
        """Whether a token of ``key_id`` expiring at ``exp`` is within the recorded mark (the
        token endpoint refuses with 503 otherwise: the database has been away too long)."""
        return exp <= self._covered.get(key_id, 0)

    def reserve_exp(self) -> None:
        """Record, for each active key this replica signs with (opened), an ``exp`` mark
        ``exp_headroom`` seconds beyond the tokens it issues now, once less than half of that
        headroom is left. One transaction, usually nothing to do: only the keys whose mark is
        due (:attr:`_marks_due`) are looked at, and only those still opened by a cached view."""
        now = self.clock()
        due: dict[int, ProjectView] = {}
        with self._exp_lock:
            heap = self._marks_due
            while heap and heap[0][0] <= now:
                _, key_id, pid = heapq.heappop(heap)
                self.projects.due_seen += 1
                view = self.projects.peek(pid)
                if view is not None and view.opened is not None and view.opened.key_id == key_id:
                    due[key_id] = view
        if not due:
            return
        try:
            self._reserve({key_id: now + view.token_ttl for key_id, view in due.items()})
        finally:  # topped up or not (the database away), each is due again when its mark is
            for key_id, view in due.items():
                self._mark_due(key_id, view)

    def _mark_due(self, key_id: int, view: ProjectView) -> None:
        """Index when ``key_id``'s mark (opened by ``view``) is next to be topped up: once
        less than half of ``exp_headroom`` is left beyond a token issued then."""
        with self._exp_lock:
            at = self._covered.get(key_id, 0) - view.token_ttl - self.settings.exp_headroom // 2
            heapq.heappush(self._marks_due, (at, key_id, view.id))

    def _reserve(self, horizons: dict[int, int]) -> None:
        headroom = self.settings.exp_headroom
        wanted = {
            key_id: horizon + headroom
            for key_id, horizon in horizons.items()
            if self._covered.get(key_id, 0) < horizon + headroom // 2
        }
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

    def load_client(
        self, client_id: str, opening: ProjectView | None = None
    ) -> ClientRecord | None:
        """Look ``client_id`` up in the database and remember the answer. With ``opening``
        (a project whose key this replica has not opened yet), a client of that project also
        opens its key, in the same transaction: a project's first token on this replica costs
        one trip off the event loop, not two."""
        if len(client_id) > CLIENT_ID_MAX:
            return None
        generation = self._client_generation
        found = None
        with self.db.session() as session:
            record = load_client(session, client_id)
            if (
                opening is not None
                and record is not None
                and record.project_id == opening.id  # anyone else is refused before signing
                and opening.opened is None
                and opening.signer_key_id is not None
            ):
                found = self._read_signer(session, opening)
        if found is not None and opening is not None:
            self._opened(opening, *found)
        with self._client_lock:
            if generation != self._client_generation:
                return record  # a reload ran meanwhile: this answer may already be stale
            if record is not None:
                self._misses.pop(client_id, None)  # (never there: a reload clears misses)
                self._remember_client(record)
            elif client_id not in self._misses:
                self._miss_bytes += len(client_id) + _MISS_OVERHEAD
                self._misses[client_id] = None
                while self._miss_bytes > _MISS_BYTES:
                    oldest = next(iter(self._misses))
                    del self._misses[oldest]
                    self._miss_bytes -= len(oldest) + _MISS_OVERHEAD
        return record

    def _reread_clients(
        self, session: Session, projects: set[str] | None = None
    ) -> tuple[dict[str, ClientRecord], list[str]]:
        """The known clients as the database has them now, ``(fresh, gone)``: the records of
        those that still exist and the ids of those deleted. With ``projects``, only the
        clients of those projects (the others cannot have changed), found by
        :attr:`_known_of` (the cost of a change does not grow with the clients cached).

        A lookup already running may have read a record before this change: the generation
        is bumped first, so that it does not cache it (:meth:`load_client`)."""
        with self._client_lock:
            self._client_generation += 1
            if projects is None:
                ids = list(self._known)
            else:
                ids = [cid for pid in projects for cid in self._known_of.get(pid, ())]
        fresh: dict[str, ClientRecord] = {}
        for start in range(0, len(ids), _REFRESH_BATCH):
            fresh.update(load_clients(session, ids[start : start + _REFRESH_BATCH]))
        return fresh, [cid for cid in ids if cid not in fresh]

    def _update_clients(self, fresh: dict[str, ClientRecord], gone: list[str]) -> None:
        """Apply :meth:`_reread_clients`'s answer, and forget the misses (an id unknown
        before may name a client created since)."""
        with self._client_lock:
            self._client_generation += 1
            for cid in gone:
                self._forget_client(cid)
            for cid, record in fresh.items():
                known = self._known.get(cid)
                # (not evicted meanwhile; one unchanged stays, and so does its place in memory)
                if known is not None and known != record:
                    self._known[cid] = record
            self._misses = {}
            self._miss_bytes = 0

    def _remember_client(self, record: ClientRecord) -> None:
        """Cache ``record`` (under :attr:`_client_lock`), the oldest known client going first
        once :data:`_KNOWN_MAX` are held."""
        cid = record.client_id
        if cid not in self._known:
            if len(self._known) >= _KNOWN_MAX:
                self._forget_client(next(iter(self._known)))
            self._known_of[record.project_id] = (*self._known_of.get(record.project_id, ()), cid)
        self._known[cid] = record

    def _forget_client(self, client_id: str) -> None:
        """Drop ``client_id`` from the known clients (under :attr:`_client_lock`)."""
        record = self._known.pop(client_id, None)
        if record is None:
            return
        rest = tuple(c for c in self._known_of.get(record.project_id, ()) if c != client_id)
        if rest:
            self._known_of[record.project_id] = rest
        else:
            self._known_of.pop(record.project_id, None)

    def ready(self) -> bool:
        """Database reachable, the start-up warm-up done (:meth:`warm`) and, once projects
        exist, a signing key loaded.

        Never waits more than ``_READY_WAIT``: the ping runs in its own thread (one at a time,
        bounded by the database deadline), and a ping still running means "not ready"."""
        if not self._database_answers() or self.warm_pending:
            return False
        if not self.projects or self._can_sign:
            return True
        for pid in list(self.projects.ids)[:_READY_TRIES]:  # (one is enough: the master key)
            view = self.projects.get(pid)
            if view is not None and view.signer is not None:
                return True
        return False

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
