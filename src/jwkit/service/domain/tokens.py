"""Access-token minting: JWT access tokens per RFC 9068 (``typ: at+jwt``)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from typing import Any

from jwkit.jose.jwk import JWK
from jwkit.jose.jwt import Encoder
from jwkit.service.domain.common import InvalidInput
from jwkit.verify.dpop import DEFAULT_DPOP_ALGORITHMS

__all__ = [
    "DPOP_ALGORITHMS",
    "RESERVED_CLAIMS",
    "check_extra_claims",
    "mint",
    "new_jti",
    "token_encoder",
]

#: The algorithms the token endpoint accepts for DPoP proofs (RFC 9449 §5.1), as discovery
#: lists them in ``dpop_signing_alg_values_supported``.
DPOP_ALGORITHMS = sorted(DEFAULT_DPOP_ALGORITHMS)

#: Claims the service sets itself; callers cannot override them.
RESERVED_CLAIMS = frozenset(
    {"iss", "sub", "exp", "iat", "nbf", "jti", "client_id", "scope", "sid", "status", "cnf"}
)
_HEADERS = {"typ": "at+jwt"}  # RFC 9068 §2.1


def token_encoder(key: JWK, sign: Callable[[bytes], bytes] | None = None) -> Encoder:
    """The access-token encoder for ``key``; the service keeps one per active key (``sign``:
    the key signs elsewhere, ``key`` is its public half). Raises
    :class:`~jwkit.errors.JWKError` if the key cannot sign."""
    return Encoder(key, headers=_HEADERS, sign=sign)


def new_jti(list_id: int | None = None, idx: int | None = None) -> str:
    """A fresh token id: 128 random bits, base64url.

    A token with a status (``list_id``, ``idx``) gets 96 random bits behind its list row and
    index in fixed-width hex: a revocation by ``jti`` finds the token's issuance batch by that
    position (``domain.issued``), then compares the whole id. The index is no secret: the
    token's ``status`` claim carries it already.
    """
    if list_id is None or idx is None:
        return secrets.token_urlsafe(16)
    return f"{list_id:08x}{idx:08x}{secrets.token_urlsafe(12)}"


def check_extra_claims(claims: Mapping[str, Any]) -> None:
    bad = sorted(RESERVED_CLAIMS.intersection(claims))
    if bad:
        raise InvalidInput(f"claims may not set {', '.join(bad)}", field="claims")
    aud = claims.get("aud")
    if aud is not None and not (
        isinstance(aud, str) or (isinstance(aud, list) and all(isinstance(a, str) for a in aud))
    ):
        raise InvalidInput("aud must be a string or a list of strings", field="claims")


def mint(
    key: JWK | Encoder,
    *,
    issuer: str,
    audience: str,
    subject: str,
    ttl: int,
    now: int,
    extra: Mapping[str, Any] | None = None,
    client_id: str | None = None,
    scope: str | None = None,
    jti: str | None = None,
    sid: str | None = None,
    status: tuple[str, int] | None = None,
    jkt: str | None = None,
) -> tuple[str, int]:
    """Sign an access token with ``key`` (or its :func:`token_encoder`, for keys that sign
    many); return ``(token, exp)``. ``status`` is ``(list URI, index)``: the token's entry
    in a Token Status List (draft-ietf-oauth-status-list §6.2). ``jkt`` binds the token to
    a DPoP key: ``cnf.jkt``, its RFC 7638 thumbprint (RFC 9449 §6.1)."""
    exp = now + ttl
    claims: dict[str, Any] = {"iss": issuer, "sub": subject, "aud": audience}
    if extra:
        claims.update(extra)
    claims.update(exp=exp, iat=now, jti=jti or new_jti())
    if client_id is not None:
        claims["client_id"] = client_id
    if scope is not None:
        claims["scope"] = scope
    if sid is not None:
        claims["sid"] = sid
    if status is not None:
        claims["status"] = {"status_list": {"idx": status[1], "uri": status[0]}}
    if jkt is not None:
        claims["cnf"] = {"jkt": jkt}
    encoder = key if isinstance(key, Encoder) else token_encoder(key)
    return encoder.encode(claims), exp
