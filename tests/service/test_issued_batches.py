"""Issuance records in batches (issue 12): one row per subject and write, statuses by list
index; revocations, searches and list statuses read them as if each token had its own row.
On a real SQLite file and a real PostgreSQL server."""

from __future__ import annotations

import secrets
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select, text

from jwkit.jose.statuslist import INVALID, SUSPENDED, VALID
from jwkit.service.domain import issued, projects, revocation
from jwkit.service.domain.common import NotFound
from jwkit.service.domain.tokens import new_jti
from jwkit.service.store.db import Database, _alembic_config
from jwkit.service.store.models import Base, IssuedBatch, StatusList, TokenStatus

NOW = 1_800_000_000
SKEW = 60
TTL = 300


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'jwkit.db'}"
    else:
        url = str(request.getfixturevalue("pg_url"))
    database = Database(url)
    database.migrate()
    try:
        yield database
    finally:
        database.dispose()


def _project(db: Database) -> tuple[str, revocation.Block]:
    with db.session() as session, session.begin():
        project = projects.create_project(
            session, projects.ProjectSpec(name="batches"), now=NOW, actor="test"
        )
        block = revocation.reserve_block(
            session, project.id, now=NOW, clock_skew=SKEW, list_ttl=TTL
        )
        return project.id, block


def _records(
    pid: str,
    block: revocation.Block,
    start: int,
    n: int,
    sub: str,
    *,
    sid: str | None = None,
    client: str | None = None,
    seen: int = 0,
    exp: int = NOW + 600,
) -> list[revocation.Issued]:
    return [
        revocation.Issued(
            pid,
            new_jti(block.list_id, idx),
            block.list_id,
            idx,
            sub,
            sid,
            client,
            NOW * 1000 + idx,
            exp,
            seen,
        )
        for idx in range(start, start + n)
    ]


def _write(db: Database, records: list[revocation.Issued]) -> set[int]:
    with db.session() as session, session.begin():
        return revocation.record_issued(session, records, now=NOW, clock_skew=SKEW, list_ttl=TTL)


def _revoke(db: Database, pid: str, kind: str, value: str, status: str = "invalid") -> int:
    with db.session() as session, session.begin():
        rule = revocation.revoke(
            session,
            pid,
            kind,
            value,
            status=status,
            now=NOW,
            actor="test",
            clock_skew=SKEW,
            effective_by=NOW + TTL,
        )
        return rule.count


def _statuses(db: Database, block: revocation.Block) -> dict[int, int]:
    with db.session() as session:
        out = revocation.live_statuses(session, [block.list_id], now=NOW, clock_skew=SKEW)
    return dict(out[block.list_id])


def test_a_clients_tokens_of_one_write_are_one_row(db: Database) -> None:
    pid, block = _project(db)
    busy = _records(pid, block, 0, 500, "cli_busy", client="cli_busy")
    users = [r for i in range(3) for r in _records(pid, block, 500 + i, 1, f"user{i}", sid="s")]
    # interleaved, as a replica signs them
    _write(db, busy[:250] + users + busy[250:])
    with db.session() as session:
        rows = session.execute(select(IssuedBatch.sub, IssuedBatch.count)).all()
    assert sorted(rows) == [("cli_busy", 500), ("user0", 1), ("user1", 1), ("user2", 1)]
    with db.session() as session:
        found = revocation.find_tokens(
            session, pid, "client_id", "cli_busy", now=NOW, clock_skew=SKEW, limit=1000
        )
    assert [t.jti for t, _ in found] == [r.jti for r in reversed(busy)]  # newest first
    assert {n for _, n in found} == {block.number}


def test_revoking_one_jti_of_a_batch_revokes_that_token_only(db: Database) -> None:
    pid, block = _project(db)
    records = _records(pid, block, 0, 100, "cli_a", client="cli_a")
    _write(db, records)
    assert _revoke(db, pid, "jti", records[42].jti) == 1
    assert _statuses(db, block) == {42: INVALID}
    # a jti that names that position with other random bits matches nothing
    forged = records[43].jti[:16] + secrets.token_urlsafe(12)
    assert _revoke(db, pid, "jti", forged) == 0
    assert _revoke(db, pid, "jti", "not-one-of-ours") == 0
    assert _revoke(db, pid, "jti", records[42].jti) == 0  # already INVALID
    assert _revoke(db, pid, "sub", "cli_a", status="suspended") == 99
    assert _revoke(db, pid, "sub", "cli_a", status="valid") == 99  # lifts the suspensions only
    assert _statuses(db, block) == {42: INVALID}
    assert _revoke(db, pid, "client_id", "cli_a") == 99
    assert set(_statuses(db, block).values()) == {INVALID}
    assert len(_statuses(db, block)) == 100


def test_a_record_written_twice_counts_once_and_keeps_its_status(db: Database) -> None:
    """RFC 7009 writes a presented token's record at once; its replica writes it again later."""
    pid, block = _project(db)
    records = _records(pid, block, 0, 3, "u", sid="sess")
    with db.session() as session, session.begin():
        revocation.revoke(
            session,
            pid,
            "jti",
            records[0].jti,
            now=NOW,
            actor="client",
            clock_skew=SKEW,
            effective_by=NOW + TTL,
            token=records[0],
        )
    _write(db, records)  # the replica's batch, written after the revocation: rules_seen 0
    assert _statuses(db, block) == {0: INVALID}
    with db.session() as session:
        found = revocation.find_tokens(session, pid, "sid", "sess", now=NOW, clock_skew=SKEW)
    assert sorted(t.idx for t, _ in found) == [0, 1, 2]
    assert _revoke(db, pid, "sid", "sess", status="suspended") == 2


def test_a_rule_applies_to_the_batch_its_replica_had_not_seen(db: Database) -> None:
    pid, block = _project(db)
    assert _revoke(db, pid, "sub", "late", status="suspended") == 0  # rule 1
    early = _records(pid, block, 0, 2, "late", seen=0)  # signed before the replica knew
    later = _records(pid, block, 2, 2, "late", seen=1)  # after
    changed = _write(db, early + later)
    assert changed == {block.list_id}
    assert _statuses(db, block) == {0: SUSPENDED, 1: SUSPENDED}
    with db.session() as session:
        assert session.execute(select(func.count()).select_from(IssuedBatch)).scalar_one() == 2


def test_expired_tokens_leave_searches_revocations_and_lists(db: Database) -> None:
    pid, block = _project(db)
    gone = _records(pid, block, 0, 2, "old", exp=NOW - SKEW - 1)
    live = _records(pid, block, 2, 2, "old", exp=NOW + 10)
    _write(db, gone + live)
    assert _revoke(db, pid, "sub", "old") == 2
    assert _statuses(db, block) == {2: INVALID, 3: INVALID}
    with db.session() as session:
        found = revocation.find_tokens(session, pid, "sub", "old", now=NOW, clock_skew=SKEW)
    assert sorted(t.idx for t, _ in found) == [2, 3]
    assert [t.status for t, _ in found] == [INVALID, INVALID]


def test_find_tokens_reads_only_the_newest_batches_it_needs(db: Database) -> None:
    pid, block = _project(db)
    for start in range(0, 1000, 100):  # ten writes of one client, oldest first
        batch = _records(pid, block, start, 100, "c", client="c")
        batch = [r._replace(issued_ms=NOW * 1000 + start + i) for i, r in enumerate(batch)]
        _write(db, batch)
    with db.session() as session:
        found = revocation.find_tokens(
            session, pid, "client_id", "c", now=NOW, clock_skew=SKEW, limit=150
        )
    assert [t.idx for t, _ in found] == list(range(999, 849, -1))
    # A newer write whose tokens have mostly expired does not hide the older live ones.
    mostly_gone = _records(pid, block, 1000, 200, "c", client="c")
    mostly_gone = [
        r._replace(issued_ms=NOW * 1000 + 5000 + i, exp=NOW + 600 if i == 0 else NOW - SKEW - 1)
        for i, r in enumerate(mostly_gone)
    ]
    _write(db, mostly_gone)
    with db.session() as session:
        found = revocation.find_tokens(
            session, pid, "client_id", "c", now=NOW, clock_skew=SKEW, limit=150
        )
    assert [t.idx for t, _ in found] == [1000, *range(999, 850, -1)]


def test_a_recycled_list_forgets_its_batches_and_statuses(db: Database) -> None:
    pid, block = _project(db)
    _write(db, _records(pid, block, 0, 3, "r", exp=NOW + 5))
    assert _revoke(db, pid, "sub", "r") == 3
    later = NOW + 10_000  # every token of the list expired long ago
    with db.session() as session, session.begin():
        session.execute(
            text("UPDATE status_lists SET next_index = size, reuse_after = :t"), {"t": later - 1}
        )
        again = revocation.reserve_block(session, pid, now=later, clock_skew=SKEW, list_ttl=TTL)
    assert again.list_id == block.list_id and again.start == 0
    with db.session() as session:
        assert session.execute(select(func.count()).select_from(IssuedBatch)).scalar_one() == 0
        assert session.execute(select(func.count()).select_from(TokenStatus)).scalar_one() == 0


def test_packing_round_trips() -> None:
    values = [0, 1, 65535, 2**32 - 1]
    assert list(issued.unpack(issued.pack(values))) == values
    assert issued.pack([1]) == b"\x01\x00\x00\x00"  # little-endian on every replica
    assert issued.jti_position(new_jti(7, 65535)) == (7, 65535)
    assert issued.jti_position("0000000700000001") is None  # no random part
    assert issued.jti_position("0000000G00000001xyz") is None
    assert issued.jti_position("aaaaaaaaaaaaaaaaaaaaaa") is None  # beyond an INTEGER column
    assert issued.jti_position("ABCDEF0123456789xyz") is None  # lower-case hex only


def test_migration_0009_moves_records_into_batches_and_back(db: Database) -> None:
    pid, block = _project(db)
    cfg = _alembic_config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0008_scale_state")
        for jti, idx, status in (("a" * 22, 0, VALID), ("b" * 22, 1, INVALID)):
            conn.execute(
                text(
                    "INSERT INTO issued_tokens (project_id, jti, list_id, idx, sub, sid, "
                    "client_id, issued_ms, exp, rules_seen, status, status_changed_at) VALUES "
                    "(:p, :j, :l, :i, 'u', 's', NULL, :ms, :exp, 0, :st, :ch)"
                ),
                {
                    "p": pid,
                    "j": jti,
                    "l": block.list_id,
                    "i": idx,
                    "ms": NOW * 1000 + idx,
                    "exp": NOW + 600,
                    "st": status,
                    "ch": NOW if status else None,
                },
            )
    db.migrate()
    assert _statuses(db, block) == {1: INVALID}
    with db.session() as session:
        found = revocation.find_tokens(session, pid, "sid", "s", now=NOW, clock_skew=SKEW)
    assert [(t.jti, t.idx, t.issued_ms, t.status) for t, _ in found] == [
        ("b" * 22, 1, NOW * 1000 + 1, INVALID),
        ("a" * 22, 0, NOW * 1000, VALID),
    ]
    assert _revoke(db, pid, "jti", "a" * 22) == 1  # an id of the old form, found by value
    with db.engine.connect() as conn, warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based")
        warnings.filterwarnings("ignore", "autogenerate skipping metadata-specified expression")
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d for d in diff if "issued" in repr(d) or "token_statuses" in repr(d)] == []
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0008_scale_state")
        rows = conn.execute(text("SELECT jti, idx, status FROM issued_tokens ORDER BY idx")).all()
    assert [tuple(r) for r in rows] == [("a" * 22, 0, INVALID), ("b" * 22, 1, INVALID)]
    db.migrate()


def test_a_batch_over_many_projects_costs_the_same_statements_as_over_one(db: Database) -> None:
    """Tokens spread over many projects (a worker serving 100,000 of them) are written with a
    fixed number of statements, not a few per project; each project still gets its own rows,
    the revocations its replica had not seen, and a deleted project's records are dropped."""
    from sqlalchemy import event

    made = [_project(db) for _ in range(40)]
    (rev_pid, rev_block), (gone_pid, _) = made[7], made[11]
    assert _revoke(db, rev_pid, "sub", "alice") == 0
    with db.session() as session, session.begin():
        projects.delete_project(session, gone_pid, now=NOW, actor="test")
    records = [r for pid, block in made for r in _records(pid, block, 0, 3, "alice")]
    statements: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.split()[0].upper() in {"SELECT", "INSERT", "UPDATE", "DELETE"}:
            statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        changed = _write(db, records)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    # lock the projects, read their rules, insert the rows and the statuses, extend the
    # lists (one executemany), read, lock and bump the status version, mark the changed list
    assert len(statements) <= 9, [s.split("\n")[0] for s in statements]
    assert changed == {rev_block.list_id}
    assert _statuses(db, rev_block) == {0: INVALID, 1: INVALID, 2: INVALID}
    with db.session() as session:
        rows = session.execute(select(IssuedBatch.project_id, IssuedBatch.count)).all()
    assert sorted(rows) == sorted((pid, 3) for pid, _ in made if pid != gone_pid)
    for _pid, block in made[:3]:
        assert _statuses(db, block) == {}


def test_reserving_many_blocks_at_once_gives_what_one_at_a_time_gives(db: Database) -> None:
    """:func:`revocation.reserve_blocks` (a fixed number of statements for the projects whose
    lists have room) leaves the same lists and hands out the same blocks as
    :func:`revocation.reserve_block` for each project: a first block, the next one, one cut
    short at the end of its list, a new list when all are full, a recycled one when its tokens
    have expired; a deleted project is refused and reserves nothing."""
    sizes = {"size": 10, "block": 4}
    old = NOW - 100_000  # lists reserved then may be reused now
    history = [[], [NOW], [NOW, NOW], [NOW, NOW, NOW], [old, old, old]]

    def made() -> list[str]:
        pids = []
        for times in history:
            with db.session() as session, session.begin():
                pid = projects.create_project(
                    session, projects.ProjectSpec(name="blocks"), now=NOW, actor="test"
                ).id
                for at in times:
                    revocation.reserve_block(
                        session, pid, now=at, clock_skew=SKEW, list_ttl=TTL, **sizes
                    )
            pids.append(pid)
        return pids

    def lists(pid: str) -> list[tuple[int, ...]]:
        with db.session() as session:
            rows = session.execute(
                select(
                    StatusList.number,
                    StatusList.next_index,
                    StatusList.size,
                    StatusList.reuse_after,
                )
                .where(StatusList.project_id == pid)
                .order_by(StatusList.number)
            )
            return [tuple(r) for r in rows]

    def shape(block: revocation.Block, pid: str) -> tuple[int, int, int, bool]:
        with db.session() as session:
            owner = session.get(StatusList, block.list_id)
        assert owner is not None
        assert block.reserved_at == later
        return block.number, block.start, block.end, owner.project_id == pid

    one, many = made(), made()
    later = NOW + 50  # the lists' reuse times move on
    with db.session() as session, session.begin():
        singly = [
            revocation.reserve_block(session, p, now=later, clock_skew=SKEW, list_ttl=TTL, **sizes)
            for p in one
        ]
    with db.session() as session, session.begin():
        together = revocation.reserve_blocks(
            session, reversed(many), now=later, clock_skew=SKEW, list_ttl=TTL, **sizes
        )
    assert sorted(together) == sorted(many)
    got = [shape(together[p], p) for p in many]
    assert got == [shape(b, p) for b, p in zip(singly, one, strict=True)]
    assert got == [(1, 0, 4, True), (1, 4, 8, True), (1, 8, 10, True), (2, 0, 4, True),
                   (1, 0, 4, True)]  # fmt: skip
    assert [lists(p) for p in many] == [lists(p) for p in one]

    with db.session() as session, session.begin():
        projects.delete_project(session, many[1], now=NOW, actor="test")
    before = [lists(p) for p in many]
    with pytest.raises(NotFound), db.session() as session, session.begin():
        revocation.reserve_blocks(session, many, now=NOW, clock_skew=SKEW, list_ttl=TTL)
    assert [lists(p) for p in many] == before
