"""Statements over many rows at once, in a plain form and a fast PostgreSQL form.

The plain forms run on every database: an ``executemany`` insert or update, an expanding
``IN``. On PostgreSQL the same work goes through ``COPY`` and array parameters, which do not
pay psycopg's and SQLAlchemy's per-row and per-parameter Python costs (3,000 issuance batch
rows: 54 ms of CPU as an ``executemany``, 6 ms as a ``COPY``). A flush of issuance records
spread over thousands of projects spent its time there, on the CPU the worker's token
endpoint shares: 3,000 records of 3,000 projects took 177 ms of the worker's CPU, now 47 ms
(``benchmarks/status_writes.py``; one project's: 5 ms).

``fast=False`` selects the plain form on PostgreSQL too: ``tests/service/test_bulk.py``
runs both forms on the same rows and requires the same results. :data:`FAST` turns the fast
forms off for the whole process (``benchmarks/status_writes.py`` measures both side by side).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Table, any_, bindparam, exc, insert, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import InstrumentedAttribute, Session

__all__ = ["FAST", "insert_rows", "one_of", "update_rows"]

#: The fast PostgreSQL forms are used (unless a call asks for the plain one).
FAST = True


def _postgres(session: Session, fast: bool) -> bool:
    return fast and FAST and session.get_bind().dialect.name == "postgresql"


def insert_rows(
    session: Session, table: Table, rows: Sequence[Mapping[str, Any]], *, fast: bool = True
) -> None:
    """Insert ``rows`` (dictionaries with the same keys, columns of ``table``) in the
    session's transaction: a ``COPY`` on PostgreSQL, one ``executemany`` elsewhere."""
    if not rows:
        return
    if not _postgres(session, fast):
        session.execute(insert(table), list(rows))
        return
    names = list(rows[0])
    columns = ", ".join(table.c[name].name for name in names)
    sql = f"COPY {table.name} ({columns}) FROM STDIN"
    _copy(session, sql, ([row[name] for name in names] for row in rows))


def _copy(session: Session, sql: str, rows: Iterable[Sequence[Any]]) -> None:
    """Run a ``COPY ... FROM STDIN`` on the session's connection; a driver error is raised
    as SQLAlchemy's, like any other statement's (a broken key is an ``IntegrityError``, an
    outage an ``OperationalError``; the rollback that follows drops a lost connection)."""
    import psycopg  # only PostgreSQL gets here

    connection = session.connection()
    raw = connection.connection.dbapi_connection
    assert raw is not None  # a checked-out connection
    try:
        with raw.cursor() as cursor, cursor.copy(sql) as copy:  # type: ignore[attr-defined]
            for row in rows:
                copy.write_row(row)
    except psycopg.Error as error:
        raise exc.DBAPIError.instance(
            sql, None, error, psycopg.Error, dialect=connection.dialect
        ) from error


def update_rows(
    session: Session,
    table: Table,
    key: str,
    rows: Sequence[Mapping[str, Any]],
    *,
    raising: str | None = None,
    fast: bool = True,
) -> None:
    """Set each row's other columns in the row of ``table`` whose ``key`` equals the row's
    (dictionaries with the same keys): one ``UPDATE ... FROM unnest(...)`` on PostgreSQL, one
    ``executemany`` elsewhere. With ``raising`` (one of the columns set), a row is changed
    only where that column is lower than its new value (never lowered). Rows are taken in
    ``key`` order, so concurrent callers lock them in one order."""
    if not rows:
        return
    names = [name for name in rows[0] if name != key]
    ordered = sorted(rows, key=lambda row: row[key])
    if _postgres(session, fast):
        dialect = session.get_bind().dialect
        types = ", ".join(f"%s::{table.c[n].type.compile(dialect)}[]" for n in [key, *names])
        sets = ", ".join(f"{n} = v.{n}" for n in names)
        where = f"{table.name}.{key} = v.{key}"
        if raising is not None:
            where += f" AND {table.name}.{raising} < v.{raising}"
        sql = (
            f"UPDATE {table.name} SET {sets} "  # noqa: S608
            f"FROM unnest({types}) AS v({key}, {', '.join(names)}) WHERE {where}"
        )
        columns = tuple([row[n] for row in ordered] for n in [key, *names])
        session.connection().exec_driver_sql(sql, columns)
        return
    stmt = update(table).where(table.c[key] == bindparam("_key"))
    if raising is not None:
        stmt = stmt.where(table.c[raising] < bindparam(raising))
    stmt = stmt.values({n: bindparam(n) for n in names})
    session.connection().execute(
        stmt, [{"_key": row[key], **{n: row[n] for n in names}} for row in ordered]
    )


def one_of(
    session: Session,
    column: ColumnElement[Any] | InstrumentedAttribute[Any],
    values: Sequence[Any],
    *,
    fast: bool = True,
) -> ColumnElement[bool]:
    """``column IN values``: on PostgreSQL ``column = ANY(array)``, one parameter whatever
    the number of values (a statement compiled and parsed once), elsewhere an expanding
    ``IN``."""
    if not _postgres(session, fast):
        return column.in_(values)
    return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
