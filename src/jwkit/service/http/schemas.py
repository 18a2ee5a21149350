"""Request bodies of the admin API: strict types, unknown fields rejected (422)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "Algorithm",
    "ClientCreate",
    "KeyCreate",
    "ProjectCreate",
    "ProjectUpdate",
    "RevocationCreate",
    "RevokeBody",
    "RotateBody",
    "TokenMint",
]

Algorithm = Literal[
    "ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
    "EdDSA", "HS256",
]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
Audience = Annotated[str, StringConstraints(min_length=1, max_length=500)]
# RFC 6749 §3.3 scope-token: 1*( %x21 / %x23-5B / %x5D-7E )
ScopeToken = Annotated[str, StringConstraints(pattern=r"^[\x21\x23-\x5b\x5d-\x7e]{1,100}$")]
# RFC 6749 §3.3 scope = scope-token *( SP scope-token ), as the ``scope`` claim carries it
_SCOPE_CHARS = r"[\x21\x23-\x5b\x5d-\x7e]{1,100}"
ScopeList = Annotated[str, StringConstraints(pattern=rf"^{_SCOPE_CHARS}( {_SCOPE_CHARS}){{0,49}}$")]
Ttl = Annotated[int, Field(ge=1, le=30 * 86400)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ProjectCreate(_Body):
    name: Name
    algorithm: Algorithm = "ES256"
    audience: Audience | None = None
    token_ttl: Ttl = 900
    max_token_ttl: Ttl = 86400
    jwks_max_age: Annotated[int, Field(ge=0, le=7 * 86400)] = 300
    rotation_days: Annotated[int, Field(ge=1, le=3650)] | None = None
    #: Access tokens carry a Token Status List ``status`` claim (revocable).
    token_status: bool = True


class ProjectUpdate(_Body):
    name: Name | None = None
    algorithm: Algorithm | None = None
    audience: Audience | None = None
    token_ttl: Ttl | None = None
    max_token_ttl: Ttl | None = None
    jwks_max_age: Annotated[int, Field(ge=0, le=7 * 86400)] | None = None
    rotation_days: Annotated[int, Field(ge=1, le=3650)] | None = None
    token_status: bool | None = None


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


class RevocationCreate(_Body):
    """Exactly one of ``jti``, ``sub``, ``sid``, ``client_id``; ``status`` ``invalid`` (the
    default, final), ``suspended``, or ``valid`` (lifts a suspension)."""

    jti: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    sub: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = None
    sid: SessionId | None = None
    client_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    status: Literal["invalid", "suspended", "valid"] = "invalid"


class ClientCreate(_Body):
    name: Name
    scopes: Annotated[list[ScopeToken], Field(max_length=50)] = []
