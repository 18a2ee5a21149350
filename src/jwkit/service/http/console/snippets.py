"""Copy-ready verification snippets filled with one project's real values."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["snippets_for"]


def _q(value: Any) -> str:
    """A string literal valid in both Python and JavaScript."""
    return json.dumps(str(value))


def snippets_for(project: dict[str, Any]) -> dict[str, str]:
    """Python (jwkit ``Verifier``), FastAPI (``BearerAuth``) and Node (``jose``) snippets."""
    jwks, iss = _q(project["jwks_uri"]), _q(project["issuer"])
    aud, alg = _q(project["audience"]), _q(project["algorithm"])
    python = f"""from jwkit.verify import Verifier

# The public_key.json you downloaded from the console; or follow rotations
# automatically with Verifier.from_jwks_url({jwks}, ...).
verifier = Verifier.from_jwk_file(
    "public_key.json",
    issuer={iss},
    audience={aud},
    algorithms=[{alg}],
)
claims = verifier.verify(token)  # raises jwkit.InvalidToken when anything is wrong
print(claims.sub, claims.expires_at)
"""
    fastapi = f"""from typing import Annotated

from fastapi import Depends, FastAPI

from jwkit import Claims
from jwkit.integrations.fastapi import BearerAuth
from jwkit.verify import Verifier

verifier = Verifier.from_jwks_url(
    {jwks},
    issuer={iss},
    audience={aud},
    algorithms=[{alg}],
)
auth = BearerAuth(verifier)
app = FastAPI()


@app.get("/me")
async def me(claims: Annotated[Claims, Depends(auth)]) -> dict[str, str | None]:
    return {{"sub": claims.sub}}
"""
    node = f"""import {{ createRemoteJWKSet, jwtVerify }} from "jose";

const JWKS = createRemoteJWKSet(new URL({jwks}));

export async function verify(token) {{
  const {{ payload }} = await jwtVerify(token, JWKS, {{
    issuer: {iss},
    audience: {aud},
    algorithms: [{alg}],
  }});
  return payload; // exp, nbf and iat are checked by jwtVerify
}}
"""
    return {"python": python, "fastapi": fastapi, "node": node}
