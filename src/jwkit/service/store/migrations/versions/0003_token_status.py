"""Token Status Lists: per-project status lists, issuance records, revocations.

Existing projects get ``token_status = false`` (they keep issuing tokens as before until an
administrator switches it on); new projects are created with it on.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "projects",
        sa.Column("token_status", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.add_column(
        "service_state",
        sa.Column("status_version", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_table(
        "status_lists",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "project_id",
            sa.String(64),
            sa.ForeignKey("projects.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("next_index", sa.Integer, nullable=False),
        sa.Column("reuse_after", sa.BigInteger, nullable=False),
        sa.Column("status_seq", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("project_id", "number", name="uq_status_lists_number"),
    )
    op.create_index("ix_status_lists_project_id", "status_lists", ["project_id"])
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
    # Partial indexes: a row enters only the ones it needs (see the model).
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
    op.create_table(
        "revocations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "project_id",
            sa.String(64),
            sa.ForeignKey("projects.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("value", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("effective_by", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_revocations_project", "revocations", ["project_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_revocations_project", table_name="revocations")
    op.drop_table("revocations")
    for name in (
        "ix_issued_tokens_list_status",
        "ix_issued_tokens_sid",
        "ix_issued_tokens_sub",
    ):
        op.drop_index(name, table_name="issued_tokens")
    op.drop_table("issued_tokens")
    op.drop_index("ix_status_lists_project_id", table_name="status_lists")
    op.drop_table("status_lists")
    with op.batch_alter_table("service_state") as batch:
        batch.drop_column("status_version")
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("token_status")
