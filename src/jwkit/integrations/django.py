"""Django: a middleware configured from ``settings.JWKIT`` and a ``@require_token`` decorator.

::

    JWKIT = {"JWKS_URL": "https://issuer.example/.well-known/jwks.json",
             "EXCLUDE_PATHS": ["/health"]}
    MIDDLEWARE = [..., "jwkit.integrations.django.JWKitMiddleware"]

``settings.JWKIT`` keys (all optional but one key source):

=================  ==========================================================================
``VERIFIER``       a verifier, a zero-argument callable returning one, or its dotted path
``JWKS_URL``       else: ``Verifier.from_jwks_url(JWKS_URL, **VERIFIER_OPTIONS)``
``JWK_FILE``       else: ``Verifier.from_jwk_file(JWK_FILE, **VERIFIER_OPTIONS)``
``VERIFIER_OPTIONS`` keyword arguments for those constructors (issuer, audience, ...)
``SCOPES``         scopes every token must hold (a list or a space-separated string)
``REALM``          the ``WWW-Authenticate`` realm (default ``"api"``)
``EXCLUDE_PATHS``  paths the middleware lets through: exact, or every path under one ending in ``/``
``REQUIRED``       ``True`` (default): the middleware refuses requests without a token;
                   ``False``: it lets them through with ``request.claims = None`` (a token
                   that is sent is still verified) and views opt in with ``@require_token``
``RESPONSES``      an :class:`ErrorResponses`, or a dict of its fields
``DPOP``           ``True``, or a dict of :class:`~jwkit.verify.dpop.DPoPVerifier` options:
                   accept ``Authorization: DPoP`` with a ``DPoP`` proof (RFC 9449)
=================  ==========================================================================

Verified claims are in ``request.claims``. ``@require_token`` works on function views and
class-based views, sync and async; under the middleware it only adds its scope check.
Async paths verify with ``verify_async``.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar, overload

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings  # type: ignore[import-untyped]
from django.core.exceptions import ImproperlyConfigured  # type: ignore[import-untyped]
from django.core.signals import setting_changed  # type: ignore[import-untyped]
from django.http import HttpRequest, HttpResponse  # type: ignore[import-untyped]
from django.utils.module_loading import import_string  # type: ignore[import-untyped]
from django.views import View  # type: ignore[import-untyped]

from jwkit.integrations._common import (
    DEFAULT_REALM,
    Authenticator,
    Denial,
    ErrorResponses,
    NoToken,
    RequestContext,
    TokenVerifier,
    bearer_token,
    normalize_scopes,
    refuse_bound,
    require_scopes,
)
from jwkit.jose.jwt import Claims
from jwkit.verify.dpop import DPoPVerifier, NoCredentials
from jwkit.verify.fetch import InsecureURLError

__all__ = ["JWKitConfig", "JWKitMiddleware", "denial_response", "get_config", "require_token"]

V = TypeVar("V")
_KNOWN_KEYS = frozenset(
    {
        "VERIFIER",
        "DPOP",
        "JWKS_URL",
        "JWK_FILE",
        "VERIFIER_OPTIONS",
        "SCOPES",
        "REALM",
        "EXCLUDE_PATHS",
        "REQUIRED",
        "RESPONSES",
    }
)


def denial_response(denial: Denial) -> HttpResponse:
    """A Django response for a :class:`Denial`."""
    response = HttpResponse(
        denial.body_bytes(), status=denial.status, content_type="application/json"
    )
    for name, value in denial.headers.items():
        response[name] = value
    return response


def _build_verifier(conf: Mapping[str, Any]) -> TokenVerifier:
    options = dict(conf.get("VERIFIER_OPTIONS") or {})
    verifier = conf.get("VERIFIER")
    if verifier is not None:
        if isinstance(verifier, str):
            verifier = import_string(verifier)
        if not hasattr(verifier, "verify") and callable(verifier):
            verifier = verifier()
        if not hasattr(verifier, "verify"):
            raise ImproperlyConfigured("JWKIT['VERIFIER'] is not a verifier")
        checked: TokenVerifier = verifier
        return checked
    from jwkit.verify import Verifier

    built: TokenVerifier
    if conf.get("JWKS_URL"):
        built = Verifier.from_jwks_url(conf["JWKS_URL"], **options)
    elif conf.get("JWK_FILE"):
        built = Verifier.from_jwk_file(conf["JWK_FILE"], **options)
    else:
        raise ImproperlyConfigured("settings.JWKIT needs VERIFIER, JWKS_URL or JWK_FILE")
    return built


class JWKitConfig:
    """``settings.JWKIT``, read once (and again when a test overrides the setting)."""

    def __init__(self, conf: Mapping[str, Any]) -> None:
        if not isinstance(conf, Mapping):
            raise ImproperlyConfigured("settings.JWKIT must be a dict")
        unknown = set(conf) - _KNOWN_KEYS
        if unknown:
            raise ImproperlyConfigured(f"unknown settings.JWKIT keys: {sorted(unknown)}")
        try:
            responses = conf.get("RESPONSES")
            if isinstance(responses, Mapping):
                responses = ErrorResponses(**responses)
            verifier = _build_verifier(conf)
            dpop = conf.get("DPOP")
            if dpop and not isinstance(verifier, DPoPVerifier):
                verifier = DPoPVerifier(verifier, **(dpop if isinstance(dpop, Mapping) else {}))
            self.authenticator = Authenticator(
                verifier,
                scopes=conf.get("SCOPES"),
                realm=conf.get("REALM", DEFAULT_REALM),
                responses=responses,
            )
        except InsecureURLError as exc:
            switch = "set JWKIT['VERIFIER_OPTIONS'] = {'allow_insecure_http': True}"
            raise ImproperlyConfigured(f"settings.JWKIT: {exc.advice(switch)}") from exc
        except (TypeError, ValueError) as exc:
            raise ImproperlyConfigured(f"settings.JWKIT: {exc}") from exc
        paths = conf.get("EXCLUDE_PATHS", ())
        paths = [paths] if isinstance(paths, str) else list(paths)
        for path in paths:
            if not isinstance(path, str) or not path.startswith("/"):
                raise ImproperlyConfigured(f"JWKIT['EXCLUDE_PATHS']: not a path: {path!r}")
        self.exact = frozenset(p for p in paths if not p.endswith("/") or p == "/")
        self.prefixes = tuple(p for p in paths if p.endswith("/") and p != "/")
        self.required = bool(conf.get("REQUIRED", True))

    def is_excluded(self, path: str) -> bool:
        return path in self.exact or path.startswith(self.prefixes)


_lock = threading.Lock()
_config: JWKitConfig | None = None


def get_config() -> JWKitConfig:
    """The configuration built from ``settings.JWKIT`` (built on first use)."""
    global _config
    config = _config
    if config is None:
        with _lock:
            if _config is None:
                _config = JWKitConfig(getattr(settings, "JWKIT", {}))
            config = _config
    return config


def _reset(*, setting: str, **kwargs: Any) -> None:
    global _config
    if setting == "JWKIT":
        _config = None


setting_changed.connect(_reset, dispatch_uid="jwkit.integrations.django.reset")


def _header(request: HttpRequest) -> str | None:
    value = request.META.get("HTTP_AUTHORIZATION")
    return value if isinstance(value, str) else None


def _context(auth: Authenticator, request: HttpRequest) -> RequestContext | None:
    """The request's method, URL and DPoP proof when the verifier takes DPoP (RFC 9449)."""
    if auth.dpop is None:
        return None
    proof = request.META.get("HTTP_DPOP")  # several headers arrive joined by ", "
    proofs = (proof,) if isinstance(proof, str) else ()
    return RequestContext(request.method or "GET", request.build_absolute_uri(request.path), proofs)


class JWKitMiddleware:
    """Verify the bearer token of every request not excluded; ``request.claims`` holds it."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
        get_config()  # a bad setting fails at startup, not on the first request

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        request.claims = None
        config = get_config()
        if config.is_excluded(request.path_info):
            return self.get_response(request)
        auth = config.authenticator
        header = _header(request)
        try:
            request.claims = auth.authenticate(header, None, _context(auth, request))
        except (NoToken, NoCredentials) as exc:
            if config.required:
                return denial_response(auth.deny(exc, header))
        except Exception as exc:  # every failure is mapped to a response, none is a 500
            return denial_response(auth.deny(exc, header))
        return self.get_response(request)

    async def __acall__(self, request: HttpRequest) -> Any:
        request.claims = None
        config = get_config()
        if config.is_excluded(request.path_info):
            return await self.get_response(request)
        auth = config.authenticator
        header = _header(request)
        try:
            request.claims = await auth.authenticate_async(header, None, _context(auth, request))
        except (NoToken, NoCredentials) as exc:
            if config.required:
                return denial_response(auth.deny(exc, header))
        except Exception as exc:  # every failure is mapped to a response, none is a 500
            return denial_response(auth.deny(exc, header))
        return await self.get_response(request)


def _verified(request: HttpRequest) -> Claims | None:
    claims = getattr(request, "claims", None)
    return claims if isinstance(claims, Claims) else None


def _check(request: HttpRequest, scopes: frozenset[str]) -> Denial | None:
    auth = get_config().authenticator
    required = auth.scopes | scopes
    claims = _verified(request)
    header = _header(request)
    try:
        if claims is None:
            request.claims = auth.authenticate(header, required, _context(auth, request))
        else:
            require_scopes(claims, required)
    except Exception as exc:  # every failure is mapped to a response, none is a 500
        return auth.deny(exc, header)
    return None


async def _check_async(request: HttpRequest, scopes: frozenset[str]) -> Denial | None:
    auth = get_config().authenticator
    required = auth.scopes | scopes
    claims = _verified(request)
    header = _header(request)
    try:
        if claims is None and auth.dpop is not None:
            claims = await auth.authenticate_async(header, required, _context(auth, request))
            request.claims = claims
        elif claims is None:
            token = bearer_token(header)
            claims = await auth.verifier.verify_async(token)
            if "cnf" in claims:
                refuse_bound(claims)
            request.claims = claims
        require_scopes(claims, required)
    except Exception as exc:  # every failure is mapped to a response, none is a 500
        return auth.deny(exc, header)
    return None


def _request_of(args: tuple[Any, ...]) -> HttpRequest:
    # A function view gets (request, ...); a method decorated with method_decorator too;
    # a plain method gets (self, request, ...).
    for arg in args[:2]:
        if isinstance(arg, HttpRequest):
            return arg
    raise TypeError("@require_token: the view was not called with a request")


def _wrap_function(fn: Callable[..., Any], scopes: frozenset[str]) -> Callable[..., Any]:
    if iscoroutinefunction(fn) or inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_view(*args: Any, **kwargs: Any) -> Any:
            denial = await _check_async(_request_of(args), scopes)
            if denial is not None:
                return denial_response(denial)
            return await fn(*args, **kwargs)

        return async_view

    @functools.wraps(fn)
    def sync_view(*args: Any, **kwargs: Any) -> Any:
        denial = _check(_request_of(args), scopes)
        if denial is not None:
            return denial_response(denial)
        return fn(*args, **kwargs)

    return sync_view


def _wrap_class(cls: type[View], scopes: frozenset[str]) -> type[View]:
    dispatch = cls.dispatch

    if cls.view_is_async:

        async def async_dispatch(
            self: View, request: HttpRequest, *args: Any, **kwargs: Any
        ) -> Any:
            denial = await _check_async(request, scopes)
            if denial is not None:
                return denial_response(denial)
            return await dispatch(self, request, *args, **kwargs)

        cls.dispatch = functools.wraps(dispatch)(async_dispatch)
        return cls

    def sync_dispatch(self: View, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        denial = _check(request, scopes)
        if denial is not None:
            return denial_response(denial)
        return dispatch(self, request, *args, **kwargs)

    cls.dispatch = functools.wraps(dispatch)(sync_dispatch)
    return cls


@overload
def require_token(view: V, /) -> V: ...


@overload
def require_token(
    view: None = None, /, *, scopes: str | Iterable[str] | None = None
) -> Callable[[V], V]: ...


def require_token(
    view: V | None = None, /, *, scopes: str | Iterable[str] | None = None
) -> V | Callable[[V], V]:
    """Protect a function view or a class-based view (sync or async).

    ``scopes`` are required in addition to ``JWKIT["SCOPES"]``. Used bare
    (``@require_token``) or with arguments (``@require_token(scopes="admin")``).
    """
    required = normalize_scopes(scopes)

    def decorate(target: V) -> V:
        if isinstance(target, type) and issubclass(target, View):
            return _wrap_class(target, required)  # type: ignore[return-value]
        if not callable(target):
            raise TypeError("@require_token decorates a view function or a View class")
        return _wrap_function(target, required)  # type: ignore[return-value]

    if view is not None:
        return decorate(view)
    return decorate
