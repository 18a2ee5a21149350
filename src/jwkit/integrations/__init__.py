"""Protect an API in three lines: FastAPI, Starlette/ASGI, Flask and Django.

Each framework lives in its own module and is imported only when you import that module:
``jwkit.integrations.fastapi``, ``.starlette``, ``.flask``, ``.django``. This package itself
holds only what they share (see :mod:`jwkit.integrations._common`) and never imports a
framework.
"""

from __future__ import annotations

from jwkit.integrations._common import (
    DEFAULT_REALM,
    Authenticator,
    Denial,
    ErrorResponses,
    NoToken,
    TokenVerifier,
    asgi_authorization,
    bearer_token,
    normalize_scopes,
    require_scopes,
)

__all__ = [
    "DEFAULT_REALM",
    "Authenticator",
    "Denial",
    "ErrorResponses",
    "NoToken",
    "TokenVerifier",
    "asgi_authorization",
    "bearer_token",
    "normalize_scopes",
    "require_scopes",
]
