"""Starlette and any ASGI app: a bearer-token middleware and an ``AuthenticationBackend``.

The middleware protects every path but the excluded ones::

    app = Starlette(routes=..., middleware=[
        Middleware(BearerAuthMiddleware, verifier=verifier, exclude_paths=["/health"]),
    ])

and stores the verified claims in ``scope["jwkit.claims"]`` and ``request.state.claims``.
It is plain ASGI, so it wraps any ASGI application.

The backend plugs into Starlette's own ``AuthenticationMiddleware`` (``request.user``,
``request.auth.scopes``, ``@requires``): :func:`authentication_middleware` builds it with the
jwkit error responses.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    BaseUser,
)
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from jwkit.integrations._common import (
    DEFAULT_REALM,
    Authenticator,
    Denial,
    ErrorResponses,
    NoToken,
    TokenVerifier,
    asgi_authorization,
    asgi_context,
    bearer_token,
    refuse_bound,
    require_scopes,
)
from jwkit.jose.jwt import Claims
from jwkit.verify.dpop import NoCredentials

__all__ = [
    "BearerAuthBackend",
    "BearerAuthMiddleware",
    "BearerAuthenticationError",
    "TokenUser",
    "authentication_middleware",
    "authorization_header",
    "denial_response",
    "on_auth_error",
    "store_claims",
]

SCOPE_KEY = "jwkit.claims"


def authorization_header(scope: Scope) -> str | None:
    """The ``Authorization`` header of an ASGI scope (several are joined with ``", "``)."""
    return asgi_authorization(scope.get("headers", ()))


def denial_response(denial: Denial) -> Response:
    """A Starlette response for a :class:`Denial`."""
    return Response(
        denial.body_bytes(),
        status_code=denial.status,
        headers=denial.headers,
        media_type="application/json",
    )


def store_claims(scope: Scope, claims: Claims) -> None:
    """Put ``claims`` in ``scope["jwkit.claims"]`` and ``request.state.claims``."""
    scope[SCOPE_KEY] = claims
    state = scope.setdefault("state", {})
    if isinstance(state, dict):
        state["claims"] = claims


class BearerAuthMiddleware:
    """Pure ASGI middleware: refuse every request without an acceptable bearer token.

    ``exclude_paths`` lists paths served without a token: an entry matches that exact path, or,
    when it ends with ``/``, every path under it (``"/static/"``). Matching is on the decoded
    path below the app's ``root_path``; anything else is protected, so ``/health/`` is not
    ``/health``. ``exclude_methods`` (such as ``["OPTIONS"]`` for CORS preflights) pass too.
    WebSocket connections without an acceptable token are closed with code 1008 before they
    are accepted (the client sees HTTP 403).
    """

    def __init__(
        self,
        app: ASGIApp,
        verifier: TokenVerifier,
        *,
        scopes: str | Iterable[str] | None = None,
        exclude_paths: Iterable[str] = (),
        exclude_methods: Iterable[str] = (),
        realm: str = DEFAULT_REALM,
        responses: ErrorResponses | None = None,
    ) -> None:
        self.app = app
        self.authenticator = Authenticator(
            verifier, scopes=scopes, realm=realm, responses=responses
        )
        paths = [exclude_paths] if isinstance(exclude_paths, str) else list(exclude_paths)
        for path in paths:
            if not isinstance(path, str) or not path.startswith("/"):
                raise ValueError(f"an excluded path must start with '/': {path!r}")
        self._exact = frozenset(p for p in paths if not p.endswith("/") or p == "/")
        self._prefixes = tuple(p for p in paths if p.endswith("/") and p != "/")
        self._methods = frozenset(m.upper() for m in exclude_methods)
        # with nothing excluded (the common case) requests skip is_excluded() altogether
        self._excludes = bool(self._exact or self._prefixes or self._methods)

    def is_excluded(self, scope: Scope) -> bool:
        """Whether the request passes without a token."""
        if scope.get("method", "") in self._methods:
            return True
        path: str = scope.get("path", "")
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :] or "/"
        return path in self._exact or path.startswith(self._prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if (kind != "http" and kind != "websocket") or (self._excludes and self.is_excluded(scope)):
            await self.app(scope, receive, send)
            return
        # Authenticator.check_async() inlined, and store_claims() too: on a token-cache hit the
        # verification costs under a microsecond, and each extra coroutine layer, call or
        # result object on this path costs about as much (see benchmarks/http_auth.py).
        auth = self.authenticator
        header = None
        try:
            if auth.dpop is not None:  # RFC 9449: Authorization: DPoP and a DPoP proof
                header = asgi_authorization(scope.get("headers", ()))
                claims = await auth.authenticate_async(header, None, asgi_context(scope))
            else:
                token = bearer_token(asgi_authorization(scope.get("headers", ())))
                claims = await auth.verifier.verify_async(token)
                if "cnf" in claims:
                    refuse_bound(claims)
                if auth.scopes:
                    require_scopes(claims, auth.scopes)
        except Exception as exc:  # every failure is mapped to a response, none is a 500
            denial = auth.deny(exc, header)
        else:  # accepted; the app's own exceptions are not caught here
            scope[SCOPE_KEY] = claims
            state = scope.get("state")
            if state is None:
                scope["state"] = {"claims": claims}
            elif isinstance(state, dict):
                state["claims"] = claims
            await self.app(scope, receive, send)
            return
        if kind == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": denial.code})
        else:
            await denial_response(denial)(scope, receive, send)


class TokenUser(BaseUser):
    """``request.user`` for a verified token: its claims, named by ``sub``."""

    def __init__(self, claims: Claims) -> None:
        self.claims = claims

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.identity

    @property
    def identity(self) -> str:
        sub = self.claims.sub
        return sub if isinstance(sub, str) else ""


class BearerAuthenticationError(AuthenticationError):
    """A refused token; :func:`on_auth_error` renders its :class:`Denial`."""

    def __init__(self, denial: Denial) -> None:
        super().__init__(denial.code)
        self.denial = denial


class BearerAuthBackend(AuthenticationBackend):
    """A Starlette authentication backend for bearer tokens.

    No token leaves the request anonymous (``request.user.is_authenticated`` is false, so
    ``@requires`` refuses it); a refused token raises :class:`BearerAuthenticationError`.
    A verified token gives ``request.auth.scopes`` = the token's scopes and
    ``request.user`` = a :class:`TokenUser`; the claims are also stored like the middleware
    stores them.
    """

    def __init__(
        self,
        verifier: TokenVerifier,
        *,
        scopes: str | Iterable[str] | None = None,
        realm: str = DEFAULT_REALM,
        responses: ErrorResponses | None = None,
    ) -> None:
        self.authenticator = Authenticator(
            verifier, scopes=scopes, realm=realm, responses=responses
        )

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        auth = self.authenticator
        header = authorization_header(conn.scope)
        context = asgi_context(conn.scope) if auth.dpop is not None else None
        try:
            claims = await auth.authenticate_async(header, None, context)
        except (NoToken, NoCredentials):
            return None
        except Exception as exc:  # every failure is mapped to a response, none is a 500
            raise BearerAuthenticationError(auth.deny(exc, header)) from exc
        store_claims(conn.scope, claims)
        return AuthCredentials(sorted(claims.scopes)), TokenUser(claims)


def on_auth_error(conn: HTTPConnection, exc: AuthenticationError) -> Response:
    """``on_error`` for ``AuthenticationMiddleware``: the jwkit responses for jwkit errors."""
    if isinstance(exc, BearerAuthenticationError):
        return denial_response(exc.denial)
    return PlainTextResponse(str(exc), status_code=400)


def authentication_middleware(verifier: TokenVerifier, **options: Any) -> Middleware:
    """``Middleware(AuthenticationMiddleware, backend=BearerAuthBackend(...), on_error=...)``."""
    return Middleware(
        AuthenticationMiddleware,
        backend=BearerAuthBackend(verifier, **options),
        on_error=on_auth_error,
    )
