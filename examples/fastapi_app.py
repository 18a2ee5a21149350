"""A FastAPI API protected by jwkit.

    JWKIT_EXAMPLE_JWKS_URL=https://issuer.example/.well-known/jwks.json \
        uvicorn --app-dir examples fastapi_app:app

(or ``JWKIT_EXAMPLE_JWK_FILE=public-key.json`` for a local key). Then::

    curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8000/me
"""

from __future__ import annotations

import os
from typing import Annotated, Any

from fastapi import Depends, FastAPI

from jwkit import Claims, Verifier
from jwkit.integrations.fastapi import BearerAuth


def key_source() -> Verifier:
    url = os.environ.get("JWKIT_EXAMPLE_JWKS_URL")
    if url:
        local = url.startswith(("http://127.0.0.1", "http://localhost"))
        return Verifier.from_jwks_url(url, allow_insecure_http=local)
    return Verifier.from_jwk_file(os.environ["JWKIT_EXAMPLE_JWK_FILE"])


app = FastAPI(title="jwkit FastAPI example")
auth = BearerAuth(key_source())  # the three lines: this one,


@app.get("/public")
async def public() -> dict[str, str]:
    return {"hello": "anyone"}


@app.get("/me")  # this one,
async def me(claims: Annotated[Claims, Depends(auth)]) -> dict[str, Any]:  # and this one
    return {"sub": claims.sub, "scopes": sorted(claims.scopes)}


@app.get("/admin")
async def admin(claims: Annotated[Claims, Depends(auth.with_scopes("admin"))]) -> dict[str, Any]:
    return {"sub": claims.sub, "admin": True}
