"""Projects (tenants): create, read, update, delete, and their public JSON shape."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from jwkit.service.domain import audit
from jwkit.service.domain.common import InvalidInput, NotFound, isoformat, new_id
from jwkit.service.domain.paging import Page, id_or_name, keyset_page
from jwkit.service.store.models import Project

__all__ = [
    "DEFAULT_ALGORITHM",
    "SUPPORTED_ALGORITHMS",
    "ProjectSpec",
    "create_project",
    "delete_project",
    "get_project",
    "issuer_for",
    "lock_project",
    "page_projects",
    "project_to_json",
    "update_project",
]

DEFAULT_ALGORITHM = "ES256"
SUPPORTED_ALGORITHMS = (
    "ES256",
    "ES384",
    "ES512",
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "EdDSA",
    "HS256",
)
DEFAULT_TOKEN_TTL = 15 * 60
DEFAULT_MAX_TOKEN_TTL = 24 * 3600
DEFAULT_JWKS_MAX_AGE = 300
#: Project ids are ``proj_`` and random hex.
ID_PREFIX = "proj"


@dataclass(frozen=True, slots=True)
class ProjectSpec:
    """Validated inputs for a new project (the HTTP layer checks types and ranges)."""

    name: str
    algorithm: str = DEFAULT_ALGORITHM
    audience: str | None = None
    token_ttl: int = DEFAULT_TOKEN_TTL
    max_token_ttl: int = DEFAULT_MAX_TOKEN_TTL
    jwks_max_age: int = DEFAULT_JWKS_MAX_AGE
    rotation_days: int | None = None
    token_status: bool = True
    dpop_required: bool = False


def issuer_for(public_url: str, project_id: str) -> str:
    return f"{public_url}/p/{project_id}"


def _check_ttls(token_ttl: int, max_token_ttl: int) -> None:
    if token_ttl > max_token_ttl:
        raise InvalidInput("token_ttl must not exceed max_token_ttl", field="token_ttl")


def _check_alg(alg: str, field: str = "algorithm") -> None:
    if alg not in SUPPORTED_ALGORITHMS:
        raise InvalidInput(
            f"algorithm must be one of {', '.join(SUPPORTED_ALGORITHMS)}", field=field
        )


def create_project(session: Session, spec: ProjectSpec, *, now: int, actor: str) -> Project:
    _check_alg(spec.algorithm)
    _check_ttls(spec.token_ttl, spec.max_token_ttl)
    pid = new_id(ID_PREFIX)
    project = Project(
        id=pid,
        name=spec.name,
        audience=spec.audience or pid,
        algorithm=spec.algorithm,
        token_ttl=spec.token_ttl,
        max_token_ttl=spec.max_token_ttl,
        jwks_max_age=spec.jwks_max_age,
        rotation_days=spec.rotation_days,
        created_at=now,
        token_status=spec.token_status,
        dpop_required=spec.dpop_required,
    )
    session.add(project)
    session.flush()
    audit.record(
        session,
        now=now,
        actor=actor,
        action="project.created",
        project_id=pid,
        detail={"name": spec.name, "algorithm": spec.algorithm},
    )
    return project


def get_project(session: Session, project_id: str) -> Project:
    project = session.get(Project, project_id)
    if project is None:
        raise NotFound(f"no project {project_id!r}")
    return project


def lock_project(session: Session, project_id: str) -> Project:
    """Load the project row with ``FOR UPDATE``: every key transition goes through here,
    so concurrent replicas serialise per project (SQLite serialises on its write lock)."""
    project = session.execute(
        select(Project).where(Project.id == project_id).with_for_update()
    ).scalar_one_or_none()
    if project is None:
        raise NotFound(f"no project {project_id!r}")
    return project


def page_projects(
    session: Session, *, limit: int, cursor: str | None = None, search: str | None = None
) -> Page[Project]:
    """Projects oldest first, one page (:mod:`.paging`, index ``ix_projects_created``).
    ``search`` is a project id (``proj_…``: that project) or the start of a name, case
    ignored (index ``ix_projects_name``): a page costs what the rows that fill it cost,
    however many projects there are."""
    stmt = select(Project)
    order = "projects"
    if search:
        stmt = stmt.where(id_or_name(session, Project.id, Project.name, ID_PREFIX, search))
        order = "projects?" + search
    return keyset_page(
        session, stmt, order, [Project.created_at, Project.id], limit=limit, cursor=cursor
    )


_UPDATABLE = (
    "name",
    "audience",
    "algorithm",
    "token_ttl",
    "max_token_ttl",
    "jwks_max_age",
    "rotation_days",
    "token_status",
    "dpop_required",
)


def update_project(
    session: Session, project_id: str, changes: dict[str, Any], *, now: int, actor: str
) -> Project:
    project = lock_project(session, project_id)
    for name in changes:
        if name not in _UPDATABLE:
            raise InvalidInput(f"{name} cannot be changed", field=name)
    if "algorithm" in changes:
        _check_alg(changes["algorithm"])
    token_ttl = changes.get("token_ttl", project.token_ttl)
    max_ttl = changes.get("max_token_ttl", project.max_token_ttl)
    _check_ttls(token_ttl, max_ttl)
    for name, value in changes.items():
        if name == "audience" and value is None:
            value = project.id
        setattr(project, name, value)
    if {"algorithm", "jwks_max_age", "rotation_days"} & set(changes):
        project.next_due_at = now  # the key schedule moved: the scheduler's next pass recomputes
    audit.record(
        session,
        now=now,
        actor=actor,
        action="project.updated",
        project_id=project.id,
        detail={"fields": sorted(changes)},
    )
    return project


def delete_project(session: Session, project_id: str, *, now: int, actor: str) -> None:
    project = lock_project(session, project_id)
    session.delete(project)
    audit.record(session, now=now, actor=actor, action="project.deleted", project_id=project_id)


def project_to_json(project: Project, public_url: str) -> dict[str, Any]:
    issuer = issuer_for(public_url, project.id)
    return {
        "id": project.id,
        "name": project.name,
        "issuer": issuer,
        "audience": project.audience,
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "discovery_url": f"{issuer}/.well-known/openid-configuration",
        "token_endpoint": f"{issuer}/oauth2/token",
        "algorithm": project.algorithm,
        "token_ttl": project.token_ttl,
        "max_token_ttl": project.max_token_ttl,
        "jwks_max_age": project.jwks_max_age,
        "rotation_days": project.rotation_days,
        "token_status": bool(project.token_status),
        "dpop_required": bool(project.dpop_required),
        "created_at": isoformat(project.created_at),
    }
