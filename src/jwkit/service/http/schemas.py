"""Request bodies of the admin API: strict types, unknown fields rejected (422)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

__all__ = [
    "ERROR_RESPONSES",
    "Algorithm",
    "ClientCreate",
    "ClientList",
    "ClientOut",
    "ErrorBody",
    "ForeignKeysImport",
    "KeyCreate",
    "KeyImport",
    "ProjectCreate",
    "ProjectList",
    "ProjectOut",
    "ProjectUpdate",
    "RevocationCreate",
    "RevokeBody",
    "RotateBody",
    "TokenMint",
    "TokenOut",
]

Algorithm = Literal[
    "ES256",
    "ES384",
    "ES512",
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "EdDSA",
    "HS256",
]
# Python's whitespace (what strip_whitespace removes), spelled out so that the OpenAPI pattern
# and the server agree on what a blank name is (JSON Schema's \s is not Python's).
_BLANK = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200, strip_whitespace=True, pattern=f"[^{_BLANK}]"),
]
Audience = Annotated[str, StringConstraints(min_length=1, max_length=500)]
# RFC 6749 §3.3 scope-token: 1*( %x21 / %x23-5B / %x5D-7E )
ScopeToken = Annotated[str, StringConstraints(pattern=r"^[\x21\x23-\x5b\x5d-\x7e]{1,100}$")]
# RFC 6749 §3.3 scope = scope-token *( SP scope-token ), as the ``scope`` claim carries it
_SCOPE_CHARS = r"[\x21\x23-\x5b\x5d-\x7e]{1,100}"
ScopeList = Annotated[str, StringConstraints(pattern=rf"^{_SCOPE_CHARS}( {_SCOPE_CHARS}){{0,49}}$")]


def _integral(value: object) -> object:
    """JSON Schema's ``integer`` includes ``1.0``: accept a float with no fraction as the
    int it is (the models stay strict otherwise: no ``"1"``, no ``true``)."""
    if type(value) is float and value.is_integer():
        return int(value)
    return value


# (The validator after the Field, so that the bounds show as minimum/maximum in the schema.)
Ttl = Annotated[int, Field(ge=1, le=30 * 86400), BeforeValidator(_integral)]
MaxAge = Annotated[int, Field(ge=0, le=7 * 86400), BeforeValidator(_integral)]
RotationDays = Annotated[int, Field(ge=1, le=3650), BeforeValidator(_integral)]


class ErrorBody(BaseModel):
    """Every refusal of the admin API (see ``errors.py``): a stable ``error`` code and a
    message; some add members (``detail`` for 422, ``earliest_safe_at`` for 409)."""

    model_config = ConfigDict(extra="allow")
    error: str
    message: str


#: The refusals every admin operation may answer, for the OpenAPI document.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": words}
    for status, words in [
        (400, "The body could not be read (not UTF-8, not JSON)"),
        (401, "No or wrong admin credentials"),
        (403, "Missing or wrong CSRF token (console sessions)"),
        (404, "No such project, key or client"),
        (409, "The change conflicts with the key lifecycle"),
        (413, "The body is too large"),
        (414, "The request target (path and query) is longer than one head line may be"),
        (431, "A header field, or the head as a whole, is too large"),
        (422, "The request is invalid"),
        (503, "The database is unavailable; retry later"),
    ]
}


# -- answers (documentation only: the handlers return dicts; schemathesis checks each answer
# against these, and infers from ``id``/``client_id`` which ids later requests can use) -----


class _Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


class ProjectOut(_Answer):
    """A project (``POST`` adds ``active_kid``, and ``secret_jwks`` for HS256 projects)."""

    id: str
    name: str
    issuer: str
    audience: str | None
    jwks_uri: str
    discovery_url: str
    token_endpoint: str
    algorithm: Algorithm
    token_ttl: int
    max_token_ttl: int
    jwks_max_age: int
    rotation_days: int | None
    created_at: str
    #: The token endpoint requires a DPoP proof and issues DPoP-bound tokens only (RFC 9449).
    dpop_required: bool = False


class ProjectList(_Answer):
    projects: list[ProjectOut]
    #: Pass as ``cursor`` for the next page; ``null`` on the last page.
    next_cursor: str | None


class ClientOut(_Answer):
    """An OAuth client (``POST`` adds ``client_secret``, shown that once)."""

    client_id: str
    name: str
    scopes: list[str]
    created_at: str


class ClientList(_Answer):
    clients: list[ClientOut]
    #: Pass as ``cursor`` for the next page; ``null`` on the last page.
    next_cursor: str | None


class TokenOut(_Answer):
    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ProjectCreate(_Body):
    name: Name
    algorithm: Algorithm = "ES256"
    audience: Audience | None = None
    token_ttl: Ttl = 900
    max_token_ttl: Ttl = 86400
    jwks_max_age: MaxAge = 300
    rotation_days: RotationDays | None = None
    #: Access tokens carry a Token Status List ``status`` claim (revocable).
    token_status: bool = True
    #: The token endpoint requires a DPoP proof (RFC 9449) and issues DPoP-bound tokens only.
    dpop_required: bool = False


#: Members of :class:`ProjectUpdate` that may be left out but not set to null (the admin
#: API refuses null for them with 422 ``invalid_input``).
NOT_NULL = (
    "name",
    "algorithm",
    "token_ttl",
    "max_token_ttl",
    "jwks_max_age",
    "token_status",
    "dpop_required",
)


def _not_null_in_schema(schema: dict[str, Any]) -> None:
    # "May be left out" is not "may be null": the OpenAPI document says what the API does.
    properties = schema.get("properties", {})
    for name in NOT_NULL:
        prop = properties[name]
        options = [o for o in prop.pop("anyOf") if o != {"type": "null"}]
        prop.pop("default", None)
        prop.update(options[0] if len(options) == 1 else {"anyOf": options})


class ProjectUpdate(_Body):
    """A partial update: members left out keep their value; ``audience`` and
    ``rotation_days`` may be set to ``null`` (no audience check, no scheduled rotation)."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_not_null_in_schema)
    name: Name | None = None
    algorithm: Algorithm | None = None
    audience: Audience | None = None
    token_ttl: Ttl | None = None
    max_token_ttl: Ttl | None = None
    jwks_max_age: MaxAge | None = None
    rotation_days: RotationDays | None = None
    token_status: bool | None = None
    dpop_required: bool | None = None


class KeyCreate(_Body):
    mode: Literal["replace", "next"]
    alg: Algorithm | None = None
    confirm_invalidate: bool = False


class RotateBody(_Body):
    emergency: bool = False


class RevokeBody(_Body):
    emergency: bool = False


# A session id: 1 to 128 printable ASCII characters, no spaces.
SessionId = Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{1,128}$")]


class TokenMint(_Body):
    sub: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    claims: dict[str, Any] | None = None
    ttl: Ttl | None = None
    #: The ``scope`` claim (RFC 9068 §2.2.3): space-separated scope tokens, as clients get.
    scope: ScopeList | None = None
    #: Becomes the token's ``sid`` claim: revoke every token of a session by it.
    sid: SessionId | None = None

    @field_validator("claims")
    @classmethod
    def _claims_are_text(cls, claims: dict[str, Any] | None) -> dict[str, Any] | None:
        # A lone surrogate ("\\ud800") has no UTF-8 form: verifiers refuse such tokens.
        if claims is not None:
            try:
                json.dumps(claims, ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("claims must be Unicode text (no lone surrogates)") from None
        return claims


def _exactly_one_selector(schema: dict[str, Any]) -> None:
    # What the handler checks, said in the document (schemathesis found it mostly refused
    # schema-valid bodies): exactly one of the selectors is a string.
    schema["oneOf"] = [
        {"required": [name], "properties": {name: {"type": "string"}}}
        for name in ("jti", "sub", "sid", "client_id")
    ]


class RevocationCreate(_Body):
    """Exactly one of ``jti``, ``sub``, ``sid``, ``client_id``; ``status`` ``invalid`` (the
    default, final), ``suspended``, or ``valid`` (lifts a suspension)."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_exactly_one_selector)

    jti: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    sub: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = None
    sid: SessionId | None = None
    client_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    status: Literal["invalid", "suspended", "valid"] = "invalid"


class ClientCreate(_Body):
    name: Name
    scopes: Annotated[list[ScopeToken], Field(max_length=50)] = []


# -- custody-byok: bring your own key, foreign keys -------------------------------------------
# A kid: 1 to 128 printable ASCII characters, no spaces.
Kid = Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{1,128}$")]


class KeyImport(_Body):
    """A private key to import as the next key: ``pem`` (PKCS#1, SEC1 or PKCS#8, encrypted
    with ``passphrase``) or ``jwk``; ``kid`` defaults to the JWK's or the RFC 7638
    thumbprint. Never echoed back."""

    pem: Annotated[str, StringConstraints(min_length=1, max_length=16384)] | None = None
    jwk: dict[str, Any] | None = None
    passphrase: Annotated[str, StringConstraints(min_length=1, max_length=1024)] | None = None
    kid: Kid | None = None


class ForeignKeysImport(_Body):
    """Another issuer's public keys, published until ``until`` (RFC 3339, at most 366 days
    ahead): a JWK Set in ``jwks``, or fetched once from ``url``."""

    until: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    jwks: dict[str, Any] | None = None
    url: Annotated[str, StringConstraints(min_length=1, max_length=2048)] | None = None
