"""Errors and helpers shared by the domain modules."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime

__all__ = [
    "Conflict",
    "InvalidInput",
    "NotFound",
    "ServiceError",
    "isoformat",
    "new_id",
    "unix_now",
]


class ServiceError(Exception):
    """A refused operation with a stable ``code`` and the HTTP status it maps to."""

    code = "service_error"
    status = 400

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def to_json(self) -> dict[str, object]:
        return {"error": self.code, "message": self.message}


class NotFound(ServiceError):
    code = "not_found"
    status = 404


class InvalidInput(ServiceError):
    """A value that passes the schema but breaks a rule (e.g. ``ttl`` above the maximum)."""

    code = "invalid_input"
    status = 422

    def __init__(
        self, message: str, *, field: str, code: str | None = None, where: str = "body"
    ) -> None:
        super().__init__(message, code=code)
        self.field = field
        #: Where the value came from: ``body`` or ``query`` (the first item of ``loc``).
        self.where = where

    def to_json(self) -> dict[str, object]:
        return {
            "error": self.code,
            "message": self.message,
            "detail": [{"loc": [self.where, self.field], "msg": self.message, "type": self.code}],
        }


class Conflict(ServiceError):
    """A lifecycle operation that would break valid tokens now (RFC 9110 §15.5.10)."""

    code = "conflict"
    status = 409

    def __init__(
        self, message: str, *, code: str | None = None, earliest_safe_at: int | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.earliest_safe_at = earliest_safe_at

    def to_json(self) -> dict[str, object]:
        body = super().to_json()
        body["earliest_safe_at"] = isoformat(self.earliest_safe_at)
        return body


def unix_now() -> int:
    return int(time.time())


def isoformat(ts: int | None) -> str | None:
    """Unix seconds as RFC 3339 UTC (``2026-01-01T00:00:00Z``), ``None`` stays ``None``."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_id(prefix: str) -> str:
    """``prefix_`` + 128 random bits in base32-ish lowercase (URL- and filename-safe)."""
    return f"{prefix}_{secrets.token_hex(12)}"
