"""Automatic rotation and retirement, run by every replica at once without harm.

Each pass lists the projects, then runs :func:`jwkit.service.domain.keys.run_due_transitions`
for each one in its own transaction. That function locks the project row first
(``SELECT … FOR UPDATE`` on PostgreSQL; the write lock on SQLite) and re-reads the keys, so when
two replicas race the second one finds nothing left to do: every job is idempotent.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from jwkit.service.domain import keys
from jwkit.service.domain.common import NotFound, ServiceError
from jwkit.service.runtime import Service
from jwkit.service.store.models import Project

__all__ = ["run_once"]

log = logging.getLogger("jwkit.scheduler")


def run_once(service: Service) -> list[str]:
    """One pass over every project; returns what was done (for logs and tests)."""
    with service.read() as session:
        project_ids = list(session.execute(select(Project.id)).scalars())
    done: list[str] = []
    changed = False
    for pid in project_ids:
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
        service.state.reload()
    return done
