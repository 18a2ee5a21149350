"""The hot path: JWKS, discovery, the token endpoint, health and readiness.

Plain Starlette routes (no FastAPI dependency machinery, not in the OpenAPI document). Every
answer is built by :mod:`.documents` and written here by :func:`answer_response`. JWKS and
discovery answer from the replica's in-memory :class:`~jwkit.service.state.Document` bytes with
a strong ETag (RFC 9110 §8.8.3), ``304`` on ``If-None-Match`` (§13.1.2) and a
``Cache-Control: public, max-age=N`` that never outlives the next scheduled key change.
The token endpoint implements the client credentials grant (RFC 6749 §4.4) with
``client_secret_basic`` and ``client_secret_post`` (§2.3.1) and answers errors per §5.2.
A request with a ``DPoP`` proof (RFC 9449 §5) gets a DPoP-bound token (``token_type: DPoP``,
``cnf.jkt``); the proof's ``htu`` must be the token endpoint at the configured public URL.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
from typing import NamedTuple
from urllib.parse import parse_qsl, unquote_plus

from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from jwkit.errors import InvalidDPoPProof
from jwkit.service.domain.clients import ClientRecord, secret_matches
from jwkit.service.domain.common import ServiceError
from jwkit.service.domain.revocation import Issued
from jwkit.service.domain.tokens import mint, new_jti
from jwkit.service.http import documents
from jwkit.service.http.documents import Answer
from jwkit.service.http.metrics import DOCUMENTS, ERRORS, TOKENS, Tally
from jwkit.service.keys import KeyUnavailable
from jwkit.service.runtime import Service
from jwkit.service.state import ProjectView
from jwkit.service.statuslists import now_ms

__all__ = [
    "COUNT",
    "DISCOVERY_SUFFIX",
    "JWKS_SUFFIX",
    "MAX_FORM",
    "METADATA_PREFIX",
    "READY_TTL",
    "TOKEN_SUFFIX",
    "PublicFastPath",
    "TokenAnswer",
    "TokenRequest",
    "answer_response",
    "basic_credentials",
    "document_answer",
    "dpop_binding",
    "grant_token",
    "issue_token",
    "parse_token_request",
    "precheck_token",
    "public_routes",
    "token_precheck_passes",
]

log = logging.getLogger("jwkit.service.http")

_JSON = "application/json"
MAX_FORM = 8192
# Children bound once, counted as plain ints (see Tally): the hot path only adds one.
COUNT = {
    (doc, status): Tally(DOCUMENTS.labels(doc, status))
    for doc in ("jwks", "discovery")
    for status in ("200", "304", "404", "503")
}
_ISSUED = Tally(TOKENS.labels("client_credentials"))


class _AnswerResponse(Response):
    """A Starlette response that sends an :class:`~.documents.Answer` as it is."""

    def __init__(self, answer: Answer) -> None:
        self.status_code = answer.status
        self.body = answer.body
        self.raw_headers = list(answer.headers)
        self.background = None


def answer_response(answer: Answer) -> Response:
    """The route writer: ``answer`` as a Starlette response."""
    return _AnswerResponse(answer)


def document_answer(
    service: Service, view: ProjectView, name: str, if_none_match: str | None
) -> Answer:
    """``view``'s JWKS (``name`` ``"jwks"``) or discovery answer, counted."""
    doc = view.jwks if name == "jwks" else view.discovery
    life = documents.document_lifetime(view, service.clock(), service.settings.sync_interval)
    answer = documents.document(name, doc, life, if_none_match)
    COUNT[name, "304" if answer.status == 304 else "200"].n += 1
    return answer


async def project_view(service: Service, project_id: str) -> ProjectView | None:
    """The project's view: from memory, or built off the event loop (one read) when this
    worker has not cached it (its first request, or it was evicted)."""
    views = service.state.projects
    view = views.peek(project_id)
    if view is None and project_id in views:
        view = await run_in_threadpool(views.get, project_id)
    return view


def no_view(service: Service, project_id: str) -> Answer:
    """The answer when :func:`project_view` found nothing: 404 for a project that does not
    exist, 503 for one this worker could not load (the database is away)."""
    if project_id in service.state.projects:
        return documents.unavailable()
    return documents.not_found()


async def _document(request: Request, name: str) -> Response:
    service: Service = request.app.state.service
    pid = request.path_params["project"]
    view = await project_view(service, pid)
    if view is None:
        answer = no_view(service, pid)
        COUNT[name, str(answer.status)].n += 1
        return answer_response(answer)
    inm = request.headers.get("if-none-match")
    return answer_response(document_answer(service, view, name, inm))


async def jwks(request: Request) -> Response:
    return await _document(request, "jwks")


async def discovery(request: Request) -> Response:
    return await _document(request, "discovery")


class TokenAnswer(NamedTuple):
    """A token endpoint answer, before it is written by the ASGI route or the wire path."""

    status: int
    body: bytes


class TokenRequest(NamedTuple):
    """An authenticated-to-be token request: the form and the presented client credentials."""

    form: dict[str, str]
    client_id: str
    secret: str


def _oauth_error(error: str, description: str, status: int = 400) -> TokenAnswer:
    ERRORS.labels(f"token_{error}").inc()
    body = json.dumps({"error": error, "error_description": description}).encode()
    return TokenAnswer(status, body)


def _parse_form(raw: bytes) -> dict[str, str] | None:
    """Decode an ``application/x-www-form-urlencoded`` body; ``None`` if a name repeats
    (RFC 6749 §3.2: parameters must not be included more than once) or it is not UTF-8.
    A parameter sent without a value is left out, as if it had not been sent (§3.1)."""
    if raw.isascii() and b"%" not in raw and b"+" not in raw:
        # Nothing to unescape (every client_credentials request a client library sends):
        # the same pairs parse_qsl(strict_parsing=True) finds, at a fifth of its cost.
        text = raw.decode("ascii")
        if not text:
            return {}
        out: dict[str, str] = {}
        for field_ in text.split("&"):
            name, sep, value = field_.partition("=")
            if not sep or name in out:
                return None
            if value:
                out[name] = value
        return out
    return _parse_form_general(raw)


def _parse_form_general(raw: bytes) -> dict[str, str] | None:
    """:func:`_parse_form` for any body: ``parse_qsl``, strict, repeated names refused."""
    try:
        text = raw.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), errors="strict")
    except (UnicodeDecodeError, ValueError):
        return None
    out: dict[str, str] = {}
    for name, value in pairs:
        if name in out:
            return None
        if value:  # RFC 6749 §3.1: sent without a value = omitted
            out[name] = value
    return out


def basic_credentials(header: str) -> tuple[str, str] | None:
    """``(client_id, secret)`` from an ``Authorization: Basic`` value, else ``None``."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        return None
    # RFC 6749 §2.3.1: both parts are form-urlencoded before the Basic encoding.
    return unquote_plus(client_id), unquote_plus(secret)


def _precheck(content_type: str | None, content_length: str | None) -> str | None:
    ctype = (content_type or "").split(";", 1)[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        return "use application/x-www-form-urlencoded"
    if content_length is not None and (
        not content_length.isdigit() or int(content_length) > MAX_FORM
    ):
        return "request body too large"
    return None


def precheck_token(content_type: str | None, content_length: str | None) -> TokenAnswer | None:
    """The refusals made before the body is read (media type, size); ``None`` to go on."""
    refusal = _precheck(content_type, content_length)
    return None if refusal is None else _oauth_error("invalid_request", refusal)


def token_precheck_passes(content_type: str | None, content_length: str | None) -> bool:
    """Whether :func:`precheck_token` lets the request on (without counting a refusal)."""
    return _precheck(content_type, content_length) is None


def parse_token_request(
    raw: bytes, authorization: str | None, basic: tuple[str, str] | None = None
) -> TokenAnswer | TokenRequest:
    """Check the form and find the client credentials (RFC 6749 §2.3.1, §4.4.2).

    ``basic`` is ``authorization`` already decoded by :func:`basic_credentials`, if the
    caller has done so.
    """
    form = _parse_form(raw)
    if form is None:
        return _oauth_error("invalid_request", "malformed or repeated parameters")
    grant = form.get("grant_type")
    if not grant:
        return _oauth_error("invalid_request", "grant_type is required")
    if authorization is not None:
        if "client_secret" in form:
            return _oauth_error("invalid_request", "use only one client authentication method")
        creds = basic if basic is not None else basic_credentials(authorization)
        if creds is None:
            return _oauth_error("invalid_client", "malformed Basic credentials", 401)
        client_id, secret = creds
        if form.get("client_id", client_id) != client_id:
            return _oauth_error("invalid_request", "client_id does not match")
    else:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        if not client_id or not secret:
            return _oauth_error("invalid_client", "client authentication required", 401)
    if grant != "client_credentials":
        return _oauth_error("unsupported_grant_type", "only client_credentials is supported")
    return TokenRequest(form, client_id, secret)


def dpop_binding(service: Service, view: ProjectView, proofs: list[str]) -> str | TokenAnswer:
    """The RFC 7638 thumbprint of the key of a token request's one ``DPoP`` proof, or the
    ``invalid_dpop_proof`` answer (RFC 9449 §5). The proof must be a ``POST`` to the token
    endpoint as the service publishes it (``public_url``, never the request's own Host);
    its ``jti`` is remembered by this replica only (``Service.dpop``'s bounded cache)."""
    if len(proofs) != 1 or "," in proofs[0]:
        return _oauth_error("invalid_dpop_proof", "send exactly one DPoP proof")
    try:
        proof = service.dpop.verify_proof(
            proofs[0].strip(" \t"), method="POST", url=view.issuer + TOKEN_SUFFIX
        )
    except InvalidDPoPProof as exc:
        return _oauth_error("invalid_dpop_proof", exc.message)
    return proof.jkt


def grant_token(
    service: Service,
    view: ProjectView,
    request: TokenRequest,
    record: ClientRecord | None,
    jkt: str | None = None,
) -> TokenAnswer:
    """Authenticate the client (``record``, from the client cache) and sign its token,
    bound to the DPoP key whose thumbprint is ``jkt`` if one is given (RFC 9449 §6)."""
    client_id = request.client_id
    if (
        record is None
        or record.project_id != view.id
        or not secret_matches(request.secret, record.secret_hash)
    ):
        return _oauth_error("invalid_client", "client authentication failed", 401)
    if jkt is None and view.dpop_required:
        return _oauth_error("invalid_dpop_proof", "this project issues DPoP-bound tokens only")
    requested = request.form.get("scope")
    if requested is not None:
        scopes = requested.split(" ")
        if not requested or "" in scopes or not record.scopes.issuperset(scopes):
            return _oauth_error("invalid_scope", "the requested scope is not allowed")
        granted = " ".join(sorted(set(scopes)))
    else:
        granted = " ".join(sorted(record.scopes))
    signer, key_id = view.token_signer, view.signer_key_id
    if signer is None or key_id is None:
        return _oauth_error("temporarily_unavailable", "no active signing key", 503)
    now = service.clock()
    if not service.state.exp_covered(key_id, now + view.token_ttl):  # recorded before signing
        return _oauth_error("temporarily_unavailable", "try again shortly", 503)
    slot = None
    if view.token_status:
        try:
            slot = service.state.status.slot(view.id)  # from the replica's block: no I/O
        except (DBAPIError, ServiceError):
            ERRORS.labels("database_unavailable").inc()
            return _oauth_error("temporarily_unavailable", "try again shortly", 503)
    jti = new_jti() if slot is None else new_jti(slot.list_id, slot.idx)
    try:
        access_token, exp = mint(
            signer,
            issuer=view.issuer,
            audience=view.audience,
            subject=client_id,
            ttl=view.token_ttl,
            now=now,
            client_id=client_id,
            scope=granted or None,
            jti=jti,
            status=None if slot is None else (slot.uri, slot.idx),
            jkt=jkt,
        )
    except KeyUnavailable as exc:  # the key's token is away, the key gone, or a bad signature
        service.state.key_alarm(view.id, exc, backend=view.signer.backend if view.signer else None)
        return _oauth_error("temporarily_unavailable", "the signing key is unavailable", 503)
    if slot is not None:
        service.state.status.note_issued(
            Issued(
                view.id,
                jti,
                slot.list_id,
                slot.idx,
                client_id,
                None,
                client_id,
                now_ms(),
                exp,
                slot.rules_seen,
            )
        )
    _ISSUED.n += 1
    # json.dumps({"access_token", "token_type", "expires_in"[, "scope"]}), byte for byte:
    # a compact JWS is base64url and dots, which JSON never escapes; only the scope (from the
    # request, checked against the client's) goes through the encoder.
    scope = b', "scope": ' + json.dumps(granted).encode() if granted else b""
    return TokenAnswer(
        200,
        b'{"access_token": "%s", "token_type": "%s", "expires_in": %d%s}'
        % (
            access_token.encode("ascii"),
            b"Bearer" if jkt is None else b"DPoP",
            view.token_ttl,
            scope,
        ),
    )


async def token(request: Request) -> Response:
    service: Service = request.app.state.service
    pid = request.path_params["project"]
    view = await project_view(service, pid)
    if view is None:
        return answer_response(no_view(service, pid))
    return await issue_token(service, view, request)


async def issue_token(service: Service, view: ProjectView, request: Request) -> Response:
    """The client credentials grant for ``view``'s project (RFC 6749 §4.4)."""
    answer = await _token_answer(service, view, request)
    return answer_response(documents.token(answer.status, answer.body))


async def _token_answer(service: Service, view: ProjectView, request: Request) -> TokenAnswer:
    headers = request.headers
    refused = precheck_token(headers.get("content-type"), headers.get("content-length"))
    if refused is not None:
        return refused
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_FORM:
            return _oauth_error("invalid_request", "request body too large")
    parsed = parse_token_request(raw, headers.get("authorization"))
    if isinstance(parsed, TokenAnswer):
        return parsed
    jkt = None
    proofs = headers.getlist("dpop")
    if proofs:  # the wire path leaves every request with a DPoP header to this one
        bound = dpop_binding(service, view, proofs)
        if isinstance(bound, TokenAnswer):
            return bound
        jkt = bound
    hit, record = service.state.cached_client(parsed.client_id)
    if not hit:
        try:
            # a project's first token here: its key is opened in the same trip and read
            opening = view if view.opened is None else None
            record = await run_in_threadpool(service.state.load_client, parsed.client_id, opening)
        except DBAPIError:  # the database is down: cached clients keep working meanwhile
            ERRORS.labels("database_unavailable").inc()
            return _oauth_error("temporarily_unavailable", "try again shortly", 503)
    if not _owns(record, view):  # refused before any key is opened or index reserved
        return grant_token(service, view, parsed, record, jkt)
    if view.opened is None and view.signer_key_id is not None:
        await run_in_threadpool(lambda: view.signer)  # its first signature: decrypt off the loop
    if view.token_status and not service.state.status.ready(view.id):
        # No status index left: reserve the next block off the event loop (one write per
        # block; while indices are left, a running-low block is refilled in the background).
        try:
            await run_in_threadpool(service.state.status.refill, view.id)
        except (DBAPIError, ServiceError):
            pass  # grant_token answers 503 if no index is left
    return grant_token(service, view, parsed, record, jkt)


def _owns(record: ClientRecord | None, view: ProjectView) -> bool:
    """Whether ``record`` is a client of ``view``'s project: only such a request opens the
    project's key or reserves status indices (anyone else is refused by :func:`grant_token`
    before either is needed)."""
    return record is not None and record.project_id == view.id


async def healthz(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type=_JSON)


#: How long (seconds) one readiness check answers ``/readyz``.
READY_TTL = 1.0


class _Readiness:
    """The last readiness check, reused for ``READY_TTL`` seconds; one check at a time, so
    probes (or a flood of requests) cost at most one database query a second."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.until = float("-inf")
        self.ready = False

    async def check(self, service: Service) -> bool:
        async with self.lock:
            if time.monotonic() >= self.until:
                self.ready = await run_in_threadpool(service.state.ready)
                self.until = time.monotonic() + READY_TTL
            return self.ready


async def readyz(request: Request) -> Response:
    service: Service = request.app.state.service
    readiness: _Readiness | None = getattr(request.app.state, "readiness", None)
    if readiness is None:
        readiness = request.app.state.readiness = _Readiness()
    if await readiness.check(service):
        return Response(b'{"status":"ready"}', media_type=_JSON)
    return Response(b'{"status":"not_ready"}', 503, media_type=_JSON)


JWKS_SUFFIX = "/.well-known/jwks.json"
TOKEN_SUFFIX = "/oauth2/token"  # noqa: S105 (a path, not a secret)
DISCOVERY_SUFFIX = "/.well-known/openid-configuration"


class PublicFastPath:
    """Raw ASGI wrapper for the hot path, outside every other middleware and the router.

    ``GET`` JWKS/discovery are answered straight from the snapshot and ``POST`` token requests
    go straight to :func:`issue_token`: the same responses as the :func:`jwks`,
    :func:`discovery` and :func:`token` routes, which still serve everything else (``HEAD``,
    unknown projects) when a request is not for a known project.
    """

    def __init__(self, app: ASGIApp, service: Service) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/p/"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        method: str = scope["method"]
        if method == "POST" and path.endswith(TOKEN_SUFFIX):
            view = await project_view(self.service, path[3 : -len(TOKEN_SUFFIX)])
            if view is None:
                await self.app(scope, receive, send)
                return
            try:
                response = await issue_token(self.service, view, Request(scope, receive))
            except Exception as exc:  # a bug: answer like the app's catch-all handler
                ERRORS.labels("internal").inc()
                log.error("unhandled %s on the token endpoint", type(exc).__name__, exc_info=exc)
                response = answer_response(documents.internal_error())
            await response(scope, receive, send)
            return
        if method != "GET":
            await self.app(scope, receive, send)
            return
        if path.endswith(JWKS_SUFFIX):
            name, pid = "jwks", path[3 : -len(JWKS_SUFFIX)]
        elif path.endswith(DISCOVERY_SUFFIX):
            name, pid = "discovery", path[3 : -len(DISCOVERY_SUFFIX)]
        else:
            await self.app(scope, receive, send)
            return
        view = await project_view(self.service, pid)
        if view is None:
            await self.app(scope, receive, send)  # 404 (or another route) as usual
            return
        inm = None
        for key, value in scope["headers"]:
            if key == b"if-none-match":
                inm = value.decode("latin-1")
                break
        answer = document_answer(self.service, view, name, inm)
        await send(
            {"type": "http.response.start", "status": answer.status, "headers": answer.headers}
        )
        await send({"type": "http.response.body", "body": answer.body})


#: RFC 8414 §3.1: for the issuer ``{public_url}/p/{id}`` the metadata lives at the host's
#: well-known path with the issuer's path appended; the in-issuer location is served too.
METADATA_PREFIX = "/.well-known/oauth-authorization-server"


def public_routes() -> list[Route]:
    return [
        Route("/p/{project}/.well-known/jwks.json", jwks, methods=["GET"]),
        Route("/p/{project}/.well-known/openid-configuration", discovery, methods=["GET"]),
        Route(METADATA_PREFIX + "/p/{project}", discovery, methods=["GET"]),
        Route("/p/{project}" + METADATA_PREFIX, discovery, methods=["GET"]),
        Route("/p/{project}/oauth2/token", token, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]
