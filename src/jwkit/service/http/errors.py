"""Exception handlers: every refusal is JSON with a stable ``error`` code.

* 422 for bodies that fail validation (malformed JSON, wrong types, unknown fields), with
  ``detail: [{loc, msg, type}]`` — input values are never echoed back.
* Domain errors keep their status (404, 409 with ``earliest_safe_at``, 422).
* The database being unreachable is 503 ``database_unavailable`` with ``Retry-After``: the
  public endpoints keep serving from memory meanwhile; only writes and reads of the admin
  API need the database.
* A value the database refuses (``DataError``: a NUL character in PostgreSQL text) is 400.
* Anything else is a bug: logged (type and traceback, no request data) and answered 500.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError
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


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    detail = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type"))}
        for e in exc.errors()
    ]
    ERRORS.labels("validation").inc()
    return JSONResponse(
        {"error": "validation_error", "message": "the request is invalid", "detail": detail},
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


async def _bad_data(request: Request, exc: Exception) -> JSONResponse:
    """The database refused a value from the request (PostgreSQL text cannot hold NUL, an
    integer out of its range): the input is wrong, not the service."""
    ERRORS.labels("bad_request").inc()
    return JSONResponse(
        {"error": "bad_request",
         "message": "the request holds a value the database cannot store (such as a NUL "
                    "character)"},
        status_code=400,
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
    app.add_exception_handler(DataError, _bad_data)  # more specific: found first (MRO)
    app.add_exception_handler(Exception, _bug)
