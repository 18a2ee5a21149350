"""Issuance records, stored in batches: what a revocation by ``sub``, ``sid``, ``client_id`` or
``jti`` matches, and where each matching token's status lives.

A replica writes the records of the tokens it signed once a second. The records of one write
that share a project, list, subject, session, client and ``rules_seen`` are one
:class:`~jwkit.service.store.models.IssuedBatch` row whose per-token fields (index, ``exp``,
issue time, ``jti``) are packed side by side: a client that takes thousands of tokens a second
costs one row a second, not one per token (a row per token was most of what token status added
to the token endpoint). A token's status other than VALID is a
:class:`~jwkit.service.store.models.TokenStatus` row keyed by its list and index.

A batch can be written twice for one token (RFC 7009 writes the presented token's record at
once; its replica writes it again with its batch): :func:`tokens` reads each list index once.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, or_, select, text
from sqlalchemy.orm import Session

from jwkit.service.store import bulk
from jwkit.service.store.models import IssuedBatch, TokenStatus

__all__ = [
    "Token",
    "batch_row",
    "insert_batches",
    "jti_position",
    "matching_batches",
    "pack",
    "statuses",
    "tokens",
    "unpack",
    "write_statuses",
]

_BIG_ENDIAN = sys.byteorder == "big"
if array("I").itemsize != 4:  # pragma: no cover - every platform CPython supports today
    raise ImportError("jwkit needs 4-byte unsigned ints in array('I')")


def pack(values: Iterable[int]) -> bytes:
    """Unsigned 32-bit integers, little-endian (the same bytes on every replica)."""
    packed = array("I", values)
    if _BIG_ENDIAN:  # pragma: no cover - no big-endian machine here
        packed.byteswap()
    return packed.tobytes()


def unpack(data: bytes) -> array[int]:
    packed = array("I")
    packed.frombytes(data)
    if _BIG_ENDIAN:  # pragma: no cover
        packed.byteswap()
    return packed


class Token(NamedTuple):
    """One token of a batch, with its status."""

    list_id: int
    idx: int
    jti: str
    sub: str
    sid: str | None
    client_id: str | None
    issued_ms: int
    exp: int
    status: int


def jti_position(jti: str) -> tuple[int, int] | None:
    """The list row and index a token id names (``tokens.new_jti``: 8 hex digits each, then
    random), or ``None`` for another form."""
    head = jti[:16]
    if len(jti) <= 16 or not all(c in "0123456789abcdef" for c in head):
        return None
    list_id, idx = int(head[:8], 16), int(head[8:], 16)
    if list_id >= 1 << 31 or idx >= 1 << 31:  # beyond an INTEGER column: not one of ours
        return None
    return list_id, idx


def matching_batches(
    session: Session,
    project_id: str,
    kind: str,
    value: str,
    *,
    live_after: int,
    newest_first: bool = False,
) -> list[IssuedBatch]:
    """The project's batches holding a token whose ``kind`` equals ``value`` and whose latest
    ``exp`` is at least ``live_after``. For ``jti`` the batch is found by the list position
    the id names (or, for an id of another form, among batches of one token)."""
    where: list[Any] = [IssuedBatch.project_id == project_id, IssuedBatch.exp >= live_after]
    if kind == "client_id":
        # A client's tokens have its id as their sub: the sub index finds them.
        where += [IssuedBatch.sub == value, IssuedBatch.client_id == value]
    elif kind == "jti":
        position = jti_position(value)
        single = (IssuedBatch.count == 1) & (IssuedBatch.jtis == value)
        if position is None:
            where.append(single)
        else:
            list_id, idx = position
            where.append(
                or_(
                    (IssuedBatch.list_id == list_id)
                    & (IssuedBatch.first_idx <= idx)
                    & (IssuedBatch.last_idx >= idx),
                    single,
                )
            )
    else:
        where.append(getattr(IssuedBatch, kind) == value)
    stmt = select(IssuedBatch).where(*where)
    if newest_first:
        stmt = stmt.order_by(IssuedBatch.last_ms.desc(), IssuedBatch.id.desc())
    return list(session.execute(stmt).scalars())


def statuses(session: Session, list_ids: Iterable[int]) -> dict[tuple[int, int], int]:
    """``(list_id, idx) -> status`` of every token of these lists whose status is not VALID."""
    ids = sorted(set(list_ids))
    if not ids:
        return {}
    rows = session.execute(
        select(TokenStatus.list_id, TokenStatus.idx, TokenStatus.status).where(
            TokenStatus.list_id.in_(ids), text("token_statuses.status != 0")
        )
    ).all()
    return {(int(lst), int(idx)): int(status) for lst, idx, status in rows}


def tokens(
    batches: Sequence[IssuedBatch],
    known: dict[tuple[int, int], int],
    *,
    kind: str | None = None,
    value: str | None = None,
    live_after: int = 0,
) -> Iterator[Token]:
    """The live tokens of ``batches`` (``exp >= live_after``), each list index once, with its
    status from ``known``; only the token whose ``jti`` is ``value`` when ``kind`` is ``jti``."""
    seen: set[tuple[int, int]] = set()
    for batch in batches:
        jtis = batch.jtis.split(" ")
        exps = unpack(batch.exps)
        issued = unpack(batch.issued)
        list_id, first_ms = batch.list_id, batch.first_ms
        for i, idx in enumerate(unpack(batch.idxs)):
            if exps[i] < live_after or (kind == "jti" and jtis[i] != value):
                continue
            key = (list_id, idx)
            if key in seen:
                continue
            seen.add(key)
            yield Token(
                list_id,
                idx,
                jtis[i],
                batch.sub,
                batch.sid,
                batch.client_id,
                first_ms + issued[i],
                exps[i],
                known.get(key, 0),
            )


def insert_batches(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Write batch rows (each from :func:`batch_row`) in one statement."""
    bulk.insert_rows(session, cast(Table, IssuedBatch.__table__), rows)


def batch_row(
    project_id: str,
    list_id: int,
    sub: str,
    sid: str | None,
    client_id: str | None,
    rules_seen: int,
    idxs: Sequence[int],
    exps: Sequence[int],
    issued_ms: Sequence[int],
    jtis: Sequence[str],
) -> dict[str, Any]:
    """The ``issued_batches`` row of these tokens (same project, list, sub, sid, client)."""
    first_ms = min(issued_ms)
    return {
        "project_id": project_id,
        "list_id": list_id,
        "sub": sub,
        "sid": sid,
        "client_id": client_id,
        "rules_seen": rules_seen,
        "first_idx": min(idxs),
        "last_idx": max(idxs),
        "first_ms": first_ms,
        "last_ms": max(issued_ms),
        "exp": max(exps),
        "count": len(idxs),
        "idxs": pack(idxs),
        "exps": pack(exps),
        "issued": pack(ms - first_ms for ms in issued_ms),
        "jtis": " ".join(jtis),
    }


def write_statuses(
    session: Session, rows: Sequence[tuple[int, int, int, int, int]], *, replace: bool
) -> None:
    """Set ``(list_id, idx, status, changed_at, exp)`` rows; an existing row of the same token
    is overwritten when ``replace``, else kept (a record written twice keeps its first
    status, as the rules that changed it apply to both)."""
    if not rows:
        return
    postgres = session.get_bind().dialect.name == "postgresql"
    mark = "%s" if postgres else "?"
    conflict = (
        "DO UPDATE SET status = excluded.status, changed_at = excluded.changed_at, "
        "exp = excluded.exp"
        if replace
        else "DO NOTHING"
    )
    sql = (
        "INSERT INTO token_statuses (list_id, idx, status, changed_at, exp) "  # noqa: S608
        f"VALUES ({mark}, {mark}, {mark}, {mark}, {mark}) ON CONFLICT (list_id, idx) {conflict}"
    )
    session.connection().exec_driver_sql(sql, list(rows))
