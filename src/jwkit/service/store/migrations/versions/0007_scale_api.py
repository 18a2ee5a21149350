"""Indexes for the admin lists' keyset pages (projects, clients, a project's audit events)
and the project name search.

Revision ID: 0007_scale_api
Revises: 0006_custody_hsm
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_scale_api"
down_revision = "0006_custody_hsm"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_projects_created", "projects", ["created_at", "id"])
    op.create_index("ix_clients_project_created", "clients", ["project_id", "created_at", "id"])
    op.create_index("ix_audit_events_project_seq", "audit_events", ["project_id", "seq"])
    # Name search: a range on lower(name) in code point order (domain/paging.py name_prefix).
    collate = ' COLLATE "C"' if op.get_bind().dialect.name == "postgresql" else ""
    op.create_index("ix_projects_name", "projects", [sa.text(f"lower(name){collate}")])


def downgrade() -> None:
    op.drop_index("ix_projects_name", "projects")
    op.drop_index("ix_audit_events_project_seq", "audit_events")
    op.drop_index("ix_clients_project_created", "clients")
    op.drop_index("ix_projects_created", "projects")
