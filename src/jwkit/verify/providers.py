"""Provider presets: a provider name and its parameters -> JWKS URL, issuer, algorithms.

:func:`resolve` builds a :class:`ProviderConfig`; ``Verifier.from_provider`` turns it into a
verifier. The URLs and issuers are the ones each provider documents (see
``docs/providers.md`` for the table and the sources):

=============  ==================================================  ==============================
preset         JWKS                                                issuer
=============  ==================================================  ==============================
auth0          ``https://{domain}/.well-known/jwks.json``          ``https://{domain}/``
okta           discovery of the issuer                             ``https://{domain}/oauth2/{as}``
cognito        ``{issuer}/.well-known/jwks.json``                  ``https://cognito-idp.{region}.amazonaws.com/{pool}``
clerk          ``https://{frontend_api}/.well-known/jwks.json``    ``https://{frontend_api}``
onelogin       ``https://{sub}.onelogin.com/oidc/2/certs``         ``https://{sub}.onelogin.com/oidc/2``
supertokens    ``{api_domain}{api_base_path}/jwt/jwks.json``       ``{api_domain}{api_base_path}``
transcodes     local ``public_key.json``                           (optional ``issuer=``)
keycloak       ``{issuer}/protocol/openid-connect/certs``          ``{base_url}/realms/{realm}``
google         ``https://www.googleapis.com/oauth2/v3/certs``      ``https://accounts.google.com``
firebase       ``.../service_accounts/v1/jwk/securetoken@...``     ``https://securetoken.google.com/{project_id}``
entra          ``https://login.microsoftonline.com/{t}/discovery/v2.0/keys``  ``.../{t}/v2.0``
jwkit          ``{issuer}/.well-known/jwks.json``                  ``{base_url}/p/{project_id}``
oidc           discovery of the issuer                             the issuer given
=============  ==================================================  ==============================

Parameters are checked so that they can only ever fill their own URL segment: a domain is a
host name (with an optional port), an id is a plain token, a base URL is an absolute
``https`` URL without query or fragment.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from os import PathLike
from typing import Any

from ..jose.algorithms import ALGORITHMS, ASYMMETRIC_ALGORITHMS
from ..jose.jwk import JWK, JWKSet
from .sources import load_key_file

__all__ = ["PRESETS", "SAFE_ALGORITHMS", "ProviderConfig", "resolve"]

#: What a verifier of a remote, unknown issuer accepts by default: asymmetric only.
_PREFERRED = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
SAFE_ALGORITHMS: tuple[str, ...] = tuple(
    a for a in (*_PREFERRED, "EdDSA") if a in ASYMMETRIC_ALGORITHMS
)
_RSA = ("RS256",)
_ENTRA_MULTI = frozenset({"common", "organizations", "consumers"})


@dataclass(frozen=True)
class ProviderConfig:
    """Where a provider's keys live and what its tokens look like.

    ``jwks_url`` is ``None`` when the keys come from OpenID discovery (``discovery``) or are
    local (``keys``). ``issuer`` is the exact ``iss`` value (a tuple when several spellings
    are valid); ``issuer_template`` replaces it for multi-tenant setups (use
    :class:`~jwkit.verify.multi.MultiVerifier`). ``audience`` is set when the provider
    fixes it (Firebase: the project id).
    """

    name: str
    jwks_url: str | None
    issuer: str | tuple[str, ...] | None
    algorithms: tuple[str, ...]
    discovery: bool = False
    audience: str | None = None
    keys: JWKSet | None = field(default=None, compare=False)
    issuer_template: str | None = None

    @property
    def discovery_url(self) -> str | None:
        """``{issuer}/.well-known/openid-configuration`` for discovery presets."""
        if not self.discovery or not isinstance(self.issuer, str):
            return None
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"


_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(?::[0-9]{1,5})?")
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~-]{0,127}")
_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}")
_POOL = re.compile(r"[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}_[A-Za-z0-9]+")
_PATH = re.compile(r"(?:/[A-Za-z0-9._~-]+)*")


def _host(value: Any, name: str) -> str:
    """A bare host name; a leading ``https://`` and a trailing ``/`` are forgiven."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string")
    host = value.strip()
    if host.startswith("https://"):
        host = host[len("https://") :]
    host = host.rstrip("/")
    if not _HOST.fullmatch(host) or ".." in host:
        raise ValueError(f"{name} must be a host name such as 'example.com', got {value!r}")
    return host.lower()


def _token(value: Any, name: str, pattern: re.Pattern[str] = _TOKEN) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value) or value in (".", ".."):
        raise ValueError(f"invalid {name}: {value!r}")
    return value


def _base_url(value: Any, name: str) -> str:
    """An absolute http(s) URL with no query, fragment or credentials; no trailing slash.

    ``http`` is accepted here; the remote source refuses it unless ``allow_insecure_http``.
    """
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string")
    url = value.strip().rstrip("/")
    match = re.fullmatch(r"(https?)://([^/?#@\s]+)((?:/[^?#\s]*)?)", url)
    if not match or not _HOST.fullmatch(match.group(2)) or not _PATH.fullmatch(match.group(3)):
        raise ValueError(f"{name} must be an absolute https URL without query, got {value!r}")
    return url


def _path(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string")
    path = "/" + value.strip().strip("/") if value.strip("/ ") else ""
    if not _PATH.fullmatch(path) or "/../" in path + "/" or "/./" in path + "/":
        raise ValueError(f"invalid {name}: {value!r}")
    return path


def auth0(domain: str) -> ProviderConfig:
    host = _host(domain, "domain")
    return ProviderConfig(
        "auth0", f"https://{host}/.well-known/jwks.json", f"https://{host}/", ("RS256", "PS256")
    )


def okta(domain: str, authorization_server: str | None = "default") -> ProviderConfig:
    """A custom authorization server (``default`` unless named), or the org server with
    ``authorization_server=None``. Keys come from the issuer's discovery document."""
    host = _host(domain, "domain")
    if authorization_server:
        issuer = f"https://{host}/oauth2/{_token(authorization_server, 'authorization_server')}"
    else:
        issuer = f"https://{host}"
    return ProviderConfig("okta", None, issuer, _RSA, discovery=True)


def cognito(region: str, user_pool_id: str) -> ProviderConfig:
    region = _token(region, "region", _REGION)
    pool = _token(user_pool_id, "user_pool_id", _POOL)
    issuer = f"https://cognito-idp.{region}.amazonaws.com/{pool}"
    return ProviderConfig("cognito", f"{issuer}/.well-known/jwks.json", issuer, _RSA)


def clerk(
    frontend_api: str | None = None,
    jwt_key: str | bytes | None = None,
    issuer: str | None = None,
) -> ProviderConfig:
    """Clerk: the Frontend API host (keys from its JWKS), or ``jwt_key`` (the PEM public key
    or its one-line base64 form, ``CLERK_JWT_KEY``) which needs no network at all."""
    if (frontend_api is None) == (jwt_key is None):
        raise ValueError("clerk needs exactly one of frontend_api= or jwt_key=")
    if jwt_key is not None:
        key = JWK.from_pem(jwt_key, "RS256").replace(kid=None)  # Clerk's kid varies
        return ProviderConfig("clerk", None, issuer, _RSA, keys=JWKSet([key.public()]))
    host = _host(frontend_api, "frontend_api")
    return ProviderConfig(
        "clerk", f"https://{host}/.well-known/jwks.json", issuer or f"https://{host}", _RSA
    )


def onelogin(subdomain: str) -> ProviderConfig:
    sub = _token(subdomain, "subdomain")
    issuer = f"https://{sub}.onelogin.com/oidc/2"
    return ProviderConfig("onelogin", f"{issuer}/certs", issuer, _RSA)


def supertokens(api_domain: str, api_base_path: str = "/auth") -> ProviderConfig:
    """SuperTokens session access tokens (v3 and later: plain RS256 JWTs, no ``aud``).

    Keys: the JWKS the backend SDK serves at ``{apiDomain}{apiBasePath}/jwt/jwks.json``
    (SuperTokens' manual JWT verification guide; ``apiBasePath`` defaults to ``/auth``).

    Issuer: SuperTokens' guides do not document ``iss`` and the core does not set it; the
    backend SDKs (supertokens-node, supertokens-python) add ``iss = apiDomain + apiBasePath``
    when they create a session, and that is what this preset expects. ``iss`` is not a
    protected claim, so a setup that rewrites the access token payload, or sessions made
    without the SDK, may carry another value or none: pass ``issuer=`` (a verifier option)
    to expect another value. The preset always expects an issuer: a token without ``iss``
    is refused.
    """
    base = _base_url(
        api_domain if "://" in api_domain else "https://" + api_domain, "api_domain"
    ) + _path(api_base_path, "api_base_path")
    return ProviderConfig("supertokens", f"{base}/jwt/jwks.json", base, _RSA)


def transcodes(public_key_file: str | PathLike[str], issuer: str | None = None) -> ProviderConfig:
    """Transcodes hands out a ``public_key.json`` (a JWK or a JWKS): no network."""
    keys = JWKSet(load_key_file(public_key_file))
    algs = sorted({a for k in keys for a in k.verify_algorithms if a in ASYMMETRIC_ALGORITHMS})
    return ProviderConfig("transcodes", None, issuer, tuple(algs), keys=keys)


def keycloak(base_url: str, realm: str) -> ProviderConfig:
    """``base_url`` includes any context path (``https://sso.example.com/auth`` on old
    versions)."""
    issuer = f"{_base_url(base_url, 'base_url')}/realms/{_token(realm, 'realm')}"
    return ProviderConfig(
        "keycloak", f"{issuer}/protocol/openid-connect/certs", issuer, SAFE_ALGORITHMS
    )


def google() -> ProviderConfig:
    """Google ID tokens; ``iss`` is either spelling (Google's documentation allows both)."""
    return ProviderConfig(
        "google",
        "https://www.googleapis.com/oauth2/v3/certs",
        ("https://accounts.google.com", "accounts.google.com"),
        _RSA,
    )


def firebase(project_id: str) -> ProviderConfig:
    """Firebase Authentication ID tokens: ``aud`` must be the project id."""
    project = _token(project_id, "project_id")
    return ProviderConfig(
        "firebase",
        "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com",
        f"https://securetoken.google.com/{project}",
        _RSA,
        audience=project,
    )


def entra(tenant_id: str) -> ProviderConfig:
    """Microsoft Entra ID v2.0 tokens. ``common``/``organizations``/``consumers`` give an
    issuer *template* (``{tenantid}``) for :class:`~jwkit.verify.multi.MultiVerifier`."""
    tenant = _token(tenant_id, "tenant_id")
    base = f"https://login.microsoftonline.com/{tenant}"
    jwks = f"{base}/discovery/v2.0/keys"
    if tenant.lower() in _ENTRA_MULTI:
        template = "https://login.microsoftonline.com/{tenantid}/v2.0"
        return ProviderConfig("entra", jwks, None, _RSA, issuer_template=template)
    return ProviderConfig("entra", jwks, f"{base}/v2.0", _RSA)


def jwkit(base_url: str, project_id: str) -> ProviderConfig:
    """A jwkit key service: the project's issuer and the JWKS it publishes."""
    issuer = f"{_base_url(base_url, 'base_url')}/p/{_token(project_id, 'project_id')}"
    return ProviderConfig("jwkit", f"{issuer}/.well-known/jwks.json", issuer, SAFE_ALGORITHMS)


def oidc(issuer: str) -> ProviderConfig:
    """Any OpenID provider: keys from ``{issuer}/.well-known/openid-configuration``."""
    value = issuer.strip() if isinstance(issuer, str) else issuer
    _base_url(value, "issuer")
    return ProviderConfig("oidc", None, value, SAFE_ALGORITHMS, discovery=True)


PRESETS: Mapping[str, Callable[..., ProviderConfig]] = {
    "auth0": auth0,
    "clerk": clerk,
    "cognito": cognito,
    "entra": entra,
    "firebase": firebase,
    "google": google,
    "jwkit": jwkit,
    "keycloak": keycloak,
    "oidc": oidc,
    "okta": okta,
    "onelogin": onelogin,
    "supertokens": supertokens,
    "transcodes": transcodes,
}
"""Every preset by name: a function of the provider's parameters to a :class:`ProviderConfig`."""


def preset_takes_issuer(name: str) -> bool:
    """Whether preset ``name`` has an ``issuer`` parameter (clerk, transcodes, oidc)."""
    preset = PRESETS.get(name)
    return preset is not None and "issuer" in inspect.signature(preset).parameters


def resolve(name: str, **params: Any) -> ProviderConfig:
    """Build the configuration of provider ``name`` (see :data:`PRESETS`).

    Raises ``ValueError`` for an unknown name or a bad parameter, ``TypeError`` for a
    missing or unexpected one.
    """
    preset = PRESETS.get(name.lower().replace("-", "_") if isinstance(name, str) else name)
    if preset is None:
        raise ValueError(f"unknown provider {name!r}; known: {', '.join(sorted(PRESETS))}")
    config = preset(**params)
    for alg in config.algorithms:
        assert alg in ALGORITHMS
    return config
