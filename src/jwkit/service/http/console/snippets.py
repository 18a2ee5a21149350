"""Copy-ready verification snippets filled with one project's real values.

Each snippet runs as shown (``tests/service/test_console_snippets.py`` runs every one against a
live ``jwkit serve``): a script that verifies the token given on its command line, or an app.
Asymmetric projects verify with the downloaded ``public_key.json`` or by following the JWKS
URL; shared-secret (HS*) projects with the ``secret_jwks.json`` the console showed once.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["snippets_for"]

_SCRIPT = """# verify.py: python verify.py TOKEN
import sys

from jwkit.verify import Verifier

{comment}verifier = {verifier}
claims = verifier.verify(sys.argv[1])  # raises jwkit.InvalidToken when anything is wrong
print(claims.sub, claims.expires_at)
"""

_APP = """# app.py: uvicorn app:app --port 8001
from typing import Annotated

from fastapi import Depends, FastAPI

from jwkit import Claims
from jwkit.integrations.fastapi import BearerAuth
from jwkit.verify import Verifier

{comment}verifier = {verifier}
auth = BearerAuth(verifier)
app = FastAPI()


@app.get("/me")
async def me(claims: Annotated[Claims, Depends(auth)]) -> dict[str, str | None]:
    return {{"sub": claims.sub}}
"""

_NODE = """// verify.mjs: npm install jose; node verify.mjs TOKEN
// jose checks the signature and the claims, not the token's status list (revocation).
{imports}
export async function verify(token) {{
  const {{ payload }} = await jwtVerify(token, {keys}, {{
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


def _q(value: Any) -> str:
    """A string literal valid in both Python and JavaScript."""
    return json.dumps(str(value))


def _insecure(url: str, option: str = "allow_insecure_http") -> str:
    """The opt-in a plain-http URL needs (a local ``jwkit serve``), said as such: the JWKS URL's
    (which also covers the status lists), or only the status lists' for a key file."""
    if not url.startswith("http://"):
        return ""
    return (
        "    # Only because this key service runs on plain http (a local test); drop it once\n"
        "    # the service is behind https.\n"
        f"    {option}=True,\n"
    )


def _from_file(project: dict[str, Any], filename: str) -> str:
    """A verifier of a key file; revocation is still checked against the issuer's status list
    (on by default), which a plain-http issuer must opt into."""
    extra = _insecure(str(project["issuer"]), "status_allow_insecure_http")
    return _verifier(project, "from_jwk_file", f'"{filename}"', extra)


def _verifier(project: dict[str, Any], constructor: str, source: str, extra: str = "") -> str:
    """``Verifier.<constructor>(source, issuer=..., audience=..., algorithms=[...])``."""
    return (
        f"Verifier.{constructor}(\n    {source},\n    issuer={_q(project['issuer'])},\n"
        f"    audience={_q(project['audience'])},\n"
        f"    algorithms=[{_q(project['algorithm'])}],\n{extra})"
    )


def _comment(*lines: str) -> str:
    return "".join(f"# {line}\n" for line in lines)


def snippets_for(project: dict[str, Any]) -> dict[str, str]:
    """Python (jwkit ``Verifier``), FastAPI (``BearerAuth``) and Node (``jose``) snippets."""
    iss, aud, alg = _q(project["issuer"]), _q(project["audience"]), _q(project["algorithm"])
    if str(project["algorithm"]).startswith("HS"):
        secret = _from_file(project, "secret_jwks.json")
        python = _SCRIPT.format(
            verifier=secret,
            comment=_comment(
                "secret_jwks.json: the shared secrets the console showed once (keep the file",
                "private, e.g. mode 0600). It is re-read when it changes, so adding the next",
                "secret before a rotation needs no restart.",
            ),
        )
        fastapi = _APP.format(
            verifier=secret,
            comment=_comment(
                "secret_jwks.json: the shared secrets the console showed once; re-read when it "
                "changes."
            ),
        )
        node = _NODE.format(
            iss=iss,
            aud=aud,
            alg=alg,
            keys="async (header) => {\n"
            "    const jwk = keys.find((k) => k.kid === header.kid);\n"
            "    if (!jwk) throw new Error(`no shared secret with kid "
            "${header.kid}`);\n"
            f"    return importJWK(jwk, {alg});\n  }}",
            imports=(
                'import { readFileSync } from "node:fs";\n'
                'import { importJWK, jwtVerify } from "jose";\n\n'
                "// secret_jwks.json: the shared secrets the console showed "
                "once.\n"
                'const { keys } = JSON.parse(readFileSync("secret_jwks.json", '
                '"utf8"));\n'
            ),
        )
        return {"python": python, "fastapi": fastapi, "node": node}
    jwks = _q(project["jwks_uri"])
    python = _SCRIPT.format(
        verifier=_from_file(project, "public_key.json"),
        comment=_comment(
            "The public_key.json downloaded from the console's JSON Web Key panel. It keeps",
            "verifying only tokens of that key: to follow rotations automatically, use",
            f"Verifier.from_jwks_url({jwks}, ...) as in the FastAPI snippet.",
        ),
    )
    fastapi = _APP.format(
        verifier=_verifier(project, "from_jwks_url", jwks, _insecure(str(project["jwks_uri"]))),
        comment=_comment("Follows the JWKS URL, so rotations need no change here."),
    )
    node = _NODE.format(
        iss=iss,
        aud=aud,
        alg=alg,
        keys="JWKS",
        imports=(
            'import { createRemoteJWKSet, jwtVerify } from "jose";\n\n'
            f"const JWKS = createRemoteJWKSet(new URL({jwks}));\n"
        ),
    )
    return {"python": python, "fastapi": fastapi, "node": node}
