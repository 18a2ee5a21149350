"""A real DPoP client (RFC 9449) against jwkit at both ends: ``oauth4webapi`` (npm, Node)
gets a DPoP-bound token from a real ``jwkit serve`` and calls a FastAPI app served by a real
uvicorn and protected by jwkit's ``DPoPVerifier`` (which fetches the service's JWKS).

``oauth4webapi`` is installed once into ``<repo>/.cache/node`` like the other Node interop
packages; the test is skipped only when ``node``/``npm`` are missing.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from jwkit import JWK, Claims, Verifier
from jwkit.integrations.fastapi import BearerAuth
from jwkit.jose.jwt import decode_unverified
from jwkit.verify.dpop import DPoPVerifier, RotatingNonces
from tests.support.node import npm_lock
from tests.support.serve import ServerProcess, serve_in_thread, server_env

from .conftest import NODE_PREFIX

pytestmark = pytest.mark.interop

ADMIN_TOKEN = "dpop-interop-admin-token-0123456789"
AUDIENCE = "https://orders.example"
NODE_SCRIPT = Path(__file__).resolve().parent / "node" / "dpop_client.mjs"
NODE_PACKAGE = "oauth4webapi@3"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A real key service: one project (audience AUDIENCE), one client (scope read)."""
    home = tmp_path_factory.mktemp("dpop-interop")
    env = server_env(home, admin_token=ADMIN_TOKEN, admin_password="interop password 1234")
    server = ServerProcess(home, env).start()
    try:
        with server.api() as api:
            project = api.post(
                "/api/v1/projects", json={"name": "dpop", "audience": AUDIENCE}
            ).json()
            made = api.post(
                f"/api/v1/projects/{project['id']}/clients",
                json={"name": "backend", "scopes": ["read"]},
            ).json()
        yield {"project": project, "client_id": made["client_id"],
               "client_secret": made["client_secret"]}  # fmt: skip
    finally:
        server.stop()


def resource_app(project: dict[str, Any]) -> FastAPI:
    """The API as a jwkit user writes it: a Verifier on the issuer's JWKS, wrapped in a
    DPoPVerifier, given to BearerAuth (one route without and one with server nonces)."""
    verifier = Verifier.from_jwks_url(
        project["jwks_uri"], issuer=project["issuer"], audience=AUDIENCE, allow_insecure_http=True
    )
    auth = BearerAuth(DPoPVerifier(verifier))
    nonce_auth = BearerAuth(DPoPVerifier(verifier, nonces=RotatingNonces(secrets.token_bytes(32))))
    app = FastAPI()

    @app.get("/orders")
    async def orders(claims: Claims = Depends(auth)) -> dict[str, Any]:  # noqa: B008
        return {"sub": claims.sub, "jkt": claims.get("cnf", {}).get("jkt")}

    @app.get("/nonce")
    async def nonce(claims: Claims = Depends(nonce_auth)) -> dict[str, Any]:  # noqa: B008
        return {"sub": claims.sub}

    return app


@pytest.fixture(scope="module")
def resource(service: dict[str, Any]) -> Iterator[str]:
    """The FastAPI app on a real uvicorn in a thread."""
    with serve_in_thread(resource_app(service["project"])) as url:
        yield url


@pytest.fixture(scope="module")
def node_dpop() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("the DPoP client interop needs `node` and `npm` on the PATH")
    with npm_lock(NODE_PREFIX):  # pytest-xdist workers: one install at a time
        if not (NODE_PREFIX / "node_modules" / "oauth4webapi" / "package.json").is_file():
            subprocess.run(
                [npm, "install", "--prefix", str(NODE_PREFIX), "--no-audit", "--no-fund",
                 NODE_PACKAGE],
                check=True, capture_output=True, timeout=100,
            )  # fmt: skip
    return node


def test_oauth4webapi_gets_a_bound_token_and_calls_a_jwkit_api(
    service: dict[str, Any], resource: str, node_dpop: str
) -> None:
    request = {"issuer": service["project"]["issuer"], "client_id": service["client_id"],
               "client_secret": service["client_secret"], "resource": f"{resource}/orders",
               "nonce_resource": f"{resource}/nonce"}  # fmt: skip
    done = subprocess.run([node_dpop, str(NODE_SCRIPT), str(NODE_PREFIX)],
                          input=json.dumps(request), capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["ok"], result

    token = result["token_response"]
    assert token["token_type"].lower() == "dpop"
    jkt = JWK.from_dict(result["jwk"]).thumbprint()
    assert decode_unverified(token["access_token"])[1]["cnf"] == {"jkt": jkt}

    calls = result["calls"]
    for name in ("dpop", "dpop_again"):  # a fresh proof (new jti, with ath) on every call
        assert calls[name]["status"] == 200, calls[name]
        assert calls[name]["body"] == {"sub": service["client_id"], "jkt": jkt}

    thief = calls["thief"]  # the token with another key's proofs
    assert thief["status"] == 401
    (challenge,) = thief["challenges"]
    assert challenge["scheme"] == "dpop"
    assert challenge["parameters"]["error"] == "invalid_dpop_proof"
    assert "ES256" in challenge["parameters"]["algs"].split()

    bearer = calls["bearer"]  # the token without its proof
    assert bearer["status"] == 401
    (challenge,) = bearer["challenges"]
    assert challenge["scheme"] == "dpop"
    assert challenge["parameters"]["error"] == "invalid_token"
    assert challenge["parameters"]["error_description"] == "dpop_required"

    assert calls["nonce_first"]["status"] == 401 and calls["nonce_first"]["nonce_error"]
    assert calls["nonce_retry"]["status"] == 200, calls["nonce_retry"]


def test_an_unbound_token_stays_a_bearer_token(service: dict[str, Any], resource: str) -> None:
    """Without a proof the service issues a plain bearer token, which the API accepts."""
    proof_free = httpx.post(
        service["project"]["token_endpoint"],
        data={"grant_type": "client_credentials"},
        auth=(service["client_id"], service["client_secret"]),
    ).json()
    assert proof_free["token_type"] == "Bearer"  # no proof, no binding: a bearer token
    r = httpx.get(
        f"{resource}/orders", headers={"Authorization": f"Bearer {proof_free['access_token']}"}
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"sub": service["client_id"], "jkt": None}
