"""Widely used third-party OAuth clients and resource servers against a real ``jwkit serve``,
each set up as its own documentation says (issue 13, item 19):

* Authlib: RFC 8414 metadata (``AuthorizationServerMetadata``), the client credentials grant
  with its requests ``OAuth2Session`` (``client_secret_basic`` and ``client_secret_post``), and its
  RFC 9068 resource-server validator ``JWTBearerTokenValidator``;
* requests-oauthlib with oauthlib's ``BackendApplicationClient`` (the "Backend Application
  Flow" of its docs), the token checked by PyJWT's ``PyJWKClient``;
* Node: openid-client's ``discovery`` (RFC 8414 for an issuer with a path) and
  ``clientCredentialsGrant``, the token checked by jose's ``createRemoteJWKSet`` +
  ``jwtVerify`` (``typ: at+jwt``).

The server speaks plain http on 127.0.0.1, so each library's documented switch for local
testing is set (``AUTHLIB_INSECURE_TRANSPORT``, ``OAUTHLIB_INSECURE_TRANSPORT``,
openid-client's ``allowInsecureRequests``) — and only that.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.node import npm_lock
from tests.support.serve import ServerProcess, server_env

from .conftest import NODE_PREFIX

pytestmark = [
    pytest.mark.interop,
    # Authlib 1.9 warns about its own internals (its RFC 9068 validator imports keys through
    # a helper it deprecated); nothing the service or these tests can change.
    pytest.mark.filterwarnings("ignore::authlib.deprecate.AuthlibDeprecationWarning"),
]

ADMIN_TOKEN = "interop-admin-token-0123456789abcdef"
AUDIENCE = "https://orders.example"
RFC9068_CLAIMS = {"iss", "exp", "aud", "sub", "client_id", "iat", "jti"}
NODE_SCRIPT = Path(__file__).resolve().parent / "node" / "oauth_client.mjs"
NODE_PACKAGES = ("jose@6", "openid-client@6")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A real server, one project (ES256, audience AUDIENCE) and one client (read write)."""
    home = tmp_path_factory.mktemp("oauth-interop")
    env = server_env(home, admin_token=ADMIN_TOKEN, admin_password="interop password 1234")
    server = ServerProcess(home, env).start()
    try:
        with server.api() as api:
            project = api.post(
                "/api/v1/projects", json={"name": "interop", "audience": AUDIENCE}
            ).json()
            made = api.post(
                f"/api/v1/projects/{project['id']}/clients",
                json={"name": "backend", "scopes": ["read", "write"]},
            ).json()
        yield {"url": server.url, "project": project, "client_id": made["client_id"],
               "client_secret": made["client_secret"]}  # fmt: skip
    finally:
        server.stop()


def _metadata_url(issuer: str) -> str:
    """RFC 8414 §3.1: the well-known segment goes between the host and the issuer's path."""
    parts = urlsplit(issuer)
    return f"{parts.scheme}://{parts.netloc}/.well-known/oauth-authorization-server{parts.path}"


# -- Authlib -------------------------------------------------------------------------------


def test_authlib_metadata_validates(service: dict[str, Any]) -> None:
    from authlib.oauth2.rfc8414 import AuthorizationServerMetadata

    issuer = service["project"]["issuer"]
    metadata = AuthorizationServerMetadata(httpx.get(_metadata_url(issuer)).json())
    assert metadata["issuer"] == issuer
    # Every check Authlib has but two: the issuer's https (the test server is plain http), and
    # response_types_supported, which Authlib reads as missing when it is the empty array that
    # RFC 8414 §2 allows (no grant of ours uses the authorization endpoint, so no response
    # type is supported); that one is checked here by hand.
    skipped = {"validate_issuer", "validate_response_types_supported"}
    checks = [n for n in dir(metadata) if n.startswith("validate_") and n not in skipped]
    assert len(checks) > 10
    for name in checks:
        getattr(metadata, name)()
    assert metadata["response_types_supported"] == []
    assert "authorization_endpoint" not in metadata


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_authlib_client_credentials_and_rfc9068_validation(
    service: dict[str, Any], method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from authlib.integrations.requests_client import OAuth2Session
    from authlib.oauth2.rfc9068 import JWTBearerTokenValidator

    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")  # plain http on 127.0.0.1
    issuer = service["project"]["issuer"]
    metadata = httpx.get(_metadata_url(issuer)).json()
    with OAuth2Session(service["client_id"], service["client_secret"],
                       token_endpoint_auth_method=method, scope="read") as client:  # fmt: skip
        token = client.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
    assert token["token_type"] == "Bearer" and token["scope"] == "read"

    class Validator(JWTBearerTokenValidator):  # type: ignore[misc]
        def get_jwks(self) -> dict[str, Any]:
            return dict(httpx.get(metadata["jwks_uri"]).json())

    validator = Validator(issuer=issuer, resource_server=AUDIENCE)
    claims = validator.authenticate_token(token["access_token"])
    validator.validate_token(claims, scopes=["read"], request=None)
    assert set(claims) >= RFC9068_CLAIMS
    assert claims["client_id"] == claims["sub"] == service["client_id"]
    assert claims.header["typ"] == "at+jwt"

    from authlib.oauth2.rfc6750.errors import InsufficientScopeError

    with pytest.raises(InsufficientScopeError):
        validator.validate_token(claims, scopes=["write"], request=None)


# -- requests-oauthlib + oauthlib ----------------------------------------------------------


def test_requests_oauthlib_backend_application_flow(
    service: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import jwt as pyjwt
    from oauthlib.oauth2 import BackendApplicationClient
    from requests_oauthlib import OAuth2Session

    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # plain http on 127.0.0.1
    issuer = service["project"]["issuer"]
    metadata = httpx.get(_metadata_url(issuer)).json()
    oauth = OAuth2Session(client=BackendApplicationClient(client_id=service["client_id"]))
    token = oauth.fetch_token(token_url=metadata["token_endpoint"],
                              client_id=service["client_id"],
                              client_secret=service["client_secret"])  # fmt: skip
    assert token["token_type"] == "Bearer"
    assert sorted(token["scope"]) == ["read", "write"]  # no scope asked: all of the client's

    jwks = pyjwt.PyJWKClient(metadata["jwks_uri"])
    key = jwks.get_signing_key_from_jwt(token["access_token"])
    claims = pyjwt.decode(token["access_token"], key, algorithms=["ES256"], audience=AUDIENCE,
                          issuer=issuer, options={"require": sorted(RFC9068_CLAIMS)})  # fmt: skip
    assert claims["client_id"] == service["client_id"]
    assert pyjwt.get_unverified_header(token["access_token"])["typ"] == "at+jwt"


# -- Node: openid-client + jose ------------------------------------------------------------


@pytest.fixture(scope="session")
def node_oauth() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("the Node OAuth interop needs `node` and `npm` on the PATH")
    modules = NODE_PREFIX / "node_modules"
    with npm_lock(NODE_PREFIX):  # pytest-xdist workers: one install at a time
        if not all((modules / p.split("@")[0] / "package.json").is_file() for p in NODE_PACKAGES):
            subprocess.run(
                [npm, "install", "--prefix", str(NODE_PREFIX), "--no-audit", "--no-fund",
                 *NODE_PACKAGES],
                check=True, capture_output=True, timeout=100,
            )  # fmt: skip
    return node


@pytest.mark.parametrize("auth", ["basic", "post"])
def test_openid_client_discovery_grant_and_jose_remote_jwks(
    service: dict[str, Any], node_oauth: str, auth: str
) -> None:
    request = {"issuer": service["project"]["issuer"], "client_id": service["client_id"],
               "client_secret": service["client_secret"], "auth": auth, "scope": "write",
               "audience": AUDIENCE}  # fmt: skip
    done = subprocess.run([node_oauth, str(NODE_SCRIPT), str(NODE_PREFIX)],
                          input=json.dumps(request), capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["ok"], result
    assert result["metadata"]["issuer"] == service["project"]["issuer"]
    assert result["token_response"]["scope"] == "write"
    assert result["header"]["typ"] == "at+jwt"
    assert set(result["payload"]) >= RFC9068_CLAIMS
