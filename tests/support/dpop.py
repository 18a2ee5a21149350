"""DPoP proofs for tests (RFC 9449 §4.2), signed with jwkit's own JOSE core.

``make_proof`` builds a well-formed proof by default; every field can be overridden or
removed (``None``) so that hostile proofs are one keyword away.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from jwkit import JWK
from jwkit.jose import jws
from jwkit.verify.dpop import access_token_hash

_UNSET: Any = object()


def make_proof(
    key: JWK,
    *,
    htm: str = "GET",
    htu: str = "https://api.example/resource",
    iat: float | None = None,
    jti: str | None = _UNSET,
    access_token: str | None = None,
    nonce: str | None = None,
    typ: str | None = "dpop+jwt",
    jwk: dict[str, Any] | None = _UNSET,
    alg: str | None = None,
    extra_claims: dict[str, Any] | None = None,
) -> str:
    """A DPoP proof signed by ``key`` whose header carries its public half."""
    claims: dict[str, Any] = {
        "jti": secrets.token_urlsafe(12) if jti is _UNSET else jti,
        "htm": htm,
        "htu": htu,
        "iat": int(time.time()) if iat is None else iat,
    }
    if access_token is not None:
        claims["ath"] = access_token_hash(access_token)
    if nonce is not None:
        claims["nonce"] = nonce
    claims.update(extra_claims or {})
    claims = {k: v for k, v in claims.items() if v is not None}
    header: dict[str, Any] = {
        "typ": typ,
        "kid": None,
        "jwk": key.public().to_dict() if jwk is _UNSET and not key.is_symmetric else jwk,
    }
    if alg is not None:
        header["alg"] = alg
    return jws.sign(json.dumps(claims).encode(), key, headers=header)


def unsigned_proof(header: dict[str, Any], claims: dict[str, Any]) -> str:
    """A proof with any header at all (``alg: none`` included) and an empty signature."""
    return (
        jws.encode_header(header)
        + "."
        + jws.encode_header(claims)  # the same base64url-of-compact-JSON encoding
        + "."
    )
