"""The console's routes: login/logout and the server-rendered pages.

Pages read through the admin API's own handlers (:mod:`jwkit.service.http.admin`,
:mod:`jwkit.service.http.inspect`), called in-process with the page's request, so there is no
second code path to the database; every change is made by the browser calling ``/api/v1`` with
the session cookie and the ``X-CSRF-Token`` header.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from jwkit.service.domain.admins import SessionInfo, secrets_equal
from jwkit.service.domain.common import ServiceError
from jwkit.service.domain.projects import SUPPORTED_ALGORITHMS
from jwkit.service.domain.tokens import RESERVED_CLAIMS
from jwkit.service.http import admin, inspect, migration
from jwkit.service.http.auth import SESSION_COOKIE, AdminAuth, get_auth
from jwkit.service.http.console.lockout import LoginThrottle, client_key
from jwkit.service.http.console.snippets import snippets_for
from jwkit.service.http.console.timeline import build_timeline
from jwkit.service.runtime import Service

__all__ = ["LOGIN_CSRF_COOKIE", "router", "security_headers"]

log = logging.getLogger("jwkit.service.console")
HERE = Path(__file__).parent
LOGIN_CSRF_COOKIE = "jwkit_login_csrf"
_MAX_FIELD = 1024
ASSET_VERSION = "1"

_env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
templates = Jinja2Templates(env=_env)

router = APIRouter(prefix="/console", include_in_schema=False)

_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def security_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = _CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def _secure(request: Request) -> bool:
    return _service(request).settings.public_url.startswith("https://")


def _throttle(request: Request) -> LoginThrottle:
    throttle: LoginThrottle = request.app.state.console_throttle
    return throttle


def _render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    context.setdefault("asset_version", ASSET_VERSION)
    response = templates.TemplateResponse(request, name, context, status_code=status)
    return security_headers(response)


def _to_login() -> Response:
    return security_headers(RedirectResponse("/console/login", status_code=303))


async def _session(request: Request) -> SessionInfo | None:
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie or len(cookie) > 200:
        return None
    info = await run_in_threadpool(get_auth(request).get_session, cookie)
    if info is not None:
        request.state.admin = info.username
    return info


def _base(info: SessionInfo, **extra: Any) -> dict[str, Any]:
    return {"user": info.username, "csrf": info.csrf_token, **extra}


def _error_page(request: Request, info: SessionInfo, exc: ServiceError) -> Response:
    return _render(
        request,
        "error.html",
        _base(info, status=exc.status, message=exc.message),
        status=exc.status,
    )


# -- login / logout --------------------------------------------------------------------------


def _login_page(
    request: Request,
    *,
    error: str | None = None,
    status: int = 200,
    username: str = "",
    retry_after: int = 0,
) -> Response:
    token = secrets.token_urlsafe(32)
    response = _render(
        request,
        "login.html",
        {"login_csrf": token, "error": error, "username": username},
        status=status,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=3600,
        path="/console/login",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    if retry_after:
        response.headers["Retry-After"] = str(retry_after)
    return response


@router.get("/login")
async def login_form(request: Request) -> Response:
    if await _session(request) is not None:
        return security_headers(RedirectResponse("/console/projects", status_code=303))
    return _login_page(request)


def _field(form: Any, name: str) -> str:
    value = form.get(name)
    if value is None or isinstance(value, UploadFile):
        return ""
    return str(value)[: _MAX_FIELD + 1]


@router.post("/login")
async def login_submit(request: Request) -> Response:
    """Check the login CSRF pair, take a password slot, reserve the attempt against the
    lockout, then check the argon2 password; start a session."""
    try:
        form = await request.form(max_files=0, max_fields=10)
    except Exception:  # malformed body: treat as an empty form
        form = None
    username = _field(form, "username").strip() if form is not None else ""
    password = _field(form, "password") if form is not None else ""
    supplied = _field(form, "csrf_token") if form is not None else ""
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not supplied or not expected or not secrets_equal(expected, supplied):
        return _login_page(
            request,
            status=403,
            username=username[:200],
            error="The login form expired or was not sent by this page. Please try again.",
        )
    address = client_key(request.client.host if request.client else None)
    slots = get_auth(request).password_slots
    if not slots.take():  # bound the argon2 work anyone, known or not, can start at once
        log.warning("console login refused: %d password checks already running", slots.size)
        return _login_page(
            request,
            status=503,
            username=username[:200],
            retry_after=1,
            error="The console is busy checking other logins. Try again in a moment.",
        )
    try:
        return await _password_login(request, address, username, password)
    except SQLAlchemyError as exc:  # fail closed: no unthrottled guess, no stack trace
        log.warning("console login refused, database unavailable: %s", type(exc).__name__)
        return _login_page(
            request,
            status=503,
            username=username[:200],
            retry_after=5,
            error="The console cannot reach its database, so logins are "
            "refused for now. Try again shortly.",
        )
    finally:
        slots.give_back()


def _too_many(request: Request, username: str, wait: int) -> Response:
    return _login_page(
        request,
        status=429,
        username=username[:200],
        retry_after=wait,
        error=f"Too many failed attempts. Try again in {wait} seconds.",
    )


async def _password_login(request: Request, address: str, username: str, password: str) -> Response:
    """Reserve the attempt (refused while locked), then check the argon2 password; start a
    session. Database errors propagate."""
    throttle = _throttle(request)
    attempt = await run_in_threadpool(throttle.reserve, address, username)
    if not attempt.allowed:
        return _too_many(request, username, attempt.retry_after)
    auth: AdminAuth = get_auth(request)
    ok = False
    if username and password and len(password) <= _MAX_FIELD and len(username) <= 200:
        ok = await run_in_threadpool(auth.authenticate_password, username, password)
    if not ok:
        log.warning("console login failed for a user from %s", address)
        if attempt.retry_after:
            return _too_many(request, username, attempt.retry_after)
        return _login_page(
            request, status=401, username=username[:200], error="Wrong username or password."
        )
    await run_in_threadpool(throttle.success, address, username)
    session_id, _csrf = await run_in_threadpool(auth.create_session, username)
    response = RedirectResponse("/console/projects", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=_service(request).settings.session_ttl,
        path="/",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/console/login")
    return security_headers(response)


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session (CSRF-checked form post) and clear the cookie."""
    info = await _session(request)
    if info is None:
        return _to_login()
    try:
        form = await request.form(max_files=0, max_fields=10)
        supplied = _field(form, "csrf_token")
    except Exception:
        supplied = ""
    if not supplied or not secrets_equal(info.csrf_token, supplied):
        return _render(
            request,
            "error.html",
            _base(info, status=403, message="Missing or wrong CSRF token."),
            status=403,
        )
    cookie = request.cookies.get(SESSION_COOKIE, "")
    await run_in_threadpool(get_auth(request).delete_session, cookie)
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=_secure(request)
    )
    return security_headers(response)


# -- pages -----------------------------------------------------------------------------------


@router.get("")
@router.get("/")
async def home(request: Request) -> Response:
    return security_headers(RedirectResponse("/console/projects", status_code=303))


@router.get("/projects")
async def projects_page(request: Request) -> Response:
    info = await _session(request)
    if info is None:
        return _to_login()
    data = await run_in_threadpool(admin.list_projects, request)
    return _render(
        request,
        "projects.html",
        _base(info, projects=data["projects"], algorithms=SUPPORTED_ALGORITHMS, nav="projects"),
    )


def _project_context(request: Request, project_id: str) -> dict[str, Any]:
    project = admin.get_project(request, project_id)
    key_list = admin.list_keys(request, project_id)["keys"]
    active = next((k for k in key_list if k["state"] == "active"), None)
    upcoming = next((k for k in key_list if k["state"] == "next"), None)
    # HS*: verifiers hold secrets shown once, so rotation needs a next secret an admin shared.
    pre_shared = str(project["algorithm"]).startswith("HS")
    return {
        "project": project,
        "keys": key_list,
        "active_key": active,
        "next_key": upcoming,
        "pre_shared": pre_shared,
    }


async def _project_page(
    request: Request,
    project_id: str,
    template: str,
    tab: str,
    more: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    **extra: Any,
) -> Response:
    """A project tab: session check, the project and its keys (plus ``more(ctx)``, loaded in
    the same worker thread), or the error page."""
    info = await _session(request)
    if info is None:
        return _to_login()

    def load() -> dict[str, Any]:
        ctx = _project_context(request, project_id)
        if more is not None:
            ctx.update(more(ctx))
        return ctx

    try:
        ctx = await run_in_threadpool(load)
    except ServiceError as exc:
        return _error_page(request, info, exc)
    ctx.update(extra)
    return _render(request, template, _base(info, nav="projects", tab=tab, **ctx))


@router.get("/projects/{project_id}")
async def project_page(request: Request, project_id: str) -> Response:
    return await _project_page(
        request,
        project_id,
        "project.html",
        "overview",
        more=lambda ctx: {"snippets": snippets_for(ctx["project"])},
    )


@router.get("/projects/{project_id}/keys")
async def keys_page(request: Request, project_id: str) -> Response:
    return await _project_page(
        request,
        project_id,
        "keys.html",
        "keys",
        more=lambda ctx: {
            "timeline": build_timeline(ctx["keys"], _service(request).clock()),
            "foreign_keys": migration.list_foreign_keys(request, project_id)["foreign_keys"],
        },
    )


@router.get("/projects/{project_id}/clients")
async def clients_page(request: Request, project_id: str) -> Response:
    return await _project_page(
        request,
        project_id,
        "clients.html",
        "clients",
        more=lambda ctx: {"clients": admin.list_clients(request, project_id)["clients"]},
    )


@router.get("/projects/{project_id}/tokens")
async def tokens_page(request: Request, project_id: str) -> Response:
    return await _project_page(
        request, project_id, "tokens.html", "tokens", reserved=sorted(RESERVED_CLAIMS)
    )


@router.get("/projects/{project_id}/sessions")
async def sessions_page(request: Request, project_id: str) -> Response:
    """Sessions and revocation: find live tokens, revoke, watch revocations propagate."""
    settings = _service(request).settings

    def recent(ctx: dict[str, Any]) -> dict[str, Any]:
        rows = admin.list_revocations(request, project_id, limit=20, cursor=None)["revocations"]
        for row in rows:
            row["by"] = next(k for k in ("jti", "sub", "sid", "client_id") if k in row)
            row["value"] = row[row["by"]]
        return {"revocations": rows}

    return await _project_page(
        request,
        project_id,
        "sessions.html",
        "sessions",
        more=recent,
        ttl=settings.status_list_ttl,
        sync=math.ceil(settings.sync_interval),
    )


_AUDIT_FILTERS = ("project_id", "action", "actor", "kid")
ACTION_PREFIXES = ("project.", "key.", "client.", "token.", "admin.")


def _audit_context(request: Request, filters: dict[str, str]) -> dict[str, Any]:
    events = inspect.audit_events(
        request, limit=200, before=None, **{k: (v or None) for k, v in filters.items()}
    )["events"]
    chain = inspect.audit_verify(request)
    names = [(p["id"], p["name"]) for p in admin.list_projects(request)["projects"]]
    return {
        "events": events,
        "chain": chain,
        "project_choices": names,
        "filters": filters,
        "actions": ACTION_PREFIXES,
    }


def _audit_filters(request: Request) -> dict[str, str]:
    return {name: request.query_params.get(name, "").strip()[:200] for name in _AUDIT_FILTERS}


@router.get("/audit")
async def audit_page(request: Request) -> Response:
    info = await _session(request)
    if info is None:
        return _to_login()
    filters = _audit_filters(request)
    ctx = await run_in_threadpool(_audit_context, request, filters)
    return _render(request, "audit.html", _base(info, nav="audit", **ctx))


@router.get("/projects/{project_id}/audit")
async def project_audit_page(request: Request, project_id: str) -> Response:
    """The audit log of one project, under the project's tabs."""
    filters = {**_audit_filters(request), "project_id": project_id}
    return await _project_page(
        request,
        project_id,
        "audit.html",
        "audit",
        more=lambda ctx: _audit_context(request, filters),
    )
