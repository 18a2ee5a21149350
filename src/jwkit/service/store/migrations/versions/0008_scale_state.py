"""Scale (issue 18): which project each change touched, and when each project is next due.

``project_changes`` holds one row per project ever changed (a tombstone stays after a delete)
with the ``service_state.version`` of its latest change, so a replica at version ``V`` finds
what to rebuild with one indexed query (``version > V``). The id ``*`` stands for changes that
touch no project (admin credentials). ``projects.next_due_at`` is when the scheduler next has
work for the project (``NULL``: none); existing projects start due, so the first pass after the
upgrade computes it for each of them once.

Revision ID: 0008_scale_state
Revises: 0007_scale_api
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_scale_state"
down_revision = "0007_scale_api"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "project_changes",
        sa.Column("project_id", sa.String(64), primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_project_changes_version", "project_changes", ["version"])
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("next_due_at", sa.BigInteger, nullable=True))
        batch.create_index("ix_projects_next_due_at", ["next_due_at"])
    op.execute("UPDATE projects SET next_due_at = 0")


def downgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.drop_index("ix_projects_next_due_at")
        batch.drop_column("next_due_at")
    if op.get_bind().dialect.name == "sqlite":
        # SQLite's batch mode rebuilt the table without 0007's expression index (the name
        # search): put it back, as 0007 made it.
        op.execute("CREATE INDEX IF NOT EXISTS ix_projects_name ON projects (lower(name))")
    op.drop_index("ix_project_changes_version", table_name="project_changes")
    op.drop_table("project_changes")
