"""What one replica holds for token status: signed status lists, index blocks, pending records.

:class:`StatusRegistry` keeps every project's status lists as signed Status List Tokens
(``typ: statuslist+jwt``, draft-ietf-oauth-status-list §5.1) with a strong ETag, rebuilt only
for the lists whose ``status_seq`` moved past the replica's ``status_version`` (so a revocation
re-signs one list, not every project), and re-signed before their ``exp``. The token endpoint
takes indices from a block reserved ahead (:meth:`StatusRegistry.take`, no database round
trip); the issuance records go to the database in batches (:meth:`StatusRegistry.flush`,
called by every sync and before a revocation scans).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from sqlalchemy import func, select

from jwkit.errors import JWKError
from jwkit.jose.jwt import Encoder
from jwkit.jose.statuslist import StatusList
from jwkit.service.domain import revocation
from jwkit.service.domain.common import ServiceError
from jwkit.service.domain.revocation import BITS, BLOCK_LIFETIME, Block, Issued
from jwkit.service.keys import KeyUnavailable, Signer
from jwkit.service.published import etag_of
from jwkit.service.settings import Settings
from jwkit.service.store.db import Database
from jwkit.service.store.models import Revocation, ServiceState
from jwkit.service.store.models import StatusList as ListRow

if TYPE_CHECKING:
    from jwkit.service.state import ProjectView

__all__ = ["STATUS_EXP", "ListDoc", "Slot", "StatusRegistry"]

log = logging.getLogger("jwkit.service")

#: Lifetime of a signed Status List Token (``exp - iat``); it is re-signed at half of it.
STATUS_EXP = 6 * 3600
_HEADERS = {"typ": "statuslist+jwt"}  # §5.1
#: Projects whose next index block the background reserver reserves in one transaction (about
#: half a millisecond of database work each on SQLite: an inline reservation waits for at most
#: one such batch).
REFILL_BATCH = 64


@dataclass(frozen=True, slots=True)
class ListDoc:
    """One signed status list, ready to serve."""

    project_id: str
    number: int
    list_id: int
    uri: str
    seq: int
    statuses: StatusList
    body: bytes
    etag: str
    iat: int
    exp: int
    ttl: int
    kid: str | None

    def max_age(self, now: int) -> int:
        """``Cache-Control: max-age``: the ``ttl``, never beyond ``exp``."""
        return max(0, min(self.ttl, self.exp - now))


class Slot(NamedTuple):
    """One index handed to a token about to be signed (a tuple: one per token)."""

    uri: str
    list_id: int
    idx: int
    rules_seen: int


@dataclass(slots=True)
class _Snapshot:
    docs: dict[int, ListDoc]  # number -> list
    rules_seen: int


class _Cursor:
    __slots__ = ("block", "next", "spare", "uri")

    def __init__(self, block: Block, uri: str) -> None:
        self.block = block
        self.next = block.start
        self.uri = uri
        self.spare: tuple[Block, str] | None = None


class StatusRegistry:
    """The replica's status lists and allocator; thread-safe swaps, lock-free reads."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        clock: Callable[[], int],
        views: Callable[[], Mapping[str, ProjectView]],
    ) -> None:
        self.settings = settings
        self.db = db
        self.clock = clock
        self.views = views
        self.version = -1
        self.snapshots: dict[str, _Snapshot] = {}
        #: Called with (project_id, list URI) when a list's statuses changed (not on re-sign).
        self.listeners: list[Callable[[str, str], None]] = []
        self._cursors: dict[str, _Cursor] = {}
        self._pending: list[Issued] = []
        self._lock = threading.RLock()
        self._alloc_lock = threading.Lock()
        self._refill_lock = threading.Lock()
        self._pending_lock = threading.Lock()
        #: Projects whose next block the background reserver has been asked for (in the order
        #: asked) or is reserving, and when a background reservation last failed (retried at
        #: most once a second: a database outage must not cost a write per token request).
        self._refilling: set[str] = set()
        self._wanted: dict[str, None] = {}
        self._refill_failed: dict[str, float] = {}
        self._reserver: threading.Thread | None = None
        self._closed = False
        self._wake = threading.Condition(self._alloc_lock)
        #: Each signer's status-list encoder, keyed by the signer itself (not its ``id()``: a
        #: view rebuilt frees its signer, and another project's may reuse the address).
        self._encoders: dict[Signer, Encoder] = {}
        #: Every published list by when it is due for re-signing, soonest first:
        #: ``(due, tie, project, number, doc)``, an entry stale once its ``doc`` is no longer
        #: the published one (skipped when popped); ``doc`` is ``None`` for a list never
        #: signed whose contents wait for the key. ``None``: to be built from the snapshots
        #: (at start, after a full load, when stale entries pile up). No list was signed
        #: after :attr:`_latest_iat` (a clock set back re-signs them all).
        self._due: list[tuple[int, int, str, int, ListDoc | None]] | None = None
        self._due_live = 0  # lists indexed when :attr:`_due` was last built
        self._tie = itertools.count()
        self._latest_iat = 0
        #: Passes that indexed every list, and lists looked at for re-signing (tests: a pass
        #: costs what is due, not the number of lists).
        self.resign_scans = 0
        self.resign_seen = 0
        #: Told when a project's key could not sign a list (the service state's alarm).
        self.key_alarm: Callable[[str, KeyUnavailable, str], None] | None = None
        #: Lists whose new contents could not be signed yet (the key is unavailable: a
        #: rotation another replica made, a token that failed for a moment), by (project,
        #: number): ``(list id, status_seq, statuses)``. The last signed version is served
        #: meanwhile, and :meth:`_resign_due` signs these contents at its next pass.
        self._unsigned: dict[tuple[str, int], tuple[int, int, StatusList]] = {}

    def _key_alarm(self, project_id: str, exc: KeyUnavailable, backend: str) -> None:
        if self.key_alarm is not None:
            self.key_alarm(project_id, exc, backend)
        else:
            log.error("project %s: its key cannot sign status lists: %s", project_id, exc.code)

    @property
    def ttl(self) -> int:
        return self.settings.status_list_ttl

    # -- snapshots ----------------------------------------------------------------------------

    def load(self, projects: Collection[str] | None = None) -> None:
        """Rebuild every project's lists (after a full reload), or only those of ``projects``
        (after a change to them: their keys may sign differently now)."""
        with self._lock:
            self._load(None, projects)

    def refresh(self) -> bool:
        """Rebuild the lists that changed since the last load; re-sign those due. ``True`` if
        anything was rebuilt."""
        with self._lock:
            with self.db.session() as session:
                version = session.execute(
                    select(ServiceState.status_version).where(ServiceState.id == 1)
                ).scalar_one()
            changed = version != self.version
            if changed:
                self._load(self.version)
            self._resign_due()
            return changed

    def _load(self, since: int | None, only: Collection[str] | None = None) -> None:
        views = self.views()
        now = self.clock()
        skew = self.settings.clock_skew
        with self.db.session() as session:
            version = session.execute(
                select(ServiceState.status_version).where(ServiceState.id == 1)
            ).scalar_one()
            stmt = select(ListRow)
            rules_stmt = select(Revocation.project_id, func.max(Revocation.id))
            if since is not None:
                stmt = stmt.where(ListRow.status_seq > since)
            if only is not None:
                stmt = stmt.where(ListRow.project_id.in_(list(only)))
                rules_stmt = rules_stmt.where(Revocation.project_id.in_(list(only)))
            rows = list(
                session.execute(stmt.order_by(ListRow.project_id, ListRow.number)).scalars()
            )
            statuses = revocation.live_statuses(
                session, [r.id for r in rows], now=now, clock_skew=skew
            )
            rules: dict[str, int] = {
                str(pid): int(top or 0)
                for pid, top in session.execute(rules_stmt.group_by(Revocation.project_id)).all()
            }
        old = self.snapshots
        # Only projects with lists or revocations have a snapshot (a missing one reads as
        # empty). A partial load (``only``, or the lists changed ``since``) builds the
        # snapshots of the projects it touches and leaves the others' as they are: its cost
        # does not grow with the projects that have lists.
        snapshots: dict[str, _Snapshot] = {}
        if only is not None:
            touched = set(only)
        elif since is not None:
            touched = {r.project_id for r in rows} | {
                pid
                for pid, top in rules.items()
                if (prev := old.get(pid)) is None or prev.rules_seen != top
            }
        else:
            touched = set(old) | {r.project_id for r in rows} | set(rules)
        for pid in sorted(touched):
            view = views.get(pid)
            if view is None:
                continue
            prev = old.get(pid)
            docs = dict(prev.docs) if prev is not None and since is not None else {}
            if prev is not None and since is None:
                # A full reload keeps lists it can (same key, same contents, not due).
                docs = {
                    n: d
                    for n, d in prev.docs.items()
                    if view.signer is not None and d.kid == view.signer.kid
                }
            snapshots[pid] = _Snapshot(docs, int(rules.get(pid) or 0))
        events: list[tuple[str, str]] = []
        signed = False
        for row in rows:
            snap = snapshots.get(row.project_id)
            owner = views.get(row.project_id)
            if snap is None or owner is None:
                continue
            prev_doc = snap.docs.get(row.number)
            if since is None and prev_doc is not None and prev_doc.seq == row.status_seq:
                continue
            lst = StatusList(row.size, BITS)
            for idx, status in statuses.get(row.id, []):
                if idx < row.size:
                    lst[idx] = status
            doc = self._sign(owner, row.number, row.id, row.status_seq, lst, now)
            if doc is None and owner.signer_key_id is None:  # no active key: nothing signs
                snap.docs.pop(row.number, None)
                self._unsigned.pop((row.project_id, row.number), None)
                continue
            if doc is None:
                # Keep serving the last signed version (a full or keyed reload has set aside
                # the ones the previous key signed: that key stays published after a
                # rotation, so they still verify), and sign these contents a second later.
                kept = prev_doc
                if kept is None and (before := old.get(row.project_id)) is not None:
                    kept = before.docs.get(row.number)
                if kept is not None:
                    snap.docs[row.number] = kept
                self._unsigned[(row.project_id, row.number)] = (row.id, row.status_seq, lst)
                self._retry(row.project_id, row.number, kept, now)
                continue
            self._unsigned.pop((row.project_id, row.number), None)
            snap.docs[row.number] = doc
            self._queue(row.project_id, row.number, doc, now)
            signed = True
            if prev_doc is None or prev_doc.seq != doc.seq:
                events.append((row.project_id, doc.uri))
        if only is None and since is None:
            self.snapshots = snapshots
            self._due = None  # indexed again by the next pass
        else:  # in place: a reader sees each project's snapshot switch at once
            for pid in touched:
                if pid in snapshots:
                    old[pid] = snapshots[pid]
                else:
                    old.pop(pid, None)
        if signed:
            self._latest_iat = max(self._latest_iat, now)
        if only is None:  # a partial load has not seen the other lists' changes
            self.version = version
        for pid, uri in events:
            self._emit(pid, uri)

    def _encoder(self, key: Signer) -> Encoder:
        encoder = self._encoders.get(key)
        if encoder is None:
            if len(self._encoders) > 1000:
                self._encoders.clear()
            encoder = self._encoders[key] = key.encoder(_HEADERS)
        return encoder

    def _sign(
        self, view: ProjectView, number: int, list_id: int, seq: int, lst: StatusList, now: int
    ) -> ListDoc | None:
        if view.signer is None:
            return None
        uri = revocation.list_uri(view.issuer, number)
        claims = {
            "iss": view.issuer,
            "sub": uri,
            "iat": now,
            "exp": now + STATUS_EXP,
            "ttl": self.ttl,
            "status_list": lst.narrowed().encode(),  # 1 bit until something is suspended
        }
        try:
            body = self._encoder(view.signer).encode(claims).encode("ascii")
        except JWKError:
            log.error("project %s: its active key cannot sign status lists", view.id)
            return None
        except KeyUnavailable as exc:  # the caller keeps the last signed version
            self._key_alarm(view.id, exc, view.signer.backend)
            return None
        etag = etag_of(body)
        return ListDoc(
            view.id,
            number,
            list_id,
            uri,
            seq,
            lst,
            body,
            etag,
            now,
            now + STATUS_EXP,
            self.ttl,
            view.signer.kid,
        )

    def _queue(self, project_id: str, number: int, doc: ListDoc, now: int) -> None:
        """Index ``doc`` by when it is due for re-signing (half its life; now if it claims to
        come from later than ``now``: the clock was set back)."""
        due = self._due
        if due is None:
            return
        at = doc.iat + STATUS_EXP // 2 if doc.iat <= now else now
        heapq.heappush(due, (at, next(self._tie), project_id, number, doc))

    def _retry(self, project_id: str, number: int, doc: ListDoc | None, now: int) -> None:
        """Index list ``number``, whose new contents could not be signed, for a second from
        now (``doc``: the version served meanwhile, ``None`` if none was ever signed)."""
        if self._due is not None:
            heapq.heappush(self._due, (now + 1, next(self._tie), project_id, number, doc))

    def _index_due(self, now: int) -> list[tuple[int, int, str, int, ListDoc | None]]:
        """Build :attr:`_due` from every published list (one pass over them all), and the
        lists whose contents wait for a signature."""
        self.resign_scans += 1
        self._due = []
        self._latest_iat = 0
        for pid, snap in self.snapshots.items():
            for number, doc in snap.docs.items():
                self._queue(pid, number, doc, now)
                if doc.iat <= now:  # (the others are due now, re-signed by this pass)
                    self._latest_iat = max(self._latest_iat, doc.iat)
        for pid, number in self._unsigned:
            served = self.document(pid, number)
            heapq.heappush(self._due, (now, next(self._tie), pid, number, served))
        self._due_live = len(self._due)
        return self._due

    def _resign_due(self) -> None:
        """Re-sign the lists at half their life (and, when the clock was set back, those
        dated after it), and sign the contents that waited for the key, popped from
        :attr:`_due`: a pass costs the lists that are due."""
        now = self.clock()
        due = self._due
        if due is None or now < self._latest_iat or len(due) > 4 * max(self._due_live, 256):
            due = self._index_due(now)
        if not due or due[0][0] > now:
            return
        views = self.views()
        again: dict[tuple[str, int], ListDoc | None] = {}
        events: list[tuple[str, str]] = []
        while due and due[0][0] <= now:
            _, _, pid, number, doc = heapq.heappop(due)
            at = (pid, number)
            snap = self.snapshots.get(pid)
            if (None if snap is None else snap.docs.get(number)) is not doc or at in again:
                continue  # replaced or gone since it was indexed, or tried in this pass
            waiting = self._unsigned.get(at)
            view = views.get(pid)
            if snap is None or view is None:  # the project is gone
                self._unsigned.pop(at, None)
                continue
            if doc is None and waiting is None:
                continue  # its contents were signed meanwhile
            self.resign_seen += 1
            if waiting is not None:
                list_id, seq, statuses = waiting
            else:
                assert doc is not None
                list_id, seq, statuses = doc.list_id, doc.seq, doc.statuses
            fresh = self._sign(view, number, list_id, seq, statuses, now)
            if fresh is None:
                again[at] = doc  # still due: tried again at the next pass
                continue
            self._unsigned.pop(at, None)
            snap.docs[number] = fresh
            self._queue(pid, number, fresh, now)
            self._latest_iat = max(self._latest_iat, fresh.iat)
            if doc is None or doc.seq != fresh.seq:
                events.append((pid, fresh.uri))
        for (pid, number), doc in again.items():
            heapq.heappush(due, (now + 1, next(self._tie), pid, number, doc))
        for pid, uri in events:
            self._emit(pid, uri)

    def _emit(self, project_id: str, uri: str) -> None:
        for listener in list(self.listeners):
            try:
                listener(project_id, uri)
            except Exception as exc:  # a listener must never break a reload
                log.warning("status listener failed: %s", type(exc).__name__)

    def document(self, project_id: str, number: int) -> ListDoc | None:
        snap = self.snapshots.get(project_id)
        return None if snap is None else snap.docs.get(number)

    def status_of(self, project_id: str, uri: str, idx: int) -> int | None:
        """The published status of entry ``idx`` of list ``uri``; ``None`` if unknown."""
        snap = self.snapshots.get(project_id)
        if snap is None:
            return None
        for doc in snap.docs.values():
            if doc.uri == uri:
                return doc.statuses[idx] if 0 <= idx < len(doc.statuses) else None
        return None

    def rules_seen(self, project_id: str) -> int:
        snap = self.snapshots.get(project_id)
        return 0 if snap is None else snap.rules_seen

    # -- allocation ---------------------------------------------------------------------------

    def take(self, project_id: str) -> Slot | None:
        """The next index of the replica's block (no I/O); ``None`` when it has none left."""
        now = self.clock()
        with self._alloc_lock:
            cursor = self._cursors.get(project_id)
            if cursor is None:
                return None
            block = cursor.block
            if cursor.next >= block.end or now - block.reserved_at >= BLOCK_LIFETIME:
                if cursor.spare is None:
                    return None
                block, uri = cursor.spare
                cursor.block, cursor.uri, cursor.next, cursor.spare = block, uri, block.start, None
            idx = cursor.next
            cursor.next = idx + 1
            uri = cursor.uri
        return Slot(uri, block.list_id, idx, self.rules_seen(project_id))

    @staticmethod
    def _running_low(cursor: _Cursor | None, now: int) -> bool:
        """No spare block, and the current one half used or half its lifetime old."""
        if cursor is None:
            return True
        if cursor.spare is not None:
            return False
        block = cursor.block
        return (
            block.end - cursor.next < (block.end - block.start) // 2
            or now - block.reserved_at >= BLOCK_LIFETIME // 2
        )

    def low(self, project_id: str) -> bool:
        """Whether the replica should reserve its next block before signing more tokens."""
        return self._running_low(self._cursors.get(project_id), self.clock())

    def ready(self, project_id: str) -> bool:
        """Whether :meth:`take` has an index for the project without I/O. When its block runs
        low, the next one is reserved in a background thread meanwhile, so the token endpoint
        never waits on that write while indices are left (it waits only when none is)."""
        cursor = self._cursors.get(project_id)
        now = self.clock()
        if self._running_low(cursor, now):
            self._refill_in_background(project_id)
        if cursor is None:
            return False
        if cursor.spare is not None:
            return True
        block = cursor.block
        return cursor.next < block.end and now - block.reserved_at < BLOCK_LIFETIME

    def _refill_in_background(self, project_id: str) -> None:
        """Ask the background reserver for the project's next block (once at a time)."""
        with self._alloc_lock:
            if project_id in self._refilling:
                return
            if time.monotonic() - self._refill_failed.get(project_id, -2.0) < 1.0:
                return
            if self._closed:
                return
            self._refilling.add(project_id)
            self._wanted[project_id] = None
            if self._reserver is None:
                self._reserver = threading.Thread(
                    target=self._reserve_wanted, name="jwkit-status-block", daemon=True
                )
                self._reserver.start()
            self._wake.notify()

    def _reserve_wanted(self) -> None:
        """The background reserver: the blocks asked for, up to :data:`REFILL_BATCH` projects
        per transaction (a block each), one thread for the replica. 100,000 projects whose
        blocks run low every few minutes then cost a share of a write each, not a write and a
        thread."""
        while True:
            with self._alloc_lock:
                while not self._wanted and not self._closed:
                    self._wake.wait()
                if self._closed:
                    self._reserver = None
                    return
                batch = list(itertools.islice(self._wanted, REFILL_BATCH))
                for pid in batch:
                    del self._wanted[pid]
            try:
                failed = self._refill_batch(batch)
            except Exception:  # a bug: keep the reserver alive; these are retried later
                log.exception("reserving status indices failed")
                failed = batch
            now = time.monotonic()
            with self._alloc_lock:
                for pid in batch:
                    self._refilling.discard(pid)
                    if pid in failed:
                        self._refill_failed[pid] = now
                    else:
                        self._refill_failed.pop(pid, None)
                self._wake.notify_all()  # wait_refills

    def _refill_batch(self, project_ids: list[str]) -> list[str]:
        """Reserve the blocks of ``project_ids`` in one transaction; if it fails, each in its
        own (one project's failure must not hold the others back), until two fail in a row
        (the database is away: the rest are not tried now). The ones that failed."""
        if len(project_ids) > 1:
            try:
                self.refill_many(project_ids)
                return []
            except Exception as exc:  # one bad project, a lock timeout, an outage: one by one
                log.info("reserving %d blocks together failed (%s)", len(project_ids), exc)
        failed: list[str] = []
        for n, pid in enumerate(project_ids):
            if len(failed) >= 2 and failed[-2:] == project_ids[n - 2 : n]:
                return failed + project_ids[n:]  # two in a row: the database, not a project
            try:
                self.refill_many([pid])
            except Exception as exc:  # the token path reserves in line (and answers 503)
                log.warning("project %s: reserving status indices failed: %s", pid, exc)
                failed.append(pid)
        return failed

    def wait_refills(self, timeout: float) -> bool:
        """Wait until no background reservation is asked for or under way (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        with self._alloc_lock:
            while self._refilling:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._wake.wait(left)
        return True

    def close(self) -> None:
        """Stop the background reserver (what it was asked for and has not begun is dropped:
        the token path reserves in line when it needs to)."""
        with self._alloc_lock:
            self._closed = True
            self._wake.notify_all()
            reserver = self._reserver
        if reserver is not None and reserver is not threading.current_thread():
            reserver.join(5.0)

    def refill(self, project_id: str) -> None:
        """Reserve a block for the project unless another thread just did (one write)."""
        self.refill_many([project_id])

    def refill_many(self, project_ids: list[str]) -> None:
        """Reserve a block for each project that still runs low, in one transaction (projects
        locked in id order, as every writer that locks several does)."""
        with self._refill_lock:
            todo = []
            for pid in sorted(project_ids):
                view = self.views().get(pid) if self.low(pid) else None
                if view is not None:
                    todo.append((pid, view))
            if not todo:
                return
            with self.db.session() as session, session.begin():
                blocks = revocation.reserve_blocks(
                    session,
                    [pid for pid, _ in todo],
                    now=self.clock(),
                    clock_skew=self.settings.clock_skew,
                    list_ttl=self.ttl,
                )
            reserved = [
                (pid, blocks[pid], revocation.list_uri(view.issuer, blocks[pid].number))
                for pid, view in todo
            ]
            if any(self.document(pid, block.number) is None for pid, block, _ in reserved):
                self.refresh()  # a list this replica just created: publish it before its tokens
            with self._alloc_lock:
                for pid, block, uri in reserved:
                    cursor = self._cursors.get(pid)
                    exhausted = (
                        cursor is None
                        or cursor.next >= cursor.block.end
                        or (self.clock() - cursor.block.reserved_at >= BLOCK_LIFETIME)
                    )
                    if cursor is None or exhausted:
                        self._cursors[pid] = _Cursor(block, uri)
                    else:
                        cursor.spare = (block, uri)

    def slot(self, project_id: str) -> Slot:
        """:meth:`take`, reserving a block first if none is left (a database write)."""
        slot = self.take(project_id)
        if slot is None:
            self.refill(project_id)
            slot = self.take(project_id)
        if slot is None:
            raise ServiceError("no status list index is available", code="status_unavailable")
        return slot

    # -- issuance records ---------------------------------------------------------------------

    def note_issued(self, record: Issued) -> None:
        with self._pending_lock:
            self._pending.append(record)

    def pending(self) -> int:
        return len(self._pending)

    def flush(self) -> None:
        """Write the pending issuance records in one transaction; keep them on failure."""
        with self._pending_lock:
            batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            with self.db.session() as session, session.begin():
                revocation.record_issued(
                    session,
                    batch,
                    now=self.clock(),
                    clock_skew=self.settings.clock_skew,
                    list_ttl=self.ttl,
                )
        except BaseException:
            with self._pending_lock:
                self._pending = batch + self._pending
            raise


def now_ms() -> int:
    """Wall-clock milliseconds, for ordering issuance records."""
    return time.time_ns() // 1_000_000
