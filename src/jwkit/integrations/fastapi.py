"""FastAPI: a bearer-token dependency that verifies with ``verify_async``.

::

    auth = BearerAuth(Verifier.from_jwks_url("https://issuer.example/.well-known/jwks.json"))

    @app.get("/me")
    async def me(claims: Annotated[Claims, Depends(auth)]) -> dict[str, str]: ...

:class:`BearerAuth` is a FastAPI security scheme, so the OpenAPI document gains an HTTP bearer
scheme (``bearerFormat: JWT``) and the docs page gets its Authorize button. Per-route scopes
come from ``auth.with_scopes("admin")`` or FastAPI's ``Security(auth, scopes=["admin"])``.

Refusals are the shared ones (401 / 403 / 503, JSON body, RFC 6750 ``WWW-Authenticate``). They
are raised as :class:`BearerAuthError`, whose exception handler :class:`BearerAuth` registers
on the running app by itself; :func:`install` does it explicitly.
"""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import FastAPI
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.responses import Response
from fastapi.security.base import SecurityBase
from fastapi.security.oauth2 import SecurityScopes
from starlette.exceptions import HTTPException, WebSocketException
from starlette.requests import HTTPConnection, Request

from jwkit.integrations._common import (
    DEFAULT_REALM,
    Authenticator,
    Denial,
    ErrorResponses,
    TokenVerifier,
    asgi_authorization,
    normalize_scopes,
)
from jwkit.jose.jwt import Claims

__all__ = ["BearerAuth", "BearerAuthError", "handle_bearer_error", "install"]


class BearerAuthError(HTTPException):
    """A refused request; :func:`handle_bearer_error` renders it."""

    def __init__(self, denial: Denial) -> None:
        super().__init__(denial.status, detail=denial.code, headers=denial.headers)
        self.denial = denial


async def handle_bearer_error(request: Request, exc: Exception) -> Response:
    """The exception handler for :class:`BearerAuthError`: the configured JSON body."""
    if not isinstance(exc, BearerAuthError):  # pragma: no cover - registered for that class
        raise exc
    denial = exc.denial
    return Response(
        denial.body_bytes(),
        status_code=denial.status,
        headers=denial.headers,
        media_type="application/json",
    )


def install(app: FastAPI) -> None:
    """Register :func:`handle_bearer_error` on ``app`` (done on first use if you do not)."""
    app.add_exception_handler(BearerAuthError, handle_bearer_error)


def _ensure_handler(conn: HTTPConnection) -> None:
    # Starlette's ExceptionMiddleware puts its handler table in the scope; the route looks the
    # handler up there when the exception is raised, so adding ours here takes effect at once.
    handlers = conn.scope.get("starlette.exception_handlers")
    if isinstance(handlers, tuple) and handlers and isinstance(handlers[0], dict):
        handlers[0].setdefault(BearerAuthError, handle_bearer_error)


class BearerAuth(SecurityBase):
    """A dependency that returns the verified :class:`~jwkit.Claims` of the request.

    ``scopes`` are required of every token (all of them, RFC 6749 §3.3 scope tokens); routes may
    add more with :meth:`with_scopes` or ``Security(auth, scopes=[...])``. ``realm`` and
    ``responses`` shape the refusals. The claims are also stored in
    ``request.scope["jwkit.claims"]`` and ``request.state.claims``.
    """

    def __init__(
        self,
        verifier: TokenVerifier,
        *,
        scopes: str | Iterable[str] | None = None,
        realm: str = DEFAULT_REALM,
        responses: ErrorResponses | None = None,
        scheme_name: str = "BearerAuth",
        description: str | None = None,
    ) -> None:
        self.authenticator = Authenticator(
            verifier, scopes=scopes, realm=realm, responses=responses
        )
        self.model = HTTPBearerModel(bearerFormat="JWT", description=description)
        self.scheme_name = scheme_name

    @property
    def scopes(self) -> frozenset[str]:
        """The scopes every token must hold."""
        return self.authenticator.scopes

    def with_scopes(self, *scopes: str) -> BearerAuth:
        """A dependency with the same verifier and scheme that also requires ``scopes``."""
        a = self.authenticator
        return BearerAuth(
            a.verifier,
            scopes=a.scopes | normalize_scopes(scopes),
            realm=a.realm,
            responses=a.responses,
            scheme_name=self.scheme_name,
            description=self.model.description,
        )

    async def __call__(self, conn: HTTPConnection, security_scopes: SecurityScopes) -> Claims:
        required = self.authenticator.scopes
        if security_scopes.scopes:
            required = required | normalize_scopes(security_scopes.scopes)
        header = asgi_authorization(conn.scope["headers"])
        result = await self.authenticator.check_async(header, required)
        if isinstance(result, Denial):
            if conn.scope["type"] == "websocket":
                # RFC 6455 §7.4.1: 1008 policy violation; before accept() the server answers 403.
                raise WebSocketException(code=1008, reason=result.code)
            _ensure_handler(conn)
            raise BearerAuthError(result)
        scope = conn.scope
        scope["jwkit.claims"] = result
        state = scope.setdefault("state", {})
        if isinstance(state, dict):
            state["claims"] = result
        return result
