"""A Starlette app (any ASGI app works the same) protected by the jwkit middleware.

    JWKIT_EXAMPLE_JWK_FILE=public_key.json JWKIT_EXAMPLE_AUDIENCE=https://api.example \
        python examples/starlette_app.py        # PORT=8001 (the key service has 8000)

``/public`` is excluded; every other path needs a valid bearer token, and ``/admin`` also
the ``admin`` scope (a second middleware that only guards ``/admin``).
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from jwkit import Verifier
from jwkit.integrations.starlette import BearerAuthMiddleware


def audience() -> str:
    """The ``aud`` this API accepts (a jwkit project's tokens carry its audience, by
    default the project id): a verifier without one accepts tokens meant for other APIs."""
    value = os.environ.get("JWKIT_EXAMPLE_AUDIENCE")
    if not value:
        raise SystemExit("set JWKIT_EXAMPLE_AUDIENCE to the aud your tokens carry")
    return value


def key_source() -> Verifier:
    url = os.environ.get("JWKIT_EXAMPLE_JWKS_URL")
    if url:
        local = url.startswith(("http://127.0.0.1", "http://localhost"))
        return Verifier.from_jwks_url(url, allow_insecure_http=local, audience=audience())
    return Verifier.from_jwk_file(os.environ["JWKIT_EXAMPLE_JWK_FILE"], audience=audience())


async def public(request: Request) -> JSONResponse:
    return JSONResponse({"hello": "anyone"})


async def me(request: Request) -> JSONResponse:
    claims = request.state.claims
    return JSONResponse({"sub": claims.sub, "scopes": sorted(claims.scopes)})


async def admin(request: Request) -> JSONResponse:
    return JSONResponse({"sub": request.state.claims.sub, "admin": True})


verifier = key_source()
app = Starlette(
    routes=[Route("/public", public), Route("/me", me), Route("/admin", admin)],
    middleware=[
        # the admin area: its own middleware instance with the extra scope
        Middleware(
            BearerAuthMiddleware,
            verifier=verifier,
            exclude_paths=["/public", "/me"],
            scopes=["admin"],
        ),
        Middleware(BearerAuthMiddleware, verifier=verifier, exclude_paths=["/public"]),
    ],
)


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8001")))
