"""The fast PostgreSQL forms of :mod:`jwkit.service.store.bulk` (``COPY``, array parameters)
agree with the plain forms (``executemany``, expanding ``IN``) on the same rows, and fail
the way any statement fails. On the suite's real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    exc,
    select,
    text,
)
from sqlalchemy.orm import Session, sessionmaker

from jwkit.service.store import bulk

pytestmark = pytest.mark.postgres

_meta = MetaData()


def _table(name: str) -> Table:
    return Table(
        name,
        _meta,
        Column("id", Integer, primary_key=True),
        Column("name", String(64), nullable=True),
        Column("big", BigInteger),
        Column("blob", LargeBinary, nullable=True),
        Column("words", Text),
    )


FAST, PLAIN = _table("fast_rows"), _table("plain_rows")

#: Values a text ``COPY`` must escape: tabs, newlines, backslashes, its own NULL marker,
#: empty strings, non-ASCII, NUL and backslash bytes, 64-bit and negative integers.
_ODD: list[dict[str, Any]] = [
    {"id": 1, "name": "a\tb", "big": 2**62, "blob": b"\x00\\\n\t", "words": "x\ny\r\nz"},
    {"id": 2, "name": None, "big": -(2**40), "blob": None, "words": "\\N"},
    {"id": 3, "name": "", "big": 0, "blob": b"", "words": "\\"},
    {"id": 4, "name": 'kid\'s "ü" 🔑', "big": 7, "blob": bytes(range(256)), "words": ""},
]
ROWS: list[dict[str, Any]] = _ODD + [
    {"id": n, "name": f"p{n:05d}", "big": n * 1000, "blob": n.to_bytes(4, "little"), "words": "w"}
    for n in range(5, 1005)
]


@pytest.fixture
def session(pg_url: str) -> Iterator[Session]:
    engine = create_engine(pg_url)
    _meta.create_all(engine)
    try:
        with sessionmaker(engine)() as session:
            yield session
    finally:
        engine.dispose()


def _rows(session: Session, table: Table) -> list[tuple[Any, ...]]:
    with session.begin():
        return [tuple(r) for r in session.execute(select(table).order_by(table.c.id))]


def test_copy_writes_what_executemany_writes(session: Session) -> None:
    with session.begin():
        bulk.insert_rows(session, FAST, ROWS)
        bulk.insert_rows(session, PLAIN, ROWS, fast=False)
        bulk.insert_rows(session, FAST, [])
    fast, plain = _rows(session, FAST), _rows(session, PLAIN)
    assert fast == plain
    assert fast[:4] == [tuple(row.values()) for row in ROWS[:4]]
    assert len(fast) == len(ROWS)


def test_raising_updates_agree_with_executemany(session: Session) -> None:
    with session.begin():
        bulk.insert_rows(session, FAST, ROWS)
        bulk.insert_rows(session, PLAIN, ROWS)
    # raise some, leave a higher one and an equal one, name rows that do not exist
    wanted = {1: 5, 2: -(2**41), 3: 0, 5: 10**12, 99: 99_000, 5000: 1, 6000: 2}
    rows = [{"id": k, "big": v} for k, v in wanted.items()]
    with session.begin():
        bulk.update_rows(session, FAST, "id", rows, raising="big")
        bulk.update_rows(session, PLAIN, "id", rows, raising="big", fast=False)
    fast, plain = _rows(session, FAST), _rows(session, PLAIN)
    assert fast == plain
    big = {row[0]: row[2] for row in fast}
    assert (big[1], big[2], big[3], big[5], big[99], big[6]) == (
        2**62, -(2**40), 0, 10**12, 99_000, 6000
    )  # fmt: skip
    # by a string key as well, another column set alongside
    named = [{"name": "p00007", "big": 10**15, "words": "up"}, {"name": "", "big": 1, "words": "e"}]
    with session.begin():
        bulk.update_rows(session, FAST, "name", named, raising="big")
    after = {r[0]: (r[2], r[4]) for r in _rows(session, FAST)}
    assert after[7] == (10**15, "up") and after[3] == (1, "e")
    with session.begin():  # not lowered: the row keeps every column
        bulk.update_rows(session, FAST, "name", [{"name": "p00007", "big": 1, "words": "x"}],
                         raising="big")  # fmt: skip
    assert {r[0]: (r[2], r[4]) for r in _rows(session, FAST)}[7] == (10**15, "up")


def test_update_rows_agrees_with_executemany(session: Session) -> None:
    with session.begin():
        bulk.insert_rows(session, FAST, ROWS)
        bulk.insert_rows(session, PLAIN, ROWS)
    changes: list[dict[str, Any]] = [
        {"id": 4, "name": None, "big": -1, "words": "a\tb\\N"},
        {"id": 1, "name": "ü", "big": 2**63 - 1, "words": ""},
        {"id": 500, "name": "x", "big": 0, "words": "y"},
        {"id": 7000, "name": "none such", "big": 1, "words": "z"},
    ]
    with session.begin():
        bulk.update_rows(session, FAST, "id", changes)
        bulk.update_rows(session, PLAIN, "id", changes, fast=False)
        bulk.update_rows(session, FAST, "id", [])
    fast, plain = _rows(session, FAST), _rows(session, PLAIN)
    assert fast == plain
    assert fast[0] == (1, "ü", 2**63 - 1, ROWS[0]["blob"], "")
    assert fast[3] == (4, None, -1, ROWS[3]["blob"], "a\tb\\N")
    assert fast[499][1:3] == ("x", 0) and len(fast) == len(ROWS)


@pytest.mark.parametrize(
    "values", [["p00010", "a\tb", "nope", 'kid\'s "ü" 🔑'], [], ["p00999"] * 3]
)
def test_one_of_selects_what_in_selects(session: Session, values: list[str]) -> None:
    with session.begin():
        bulk.insert_rows(session, FAST, ROWS)

    def ids(fast: bool) -> list[int]:
        where = bulk.one_of(session, FAST.c.name, values, fast=fast)
        with session.begin():
            stmt = select(FAST.c.id).where(where).order_by(FAST.c.id)
            return list(session.execute(stmt).scalars())

    assert ids(True) == ids(False)
    assert len(ids(True)) == len({v for v in values if v != "nope"})
    if values:
        # one statement, whatever the number of values
        assert "ANY" in str(bulk.one_of(session, FAST.c.name, values).compile(session.get_bind()))


def test_a_failed_copy_is_sqlalchemys_error_and_keeps_nothing(session: Session) -> None:
    with session.begin():
        bulk.insert_rows(session, FAST, ROWS[:3])
    with pytest.raises(exc.IntegrityError), session.begin():
        bulk.insert_rows(session, FAST, ROWS[2:10])  # id 3 is there already
    assert [r[0] for r in _rows(session, FAST)] == [1, 2, 3]


def test_a_connection_lost_during_copy_leaves_the_pool(session: Session, pg_url: str) -> None:
    with session.begin():
        pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
    killer = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        with pytest.raises(exc.OperationalError) as caught, session.begin():
            session.execute(text("SELECT 1"))
            with killer.connect() as conn:
                conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            bulk.insert_rows(session, FAST, ROWS)
        assert isinstance(caught.value, exc.OperationalError)
        assert caught.value.connection_invalidated
    finally:
        killer.dispose()
    with session.begin():  # a fresh connection
        bulk.insert_rows(session, FAST, ROWS[:2])
        assert session.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
    assert [r[0] for r in _rows(session, FAST)] == [1, 2]
