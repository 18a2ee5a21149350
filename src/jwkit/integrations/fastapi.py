"""FastAPI: a bearer-token dependency that verifies with ``verify_async``.

::

    auth = BearerAuth(Verifier.from_jwks_url("https://issuer.example/.well-known/jwks.json",
                                          audience="https://api.example"))

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
from functools import lru_cache

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
    asgi_context,
    bearer_token,
    normalize_scopes,
    refuse_bound,
    require_scopes,
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
        # FastAPI's own dependency machinery costs more per request than this method (see
        # docs/integrations.md); here Authenticator.check_async() is inlined so that a
        # token-cache hit adds no coroutine layer, call or result object beyond the verifier's.
        auth = self.authenticator
        required = auth.scopes
        if security_scopes.scopes:  # Security(auth, scopes=[...]) on the route
            required = _with_route_scopes(required, tuple(security_scopes.scopes))
        scope = conn.scope
        header = None
        try:
            if auth.dpop is not None:  # RFC 9449: Authorization: DPoP and a DPoP proof
                header = asgi_authorization(scope["headers"])
                claims = await auth.authenticate_async(header, required, asgi_context(scope))
            else:
                claims = await auth.verifier.verify_async(
                    bearer_token(asgi_authorization(scope["headers"]))
                )
                if "cnf" in claims:
                    refuse_bound(claims)
                if required:
                    require_scopes(claims, required)
        except Exception as exc:  # every failure is mapped to a response, none is a 500
            denial = auth.deny(exc, header)
            if scope["type"] == "websocket":
                # RFC 6455 §7.4.1: 1008 policy violation; before accept() the server answers 403.
                raise WebSocketException(code=1008, reason=denial.code) from None
            _ensure_handler(conn)
            raise BearerAuthError(denial) from None
        scope["jwkit.claims"] = claims
        state = scope.get("state")
        if state is None:
            scope["state"] = {"claims": claims}
        elif isinstance(state, dict):
            state["claims"] = claims
        return claims


@lru_cache(maxsize=256)
def _with_route_scopes(base: frozenset[str], route: tuple[str, ...]) -> frozenset[str]:
    # Validated once per distinct route declaration, not per request. The keys come from the
    # app's Security(...) declarations, never from requests, so the cache stays small.
    return base | normalize_scopes(route)
