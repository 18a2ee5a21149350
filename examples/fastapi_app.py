"""A FastAPI API protected by jwkit.

    JWKIT_EXAMPLE_JWKS_URL=https://issuer.example/.well-known/jwks.json \
    JWKIT_EXAMPLE_AUDIENCE=https://api.example \
        python examples/fastapi_app.py          # PORT=8001 (the key service has 8000)

(or ``JWKIT_EXAMPLE_JWK_FILE=public_key.json`` for a local key;
``uvicorn --app-dir examples fastapi_app:app --port 8001`` works too). Then::

    curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8001/me
"""

from __future__ import annotations

import os
from typing import Annotated, Any

from fastapi import Depends, FastAPI

from jwkit import Claims, Verifier
from jwkit.integrations.fastapi import BearerAuth


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


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8001")))
