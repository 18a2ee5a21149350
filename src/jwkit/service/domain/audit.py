"""The append-only audit log, each entry chained to the previous one by SHA-256.

``hash = SHA-256(prev_hash || canonical JSON of the entry)``; the chain head lives in the single
``service_state`` row, which every change locks (``FOR UPDATE`` on PostgreSQL, the database
write lock on SQLite), so replicas append in one total order. The same lock bumps the change
``version`` that replicas poll to rebuild their published snapshots.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from jwkit.service.domain.common import isoformat
from jwkit.service.notify import notify_change
from jwkit.service.store.models import AuditEvent, ProjectChange, ServiceState

__all__ = ["GLOBAL_CHANGE", "ChainReport", "event_to_json", "record", "verify_chain"]

GENESIS = "0" * 64
#: The ``project_changes`` id of changes that touch no project (admin credentials).
GLOBAL_CHANGE = "*"


def _digest(
    prev: str,
    seq: int,
    at: int,
    actor: str,
    action: str,
    project_id: str | None,
    kid: str | None,
    detail: str,
) -> str:
    body = json.dumps(
        [seq, at, actor, action, project_id, kid, detail], separators=(",", ":"), ensure_ascii=True
    )
    return hashlib.sha256(prev.encode("ascii") + body.encode("ascii")).hexdigest()


def _lock_state(session: Session) -> ServiceState:
    state = session.execute(
        select(ServiceState).where(ServiceState.id == 1).with_for_update()
    ).scalar_one()
    return state


def record(
    session: Session,
    *,
    now: int,
    actor: str,
    action: str,
    project_id: str | None = None,
    kid: str | None = None,
    detail: dict[str, Any] | None = None,
    bump: bool = True,
) -> AuditEvent:
    """Append one event and (by default) bump the change version, in the caller's transaction."""
    state = _lock_state(session)
    text = json.dumps(detail or {}, sort_keys=True, separators=(",", ":"))
    seq = state.audit_seq + 1
    digest = _digest(state.audit_head, seq, now, actor, action, project_id, kid, text)
    event = AuditEvent(
        seq=seq,
        at=now,
        actor=actor,
        action=action,
        project_id=project_id,
        kid=kid,
        detail=text,
        prev_hash=state.audit_head,
        hash=digest,
    )
    session.add(event)
    state.audit_seq = seq
    state.audit_head = digest
    if bump:
        _bump(session, state, project_id)
    return event


def bump_version(session: Session, project_id: str | None = None) -> None:
    """Tell every replica to rebuild ``project_id``'s snapshot (``None``: what no project
    holds), without an audit entry."""
    _bump(session, _lock_state(session), project_id)


def _bump(session: Session, state: ServiceState, project_id: str | None) -> None:
    """Advance the change version and name what changed, under the ``service_state`` lock
    (so the read-then-write of the change row cannot race another writer)."""
    state.version += 1
    changed = project_id or GLOBAL_CHANGE
    row = session.get(ProjectChange, changed)
    if row is None:
        session.add(ProjectChange(project_id=changed, version=state.version))
    else:
        row.version = state.version
    notify_change(session)


def event_to_json(event: AuditEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "at": isoformat(event.at),
        "actor": event.actor,
        "action": event.action,
        "project_id": event.project_id,
        "kid": event.kid,
        "detail": json.loads(event.detail),
        "hash": event.hash,
    }


@dataclass(frozen=True, slots=True)
class ChainReport:
    ok: bool
    count: int
    first_bad_seq: int | None = None
    reason: str = ""


def verify_chain(session: Session, *, batch: int = 1000) -> ChainReport:
    """Walk the whole log in order and recompute every link; report the first broken one."""
    prev = GENESIS
    expected_seq = 1
    count = 0
    last = 0
    while True:
        rows = (
            session.execute(
                select(AuditEvent)
                .where(AuditEvent.seq > last)
                .order_by(AuditEvent.seq)
                .limit(batch)
            )
            .scalars()
            .all()
        )
        if not rows:
            break
        for ev in rows:
            if ev.seq != expected_seq:
                return ChainReport(False, count, expected_seq, "an entry is missing")
            if ev.prev_hash != prev:
                return ChainReport(False, count, ev.seq, "prev_hash does not match")
            digest = _digest(
                prev, ev.seq, ev.at, ev.actor, ev.action, ev.project_id, ev.kid, ev.detail
            )
            if digest != ev.hash:
                return ChainReport(False, count, ev.seq, "entry content was altered")
            prev = ev.hash
            expected_seq += 1
            count += 1
            last = ev.seq
    state = session.execute(select(ServiceState).where(ServiceState.id == 1)).scalar_one()
    if state.audit_seq != count or state.audit_head != prev:
        return ChainReport(False, count, count + 1, "entries after the last one were removed")
    return ChainReport(True, count)
