"""Every provider preset builds the documented JWKS URL, issuer and algorithms."""

from __future__ import annotations

from pathlib import Path

import pytest

from jwkit import JWK, Verifier
from jwkit.errors import InvalidIssuer, MissingClaim
from jwkit.verify.providers import PRESETS, SAFE_ALGORITHMS, ProviderConfig, resolve
from tests.support.jwks_server import JWKSServer
from tests.verify.conftest import make_key, token_for

# Verifiers built without audience= on purpose: the audience is not what these tests check
# (tests/verify/test_audience.py holds the AudienceWarning itself).
pytestmark = pytest.mark.filterwarnings("ignore::jwkit.verify.verifier.AudienceWarning")


def test_auth0() -> None:
    c = resolve("auth0", domain="tenant.eu.auth0.com")
    assert c.jwks_url == "https://tenant.eu.auth0.com/.well-known/jwks.json"
    assert c.issuer == "https://tenant.eu.auth0.com/"  # Auth0's issuer ends with a slash
    assert c.algorithms == ("RS256", "PS256") and not c.discovery
    # a pasted URL is forgiven, a path is not
    assert resolve("auth0", domain="https://Tenant.eu.auth0.com/").issuer == c.issuer


def test_okta_uses_discovery() -> None:
    c = resolve("okta", domain="dev-123.okta.com")
    assert c.jwks_url is None and c.discovery
    assert c.issuer == "https://dev-123.okta.com/oauth2/default"
    assert (
        c.discovery_url
        == "https://dev-123.okta.com/oauth2/default/.well-known/openid-configuration"
    )
    custom = resolve("okta", domain="dev-123.okta.com", authorization_server="aus1abc")
    assert custom.issuer == "https://dev-123.okta.com/oauth2/aus1abc"
    org = resolve("okta", domain="dev-123.okta.com", authorization_server=None)
    assert org.issuer == "https://dev-123.okta.com"


def test_cognito() -> None:
    c = resolve("cognito", region="eu-west-1", user_pool_id="eu-west-1_AbC123")
    assert c.issuer == "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123"
    assert c.jwks_url == (
        "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123/.well-known/jwks.json"
    )
    assert c.algorithms == ("RS256",)


def test_clerk_frontend_api_and_jwt_key() -> None:
    c = resolve("clerk", frontend_api="clerk.example.com")
    assert c.jwks_url == "https://clerk.example.com/.well-known/jwks.json"
    assert c.issuer == "https://clerk.example.com"
    dev = resolve("clerk", frontend_api="happy-cat-12.clerk.accounts.dev")
    assert dev.issuer == "https://happy-cat-12.clerk.accounts.dev"
    pem = make_key("RS256").public().to_pem()
    local = resolve("clerk", jwt_key=pem)
    assert local.jwks_url is None and local.keys is not None and len(local.keys) == 1
    assert local.issuer is None
    with pytest.raises(ValueError):
        resolve("clerk")
    with pytest.raises(ValueError):
        resolve("clerk", frontend_api="a.example", jwt_key=pem)


def test_onelogin() -> None:
    c = resolve("onelogin", subdomain="acme")
    assert c.issuer == "https://acme.onelogin.com/oidc/2"
    assert c.jwks_url == "https://acme.onelogin.com/oidc/2/certs"


def test_supertokens() -> None:
    c = resolve("supertokens", api_domain="https://api.example.com")
    assert c.jwks_url == "https://api.example.com/auth/jwt/jwks.json"
    assert c.issuer == "https://api.example.com/auth"
    c2 = resolve("supertokens", api_domain="api.example.com", api_base_path="/")
    assert c2.jwks_url == "https://api.example.com/jwt/jwks.json"
    c3 = resolve("supertokens", api_domain="https://api.example.com/", api_base_path="v1/auth/")
    assert c3.issuer == "https://api.example.com/v1/auth"


def test_transcodes(tmp_path: Path) -> None:
    key = make_key("RS256", "tc-1")
    path = tmp_path / "public_key.json"
    path.write_text(key.public().to_json())
    c = resolve("transcodes", public_key_file=path)
    assert c.jwks_url is None and c.keys is not None and c.keys.get("tc-1") == key.public()
    assert c.algorithms == ("RS256",)


def test_keycloak() -> None:
    c = resolve("keycloak", base_url="https://sso.example.com", realm="acme")
    assert c.issuer == "https://sso.example.com/realms/acme"
    assert c.jwks_url == "https://sso.example.com/realms/acme/protocol/openid-connect/certs"
    old = resolve("keycloak", base_url="https://sso.example.com/auth/", realm="acme")
    assert old.issuer == "https://sso.example.com/auth/realms/acme"
    assert c.algorithms == SAFE_ALGORITHMS


def test_google_and_firebase() -> None:
    g = resolve("google")
    assert g.jwks_url == "https://www.googleapis.com/oauth2/v3/certs"
    assert g.issuer == ("https://accounts.google.com", "accounts.google.com")
    f = resolve("firebase", project_id="my-app")
    assert f.issuer == "https://securetoken.google.com/my-app" and f.audience == "my-app"
    assert f.jwks_url == (
        "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com"
    )


def test_entra() -> None:
    tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
    c = resolve("entra", tenant_id=tenant)
    assert c.issuer == f"https://login.microsoftonline.com/{tenant}/v2.0"
    assert c.jwks_url == f"https://login.microsoftonline.com/{tenant}/discovery/v2.0/keys"
    multi = resolve("entra", tenant_id="common")
    assert multi.issuer is None
    assert multi.issuer_template == "https://login.microsoftonline.com/{tenantid}/v2.0"
    assert multi.jwks_url == "https://login.microsoftonline.com/common/discovery/v2.0/keys"


def test_jwkit_and_oidc() -> None:
    c = resolve("jwkit", base_url="https://keys.example.com/", project_id="prj_42")
    assert c.issuer == "https://keys.example.com/p/prj_42"
    assert c.jwks_url == "https://keys.example.com/p/prj_42/.well-known/jwks.json"
    o = resolve("oidc", issuer="https://idp.example.com/tenant")
    assert o.discovery and o.jwks_url is None and o.issuer == "https://idp.example.com/tenant"
    assert o.discovery_url == "https://idp.example.com/tenant/.well-known/openid-configuration"


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("auth0", {"domain": "evil.example/path"}),
        ("auth0", {"domain": "a.example?x=1"}),
        ("auth0", {"domain": "user@a.example"}),
        ("auth0", {"domain": ""}),
        ("okta", {"domain": "x.okta.com", "authorization_server": "../admin"}),
        ("cognito", {"region": "mars", "user_pool_id": "eu-west-1_A"}),
        ("cognito", {"region": "eu-west-1", "user_pool_id": "../x"}),
        ("onelogin", {"subdomain": "a/b"}),
        ("keycloak", {"base_url": "sso.example.com", "realm": "r"}),
        ("keycloak", {"base_url": "https://sso.example.com?x", "realm": "r"}),
        ("keycloak", {"base_url": "https://sso.example.com", "realm": "a/b"}),
        ("jwkit", {"base_url": "https://k.example", "project_id": ".."}),
        ("supertokens", {"api_domain": "https://a.example", "api_base_path": "/../x"}),
        ("entra", {"tenant_id": "x/y"}),
        ("oidc", {"issuer": "not a url"}),
        ("nope", {}),
    ],
)
def test_bad_parameters_are_refused(name: str, params: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        resolve(name, **params)


def test_missing_parameters_are_type_errors() -> None:
    with pytest.raises(TypeError):
        resolve("auth0")
    with pytest.raises(TypeError):
        resolve("google", domain="x")


def test_every_preset_is_tested_here() -> None:
    names = {
        "auth0", "okta", "cognito", "clerk", "onelogin", "supertokens", "transcodes",
        "keycloak", "google", "firebase", "entra", "jwkit", "oidc",
    }  # fmt: skip
    assert set(PRESETS) == names
    assert isinstance(resolve("Google"), ProviderConfig)


def test_clerk_key_is_public_only() -> None:
    private_pem = make_key("RS256").to_pem(private=True)
    config = resolve("clerk", jwt_key=private_pem)
    assert config.keys is not None
    assert not any(k.is_private for k in config.keys)
    assert isinstance(config.keys.keys[0], JWK)


def test_supertokens_issuer_is_checked(jwks_server: JWKSServer) -> None:
    """What the preset checks, end to end: the SDK-written ``iss`` passes; another value or
    none is refused; ``issuer=`` swaps in the value a custom setup writes."""
    key = make_key("RS256", "st-1")
    jwks_server.serve_json({"keys": [key.public().to_dict()]}, path="/auth/jwt/jwks.json")
    base = jwks_server.url + "/auth"
    options = {"api_domain": jwks_server.url, "allow_insecure_http": True}
    with Verifier.from_provider("supertokens", **options) as verifier:
        assert verifier.verify(token_for(key, {"iss": base}))["sub"] == "user-1"
        with pytest.raises(InvalidIssuer):
            verifier.verify(token_for(key, {"iss": "https://elsewhere.example/auth"}))
        with pytest.raises(MissingClaim):  # no iss (older SDKs, sessions made without one)
            verifier.verify(token_for(key, {"iss": None}))
    custom = "https://auth.example.com"
    with Verifier.from_provider("supertokens", issuer=custom, **options) as verifier:
        assert verifier.verify(token_for(key, {"iss": custom}))["sub"] == "user-1"
        with pytest.raises(InvalidIssuer):
            verifier.verify(token_for(key, {"iss": base}))


def test_issuer_none_keeps_the_presets_issuer(jwks_server: JWKSServer) -> None:
    # An unset setting passed straight through (issuer=os.environ.get(...)) must not turn the
    # issuer check off: a token from another issuer is still refused.
    key = make_key("RS256", "st-2")
    jwks_server.serve_json({"keys": [key.public().to_dict()]}, path="/auth/jwt/jwks.json")
    options = {"api_domain": jwks_server.url, "allow_insecure_http": True}
    with Verifier.from_provider("supertokens", issuer=None, **options) as verifier:
        assert verifier.issuer == jwks_server.url + "/auth"
        assert verifier.verify(token_for(key, {"iss": jwks_server.url + "/auth"}))
        with pytest.raises(InvalidIssuer):
            verifier.verify(token_for(key, {"iss": "https://evil.example"}))
