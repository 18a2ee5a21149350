"""Automatic rotation and retirement, run by every replica at once without harm.

Each pass asks the database which projects are due (``projects.next_due_at <= now``, an
indexed range read: a pass costs what is due, not the number of projects), then runs
:func:`jwkit.service.domain.keys.run_due_transitions` for each one in its own transaction.
That function locks the project row first (``SELECT … FOR UPDATE`` on PostgreSQL; the write
lock on SQLite), re-reads the keys and stores the project's next due time, so when two replicas
race the second one finds nothing left to do: every job is idempotent.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from jwkit.service.domain import keys
from jwkit.service.domain.common import NotFound, ServiceError
from jwkit.service.runtime import Service
from jwkit.service.store.models import Project

__all__ = ["BATCH", "due_projects", "run_once"]

log = logging.getLogger("jwkit.scheduler")
#: Most projects one pass handles (the rest are still due at the next pass).
BATCH = 1000


def due_projects(service: Service, now: int, limit: int = BATCH) -> list[str]:
    """The ids of the projects whose next due time has come, soonest first."""
    with service.read() as session:
        return list(
            session.execute(
                select(Project.id)
                .where(Project.next_due_at <= now)
                .order_by(Project.next_due_at, Project.id)
                .limit(limit)
            ).scalars()
        )


def run_once(service: Service) -> list[str]:
    """One pass over the due projects; returns what was done (for logs and tests)."""
    done: list[str] = []
    changed = False
    for pid in due_projects(service, service.clock()):
        try:
            with service.db.session() as session, session.begin():
                actions = keys.run_due_transitions(
                    session,
                    pid,
                    service.vault,
                    now=service.clock(),
                    clock_skew=service.settings.clock_skew,
                )
        except NotFound:
            continue  # deleted meanwhile
        except ServiceError as exc:
            log.warning("scheduler: project %s: %s", pid, exc.code)
            continue
        if actions:
            changed = True
            for action in actions:
                log.info("scheduler: project %s: %s", pid, action)
                done.append(f"{pid}: {action}")
    if changed:
        service.state.refresh()
    return done
