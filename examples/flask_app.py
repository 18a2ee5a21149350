"""A Flask API protected by jwkit (sync and async views).

    JWKIT_EXAMPLE_JWK_FILE=public_key.json JWKIT_EXAMPLE_AUDIENCE=https://api.example \
        python examples/flask_app.py            # PORT=5000

or ``flask --app examples/flask_app run`` (also port 5000).
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, g

from jwkit import Verifier
from jwkit.integrations.flask import JWKit


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


app = Flask(__name__)
jwkit = JWKit(app, key_source())  # the three lines: this one,


@app.get("/public")
def public() -> dict[str, Any]:
    return {"hello": "anyone"}


@app.get("/me")
@jwkit.require_token  # this one,
def me() -> dict[str, Any]:
    return {"sub": g.claims.sub, "scopes": sorted(g.claims.scopes)}  # and this one


@app.get("/admin")
@jwkit.require_token(scopes="admin")
async def admin() -> dict[str, Any]:
    return {"sub": g.claims.sub, "admin": True}


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "5000")))
