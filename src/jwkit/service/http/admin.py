"""The admin JSON API (``/api/v1``), documented by the app's OpenAPI schema.

Handlers are thin: authenticate (done by :class:`~jwkit.service.http.auth.AdminRoute` before
anything else), validate the body (:mod:`.schemas`), call the domain inside one transaction,
render. Private key material never appears in any response.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.security import HTTPBearer
from sqlalchemy import select
from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

from jwkit.service.domain import audit, clients, keys, projects, revocation
from jwkit.service.domain.common import InvalidInput, NotFound, isoformat
from jwkit.service.domain.paging import Page, keyset_page
from jwkit.service.domain.projects import issuer_for
from jwkit.service.domain.tokens import check_extra_claims, mint, new_jti
from jwkit.service.http.auth import AdminRoute
from jwkit.service.http.listing import Cursor, PageSize, Search, paged
from jwkit.service.http.metrics import TRANSITIONS
from jwkit.service.http.schemas import (
    ERROR_RESPONSES,
    NOT_NULL,
    ClientCreate,
    ClientList,
    ClientOut,
    KeyCreate,
    ProjectCreate,
    ProjectList,
    ProjectOut,
    ProjectUpdate,
    RevocationCreate,
    RevokeBody,
    RotateBody,
    TokenMint,
    TokenOut,
)
from jwkit.service.keys import Keyring, KeyUnavailable
from jwkit.service.runtime import Service
from jwkit.service.statuslists import now_ms
from jwkit.service.store.models import AuditEvent

__all__ = ["ROUTER_OPTIONS", "actor_of", "answer_405_with_allow", "router", "service_of"]

log = logging.getLogger("jwkit.service")

# The bearer scheme only documents the admin token in the OpenAPI document (AdminRoute does
# the authentication, console sessions included); ERROR_RESPONSES documents every refusal.
_BEARER = HTTPBearer(auto_error=False, description="The admin token (JWKIT_ADMIN_TOKEN)")
#: How every router of the admin API is made (``inspect.py`` has one too).
ROUTER_OPTIONS: dict[str, Any] = {
    "prefix": "/api/v1",
    "route_class": AdminRoute,
    "tags": ["admin"],
    "dependencies": [Depends(_BEARER)],
    "responses": ERROR_RESPONSES,
}
router = APIRouter(**ROUTER_OPTIONS)
JSON = dict[str, Any]


def service_of(request: Request) -> Service:
    """The running service an admin route works on."""
    service: Service = request.app.state.service
    return service


def actor_of(request: Request) -> str:
    """Who made an admin request (audit events name them)."""
    return str(getattr(request.state, "admin", "admin"))


_service = service_of
_actor = actor_of


def _shared_secrets(svc: Service, rows: list[Any]) -> dict[str, Any] | None:
    """For HS* projects: the secret keys, shown in this one response and never again.

    A shared-secret project has nothing to publish in its JWKS, so the verifiers' key set
    (active and next keys) is handed over once, like an OAuth client secret.
    """
    secret = [keys.open_key(row, svc.vault) for row in rows if row.public_jwk is None]
    if not secret:
        return None
    return {"keys": [jwk.to_dict(private=True) for jwk in secret]}


@router.post("/projects", status_code=201, responses={201: {"model": ProjectOut}})
def create_project(request: Request, body: ProjectCreate) -> JSON:
    """Create a project with an active key and a pre-published next key."""
    svc = _service(request)
    spec = projects.ProjectSpec(**body.model_dump())
    with svc.write() as session:
        now = svc.clock()
        project = projects.create_project(session, spec, now=now, actor=_actor(request))
        active = keys.bootstrap_keys(session, project, svc.vault, now=now, actor=_actor(request))
        out = projects.project_to_json(project, svc.settings.public_url)
        out["active_kid"] = active.kid
        secrets = _shared_secrets(svc, keys.list_keys(session, project.id))
        if secrets is not None:
            out["secret_jwks"] = secrets
    TRANSITIONS.labels("created").inc(2)
    return out


# -- lists: keyset pages (domain/paging.py, http/listing.py); ``next_cursor`` (and a ``Link:
# rel="next"`` header) name the next page, ``null`` on the last one. -----------------------


@router.get("/projects", responses={200: {"model": ProjectList}})
def list_projects(
    request: Request,
    response: Response,
    limit: PageSize = 100,
    cursor: Cursor = None,
    q: Search = None,
) -> JSON:
    """Projects oldest first, ``limit`` a page; ``q`` keeps the project with that id and
    those whose name starts with ``q`` (case ignored)."""
    svc = _service(request)
    with svc.read() as session:
        page = projects.page_projects(session, limit=limit, cursor=cursor, search=q or None)
        return {
            "projects": [projects.project_to_json(p, svc.settings.public_url) for p in page.rows],
            "next_cursor": paged(request, response, page.next_cursor),
        }


@router.get("/projects/{project_id}", responses={200: {"model": ProjectOut}})
def get_project(request: Request, project_id: str) -> JSON:
    svc = _service(request)
    with svc.read() as session:
        project = projects.get_project(session, project_id)
        return projects.project_to_json(project, svc.settings.public_url)


@router.patch("/projects/{project_id}", responses={200: {"model": ProjectOut}})
def update_project(request: Request, project_id: str, body: ProjectUpdate) -> JSON:
    svc = _service(request)
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    for name in NOT_NULL:
        if name in changes and changes[name] is None:
            raise InvalidInput(f"{name} cannot be null", field=name)
    with svc.write() as session:
        project = projects.update_project(
            session, project_id, changes, now=svc.clock(), actor=_actor(request)
        )
        return projects.project_to_json(project, svc.settings.public_url)


@router.delete("/projects/{project_id}", status_code=204)
def delete_project(request: Request, project_id: str) -> Response:
    svc = _service(request)
    with svc.write() as session:
        held = [k for k in keys.list_keys(session, project_id) if k.key_handle]
        projects.delete_project(session, project_id, now=svc.clock(), actor=_actor(request))
    for key in held:  # keys in a token (HSM) go with their project, once that is committed
        try:
            if isinstance(svc.vault, Keyring):
                svc.vault.destroy(key)
        except KeyUnavailable as exc:
            log.warning("project %s: key %s not destroyed: %s", project_id, key.kid, exc.code)
    return Response(status_code=204)


@router.get("/projects/{project_id}/keys")
def list_keys(
    request: Request,
    response: Response,
    project_id: str,
    limit: PageSize = 100,
    cursor: Cursor = None,
    order: Literal["oldest", "newest"] = "oldest",
) -> JSON:
    """The project's keys oldest (``order=newest``: newest) first, revoked ones included,
    with their state and timestamps (public parts only), ``limit`` a page."""
    svc = _service(request)
    with svc.read() as session:
        project = projects.get_project(session, project_id)
        page = keys.page_keys(
            session, project_id, limit=limit, cursor=cursor, newest_first=order == "newest"
        )
        rows = page.rows
        published = [
            k for k in keys.list_keys(session, project_id) if k.state in keys.PUBLISHED_STATES
        ]
        sched = {s.kid: s for s in keys.schedule(project, published, svc.settings.clock_skew)}
        out = []
        for row in rows:
            item = keys.key_to_json(row)
            s = sched.get(row.kid)
            item["activates_at"] = isoformat(s.activates_at) if s else None
            item["retires_at"] = isoformat(s.retires_at) if s else None
            out.append(item)
        return {"keys": out, "next_cursor": paged(request, response, page.next_cursor)}


@router.post("/projects/{project_id}/keys", status_code=201)
def create_key(request: Request, project_id: str, body: KeyCreate) -> JSON:
    """``mode=replace``: new key active now, old active key revoked now (needs
    ``confirm_invalidate=true`` when one exists). ``mode=next``: pre-publish a next key."""
    svc = _service(request)
    with svc.write() as session:
        if body.mode == "replace":
            key = keys.replace_now(
                session,
                project_id,
                svc.vault,
                now=svc.clock(),
                actor=_actor(request),
                alg=body.alg,
                confirm_invalidate=body.confirm_invalidate,
            )
        else:
            key = keys.add_next_key(
                session,
                project_id,
                svc.vault,
                now=svc.clock(),
                actor=_actor(request),
                alg=body.alg,
            )
        out = keys.key_to_json(key)
        secrets = _shared_secrets(svc, [key])
    TRANSITIONS.labels(body.mode).inc()
    created = {
        "kid": out["kid"],
        "created_at": out["created_at"],
        "state": out["state"],
        "alg": out["alg"],
        "public_jwk": out["public_jwk"],
        "backend": out["backend"],
    }
    if secrets is not None:
        created["secret_jwk"] = secrets["keys"][0]
    return created


@router.get("/projects/{project_id}/keys/latest")
def latest_key(request: Request, project_id: str) -> JSON:
    svc = _service(request)
    with svc.read() as session:
        projects.get_project(session, project_id)
        key = keys.latest_key(session, project_id)
        return {"kid": key.kid, "created_at": isoformat(key.created_at), "state": key.state}


@router.post("/projects/{project_id}/keys/rotate")
def rotate_keys(request: Request, project_id: str, body: RotateBody | None = None) -> JSON:
    """Graceful rotation; 409 with ``earliest_safe_at`` if it would break a token."""
    svc = _service(request)
    emergency = body.emergency if body else False
    with svc.write() as session:
        result = keys.rotate(
            session,
            project_id,
            svc.vault,
            now=svc.clock(),
            actor=_actor(request),
            emergency=emergency,
        )
    TRANSITIONS.labels("rotate").inc()
    return {"active": result.active, "retiring": result.retiring, "next": result.next}


@router.post("/projects/{project_id}/keys/{kid}/revoke")
def revoke_key(request: Request, project_id: str, kid: str, body: RevokeBody | None = None) -> JSON:
    svc = _service(request)
    emergency = body.emergency if body else False
    with svc.write() as session:
        key = keys.revoke_key(
            session,
            project_id,
            kid,
            svc.vault,
            now=svc.clock(),
            actor=_actor(request),
            clock_skew=svc.settings.clock_skew,
            emergency=emergency,
        )
        out = keys.key_to_json(key)
    TRANSITIONS.labels("revoke").inc()
    return out


def _scope(scope: str | None) -> str | None:
    """The scope tokens once each, in a stable order (as a client's scopes are stored)."""
    return " ".join(sorted(set(scope.split()))) if scope else None


@router.post("/projects/{project_id}/tokens", responses={200: {"model": TokenOut}})
def mint_token(request: Request, project_id: str, body: TokenMint) -> JSON:
    """Mint an access token for a trusted backend, within the project's maximum lifetime."""
    svc = _service(request)
    extra = body.claims or {}
    check_extra_claims(extra)
    known = svc.state.projects.get(project_id)
    # The status index comes from this replica's block (reserved first if none is left,
    # outside the signing transaction).
    slot = svc.state.status.slot(project_id) if known and known.token_status else None
    if known is not None and known.signer is None and known.open_error is not None:
        # (reading .signer opened the key, outside the signing transaction: the first
        # signature reserves its exp mark in a transaction of its own)
        raise known.open_error
    with svc.db.session() as session, session.begin():
        project = projects.get_project(session, project_id)
        ttl = body.ttl if body.ttl is not None else project.token_ttl
        if ttl > project.max_token_ttl:
            raise InvalidInput(f"ttl must not exceed {project.max_token_ttl}", field="ttl")
        view = svc.state.projects.get(project_id)
        if (
            view is None
            or view.signer is None
            or view.token_signer is None
            or view.signer_key_id is None
        ):
            raise NotFound("this project has no active signing key", code="no_active_key")
        now = svc.clock()
        aud = extra.get("aud", project.audience)
        claims = {k: v for k, v in extra.items() if k != "aud"}
        jti = new_jti() if slot is None else new_jti(slot.list_id, slot.idx)
        try:
            # RFC 9068 §2.2: client_id is required; the caller of the admin API is the client.
            token, exp = mint(
                view.token_signer,
                issuer=issuer_for(svc.settings.public_url, project.id),
                audience=aud,
                subject=body.sub,
                ttl=ttl,
                now=now,
                extra=claims,
                jti=jti,
                sid=body.sid,
                client_id=_actor(request),
                scope=_scope(body.scope),
                status=None if slot is None else (slot.uri, slot.idx),
            )
        except (TypeError, ValueError) as exc:
            raise InvalidInput("claims must be JSON values", field="claims") from exc
        except KeyUnavailable as exc:
            svc.state.key_alarm(project_id, exc, backend=view.signer.backend)
            raise
        keys.raise_max_exp(session, view.signer_key_id, exp)
        if slot is not None:
            revocation.record_issued_now(
                session,
                revocation.Issued(
                    project_id,
                    jti,
                    slot.list_id,
                    slot.idx,
                    body.sub,
                    body.sid,
                    None,
                    now_ms(),
                    exp,
                    0,
                ),
                now=now,
                clock_skew=svc.settings.clock_skew,
                list_ttl=svc.settings.status_list_ttl,
            )
        audit.record(
            session,
            now=now,
            actor=_actor(request),
            action="token.minted",
            project_id=project_id,
            kid=view.signer.kid,
            detail={"sub": body.sub, "exp": exp},
            bump=False,
        )
    return {"access_token": token, "token_type": "Bearer", "expires_in": ttl}


@router.post(
    "/projects/{project_id}/clients", status_code=201, responses={201: {"model": ClientOut}}
)
def create_client(request: Request, project_id: str, body: ClientCreate) -> JSON:
    """Create an OAuth client; ``client_secret`` appears in this response only."""
    svc = _service(request)
    with svc.write() as session:
        client, secret = clients.create_client(
            session,
            project_id,
            name=body.name,
            scopes=body.scopes,
            now=svc.clock(),
            actor=_actor(request),
        )
        out = clients.client_to_json(client)
    out["client_secret"] = secret
    return out


@router.get("/projects/{project_id}/clients", responses={200: {"model": ClientList}})
def list_clients(
    request: Request,
    response: Response,
    project_id: str,
    limit: PageSize = 100,
    cursor: Cursor = None,
    q: Search = None,
) -> JSON:
    """The project's clients oldest first, ``limit`` a page; ``q`` keeps the client with
    that id and those whose name starts with ``q`` (case ignored)."""
    svc = _service(request)
    with svc.read() as session:
        page = clients.page_clients(
            session, project_id, limit=limit, cursor=cursor, search=q or None
        )
        return {
            "clients": [clients.client_to_json(c) for c in page.rows],
            "next_cursor": paged(request, response, page.next_cursor),
        }


@router.delete("/projects/{project_id}/clients/{client_id}", status_code=204)
def delete_client(request: Request, project_id: str, client_id: str) -> Response:
    svc = _service(request)
    with svc.write() as session:
        clients.delete_client(
            session, project_id, client_id, now=svc.clock(), actor=_actor(request)
        )
    return Response(status_code=204)


@router.get("/projects/{project_id}/events")
def list_events(
    request: Request,
    response: Response,
    project_id: str,
    limit: PageSize = 100,
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    cursor: Cursor = None,
) -> JSON:
    """The project's audit events, oldest first, ``after`` a sequence number (or from
    ``cursor``, the previous page's ``next_cursor``)."""
    svc = _service(request)
    with svc.read() as session:
        projects.get_project(session, project_id)
        stmt = select(AuditEvent).where(AuditEvent.project_id == project_id)
        if after:
            stmt = stmt.where(AuditEvent.seq > after)
        page: Page[AuditEvent] = keyset_page(
            session, stmt, "events", [AuditEvent.seq], limit=limit, cursor=cursor
        )
        return {
            "events": [audit.event_to_json(e) for e in page.rows],
            "next_cursor": paged(request, response, page.next_cursor),
        }


_KINDS = revocation.KINDS


@router.post("/projects/{project_id}/revocations", status_code=201)
def create_revocation(request: Request, project_id: str, body: RevocationCreate) -> JSON:
    """Mark every live token matching exactly one of ``jti``, ``sub``, ``sid``, ``client_id``
    INVALID (or ``suspended``; ``valid`` lifts a suspension). Answers how many live tokens
    changed and ``effective_by``: when every verifier honouring the list's ``ttl`` sees it.
    Tokens signed on any replica before this answer are caught, even those not yet recorded."""
    svc = _service(request)
    chosen = [(k, getattr(body, k)) for k in _KINDS if getattr(body, k) is not None]
    if len(chosen) != 1:
        raise InvalidInput("give exactly one of jti, sub, sid, client_id", field="jti")
    kind, value = chosen[0]
    svc.state.status.flush()  # this replica's pending issuance records first
    with svc.db.session() as session, session.begin():
        now = svc.clock()
        rule = revocation.revoke(
            session,
            project_id,
            kind,
            value,
            status=body.status,
            now=now,
            actor=_actor(request),
            clock_skew=svc.settings.clock_skew,
            effective_by=revocation.effective_time(
                now, svc.settings.status_list_ttl, svc.settings.sync_interval
            ),
        )
        out = revocation.revocation_to_json(rule, now)
    svc.state.status.refresh()  # re-sign the lists that changed, here, now
    return out


@router.get("/projects/{project_id}/revocations")
def list_revocations(
    request: Request,
    response: Response,
    project_id: str,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$")] = None,
) -> JSON:
    """Revocations, newest first; pass ``next_cursor`` as ``cursor`` for the next page."""
    svc = _service(request)
    with svc.read() as session:
        projects.get_project(session, project_id)
        rows = revocation.list_revocations(
            session, project_id, limit=limit, before=int(cursor) if cursor else None
        )
    now = svc.clock()
    more = str(rows[-1].id) if len(rows) == limit else None
    return {
        "revocations": [revocation.revocation_to_json(r, now) for r in rows],
        "next_cursor": paged(request, response, more),
    }


@router.get("/projects/{project_id}/tokens")
def find_tokens(
    request: Request,
    project_id: str,
    sub: Annotated[str | None, Query(min_length=1, max_length=255)] = None,
    sid: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    client_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    jti: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> JSON:
    """Live tokens (with a status) matching exactly one of ``sub``, ``sid``, ``client_id``,
    ``jti``, newest first. Tokens signed in the last second may not be recorded yet."""
    svc = _service(request)
    given = {"sub": sub, "sid": sid, "client_id": client_id, "jti": jti}
    chosen = [(k, v) for k, v in given.items() if v is not None]
    if len(chosen) != 1:
        raise InvalidInput("give exactly one of sub, sid, client_id, jti", field="sub")
    svc.state.status.flush()
    with svc.read() as session:
        project = projects.get_project(session, project_id)
        rows = revocation.find_tokens(
            session,
            project_id,
            chosen[0][0],
            chosen[0][1],
            now=svc.clock(),
            clock_skew=svc.settings.clock_skew,
            limit=limit,
        )
        issuer = issuer_for(svc.settings.public_url, project.id)
        return {"tokens": [revocation.token_to_json(row, n, issuer) for row, n in rows]}


class _MethodNotAllowed:
    """The last route of each admin path, for the methods the path does not have: 405 with
    an ``Allow`` header that lists every method of the path (RFC 9110 §15.5.6). Starlette's
    own 405 names only the methods of the first route of the path (``Allow: POST`` for
    ``GET``/``POST`` ``/projects``). The router's routes are looked up per request, so a
    route added to it after this one is still reached, never shadowed."""

    def __init__(self, api: APIRouter) -> None:
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        allowed: set[str] = set()
        for route in self.api.routes:
            if not isinstance(route, Route) or route.endpoint is self:
                continue
            match, child = route.matches(scope)
            if match is Match.FULL:
                scope.update(child)
                await route.handle(scope, receive, send)
                return
            if match is Match.PARTIAL and route.methods:
                allowed.update(route.methods)
        response = Response(
            b'{"error":"method_not_allowed","message":"Method Not Allowed"}',
            status_code=405,
            headers={"Allow": ", ".join(sorted(allowed))},
            media_type="application/json",
        )
        await response(scope, receive, send)


def answer_405_with_allow(api: APIRouter) -> None:
    """Give each path of ``api`` a last route (:class:`_MethodNotAllowed`) that answers the
    methods the path does not have; call it once all of ``api``'s routes are defined."""
    handler = _MethodNotAllowed(api)
    for path in sorted({r.path for r in api.routes if isinstance(r, Route)}):
        api.routes.append(Route(path, handler, include_in_schema=False))


answer_405_with_allow(router)
