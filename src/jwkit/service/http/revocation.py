"""Public token-status routes: Status List Tokens, RFC 7009 revocation, RFC 7662 introspection.

``GET {issuer}/statuslists/{n}`` answers the replica's signed snapshot
(:class:`~jwkit.service.statuslists.ListDoc`) as ``application/statuslist+jwt`` with a strong
ETag, ``304`` on ``If-None-Match`` and ``Cache-Control: public, max-age`` no longer than the
list's ``ttl`` (draft-ietf-oauth-status-list §8): never a database query.

``POST {issuer}/oauth2/revoke`` and ``POST {issuer}/oauth2/introspect`` authenticate the client
like the token endpoint (``client_secret_basic`` or ``client_secret_post``). A client revokes
only tokens issued to it (a live token of another client: ``400 unauthorized_client``,
§2.1); an unknown, malformed or expired token, or one of another project, gets ``200`` and no
change (RFC 7009 §2.2). Introspection answers ``{"active": false}`` for any token that does
not verify against the project's keys, has expired, or whose status is not VALID
(RFC 7662 §2.2), and the token's claims with ``"active": true`` otherwise.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from jwkit.errors import JWKError, JWKitError
from jwkit.jose import jwt
from jwkit.jose.jwk import JWKSet
from jwkit.jose.statuslist import VALID
from jwkit.service.domain import revocation
from jwkit.service.domain.clients import ClientRecord, secret_matches
from jwkit.service.domain.common import ServiceError
from jwkit.service.http import documents
from jwkit.service.http.metrics import ERRORS
from jwkit.service.http.public import (
    MAX_FORM,
    TokenAnswer,
    _parse_form,
    answer_response,
    basic_credentials,
    precheck_token,
    project_view,
)
from jwkit.service.runtime import Service
from jwkit.service.state import ProjectView

__all__ = ["introspect", "revoke", "routes", "status_list"]

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_MAX_TOKEN = 16 * 1024


def routes() -> list[Route]:
    """The token-status routes under each issuer (``/p/{project}``)."""
    from jwkit.service.http.events import events

    return [
        Route("/p/{project}/statuslists/{number}", status_list, methods=["GET"]),
        Route("/p/{project}/oauth2/revoke", revoke, methods=["POST"]),
        Route("/p/{project}/oauth2/introspect", introspect, methods=["POST"]),
        Route("/p/{project}/events", events, methods=["GET"]),
    ]


async def status_list(request: Request) -> Response:
    service: Service = request.app.state.service
    number = request.path_params["number"]
    doc = None
    if number.isascii() and number.isdigit() and len(number) <= 9:  # not "\u00b2", not "\u0661"
        doc = service.state.status.document(request.path_params["project"], int(number))
    if doc is None:
        return answer_response(documents.no_status_list())
    inm = request.headers.get("if-none-match")
    return answer_response(
        documents.status_list(
            doc.body, doc.etag, documents.status_list_lifetime(doc, service.clock()), inm
        )
    )


def _answer(answer: TokenAnswer) -> Response:
    return answer_response(documents.token(answer.status, answer.body))


def _error(error: str, description: str, status: int = 400) -> TokenAnswer:
    ERRORS.labels(f"oauth_{error}").inc()
    body = json.dumps({"error": error, "error_description": description}).encode()
    return TokenAnswer(status, body)


async def _authenticate(
    service: Service, view: ProjectView, request: Request
) -> TokenAnswer | tuple[dict[str, str], ClientRecord]:
    """The form and the authenticated client of a revocation or introspection request."""
    headers = request.headers
    refused = precheck_token(headers.get("content-type"), headers.get("content-length"))
    if refused is not None:
        return refused
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_FORM:
            return _error("invalid_request", "request body too large")
    form = _parse_form(raw)
    if form is None:
        return _error("invalid_request", "malformed or repeated parameters")
    authorization = headers.get("authorization")
    if authorization is not None:
        if "client_secret" in form:
            return _error("invalid_request", "use only one client authentication method")
        creds = basic_credentials(authorization)
        if creds is None:
            return _error("invalid_client", "malformed Basic credentials", 401)
        client_id, secret = creds
    else:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        if not client_id or not secret:
            return _error("invalid_client", "client authentication required", 401)
    hit, record = service.state.cached_client(client_id)
    if not hit:
        try:
            record = await run_in_threadpool(service.state.load_client, client_id)
        except DBAPIError:
            return _error("temporarily_unavailable", "try again shortly", 503)
    if (
        record is None
        or record.project_id != view.id
        or not secret_matches(secret, record.secret_hash)
    ):
        return _error("invalid_client", "client authentication failed", 401)
    if not form.get("token"):
        return _error("invalid_request", "token is required")
    return form, record


def _keys(view: ProjectView) -> JWKSet | None:
    """The project's verification keys: its published public keys, or for a shared-secret
    project its active key."""
    try:
        published = JWKSet.from_json(view.jwks.body, skip_invalid=True)
    except JWKError:
        published = JWKSet([])
    if published.keys:
        return published
    if view.signer is not None and view.signer.jwk.is_symmetric:
        return JWKSet([view.signer.jwk])
    return None


def _verified(
    service: Service, view: ProjectView, token: str, *, require_live: bool
) -> dict[str, Any] | None:
    """The claims of ``token`` if this project signed it (and, with ``require_live``, it has
    not expired), else ``None``."""
    keyset = _keys(view)
    if keyset is None or len(token) > _MAX_TOKEN:
        return None
    algorithms = sorted({k.alg or "" for k in keyset.keys} - {""}) or ["ES256"]
    try:
        claims = jwt.decode(
            token,
            keyset,
            algorithms=algorithms,
            issuer=view.issuer,
            typ="at+jwt",
            now=service.clock(),
            require_exp=True,
            leeway=0 if require_live else 10**9,
        )
    except (JWKitError, ValueError, TypeError):
        return None
    return claims.to_dict()


def _status_ref(claims: dict[str, Any]) -> tuple[str, int] | None:
    ref = claims.get("status")
    inner = ref.get("status_list") if isinstance(ref, dict) else None
    if not isinstance(inner, dict):
        return None
    uri, idx = inner.get("uri"), inner.get("idx")
    if not isinstance(uri, str) or type(idx) is not int or idx < 0:
        return None
    return uri, idx


def _issued(
    view: ProjectView, claims: dict[str, Any], uri: str, idx: int, service: Service
) -> revocation.Issued | None:
    """The issuance record of a token presented in full, when its list is one of ours."""
    prefix = f"{view.issuer}/statuslists/"
    number = uri[len(prefix) :] if uri.startswith(prefix) else ""
    doc = (
        service.state.status.document(view.id, int(number))
        if number.isascii() and number.isdigit()
        else None
    )
    jti, sub, exp = claims.get("jti"), claims.get("sub"), claims.get("exp")
    if (
        doc is None
        or not isinstance(jti, str)
        or not isinstance(sub, str)
        or (type(exp) is not int or len(jti) > 64 or len(sub) > 255)
    ):
        return None
    sid = claims.get("sid") if isinstance(claims.get("sid"), str) else None
    client = claims.get("client_id") if isinstance(claims.get("client_id"), str) else None
    iat = claims.get("iat")
    issued_ms = iat * 1000 if type(iat) is int else 0
    return revocation.Issued(view.id, jti, doc.list_id, idx, sub, sid, client, issued_ms, exp, 0)


async def revoke(request: Request) -> Response:
    service: Service = request.app.state.service
    view = await project_view(service, request.path_params["project"])
    if view is None:
        return answer_response(documents.not_found())
    auth = await _authenticate(service, view, request)
    if isinstance(auth, TokenAnswer):
        return _answer(auth)
    form, client = auth
    claims = _verified(service, view, form["token"], require_live=False)
    ok = TokenAnswer(200, b"{}")
    if claims is None:
        return _answer(ok)  # RFC 7009 §2.2: invalid tokens do not cause an error
    if claims["exp"] + service.settings.clock_skew < service.clock():
        return _answer(ok)  # expired past any verifier's leeway: invalid, nothing to revoke
    if claims.get("client_id") != client.client_id:
        return _answer(_error("unauthorized_client", "the token was not issued to this client"))
    ref = _status_ref(claims)
    jti = claims.get("jti")
    if ref is None or not isinstance(jti, str):
        return _answer(_error("unsupported_token_type", "this token carries no status", 400))
    record = _issued(view, claims, ref[0], ref[1], service)

    def run() -> None:
        service.state.status.flush()
        with service.db.session() as session, session.begin():
            now = service.clock()
            revocation.revoke(
                session,
                view.id,
                "jti",
                jti,
                now=now,
                actor=f"client:{client.client_id}",
                clock_skew=service.settings.clock_skew,
                token=record,
                effective_by=revocation.effective_time(
                    now, service.settings.status_list_ttl, service.settings.sync_interval
                ),
            )
        service.state.status.refresh()

    try:
        await run_in_threadpool(run)
    except (DBAPIError, ServiceError):
        return _answer(_error("temporarily_unavailable", "try again shortly", 503))
    return _answer(ok)


async def introspect(request: Request) -> Response:
    service: Service = request.app.state.service
    view = await project_view(service, request.path_params["project"])
    if view is None:
        return answer_response(documents.not_found())
    auth = await _authenticate(service, view, request)
    if isinstance(auth, TokenAnswer):
        return _answer(auth)
    form, _client = auth
    inactive = TokenAnswer(200, b'{"active": false}')
    claims = _verified(service, view, form["token"], require_live=True)
    if claims is None:
        return _answer(inactive)
    ref = _status_ref(claims)
    if ref is not None:
        status = service.state.status.status_of(view.id, ref[0], ref[1])
        if status != VALID:
            return _answer(inactive)  # revoked, suspended, or a list we do not know
    elif "status" in claims:
        return _answer(inactive)
    out = {**claims, "active": True, "token_type": "Bearer"}
    return _answer(TokenAnswer(200, json.dumps(out).encode()))
