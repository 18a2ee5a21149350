"""Exception handlers: every refusal is JSON with a stable ``error`` code.

* 422 for bodies that fail validation (malformed JSON, wrong types, unknown fields), with
  ``detail: [{loc, msg, type}]`` — input values are never echoed back.
* Domain errors keep their status (404, 409 with ``earliest_safe_at``, 422).
* The database being unreachable is 503 ``database_unavailable`` with ``Retry-After``: the
  public endpoints keep serving from memory meanwhile; only writes and reads of the admin
  API need the database.
* A value the database refuses (``DataError``: a NUL character in PostgreSQL text) is 400.
* Anything else is a bug: logged once (type and traceback, no request data) and answered
  500 by :class:`CatchAll`, which, unlike Starlette's catch-all handler, does not re-raise
  the exception to uvicorn (which would log it a second time and drop the connection). The
  connection stays open for the next request once the 500 is written in full; only an
  exception after the answer began leaves uvicorn to close the connection, since the answer
  cannot be completed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jwkit.service.domain.common import ServiceError
from jwkit.service.http.metrics import ERRORS

__all__ = ["CatchAll", "install_error_handlers"]

log = logging.getLogger("jwkit.service.http")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
}


_SECONDS = frozenset({"ttl", "token_ttl", "max_token_ttl", "jwks_max_age"})


def _seconds(n: object) -> str:
    if isinstance(n, int) and n >= 86400 and n % 86400 == 0:
        return f"{n} seconds ({n // 86400} days)"
    return f"{n} seconds"


def plain_message(field: str, kind: str, ctx: Mapping[str, Any] | None) -> str:
    """What a person should do about one schema refusal, in words (never pydantic's text,
    which quotes regular expressions and internal limits)."""
    ctx = ctx or {}
    name = field or "the request body"
    amount = _seconds if field in _SECONDS else str
    if kind == "missing":
        return f"{name} is required"
    if kind == "extra_forbidden":
        return f"{name} is not a known field; remove it"
    if kind == "less_than_equal":
        return f"{name} must be at most {amount(ctx.get('le'))}"
    if kind == "greater_than_equal":
        return f"{name} must be at least {amount(ctx.get('ge'))}"
    if kind == "string_too_short":
        return f"{name} must not be empty"
    if kind == "string_too_long":
        return f"{name} must be at most {ctx.get('max_length')} characters"
    if kind == "too_long":
        return f"{name} may hold at most {ctx.get('max_length')} entries"
    if kind == "string_pattern_mismatch" and field.split(".")[0] in ("scope", "scopes"):
        return (
            "a scope is 1 to 100 printable ASCII characters without spaces, "
            'double quotes or backslashes (RFC 6749 §3.3), e.g. "read:orders"'
        )
    if kind == "literal_error":
        return f"{name} must be one of {ctx.get('expected')}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"{name} must be a whole number" + (" of seconds" if field in _SECONDS else "")
    if kind == "bool_type":
        return f"{name} must be true or false"
    if kind in ("string_type", "list_type", "dict_type", "model_type", "model_attributes_type"):
        want = {"string_type": "a string", "list_type": "a list", "dict_type": "a JSON object"}
        return f"{name} must be {want.get(kind, 'a JSON object')}"
    if kind in ("json_invalid", "json_type"):
        return "the request body is not valid JSON"
    return f"{name} is not valid"


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    detail: list[dict[str, Any]] = []
    messages: dict[str, None] = {}  # each message once, in order
    for e in exc.errors():
        loc = list(e.get("loc", ()))
        field = ".".join(str(p) for p in loc[1:] if not isinstance(p, int))
        kind = str(e.get("type"))
        msg = plain_message(field, kind, e.get("ctx"))
        messages[msg] = None
        detail.append({"loc": loc, "msg": msg, "type": kind})
    ERRORS.labels("validation").inc()
    message = "; ".join(messages) or "the request is invalid"
    return JSONResponse(
        {"error": "validation_error", "message": message, "detail": detail},
        status_code=422,
    )


async def _service(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    ERRORS.labels(exc.code).inc()
    return JSONResponse(exc.to_json(), status_code=exc.status)


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if isinstance(exc.detail, dict):
        body = exc.detail
    else:
        body = {"error": _HTTP_CODES.get(exc.status_code, "error"), "message": str(exc.detail)}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _database(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, DBAPIError) and not (
        isinstance(exc, OperationalError | InterfaceError) or exc.connection_invalidated
    ):
        return await _bug(request, exc)
    ERRORS.labels("database_unavailable").inc()
    log.warning(
        "database unavailable on %s %s: %s",
        request.method,
        request.url.path,
        type(exc.orig if isinstance(exc, DBAPIError) else exc).__name__,
    )
    return JSONResponse(
        {
            "error": "database_unavailable",
            "message": "the database cannot be reached; try again shortly",
        },
        status_code=503,
        headers={"Retry-After": "5"},
    )


async def _bad_data(request: Request, exc: Exception) -> JSONResponse:
    """The database refused a value from the request (PostgreSQL text cannot hold NUL, an
    integer out of its range): the input is wrong, not the service."""
    ERRORS.labels("bad_request").inc()
    return JSONResponse(
        {
            "error": "bad_request",
            "message": "the request holds a value the database cannot store (such as a NUL "
            "character)",
        },
        status_code=400,
    )


def _log_bug(exc: BaseException, method: str, path: str) -> None:
    ERRORS.labels("internal").inc()
    log.error("unhandled %s on %s %s", type(exc).__name__, method, path, exc_info=exc)


def _internal_error() -> JSONResponse:
    return JSONResponse(
        {"error": "internal_error", "message": "an unexpected error occurred"}, status_code=500
    )


async def _bug(request: Request, exc: Exception) -> JSONResponse:
    _log_bug(exc, request.method, request.url.path)
    return _internal_error()


class CatchAll:
    """Inside Starlette's error middleware: an exception no handler took is logged once and
    answered 500 (if nothing was sent yet), and goes no further."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as exc:
            if started:
                raise  # half an answer is out: uvicorn logs it and closes the connection
            _log_bug(exc, scope["method"], scope["path"])
            await _internal_error()(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(ServiceError, _service)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(DBAPIError, _database)
    app.add_exception_handler(DataError, _bad_data)  # more specific: found first (MRO)
    app.add_middleware(CatchAll)  # (not a handler for Exception: Starlette re-raises those)
