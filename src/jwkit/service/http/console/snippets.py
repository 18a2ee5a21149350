"""Copy-ready verification snippets filled with one project's real values.

Each snippet runs as shown (``tests/service/test_console_snippets.py`` runs every one against a
live ``jwkit serve``): a script that verifies the token given on its command line, or an app.
Asymmetric projects verify with the downloaded ``public_key.json`` or by following the JWKS
URL; shared-secret (HS*) projects with the ``secret_jwks.json`` the console showed once.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["SNIPPET_TITLES", "snippets_for"]

#: The snippets the console shows, in order: (key, title).
SNIPPET_TITLES = (
    ("python", "Python (jwkit)"),
    ("fastapi", "Python (FastAPI)"),
    ("node", "Node (jose)"),
)


def _q(value: Any) -> str:
    """A string literal valid in both Python and JavaScript."""
    return json.dumps(str(value))


def _insecure(url: str, indent: str) -> str:
    """The opt-in a plain-http JWKS URL needs (a local ``jwkit serve``), said as such."""
    if not url.startswith("http://"):
        return ""
    return (
        f"{indent}# Only because this key service runs on plain http (a local test); "
        f"drop it once\n{indent}# the service is behind https.\n"
        f"{indent}allow_insecure_http=True,\n"
    )


def snippets_for(project: dict[str, Any]) -> dict[str, str]:
    """Python (jwkit ``Verifier``), FastAPI (``BearerAuth``) and Node (``jose``) snippets."""
    if str(project["algorithm"]).startswith("HS"):
        return _shared_secret(project)
    jwks, iss = _q(project["jwks_uri"]), _q(project["issuer"])
    aud, alg = _q(project["audience"]), _q(project["algorithm"])
    python = f"""# verify.py: python verify.py TOKEN
import sys

from jwkit.verify import Verifier

# The public_key.json downloaded from the console's JSON Web Key panel. It keeps
# verifying only tokens of that key: to follow rotations automatically, use
# Verifier.from_jwks_url({jwks}, ...) as in the FastAPI snippet.
verifier = Verifier.from_jwk_file(
    "public_key.json",
    issuer={iss},
    audience={aud},
    algorithms=[{alg}],
)
claims = verifier.verify(sys.argv[1])  # raises jwkit.InvalidToken when anything is wrong
print(claims.sub, claims.expires_at)
"""
    fastapi = f"""# app.py: uvicorn app:app --port 8001
from typing import Annotated

from fastapi import Depends, FastAPI

from jwkit import Claims
from jwkit.integrations.fastapi import BearerAuth
from jwkit.verify import Verifier

# Follows the JWKS URL, so rotations need no change here.
verifier = Verifier.from_jwks_url(
    {jwks},
    issuer={iss},
    audience={aud},
    algorithms=[{alg}],
{_insecure(str(project["jwks_uri"]), "    ")})
auth = BearerAuth(verifier)
app = FastAPI()


@app.get("/me")
async def me(claims: Annotated[Claims, Depends(auth)]) -> dict[str, str | None]:
    return {{"sub": claims.sub}}
"""
    node = f"""// verify.mjs: npm install jose; node verify.mjs TOKEN
import {{ createRemoteJWKSet, jwtVerify }} from "jose";

const JWKS = createRemoteJWKSet(new URL({jwks}));

export async function verify(token) {{
  const {{ payload }} = await jwtVerify(token, JWKS, {{
    issuer: {iss},
    audience: {aud},
    algorithms: [{alg}],
  }});
  return payload; // exp, nbf and iat are checked by jwtVerify
}}

if (process.argv[2]) {{
  console.log(await verify(process.argv[2]));
}}
"""
    return {"python": python, "fastapi": fastapi, "node": node}


def _shared_secret(project: dict[str, Any]) -> dict[str, str]:
    """HS*: the verifier holds ``secret_jwks.json`` (active and next secret), shown once."""
    iss, aud, alg = _q(project["issuer"]), _q(project["audience"]), _q(project["algorithm"])
    python = f"""# verify.py: python verify.py TOKEN
import sys

from jwkit.verify import Verifier

# secret_jwks.json: the shared secrets the console showed once (keep the file
# private, e.g. mode 0600). It is re-read when it changes, so adding the next
# secret before a rotation needs no restart.
verifier = Verifier.from_jwk_file(
    "secret_jwks.json",
    issuer={iss},
    audience={aud},
    algorithms=[{alg}],
)
claims = verifier.verify(sys.argv[1])  # raises jwkit.InvalidToken when anything is wrong
print(claims.sub, claims.expires_at)
"""
    fastapi = f"""# app.py: uvicorn app:app --port 8001
from typing import Annotated

from fastapi import Depends, FastAPI

from jwkit import Claims
from jwkit.integrations.fastapi import BearerAuth
from jwkit.verify import Verifier

# secret_jwks.json: the shared secrets the console showed once; re-read when it changes.
verifier = Verifier.from_jwk_file(
    "secret_jwks.json",
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
    node = f"""// verify.mjs: npm install jose; node verify.mjs TOKEN
import {{ readFileSync }} from "node:fs";
import {{ importJWK, jwtVerify }} from "jose";

// secret_jwks.json: the shared secrets the console showed once.
const {{ keys }} = JSON.parse(readFileSync("secret_jwks.json", "utf8"));

export async function verify(token) {{
  const {{ payload }} = await jwtVerify(token, async (header) => {{
    const jwk = keys.find((k) => k.kid === header.kid);
    if (!jwk) throw new Error(`no shared secret with kid ${{header.kid}}`);
    return importJWK(jwk, {alg});
  }}, {{
    issuer: {iss},
    audience: {aud},
    algorithms: [{alg}],
  }});
  return payload; // exp, nbf and iat are checked by jwtVerify
}}

if (process.argv[2]) {{
  console.log(await verify(process.argv[2]));
}}
"""
    return {"python": python, "fastapi": fastapi, "node": node}
