"""Key custody (issue 15): each key records the backend it lives in.

Existing keys are ``local`` (sealed in the database). ``key_handle`` is how a backend finds a
key again (the PKCS#11 label); ``destroyed_at`` when a revoked key was destroyed there.

Revision ID: 0006_custody_hsm
Revises: 0005_dpop
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_custody_hsm"
down_revision = "0005_dpop"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "keys", sa.Column("backend", sa.String(16), nullable=False, server_default="local")
    )
    op.add_column("keys", sa.Column("key_handle", sa.String(256), nullable=True))
    op.add_column("keys", sa.Column("destroyed_at", sa.BigInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("keys") as batch:
        batch.drop_column("destroyed_at")
        batch.drop_column("key_handle")
        batch.drop_column("backend")
