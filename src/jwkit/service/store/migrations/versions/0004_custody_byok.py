"""Foreign public keys published for a stated period (migration from another issuer).

Revision ID: 0004_custody_byok
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_custody_byok"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "foreign_keys",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "project_id",
            sa.String(64),
            sa.ForeignKey("projects.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("kid", sa.String(128), nullable=False),
        sa.Column("thumbprint", sa.String(64), nullable=False),
        sa.Column("public_jwk", sa.Text, nullable=False),
        sa.Column("source", sa.String(2048), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("until", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("project_id", "kid", name="uq_foreign_keys_project_kid"),
    )
    op.create_index("ix_foreign_keys_project_id", "foreign_keys", ["project_id"])


def downgrade() -> None:
    op.drop_index("ix_foreign_keys_project_id", table_name="foreign_keys")
    op.drop_table("foreign_keys")
