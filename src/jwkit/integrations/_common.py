"""What every framework integration shares, written once.

* :func:`bearer_token` reads an ``Authorization`` header (RFC 6750 §2.1, RFC 7235 §2.1).
* :class:`ErrorResponses` holds the status codes and JSON bodies, configurable, with the
  defaults that hosted auth services' Express guides document.
* :class:`Authenticator` verifies a header with a verifier, checks the required scopes and
  turns every failure into a :class:`Denial`: status, JSON body and ``WWW-Authenticate``
  (RFC 6750 §3). Nothing about a token ever becomes a 500.

The framework modules only translate a :class:`Denial` into their own response type.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol
from urllib.parse import quote

from jwkit.errors import (
    DPoPRequired,
    InsufficientScope,
    InvalidDPoPProof,
    InvalidToken,
    JWKError,
    JWKitError,
    KeySourceError,
    MalformedToken,
    UseDPoPNonce,
)
from jwkit.verify.dpop import DPoPVerifier, NoCredentials, authorization_credentials, bound_jkt

if TYPE_CHECKING:
    from jwkit.jose.jwt import Claims

__all__ = [
    "DEFAULT_REALM",
    "Authenticator",
    "Denial",
    "ErrorResponses",
    "NoToken",
    "RequestContext",
    "TokenVerifier",
    "asgi_authorization",
    "asgi_context",
    "bearer_token",
    "normalize_scopes",
    "require_scopes",
]

logger = logging.getLogger("jwkit.integrations")

DEFAULT_REALM = "api"
"""The ``realm`` of every ``WWW-Authenticate: Bearer`` answer unless one is configured."""

# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
# RFC 6750 §3: realm is a quoted-string; we accept printable ASCII without '"' and '\'.
_REALM = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")
# RFC 6750 §3: error and error_description values: %x20-21 / %x23-5B / %x5D-7E.
_UNSAFE_PARAM_CHARS = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")


class TokenVerifier(Protocol):
    """What an integration needs from a verifier (``jwkit.Verifier`` fits)."""

    def verify(self, token: str) -> Claims: ...

    async def verify_async(self, token: str) -> Claims: ...


class NoToken(JWKitError):
    """The request carries no bearer token (no ``Authorization`` header, or another scheme)."""

    code = "no_token"


def bearer_token(header: str | None) -> str:
    """Return the token of an ``Authorization: Bearer <token>`` header value.

    The scheme is matched case-insensitively (RFC 7235 §2.1). No header, an empty one, another
    scheme or ``Bearer`` with nothing after it raise :class:`NoToken`: the client sent no
    credentials, so RFC 6750 §3.1 says to answer without an ``error`` parameter. Anything after
    the scheme that is not a single token68 (RFC 7235 §2.1), such as two tokens or the
    comma-joined value of two ``Authorization`` headers, raises :class:`MalformedToken`.
    """
    if not header:
        raise NoToken
    # The usual "Bearer <token>" form in three cheap checks; anything else (other case, extra
    # whitespace, no token, several credentials) takes the general path below.
    if header.startswith("Bearer "):
        token = header[7:]
        if token and " " not in token and "\t" not in token and "," not in token:
            return token
    value = header.strip(" \t")
    # plain string operations: this runs on every request (a regex costs several µs here)
    if value[:6].lower() != "bearer" or len(value) < 8 or value[6] not in " \t":
        raise NoToken
    token = value[7:].lstrip(" \t")
    if " " in token or "\t" in token or "," in token:
        raise MalformedToken("the Authorization header holds more than one credential")
    return token


def asgi_authorization(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The ``Authorization`` value of raw ASGI headers; several are joined with ``", "``.

    Joining is what WSGI servers do with repeated headers, so two bearer tokens are refused
    as malformed by :func:`bearer_token` instead of one of them being picked.
    """
    # Runs on every request: one pass, no list, and ``lower()`` only for names of the right
    # length (ASGI servers send lower-case names; the check still accepts any case).
    found = None
    for name, value in headers:
        if len(name) == 13 and (name == b"authorization" or name.lower() == b"authorization"):
            text = value.decode("latin-1")
            found = text if found is None else f"{found}, {text}"
    return found


class RequestContext(NamedTuple):
    """What a DPoP proof is checked against: the request's method, its absolute URL as the
    server sees it, and its ``DPoP`` header values (RFC 9449 §4.3)."""

    method: str
    url: str
    proofs: tuple[str, ...]


_WS_SCHEMES = {"ws": "http", "wss": "https"}
# RFC 3986 §3.3 pchar and "/": what a path keeps unescaped when it is rebuilt.
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"


def asgi_context(scope: Mapping[str, Any]) -> RequestContext:
    """The :class:`RequestContext` of an ASGI ``http`` or ``websocket`` scope: the path as
    the client sent it (``raw_path``), the ``Host`` header (else the server address) and the
    scope's scheme (a WebSocket upgrade is a ``GET`` to the ``http(s)`` URL)."""
    host = None
    proofs: list[str] = []
    for name, value in scope.get("headers", ()):
        lname = name.lower()
        if lname == b"host":
            host = value.decode("latin-1")
        elif lname == b"dpop":
            proofs.append(value.decode("latin-1"))
    scheme = str(scope.get("scheme", "http"))
    scheme = _WS_SCHEMES.get(scheme, scheme)
    if host is None:
        server = scope.get("server") or ("localhost", None)
        host = server[0] if server[1] is None else f"{server[0]}:{server[1]}"
    raw = scope.get("raw_path")
    if isinstance(raw, bytes) and raw:
        path = raw.decode("latin-1").split("?", 1)[0]
    else:
        path = quote(scope.get("root_path", "") + scope.get("path", "/"), safe=_PATH_SAFE)
    method = "GET" if scope.get("type") == "websocket" else str(scope.get("method", "GET"))
    return RequestContext(method, f"{scheme}://{host}{path}", tuple(proofs))


def normalize_scopes(scopes: str | Iterable[str] | None) -> frozenset[str]:
    """Turn ``"a b"``, ``["a", "b"]`` or ``None`` into a set of RFC 6749 scope tokens.

    Raises ``ValueError`` for a scope that is not a valid scope-token (RFC 6749 §3.3): it is a
    programming mistake, found when the app is set up, never at request time.
    """
    if scopes is None:
        return frozenset()
    items = scopes.split() if isinstance(scopes, str) else list(scopes)
    for item in items:
        if not isinstance(item, str) or not _SCOPE_TOKEN.fullmatch(item):
            raise ValueError(f"not a valid OAuth scope token: {item!r}")
    return frozenset(items)


def require_scopes(claims: Claims, required: frozenset[str]) -> None:
    """Raise :class:`InsufficientScope` unless the token holds every scope in ``required``."""
    if required and not required <= claims.scopes:
        raise InsufficientScope(
            "the token lacks a required scope", required=tuple(sorted(required))
        )


def _frozen_body(body: Mapping[str, Any]) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise TypeError("a response body must be a mapping (it is sent as a JSON object)")
    json.dumps(dict(body))  # a body that cannot be sent is a setup mistake: fail now
    return MappingProxyType(dict(body))


def _check_status(status: int) -> int:
    if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
        raise ValueError(f"an error status must be an int from 400 to 599, not {status!r}")
    return status


@dataclass(frozen=True)
class ErrorResponses:
    """Status codes and JSON bodies of the four refusals. The defaults are the documented ones."""

    no_token_status: int = 401
    no_token_body: Mapping[str, Any] = field(default_factory=lambda: {"error": "No token"})
    invalid_token_status: int = 401
    invalid_token_body: Mapping[str, Any] = field(
        default_factory=lambda: {"error": "Invalid or expired token"}
    )
    insufficient_scope_status: int = 403
    insufficient_scope_body: Mapping[str, Any] = field(
        default_factory=lambda: {"error": "Insufficient scope"}
    )
    unavailable_status: int = 503
    unavailable_body: Mapping[str, Any] = field(
        default_factory=lambda: {"error": "Authentication temporarily unavailable"}
    )

    def __post_init__(self) -> None:
        for name in ("no_token", "invalid_token", "insufficient_scope", "unavailable"):
            _check_status(getattr(self, f"{name}_status"))
            object.__setattr__(self, f"{name}_body", _frozen_body(getattr(self, f"{name}_body")))


DEFAULT_RESPONSES = ErrorResponses()


@dataclass(frozen=True)
class Denial:
    """A refused request, ready for any framework: status, JSON body and headers."""

    status: int
    body: Mapping[str, Any]
    code: str
    www_authenticate: str | None = None
    dpop_nonce: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        """The response headers (``WWW-Authenticate`` when the refusal is the client's, and
        ``DPoP-Nonce`` when the client must use a server nonce, RFC 9449 §9)."""
        if self.www_authenticate is None:
            return {}
        if self.dpop_nonce is not None:
            return {"WWW-Authenticate": self.www_authenticate, "DPoP-Nonce": self.dpop_nonce}
        return {"WWW-Authenticate": self.www_authenticate}

    def body_bytes(self) -> bytes:
        """The body as compact UTF-8 JSON."""
        return json.dumps(dict(self.body), separators=(",", ":")).encode()


def _param(value: str) -> str:
    return _UNSAFE_PARAM_CHARS.sub("", value)


class Authenticator:
    """Verifies ``Authorization`` headers and turns every failure into a :class:`Denial`.

    ``scopes`` are required by default on every check; each check may pass its own instead.
    ``realm`` goes into ``WWW-Authenticate`` (RFC 6750 §3).
    """

    def __init__(
        self,
        verifier: TokenVerifier,
        *,
        scopes: str | Iterable[str] | None = None,
        realm: str = DEFAULT_REALM,
        responses: ErrorResponses | None = None,
    ) -> None:
        if not callable(getattr(verifier, "verify", None)):
            raise TypeError("verifier must have a verify(token) method, such as jwkit.Verifier")
        if not isinstance(realm, str) or not _REALM.fullmatch(realm):
            raise ValueError("realm must be printable ASCII without '\"' or '\\'")
        if responses is not None and not isinstance(responses, ErrorResponses):
            raise TypeError("responses must be an ErrorResponses")
        self.verifier = verifier
        self.scopes = normalize_scopes(scopes)
        self.realm = realm
        self.responses = responses or DEFAULT_RESPONSES
        #: Set when ``verifier`` is a :class:`~jwkit.verify.dpop.DPoPVerifier`: requests may
        #: then use ``Authorization: DPoP`` with a ``DPoP`` proof (RFC 9449 §7).
        self.dpop = verifier if isinstance(verifier, DPoPVerifier) else None

    def authenticate(
        self,
        header: str | None,
        scopes: frozenset[str] | None = None,
        context: RequestContext | None = None,
    ) -> Claims:
        """Verify the header's token and its scopes; raise a :class:`JWKitError` if refused.
        ``context`` (the request's method, URL and ``DPoP`` headers) is needed for DPoP."""
        if self.dpop is not None:
            proofs, method, url = _dpop_args(context)
            claims = self.dpop.verify_request(header, proofs, method=method, url=url)
        else:
            claims = self.verifier.verify(bearer_token(header))
            if "cnf" in claims:
                refuse_bound(claims)
        require_scopes(claims, self.scopes if scopes is None else scopes)
        return claims

    async def authenticate_async(
        self,
        header: str | None,
        scopes: frozenset[str] | None = None,
        context: RequestContext | None = None,
    ) -> Claims:
        """Like :meth:`authenticate`, with ``verify_async`` (never blocks the event loop)."""
        if self.dpop is not None:
            proofs, method, url = _dpop_args(context)
            claims = await self.dpop.verify_request_async(header, proofs, method=method, url=url)
        else:
            claims = await self.verifier.verify_async(bearer_token(header))
            if "cnf" in claims:
                refuse_bound(claims)
        require_scopes(claims, self.scopes if scopes is None else scopes)
        return claims

    # check() and check_async() repeat authenticate()'s two lines instead of calling it: they
    # run on every request, and on a token-cache hit each extra call or coroutine layer costs
    # about as much as the verification itself.

    def check(
        self,
        header: str | None,
        scopes: frozenset[str] | None = None,
        context: RequestContext | None = None,
    ) -> Claims | Denial:
        """The claims of an accepted request, or the :class:`Denial` of a refused one."""
        if self.dpop is not None:
            try:
                return self.authenticate(header, scopes, context)
            except Exception as exc:  # every failure is mapped, none is a 500
                return self.deny(exc, header)
        try:
            claims = self.verifier.verify(bearer_token(header))
            if "cnf" in claims:
                refuse_bound(claims)
            required = self.scopes if scopes is None else scopes
            if required:
                require_scopes(claims, required)
        except Exception as exc:  # every failure is mapped, none is a 500
            return self.deny(exc)
        return claims

    async def check_async(
        self,
        header: str | None,
        scopes: frozenset[str] | None = None,
        context: RequestContext | None = None,
    ) -> Claims | Denial:
        """Like :meth:`check`, with ``verify_async``."""
        if self.dpop is not None:
            try:
                return await self.authenticate_async(header, scopes, context)
            except Exception as exc:  # every failure is mapped, none is a 500
                return self.deny(exc, header)
        try:
            claims = await self.verifier.verify_async(bearer_token(header))
            if "cnf" in claims:
                refuse_bound(claims)
            required = self.scopes if scopes is None else scopes
            if required:
                require_scopes(claims, required)
        except Exception as exc:  # every failure is mapped, none is a 500
            return self.deny(exc)
        return claims

    def deny(self, exc: BaseException, header: str | None = None) -> Denial:
        """Map an exception raised while authenticating to its response.

        ========================  ======  =============================================
        exception                 status  WWW-Authenticate
        ========================  ======  =============================================
        :class:`NoToken`          401     ``Bearer realm="..."``
        :class:`InvalidToken`     401     ``..., error="invalid_token", error_description="<code>"``
        :class:`InsufficientScope` 403    ``..., error="insufficient_scope", scope="..."``
        :class:`KeySourceError`   503     none (the server's fault, not the client's)
        ========================  ======  =============================================

        A key that cannot be used (:class:`JWKError`) is the server's fault too: 503. Any other
        exception is a bug somewhere below; it is logged with its traceback and the token is
        refused (401), so a crafted token can never produce a 500.

        With a DPoP verifier (RFC 9449 §7.1) the challenge is ``DPoP realm="...", error=...,
        algs="..."`` for a refused proof (``invalid_dpop_proof``, or ``use_dpop_nonce`` with a
        ``DPoP-Nonce`` header), and for any refusal of a request that used the ``DPoP``
        scheme; ``header`` is the request's ``Authorization`` value. A request without
        credentials is offered both schemes (only ``DPoP`` if bearer tokens are refused).
        """
        if self.dpop is not None or isinstance(exc, InvalidDPoPProof):
            dpop = self._deny_dpop(exc, header)
            if dpop is not None:
                return dpop
        r = self.responses
        realm = f'Bearer realm="{self.realm}"'
        if isinstance(exc, NoToken | NoCredentials):
            return Denial(r.no_token_status, r.no_token_body, exc.code, realm)
        if isinstance(exc, InsufficientScope):
            scope = " ".join(exc.required)
            header = f'{realm}, error="insufficient_scope", error_description="{exc.code}"'
            if scope:
                header += f', scope="{_param(scope)}"'
            return Denial(r.insufficient_scope_status, r.insufficient_scope_body, exc.code, header)
        if isinstance(exc, (KeySourceError, JWKError)):
            logger.warning("token not verified, no usable keys: %s (%s)", exc.code, exc)
            return Denial(r.unavailable_status, r.unavailable_body, exc.code)
        if isinstance(exc, JWKitError):
            code = exc.code
            if not isinstance(exc, InvalidToken):
                logger.warning("unexpected %s while verifying a token", type(exc).__name__)
        else:
            logger.error("unexpected error while verifying a token", exc_info=exc)
            code = InvalidToken.code
        header = f'{realm}, error="invalid_token", error_description="{_param(code)}"'
        return Denial(r.invalid_token_status, r.invalid_token_body, code, header)

    def _deny_dpop(self, exc: BaseException, header: str | None) -> Denial | None:
        """:meth:`deny` for a DPoP verifier; ``None`` where the Bearer answer applies."""
        r = self.responses
        dpop = f'DPoP realm="{self.realm}"'
        algs = f', algs="{self.dpop.challenge_algs()}"' if self.dpop is not None else ""
        if isinstance(exc, NoToken | NoCredentials):
            challenge = dpop + algs
            if self.dpop is not None and not self.dpop.require_dpop:
                challenge = f'Bearer realm="{self.realm}", {challenge}'
            return Denial(r.no_token_status, r.no_token_body, exc.code, challenge)
        if isinstance(exc, InvalidDPoPProof):
            error = "use_dpop_nonce" if isinstance(exc, UseDPoPNonce) else "invalid_dpop_proof"
            challenge = f'{dpop}, error="{error}", error_description="{_param(exc.code)}"{algs}'
            nonce = exc.nonce if isinstance(exc, UseDPoPNonce) else None
            return Denial(r.invalid_token_status, r.invalid_token_body, exc.code, challenge, nonce)
        try:
            scheme = authorization_credentials(header)
        except JWKitError:
            scheme = None
        if not isinstance(exc, DPoPRequired) and (scheme is None or scheme[0] != "dpop"):
            return None  # a Bearer request: the Bearer answer
        if isinstance(exc, InsufficientScope):
            scope = " ".join(exc.required)
            challenge = f'{dpop}, error="insufficient_scope", error_description="{exc.code}"'
            if scope:
                challenge += f', scope="{_param(scope)}"'
            return Denial(
                r.insufficient_scope_status, r.insufficient_scope_body, exc.code, challenge + algs
            )
        if not isinstance(exc, InvalidToken):
            return None  # the server's fault (503) or a bug: the Bearer answer handles it
        code = exc.code
        challenge = f'{dpop}, error="invalid_token", error_description="{_param(code)}"{algs}'
        return Denial(r.invalid_token_status, r.invalid_token_body, code, challenge)


def refuse_bound(claims: Claims) -> None:
    """Refuse a DPoP-bound token (``cnf.jkt``) presented as a bearer token (RFC 9449 §7.2)."""
    if bound_jkt(claims) is not None:
        raise DPoPRequired("this token is DPoP-bound: send it with Authorization: DPoP and a proof")


def _dpop_args(context: RequestContext | None) -> tuple[tuple[str, ...], str, str]:
    if context is None:
        # An integration that does not pass the request: the DPoP scheme cannot be checked.
        return (), "GET", "http://unknown.invalid/"
    return context.proofs, context.method, context.url
