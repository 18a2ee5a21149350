"""Token status: status lists, index blocks, issuance records and revocations.

The model (draft-ietf-oauth-status-list §4 to §8, ``docs/revocation.md``):

* Each project with ``token_status`` on owns numbered :class:`StatusList` rows of
  :data:`LIST_SIZE` two-bit entries (VALID, INVALID, SUSPENDED). Every access token it issues
  holds one index and says where in its ``status`` claim.
* **Blocks.** A replica reserves :data:`BLOCK` consecutive indices in one write
  (:func:`reserve_block`) and hands them out from memory, so signing a token never waits on the
  database. A block is used for at most :data:`BLOCK_LIFETIME` seconds. A full list is
  recycled only after ``reuse_after``: the latest ``exp`` any of its tokens can have, plus the
  clock skew and the list's cache lifetime (so no verifier still holds a copy that knew the old
  token's status).
* **Issuance records** (jti, sub, sid, client_id, list, index, exp) are written in batches
  (:func:`record_issued`) by the issuing replica's background sync, so a revocation by ``sub``,
  ``sid`` or ``client_id`` can find the live tokens; the records of one write that share a
  subject are one row (:mod:`jwkit.service.domain.issued`). A status other than VALID is a row
  of its own, keyed by list and index.
* **No escape window.** A revocation is stored as a rule (:class:`Revocation`) whose id grows
  in commit order per project (the project row is locked while it is written). Each record
  carries ``rules_seen``, the highest rule id its replica knew when it signed. When a record is
  written, every matching rule with a higher id applies to it. Writing records takes a shared
  lock on the same project row, so a revocation either sees the record in its scan or the
  record's writer sees the rule: a token signed on another replica a moment before the
  revocation is caught either way. (A token signed in the milliseconds before its replica
  heard of the revocation is caught too: the service errs on the side of revoking.)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, delete, func, select, update
from sqlalchemy.orm import Session

from jwkit.jose.statuslist import INVALID, SUSPENDED, VALID
from jwkit.service.domain import audit, issued
from jwkit.service.domain.common import InvalidInput, isoformat
from jwkit.service.domain.projects import lock_project
from jwkit.service.notify import notify_change
from jwkit.service.store import bulk
from jwkit.service.store.models import (
    IssuedBatch,
    Project,
    Revocation,
    ServiceState,
    StatusList,
    TokenStatus,
)

__all__ = [
    "BITS",
    "BLOCK",
    "BLOCK_LIFETIME",
    "KINDS",
    "LIST_SIZE",
    "STATUS_VALUES",
    "Block",
    "Issued",
    "apply_status",
    "effective_time",
    "find_tokens",
    "list_revocations",
    "list_uri",
    "live_statuses",
    "max_rule",
    "record_issued",
    "record_issued_now",
    "reserve_block",
    "reserve_blocks",
    "revocation_to_json",
    "revoke",
    "token_to_json",
]

#: Entries per list: 2^16 tokens, 16 KiB uncompressed, a few hundred bytes compressed when
#: few are revoked.
LIST_SIZE = 1 << 16
BITS = 2
#: Indices a replica reserves at once, and how long it may hand them out (seconds).
BLOCK = 4096
BLOCK_LIFETIME = 600
KINDS = ("jti", "sub", "sid", "client_id")
STATUS_VALUES = {"invalid": INVALID, "suspended": SUSPENDED, "valid": VALID}
_ACTIONS = {"invalid": "token.revoked", "suspended": "token.suspended", "valid": "token.reinstated"}


def list_uri(issuer: str, number: int) -> str:
    """The status list URL: ``{issuer}/statuslists/{number}`` (under the issuer, always)."""
    return f"{issuer}/statuslists/{number}"


@dataclass(frozen=True, slots=True)
class Block:
    """Indices ``[start, end)`` of list ``number`` (row ``list_id``), reserved then."""

    list_id: int
    number: int
    start: int
    end: int
    reserved_at: int


class Issued(NamedTuple):
    """One issuance record, kept in memory until the replica writes its batch (a tuple: the
    token endpoint makes one per token)."""

    project_id: str
    jti: str
    list_id: int
    idx: int
    sub: str
    sid: str | None
    client_id: str | None
    issued_ms: int
    exp: int
    rules_seen: int


def _bump_status(session: Session) -> int:
    """Advance ``service_state.status_version`` (and notify replicas); return the new value."""
    state = session.execute(
        select(ServiceState).where(ServiceState.id == 1).with_for_update()
    ).scalar_one()
    state.status_version = (state.status_version or 0) + 1
    notify_change(session)
    return state.status_version


def _share_project(session: Session, project_id: str) -> bool:
    """Take the project row's shared lock (PostgreSQL; SQLite holds its write lock already).
    ``False`` if the project is gone."""
    return bool(_share_projects(session, [project_id]))


def _share_projects(session: Session, project_ids: Sequence[str]) -> set[str]:
    """:func:`_share_project` for many projects in one statement (rows locked in id order):
    those that still exist."""
    stmt = (
        select(Project.id).where(bulk.one_of(session, Project.id, project_ids)).order_by(Project.id)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(read=True)
    return set(session.execute(stmt).scalars())


# -- allocation ------------------------------------------------------------------------------


def reserve_block(
    session: Session,
    project_id: str,
    *,
    now: int,
    clock_skew: int,
    list_ttl: int,
    size: int = LIST_SIZE,
    block: int = BLOCK,
) -> Block:
    """Reserve the next block of indices for ``project_id`` in the caller's transaction.

    Takes the first list with room; when every list is full, recycles the oldest one whose
    ``reuse_after`` has passed (its records are deleted: every token in it has expired), else
    creates list ``max + 1``. A new or recycled list bumps the status version so every replica
    publishes it.
    """
    project = lock_project(session, project_id)
    row = session.execute(
        select(StatusList)
        .where(StatusList.project_id == project_id, StatusList.next_index < StatusList.size)
        .order_by(StatusList.number)
        .limit(1)
    ).scalar_one_or_none()
    if row is None:
        row = session.execute(
            select(StatusList)
            .where(StatusList.project_id == project_id, StatusList.reuse_after <= now)
            .order_by(StatusList.reuse_after, StatusList.number)
            .limit(1)
        ).scalar_one_or_none()
        if row is not None:
            session.execute(delete(IssuedBatch).where(IssuedBatch.list_id == row.id))
            session.execute(delete(TokenStatus).where(TokenStatus.list_id == row.id))
            row.next_index = 0
            row.size = size
        else:
            top = session.execute(
                select(func.max(StatusList.number)).where(StatusList.project_id == project_id)
            ).scalar_one_or_none()
            row = StatusList(
                project_id=project_id,
                number=(top or 0) + 1,
                size=size,
                next_index=0,
                reuse_after=0,
                status_seq=0,
                created_at=now,
            )
            session.add(row)
        row.status_seq = _bump_status(session)
        session.flush()
    start = row.next_index
    end = min(start + block, row.size)
    row.next_index = end
    row.reuse_after = max(
        row.reuse_after, now + BLOCK_LIFETIME + project.max_token_ttl + clock_skew + list_ttl
    )
    return Block(row.id, row.number, start, end, now)


def reserve_blocks(
    session: Session,
    project_ids: Iterable[str],
    *,
    now: int,
    clock_skew: int,
    list_ttl: int,
    size: int = LIST_SIZE,
    block: int = BLOCK,
) -> dict[str, Block]:
    """:func:`reserve_block` for each of ``project_ids`` in the caller's transaction, the
    same blocks, at a fixed number of statements for the projects whose lists have room
    (nearly always: a list holds 16 blocks): one locks the projects (in id order), one reads
    each one's first list with room, one moves those lists on. The others, whose lists are
    full (or none, or that is deleted), go through :func:`reserve_block` one by one; a
    deleted project raises ``NotFound`` there."""
    ids = sorted(set(project_ids))
    if not ids:
        return {}
    locked = session.execute(
        select(Project.id, Project.max_token_ttl)
        .where(bulk.one_of(session, Project.id, ids))
        .order_by(Project.id)
        .with_for_update()
    )
    ttls: dict[str, int] = {pid: ttl for pid, ttl in locked}  # a deleted one has no lists
    lists = cast(Table, StatusList.__table__)
    first = (
        select(lists.c.project_id, func.min(lists.c.number).label("number"))
        .where(bulk.one_of(session, lists.c.project_id, ids), lists.c.next_index < lists.c.size)
        .group_by(lists.c.project_id)
        .subquery()
    )
    rows = session.execute(
        select(
            lists.c.project_id,
            lists.c.id,
            lists.c.number,
            lists.c.next_index,
            lists.c.size,
            lists.c.reuse_after,
        ).join(
            first,
            (lists.c.project_id == first.c.project_id) & (lists.c.number == first.c.number),
        )
    ).all()
    blocks: dict[str, Block] = {}
    moved: list[dict[str, Any]] = []
    for pid, list_id, number, start, list_size, reuse_after in rows:
        end = min(start + block, list_size)
        reuse = max(reuse_after, now + BLOCK_LIFETIME + ttls[pid] + clock_skew + list_ttl)
        blocks[pid] = Block(list_id, number, start, end, now)
        moved.append({"id": list_id, "next_index": end, "reuse_after": reuse})
    bulk.update_rows(session, lists, "id", moved)
    for pid in ids:
        if pid not in blocks:  # every list is full: recycle one or start one
            blocks[pid] = reserve_block(
                session,
                pid,
                now=now,
                clock_skew=clock_skew,
                list_ttl=list_ttl,
                size=size,
                block=block,
            )
    return blocks


# -- issuance records --------------------------------------------------------------------------


def apply_status(current: int, target: str) -> int:
    """The status after a revocation with ``target`` meets a token at ``current``: INVALID is
    final, a suspension holds unless revoked, ``valid`` lifts only a suspension."""
    if target == "invalid":
        return INVALID
    if target == "suspended":
        return current if current == INVALID else SUSPENDED
    return VALID if current == SUSPENDED else current


def _matches(rule: Revocation, rec: Issued) -> bool:
    value = {"jti": rec.jti, "sub": rec.sub, "sid": rec.sid, "client_id": rec.client_id}
    return value.get(rule.kind) == rule.value


def _batch_rows(project_id: str, records: Sequence[Issued]) -> list[dict[str, Any]]:
    """The batch rows of one project's records: one per (list, sub, sid, client, rules_seen)."""
    groups: dict[tuple[int, str, str | None, str | None, int], list[Issued]] = {}
    for rec in records:
        key = (rec.list_id, rec.sub, rec.sid, rec.client_id, rec.rules_seen)
        groups.setdefault(key, []).append(rec)
    return [
        issued.batch_row(
            project_id,
            list_id,
            sub,
            sid,
            client,
            seen,
            [r.idx for r in recs],
            [r.exp for r in recs],
            [r.issued_ms for r in recs],
            [r.jti for r in recs],
        )
        for (list_id, sub, sid, client, seen), recs in groups.items()
    ]


#: Projects whose records one round of :func:`record_issued`'s statements writes.
_RECORD_CHUNK = 500


def record_issued(
    session: Session, records: Sequence[Issued], *, now: int, clock_skew: int, list_ttl: int
) -> set[int]:
    """Write a batch of issuance records; apply the revocations their replica had not seen.

    Returns the ids of the lists whose statuses changed (their ``status_seq`` was bumped).
    Records of deleted projects are dropped; a token whose record was written before keeps the
    status it has. The statements do not grow with the projects the batch spans (tokens spread
    over 100,000 projects): per :data:`_RECORD_CHUNK` projects, one read locks the projects
    and one reads their new revocations, one insert writes the batch rows, one the statuses
    the revocations set, and one extends the lists' reuse times (:mod:`~jwkit.service.store.bulk`).
    """
    by_project: dict[str, list[Issued]] = {}
    for rec in records:
        by_project.setdefault(rec.project_id, []).append(rec)
    changed: set[int] = set()
    pids = sorted(by_project)
    for start in range(0, len(pids), _RECORD_CHUNK):
        alive = _share_projects(session, pids[start : start + _RECORD_CHUNK])
        chunk = [pid for pid in pids[start : start + _RECORD_CHUNK] if pid in alive]
        if not chunk:
            continue
        lowest = min(rec.rules_seen for pid in chunk for rec in by_project[pid])
        rules: dict[str, list[Revocation]] = {}
        for rule in session.execute(
            select(Revocation)
            .where(bulk.one_of(session, Revocation.project_id, chunk), Revocation.id > lowest)
            .order_by(Revocation.id)
        ).scalars():
            rules.setdefault(rule.project_id, []).append(rule)
        statuses: list[tuple[int, int, int, int, int]] = []
        rows: list[dict[str, Any]] = []
        latest: dict[int, int] = {}
        for pid in chunk:
            batch = by_project[pid]
            for rec in batch:
                status = VALID
                for rule in rules.get(pid, ()):  # usually none
                    if rule.id > rec.rules_seen and _matches(rule, rec):
                        status = apply_status(status, rule.status)
                if status != VALID:
                    changed.add(rec.list_id)
                    statuses.append((rec.list_id, rec.idx, status, now, rec.exp))
                latest[rec.list_id] = max(latest.get(rec.list_id, 0), rec.exp)
            rows += _batch_rows(pid, batch)
        issued.insert_batches(session, rows)
        issued.write_statuses(session, statuses, replace=False)
        _keep_lists(session, latest, clock_skew + list_ttl)
    if changed:
        seq = _bump_status(session)
        session.execute(update(StatusList).where(StatusList.id.in_(changed)).values(status_seq=seq))
    return changed


def _keep_lists(session: Session, latest: dict[int, int], margin: int) -> None:
    """Push each list's ``reuse_after`` to ``margin`` past the latest ``exp`` of its tokens
    (never back), one statement for all of them (:func:`bulk.update_rows`)."""
    if not latest:
        return
    rows = [{"id": lid, "reuse_after": exp + margin} for lid, exp in latest.items()]
    bulk.update_rows(session, cast(Table, StatusList.__table__), "id", rows, raising="reuse_after")


def record_issued_now(
    session: Session, record: Issued, *, now: int, clock_skew: int, list_ttl: int
) -> None:
    """Write one record in the signing transaction (the admin mint endpoint): it has seen
    every revocation committed before it, exactly."""
    if not _share_project(session, record.project_id):
        return
    seen = max_rule(session, record.project_id)
    record_issued(
        session,
        [record._replace(rules_seen=seen)],
        now=now,
        clock_skew=clock_skew,
        list_ttl=list_ttl,
    )


def max_rule(session: Session, project_id: str) -> int:
    """The highest revocation id of the project (0 if none)."""
    top = session.execute(
        select(func.max(Revocation.id)).where(Revocation.project_id == project_id)
    ).scalar_one_or_none()
    return int(top or 0)


# -- revoking ------------------------------------------------------------------------------


def revoke(
    session: Session,
    project_id: str,
    kind: str,
    value: str,
    *,
    status: str = "invalid",
    now: int,
    actor: str,
    clock_skew: int,
    effective_by: int,
    token: Issued | None = None,
) -> Revocation:
    """Give every live token of the project whose ``kind`` equals ``value`` the ``status``,
    now and (as a rule) when a record signed before this revocation is written later.

    ``token`` is the record of a token presented in full (RFC 7009): written first if its
    replica has not written it yet, so the revocation holds even if that replica never does.
    """
    if kind not in KINDS:
        raise InvalidInput(f"revoke by one of {', '.join(KINDS)}", field=kind)
    if status not in STATUS_VALUES:
        raise InvalidInput("status must be invalid, suspended or valid", field="status")
    lock_project(session, project_id)
    rule = Revocation(
        project_id=project_id,
        kind=kind,
        value=value,
        status=status,
        actor=actor,
        created_at=now,
        count=0,
        effective_by=effective_by,
    )
    session.add(rule)
    session.flush()
    if token is not None:
        issued.insert_batches(
            session, _batch_rows(project_id, [token._replace(rules_seen=rule.id)])
        )
    live_after = now - clock_skew
    batches = issued.matching_batches(session, project_id, kind, value, live_after=live_after)
    known = issued.statuses(session, {b.list_id for b in batches})
    changes = [
        (t.list_id, t.idx, new, now, t.exp)
        for t in issued.tokens(batches, known, kind=kind, value=value, live_after=live_after)
        if (new := apply_status(t.status, status)) != t.status
    ]
    # Always bumped: every replica must learn of the new rule (its ``rules_seen``) at once.
    seq = _bump_status(session)
    issued.write_statuses(session, changes, replace=True)
    count = len(changes)
    list_ids = {c[0] for c in changes}
    if list_ids:
        session.execute(
            update(StatusList).where(StatusList.id.in_(list_ids)).values(status_seq=seq)
        )
    rule.count = count
    audit.record(
        session,
        now=now,
        actor=actor,
        action=_ACTIONS[status],
        project_id=project_id,
        detail={"by": kind, "value": value, "count": count, "revocation": rule.id},
        bump=False,
    )
    return rule


def list_revocations(
    session: Session, project_id: str, *, limit: int, before: int | None = None
) -> list[Revocation]:
    """Newest first; ``before`` is the cursor (an id from the previous page)."""
    stmt = select(Revocation).where(Revocation.project_id == project_id)
    if before is not None:
        stmt = stmt.where(Revocation.id < before)
    return list(session.execute(stmt.order_by(Revocation.id.desc()).limit(limit)).scalars())


def find_tokens(
    session: Session,
    project_id: str,
    kind: str,
    value: str,
    *,
    now: int,
    clock_skew: int,
    limit: int = 100,
) -> list[tuple[issued.Token, int]]:
    """Live tokens whose ``kind`` equals ``value``, newest first, with their list number."""
    if kind not in KINDS:
        raise InvalidInput(f"find by one of {', '.join(KINDS)}", field=kind)
    live_after = now - clock_skew
    batches = issued.matching_batches(
        session, project_id, kind, value, live_after=live_after, newest_first=True
    )
    # Batches by their newest token: once ``limit`` tokens are in hand, a batch whose newest
    # is older than all of them has nothing to add.
    chosen: list[IssuedBatch] = []
    found = 0
    oldest_kept: int | None = None
    for batch in batches:
        if found >= limit and oldest_kept is not None and batch.last_ms < oldest_kept:
            break
        chosen.append(batch)
        found += sum(1 for exp in issued.unpack(batch.exps) if exp >= live_after)
        oldest_kept = batch.first_ms if oldest_kept is None else min(oldest_kept, batch.first_ms)
    known = issued.statuses(session, {b.list_id for b in chosen})
    found_tokens = sorted(
        issued.tokens(chosen, known, kind=kind, value=value, live_after=live_after),
        key=lambda t: t.issued_ms,
        reverse=True,
    )[:limit]
    numbers = dict(
        session.execute(
            select(StatusList.id, StatusList.number).where(
                StatusList.id.in_({t.list_id for t in found_tokens})
            )
        ).all()
    )
    return [(t, int(numbers[t.list_id])) for t in found_tokens]


def live_statuses(
    session: Session, list_ids: Iterable[int], *, now: int, clock_skew: int
) -> dict[int, list[tuple[int, int]]]:
    """``list_id -> [(idx, status)]`` for every live token whose status is not VALID."""
    ids = list(list_ids)
    out: dict[int, list[tuple[int, int]]] = {i: [] for i in ids}
    if not ids:
        return out
    rows = session.execute(
        select(TokenStatus.list_id, TokenStatus.idx, TokenStatus.status).where(
            TokenStatus.list_id.in_(ids),
            TokenStatus.status != VALID,
            TokenStatus.exp + clock_skew >= now,
        )
    ).all()
    for list_id, idx, status in rows:
        out[int(list_id)].append((int(idx), int(status)))
    return out


def effective_time(now: int, list_ttl: int, sync_interval: float) -> int:
    """When every verifier that honours the list's ``ttl`` sees a change made ``now``: each
    replica republishes within one sync interval, then caches expire within ``ttl``."""
    return now + list_ttl + math.ceil(sync_interval)


def revocation_to_json(rule: Revocation, now: int) -> dict[str, Any]:
    return {
        "id": str(rule.id),
        rule.kind: rule.value,
        "status": rule.status,
        "count": rule.count,
        "actor": rule.actor,
        "created_at": isoformat(rule.created_at),
        "effective_by": isoformat(rule.effective_by),
        "propagated": now >= rule.effective_by,
    }


def token_to_json(token: issued.Token, number: int, issuer: str) -> dict[str, Any]:
    return {
        "jti": token.jti,
        "sub": token.sub,
        "sid": token.sid,
        "client_id": token.client_id,
        "issued_at": isoformat(token.issued_ms // 1000),
        "expires_at": isoformat(token.exp),
        "status": {VALID: "valid", INVALID: "invalid", SUSPENDED: "suspended"}.get(
            token.status, str(token.status)
        ),
        "status_list": {"idx": token.idx, "uri": list_uri(issuer, number)},
    }
