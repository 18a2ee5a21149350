"""Exception handlers: every refusal is JSON with a stable ``error`` code.

* 422 for bodies that fail validation (malformed JSON, wrong types, unknown fields), with
  ``detail: [{loc, msg, type}]`` — input values are never echoed back.
* Domain errors keep their status (404, 409 with ``earliest_safe_at``, 422).
* The database being unreachable is 503 ``database_unavailable`` with ``Retry-After``: the
  public endpoints keep serving from memory meanwhile; only writes and reads of the admin
  API need the database.
* Anything else is a bug: logged (type and traceback, no request data) and answered 500.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from jwkit.service.domain.common import ServiceError
from jwkit.service.http.metrics import ERRORS

__all__ = ["install_error_handlers"]

log = logging.getLogger("jwkit.service.http")

_HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 406: "not_acceptable", 409: "conflict",
    413: "payload_too_large", 415: "unsupported_media_type", 422: "validation_error",
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
        return ("a scope is 1 to 100 printable ASCII characters without spaces, "
                'double quotes or backslashes (RFC 6749 §3.3), e.g. "read:orders"')
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
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path,
                type(exc.orig if isinstance(exc, DBAPIError) else exc).__name__)
    return JSONResponse(
        {"error": "database_unavailable",
         "message": "the database cannot be reached; try again shortly"},
        status_code=503,
        headers={"Retry-After": "5"},
    )


async def _bug(request: Request, exc: Exception) -> JSONResponse:
    ERRORS.labels("internal").inc()
    log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path,
              exc_info=exc)
    return JSONResponse(
        {"error": "internal_error", "message": "an unexpected error occurred"}, status_code=500
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(ServiceError, _service)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(DBAPIError, _database)
    app.add_exception_handler(Exception, _bug)
