"""Admin authentication for the JSON API and (later) the console.

Two ways in, checked by :func:`require_admin` (a FastAPI dependency) and by every route of the
admin router (:class:`AdminRoute`, which authenticates *before* the body is parsed, so an
anonymous caller gets 401, never a validation error):

1. ``Authorization: Bearer <admin token>`` — compared by SHA-256 against the stored hashes.
2. A console session: cookie ``jwkit_session`` (see :data:`SESSION_COOKIE`). Safe methods
   (GET/HEAD/OPTIONS) need only the cookie; unsafe ones also need header ``X-CSRF-Token``
   equal to the session's CSRF token, else 403.

For the console pages, :func:`get_auth` returns the app's :class:`AdminAuth`, with
``authenticate_password(username, password) -> bool`` (argon2id),
``create_session(username) -> (session_id, csrf_token)``, ``get_session(session_id)`` and
``delete_session(session_id)``. Set the cookie with ``HttpOnly; SameSite=Strict; Path=/``
(and ``Secure`` when ``public_url`` is https). All methods are synchronous (they touch the
database): call them from ``def`` routes or through ``run_in_threadpool``. Its
``password_slots`` (:class:`PasswordSlots`, ``JWKIT_LOGIN_CONCURRENCY``) bound the logins a
process handles at once.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from jwkit.service.domain import admins
from jwkit.service.runtime import Service

__all__ = [
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "AdminAuth",
    "AdminRoute",
    "PasswordSlots",
    "authenticate_request",
    "get_auth",
    "require_admin",
]

SESSION_COOKIE = "jwkit_session"
CSRF_HEADER = "X-CSRF-Token"
#: Largest admin request body accepted (bytes).
MAX_BODY = 1 << 20
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


class PasswordSlots:
    """At most ``size`` console logins handled at once in this process (each costs an argon2
    verification, ~64 MiB and tens of milliseconds of CPU, whether the user exists or not);
    :meth:`take` refuses rather than queues when all are taken. Used only from the event loop's
    thread, so a plain counter is enough."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._free = size

    def take(self) -> bool:
        if self._free <= 0:
            return False
        self._free -= 1
        return True

    def give_back(self) -> None:
        self._free = min(self.size, self._free + 1)


class AdminAuth:
    """Password checks and console sessions, backed by the database."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.password_slots = PasswordSlots(service.settings.login_concurrency)

    def authenticate_password(self, username: str, password: str) -> bool:
        if "\x00" in username:  # no such user; PostgreSQL text cannot even hold it
            username = ""  # so the lookup finds nobody and the dummy hash is verified
        with self.service.read() as session:
            return admins.verify_password(session, username, password)

    def create_session(self, username: str) -> tuple[str, str]:
        with self.service.db.session() as session, session.begin():
            return admins.create_session(
                session, username, now=self.service.clock(), ttl=self.service.settings.session_ttl
            )

    def get_session(self, session_id: str) -> admins.SessionInfo | None:
        with self.service.read() as session:
            return admins.get_session(session, session_id, now=self.service.clock())

    def delete_session(self, session_id: str) -> None:
        with self.service.db.session() as session, session.begin():
            admins.delete_session(session, session_id)


def get_auth(request: Request) -> AdminAuth:
    auth: AdminAuth = request.app.state.auth
    return auth


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(
        401,
        detail={"error": "unauthorized", "message": message},
        headers={"WWW-Authenticate": 'Bearer realm="jwkit-admin"'},
    )


async def authenticate_request(request: Request) -> str:
    """The admin username behind the request, else raise 401 (or 403 for a CSRF failure)."""
    service: Service = request.app.state.service
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() == "bearer" and token:
            user = service.state.admin_tokens.get(admins.hash_token(token))
            if user is not None:
                request.state.admin = user
                return user
        raise _unauthorized("invalid admin token")
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        info = await run_in_threadpool(get_auth(request).get_session, cookie)
        if info is not None:
            if request.method not in _SAFE and not admins.csrf_matches(
                info, request.headers.get(CSRF_HEADER)
            ):
                raise HTTPException(
                    403, detail={"error": "csrf_failed", "message": "missing or wrong CSRF token"}
                )
            request.state.admin = info.username
            return info.username
    raise _unauthorized("admin authentication required")


async def require_admin(request: Request) -> str:
    """FastAPI dependency: ``admin: Annotated[str, Depends(require_admin)]``."""
    return await authenticate_request(request)


class AdminRoute(APIRoute):
    """An API route that authenticates before FastAPI parses and validates the request."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            await authenticate_request(request)
            length = request.headers.get("content-length", "0")
            if not length.isdigit() or int(length) > MAX_BODY:
                raise HTTPException(
                    413,
                    detail={
                        "error": "payload_too_large",
                        "message": f"request bodies are limited to {MAX_BODY} bytes",
                    },
                )
            return await handler(request)

        return guarded
