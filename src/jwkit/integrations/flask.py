"""Flask: an extension object and a ``@require_token`` decorator for sync and async views.

::

    jwkit = JWKit(app, Verifier.from_jwks_url("https://issuer.example/.well-known/jwks.json",
                                              audience="https://api.example"))

    @app.get("/me")
    @jwkit.require_token(scopes="read")
    def me(): return {"sub": g.claims.sub}

The module-level :func:`require_token` does the same with the extension registered on the
current app (``JWKit().init_app(app, verifier)`` in an app factory). The verified claims are
in ``flask.g.claims``; refusals are the shared 401 / 403 / 503 JSON responses.

Both sync and async views are supported. Verification always uses the verifier's sync path:
Flask runs each async view in a short-lived event loop of its own, so the sync path (and its
long-lived HTTP connection pool) is the right one there too.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, overload

from flask import Flask, Response, current_app, g, request

from jwkit.integrations._common import (
    DEFAULT_REALM,
    Authenticator,
    Denial,
    ErrorResponses,
    RequestContext,
    TokenVerifier,
    normalize_scopes,
)
from jwkit.jose.jwt import Claims

__all__ = ["EXTENSION_KEY", "JWKit", "denial_response", "require_token"]

EXTENSION_KEY = "jwkit"
"""Where :class:`JWKit` registers itself: ``app.extensions["jwkit"]``."""

F = TypeVar("F", bound=Callable[..., Any])


def denial_response(denial: Denial) -> Response:
    """A Flask response for a :class:`Denial`."""
    return Response(
        denial.body_bytes(),
        status=denial.status,
        headers=denial.headers,
        mimetype="application/json",
    )


def _authorization_header() -> str | None:
    return request.headers.get("Authorization")


class JWKit:
    """The Flask extension: a verifier plus the scopes, realm and responses to use with it.

    ``scopes`` are required by every protected view; a view may require more with
    ``require_token(scopes=...)``.
    """

    def __init__(
        self,
        app: Flask | None = None,
        verifier: TokenVerifier | None = None,
        *,
        scopes: str | Iterable[str] | None = None,
        realm: str = DEFAULT_REALM,
        responses: ErrorResponses | None = None,
    ) -> None:
        self._scopes = normalize_scopes(scopes)
        self._realm = realm
        self._responses = responses
        self._authenticator: Authenticator | None = None
        if verifier is not None:
            self._authenticator = self._build(verifier)
        if app is not None:
            self.init_app(app)

    def _build(self, verifier: TokenVerifier) -> Authenticator:
        return Authenticator(
            verifier, scopes=self._scopes, realm=self._realm, responses=self._responses
        )

    def init_app(self, app: Flask, verifier: TokenVerifier | None = None) -> None:
        """Register on ``app`` (``app.extensions["jwkit"]``); ``verifier`` may be given here."""
        if verifier is not None:
            self._authenticator = self._build(verifier)
        if self._authenticator is None:
            raise ValueError("JWKit needs a verifier, given to JWKit() or to init_app()")
        app.extensions[EXTENSION_KEY] = self

    @property
    def authenticator(self) -> Authenticator:
        if self._authenticator is None:
            raise RuntimeError("JWKit has no verifier yet: call init_app(app, verifier)")
        return self._authenticator

    def check(self, scopes: frozenset[str] | None = None) -> Claims | Denial:
        """Verify the current request; on success the claims are also put in ``g.claims``."""
        auth = self.authenticator
        required = auth.scopes if scopes is None else auth.scopes | scopes
        context = None
        if auth.dpop is not None:  # RFC 9449: the proof names the method and URL
            context = RequestContext(
                request.method, request.base_url, tuple(request.headers.getlist("DPoP"))
            )
        result = auth.check(_authorization_header(), required, context)
        if not isinstance(result, Denial):
            g.claims = result
        return result

    @overload
    def require_token(self, view: F, /) -> F: ...

    @overload
    def require_token(
        self, view: None = None, /, *, scopes: str | Iterable[str] | None = None
    ) -> Callable[[F], F]: ...

    def require_token(
        self, view: F | None = None, /, *, scopes: str | Iterable[str] | None = None
    ) -> F | Callable[[F], F]:
        """Protect a view with this extension (``@jwkit.require_token`` or with ``scopes=``)."""
        return _decorator(lambda: self, view, scopes)


def _current() -> JWKit:
    ext = current_app.extensions.get(EXTENSION_KEY)
    if not isinstance(ext, JWKit):
        raise RuntimeError("no JWKit extension on this app: call JWKit(app, verifier) first")
    return ext


def _decorator(
    get_ext: Callable[[], JWKit], view: F | None, scopes: str | Iterable[str] | None
) -> F | Callable[[F], F]:
    required = normalize_scopes(scopes)

    def decorate(fn: F) -> F:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_view(*args: Any, **kwargs: Any) -> Any:
                result = get_ext().check(required)
                if isinstance(result, Denial):
                    return denial_response(result)
                return await fn(*args, **kwargs)

            return async_view  # type: ignore[return-value]

        @functools.wraps(fn)
        def sync_view(*args: Any, **kwargs: Any) -> Any:
            result = get_ext().check(required)
            if isinstance(result, Denial):
                return denial_response(result)
            return fn(*args, **kwargs)

        return sync_view  # type: ignore[return-value]

    if view is not None:
        return decorate(view)
    return decorate


@overload
def require_token(view: F, /) -> F: ...


@overload
def require_token(
    view: None = None, /, *, scopes: str | Iterable[str] | None = None
) -> Callable[[F], F]: ...


def require_token(
    view: F | None = None, /, *, scopes: str | Iterable[str] | None = None
) -> F | Callable[[F], F]:
    """Protect a view with the :class:`JWKit` extension registered on the current app."""
    return _decorator(_current, view, scopes)
