"""Keyset pagination for the admin lists: opaque, stable cursors, never ``OFFSET``.

A page is the first ``limit`` rows of an ordered query whose sort key is greater than the
cursor's (``WHERE (created_at, id) > (:c, :i) ORDER BY created_at, id LIMIT :n``): its cost
does not grow with how far a reader has paged, and a row created or deleted meanwhile neither
repeats nor hides another row. The sort key always ends with a unique column, so it is total.

A cursor is the last row's sort key with the name of the order it belongs to, as unpadded
base64url JSON: opaque to clients (they pass back what they were given), checked strictly when
it comes back. A cursor that was not made by this API, or that belongs to another order
(another search), is refused with :class:`~jwkit.service.domain.common.InvalidInput` (422,
``invalid_cursor``), never a 500.
"""

from __future__ import annotations

import base64
import binascii
import json
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, and_, func, tuple_
from sqlalchemy.orm import InstrumentedAttribute, Session

from jwkit.service.domain.common import InvalidInput

__all__ = [
    "MAX_CURSOR",
    "Page",
    "decode_cursor",
    "encode_cursor",
    "escape_like",
    "id_or_name",
    "keyset_page",
    "name_prefix",
]

T = TypeVar("T")
#: Longest cursor accepted (a cursor this API makes is well below it).
MAX_CURSOR = 400
_INT_MAX = 2**63 - 1
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of rows and the cursor of the next page (``None`` on the last page)."""

    rows: list[T]
    next_cursor: str | None


def encode_cursor(order: str, key: Sequence[int | str]) -> str:
    """The opaque cursor after a row whose sort key is ``key`` in the order named ``order``."""
    raw = json.dumps([order, *key], separators=(",", ":"), ensure_ascii=True).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _bad(message: str = "cursor is not one this list gave") -> InvalidInput:
    return InvalidInput(message, field="cursor", code="invalid_cursor", where="query")


def decode_cursor(text: str, order: str, shape: Sequence[type]) -> tuple[int | str, ...]:
    """The sort key in ``text``, which must be a cursor of ``order`` with values of ``shape``
    (``int`` or ``str`` each); anything else raises ``InvalidInput``."""
    if not text or len(text) > MAX_CURSOR or "=" in text:  # unpadded, as made
        raise _bad()
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
        parts = json.loads(raw.decode("ascii"))
    except (binascii.Error, ValueError):  # UnicodeDecodeError and JSONDecodeError included
        raise _bad() from None
    if not isinstance(parts, list) or len(parts) != len(shape) + 1:
        raise _bad()
    if parts[0] != order:
        raise _bad("cursor belongs to another listing (another order or search)")
    key = parts[1:]
    for value, kind in zip(key, shape, strict=True):
        if type(value) is not kind:  # bool is not int here
            raise _bad()
        if isinstance(value, int) and not 0 <= value <= _INT_MAX:
            raise _bad()
        if isinstance(value, str) and len(value) > 255:
            raise _bad()
    return tuple(key)


def escape_like(text: str) -> str:
    """``text`` as a literal inside a ``LIKE … ESCAPE '\\'`` pattern."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def id_or_name(
    session: Session,
    id_column: InstrumentedAttribute[str],
    name_column: InstrumentedAttribute[str],
    id_prefix: str,
    search: str,
) -> Any:
    """A search of a list: an id (``{id_prefix}_…``) by equality (the primary key), anything
    else as the start of a name (:func:`name_prefix`)."""
    if search.startswith(f"{id_prefix}_"):
        return id_column == search
    return name_prefix(session, name_column, search)


def name_prefix(session: Session, column: InstrumentedAttribute[str], prefix: str) -> Any:
    """``lower(column)`` starts with ``prefix`` (lower-cased; ASCII letters only on SQLite,
    as its ``lower()``), as a range the expression index
    ``lower(column)`` serves (``0007_scale_api``), checked by ``LIKE`` as well. Ranges compare
    code points: SQLite's default collation does; on PostgreSQL the comparison and the index
    say ``COLLATE "C"`` (a language collation may order ``tenant-1`` between ``tenant1`` and
    ``tenant2``)."""
    expr: Any = func.lower(column)
    if session.get_bind().dialect.name == "postgresql":
        expr, low = expr.collate("C"), prefix.lower()
    else:  # SQLite's lower() folds ASCII letters only: fold the prefix alike
        low = prefix.translate(_ASCII_LOWER)
    clauses = [expr >= low, func.lower(column).like(escape_like(low) + "%", escape="\\")]
    if ord(low[-1]) < 0x10FFFF:
        clauses.append(expr < low[:-1] + chr(ord(low[-1]) + 1))
    return and_(*clauses)


def keyset_page(
    session: Session,
    stmt: Select[Any],
    order: str,
    columns: Sequence[InstrumentedAttribute[Any]],
    *,
    limit: int,
    cursor: str | None,
    descending: bool = False,
) -> Page[T]:
    """The page of ``stmt`` (a ``select`` of one entity) after ``cursor``, ordered by
    ``columns`` (the last one unique), at most ``limit`` rows."""
    shape = [int if col.type.python_type is int else str for col in columns]
    key = tuple_(*columns)
    if cursor is not None:
        after = decode_cursor(cursor, order, shape)
        stmt = stmt.where(key < tuple_(*after) if descending else key > tuple_(*after))
    ordering = [col.desc() if descending else col for col in columns]
    rows: list[T] = list(session.execute(stmt.order_by(*ordering).limit(limit + 1)).scalars())
    if len(rows) <= limit:
        return Page(rows, None)
    rows = rows[:limit]
    last = rows[-1]
    return Page(rows, encode_cursor(order, [getattr(last, col.key) for col in columns]))
