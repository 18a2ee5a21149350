"""DPoP (RFC 9449): a project can require DPoP-bound access tokens.

Existing projects get ``dpop_required = false``: they keep issuing bearer tokens (and bound
ones to clients that send a DPoP proof).

Revision ID: 0005_dpop
Revises: 0004_custody_byok
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_dpop"
down_revision = "0004_custody_byok"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "projects",
        sa.Column("dpop_required", sa.Boolean, nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("dpop_required")
