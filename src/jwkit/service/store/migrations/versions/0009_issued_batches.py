"""Token status (issue 12): issuance records in batches, statuses by list index.

``issued_tokens`` (one row per token, its status in the row) becomes ``issued_batches`` (the
tokens one replica wrote together that share a project, list, sub, sid, client and
``rules_seen``, their per-token fields packed) and ``token_statuses`` (one row per token whose
status is not VALID). Each existing record becomes a batch of one; each status other than
VALID a ``token_statuses`` row. The downgrade unpacks every batch back into rows.

Revision ID: 0009_issued_batches
Revises: 0008_scale_state
"""

from __future__ import annotations

import sys
from array import array

import sqlalchemy as sa
from alembic import op

revision = "0009_issued_batches"
down_revision = "0008_scale_state"
branch_labels = None
depends_on = None


# The packing of jwkit.service.domain.issued as of this revision (kept here: a migration must
# not change with later code): unsigned 32-bit integers, little-endian.
def pack(values: list[int]) -> bytes:
    packed = array("I", values)
    if sys.byteorder == "big":  # pragma: no cover
        packed.byteswap()
    return packed.tobytes()


def unpack(data: bytes) -> list[int]:
    packed = array("I")
    packed.frombytes(data)
    if sys.byteorder == "big":  # pragma: no cover
        packed.byteswap()
    return packed.tolist()


_OLD_COLUMNS = (
    "project_id, jti, list_id, idx, sub, sid, client_id, issued_ms, exp, rules_seen, status, "
    "status_changed_at"
)


def _create_new() -> None:
    op.create_table(
        "issued_batches",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column(
            "project_id",
            sa.String(64),
            sa.ForeignKey("projects.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "list_id",
            sa.Integer,
            sa.ForeignKey("status_lists.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("sub", sa.String(255), nullable=False),
        sa.Column("sid", sa.String(128), nullable=True),
        sa.Column("client_id", sa.String(64), nullable=True),
        sa.Column("rules_seen", sa.BigInteger, nullable=False),
        sa.Column("first_idx", sa.Integer, nullable=False),
        sa.Column("last_idx", sa.Integer, nullable=False),
        sa.Column("first_ms", sa.BigInteger, nullable=False),
        sa.Column("last_ms", sa.BigInteger, nullable=False),
        sa.Column("exp", sa.BigInteger, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("idxs", sa.LargeBinary, nullable=False),
        sa.Column("exps", sa.LargeBinary, nullable=False),
        sa.Column("issued", sa.LargeBinary, nullable=False),
        sa.Column("jtis", sa.Text, nullable=False),
    )
    op.create_index("ix_issued_batches_sub", "issued_batches", ["project_id", "sub"])
    op.create_index(
        "ix_issued_batches_sid",
        "issued_batches",
        ["project_id", "sid"],
        sqlite_where=sa.text("sid IS NOT NULL"),
        postgresql_where=sa.text("sid IS NOT NULL"),
    )
    op.create_index("ix_issued_batches_list", "issued_batches", ["list_id", "first_idx"])
    op.create_table(
        "token_statuses",
        sa.Column(
            "list_id",
            sa.Integer,
            sa.ForeignKey("status_lists.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("idx", sa.Integer, primary_key=True),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("changed_at", sa.BigInteger, nullable=False),
        sa.Column("exp", sa.BigInteger, nullable=False),
        sqlite_with_rowid=False,
    )


def _create_old() -> None:
    op.create_table(
        "issued_tokens",
        sa.Column(
            "project_id",
            sa.String(64),
            sa.ForeignKey("projects.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("jti", sa.String(64), primary_key=True),
        sa.Column(
            "list_id",
            sa.Integer,
            sa.ForeignKey("status_lists.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("idx", sa.Integer, nullable=False),
        sa.Column("sub", sa.String(255), nullable=False),
        sa.Column("sid", sa.String(128), nullable=True),
        sa.Column("client_id", sa.String(64), nullable=True),
        sa.Column("issued_ms", sa.BigInteger, nullable=False),
        sa.Column("exp", sa.BigInteger, nullable=False),
        sa.Column("rules_seen", sa.BigInteger, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("status_changed_at", sa.BigInteger, nullable=True),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_issued_tokens_sub", "issued_tokens", ["project_id", "sub"])
    op.create_index(
        "ix_issued_tokens_sid",
        "issued_tokens",
        ["project_id", "sid"],
        sqlite_where=sa.text("sid IS NOT NULL"),
        postgresql_where=sa.text("sid IS NOT NULL"),
    )
    op.create_index(
        "ix_issued_tokens_list_status",
        "issued_tokens",
        ["list_id", "status"],
        sqlite_where=sa.text("status != 0"),
        postgresql_where=sa.text("status != 0"),
    )


def upgrade() -> None:
    _create_new()
    bind = op.get_bind()
    batches = sa.table(
        "issued_batches",
        *(
            sa.column(name)
            for name in (
                "project_id list_id sub sid client_id rules_seen first_idx last_idx first_ms "
                "last_ms exp count idxs exps issued jtis"
            ).split()
        ),
    )
    statuses = sa.table(
        "token_statuses", *(sa.column(n) for n in ("list_id", "idx", "status", "changed_at", "exp"))
    )
    rows = bind.execute(sa.text(f"SELECT {_OLD_COLUMNS} FROM issued_tokens")).all()  # noqa: S608
    new_batches, new_statuses = [], []
    for pid, jti, list_id, idx, sub, sid, client, issued_ms, exp, seen, status, changed in rows:
        new_batches.append(
            {
                "project_id": pid,
                "list_id": list_id,
                "sub": sub,
                "sid": sid,
                "client_id": client,
                "rules_seen": seen,
                "first_idx": idx,
                "last_idx": idx,
                "first_ms": issued_ms,
                "last_ms": issued_ms,
                "exp": exp,
                "count": 1,
                "idxs": pack([idx]),
                "exps": pack([exp]),
                "issued": pack([0]),
                "jtis": jti,
            }
        )
        if status != 0:
            new_statuses.append(
                {
                    "list_id": list_id,
                    "idx": idx,
                    "status": status,
                    "changed_at": changed or 0,
                    "exp": exp,
                }
            )
    if new_batches:
        bind.execute(batches.insert(), new_batches)
    if new_statuses:
        bind.execute(statuses.insert(), new_statuses)
    for name in ("ix_issued_tokens_list_status", "ix_issued_tokens_sid", "ix_issued_tokens_sub"):
        op.drop_index(name, table_name="issued_tokens")
    op.drop_table("issued_tokens")


def downgrade() -> None:
    _create_old()
    bind = op.get_bind()
    old = sa.table("issued_tokens", *(sa.column(n.strip()) for n in _OLD_COLUMNS.split(",")))
    known = {
        (lst, idx): (status, changed)
        for lst, idx, status, changed in bind.execute(
            sa.text("SELECT list_id, idx, status, changed_at FROM token_statuses")
        ).all()
    }
    rows: dict[tuple[str, str], dict[str, object]] = {}
    for pid, list_id, sub, sid, client, seen, first_ms, idxs, exps, issued, jtis in bind.execute(
        sa.text(
            "SELECT project_id, list_id, sub, sid, client_id, rules_seen, first_ms, idxs, exps, "
            "issued, jtis FROM issued_batches ORDER BY id"
        )
    ).all():
        exp_of, issued_of = unpack(exps), unpack(issued)
        for i, (idx, jti) in enumerate(zip(unpack(idxs), jtis.split(" "), strict=True)):
            status, changed = known.get((list_id, idx), (0, None))
            rows.setdefault(
                (pid, jti),
                {
                    "project_id": pid,
                    "jti": jti,
                    "list_id": list_id,
                    "idx": idx,
                    "sub": sub,
                    "sid": sid,
                    "client_id": client,
                    "issued_ms": first_ms + issued_of[i],
                    "exp": exp_of[i],
                    "rules_seen": seen,
                    "status": status,
                    "status_changed_at": changed,
                },
            )
    if rows:
        bind.execute(old.insert(), list(rows.values()))
    op.drop_table("token_statuses")
    for name in ("ix_issued_batches_list", "ix_issued_batches_sid", "ix_issued_batches_sub"):
        op.drop_index(name, table_name="issued_batches")
    op.drop_table("issued_batches")
