"""The rows a project's view is built from, and one number that changes when they change.

:meth:`ServiceState._build <jwkit.service.state.ServiceState>` makes a project's view out of
its ``projects`` row, its published keys and its foreign keys still in their period. The
safety net behind the incremental refresh re-reads every cached project in rounds, to repair
a change written without naming its project; at 100,000 projects it re-reads about 100 a
second for ever, and rebuilding each one (ORM objects, two documents rendered and hashed)
was most of an idle replica's CPU. :func:`read_fingerprints` reads the same rows as plain
tuples instead and :func:`fingerprint` gives the number a view keeps from its build: only a
project whose number differs is rebuilt.

Every mapped column of those tables counts, except a key's sealed material (deferred by the
build, and no part of a view), so a column added later is covered without a change here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.orm import ColumnProperty, Session

from jwkit.service.domain import keys
from jwkit.service.store.models import ForeignPublicKey, Key, Project

__all__ = ["SEALED", "fingerprint", "read_fingerprints"]

#: The columns of a key the build does not read (its sealed private material).
SEALED = frozenset({"wrapped_dek", "ciphertext"})


def _columns(model: type, skip: frozenset[str] = frozenset()) -> tuple[ColumnProperty[Any], ...]:
    attrs: Iterable[ColumnProperty[Any]] = inspect(model).column_attrs
    return tuple(c for c in attrs if c.key not in skip)


_PROJECT = _columns(Project)
_KEY = _columns(Key, SEALED)
_FOREIGN = _columns(ForeignPublicKey)


def _values(row: object, columns: Sequence[ColumnProperty[Any]]) -> tuple[Any, ...]:
    return tuple(getattr(row, c.key) for c in columns)


def fingerprint(project: Project, rows: Iterable[Key], foreign: Iterable[ForeignPublicKey]) -> int:
    """The fingerprint of a view built from ``project``, its published keys ``rows`` and its
    foreign keys still in their period, each in the order the build reads them."""
    return hash(
        (
            _values(project, _PROJECT),
            tuple(_values(k, _KEY) for k in rows),
            tuple(_values(f, _FOREIGN) for f in foreign),
        )
    )


def read_fingerprints(session: Session, pids: Sequence[str], now: int) -> dict[str, int]:
    """:func:`fingerprint` of each of ``pids`` that exists, from three reads of plain rows
    (the build's own queries, without building anything)."""
    if not pids:
        return {}
    ids = list(pids)
    conn = session.connection()  # plain rows: no ORM layer between them and the hash

    def grouped(columns: Sequence[ColumnProperty[Any]], *where: Any) -> dict[str, list[Any]]:
        model = columns[0].parent.class_
        query = select(*(c.columns[0] for c in columns)).where(model.project_id.in_(ids), *where)
        out: dict[str, list[Any]] = {}
        at = [c.key for c in columns].index("project_id")
        for row in conn.execute(query.order_by(model.created_at, model.id)):
            out.setdefault(row[at], []).append(tuple(row))
        return out

    published = grouped(_KEY, Key.state.in_(keys.PUBLISHED_STATES))
    shown = grouped(_FOREIGN, ForeignPublicKey.until > now)
    at = [c.key for c in _PROJECT].index("id")
    query = select(*(c.columns[0] for c in _PROJECT)).where(Project.id.in_(ids))
    return {
        row[at]: hash(
            (tuple(row), tuple(published.get(row[at], ())), tuple(shown.get(row[at], ())))
        )
        for row in conn.execute(query)
    }
