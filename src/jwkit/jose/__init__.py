"""Pure JOSE: JWK, JWS and JWT with no I/O, built only on ``cryptography``'s primitives.

Modules: :mod:`~jwkit.jose.b64` (strict base64url), :mod:`~jwkit.jose.jwk` (keys and key
sets), :mod:`~jwkit.jose.algorithms` (the algorithm registry), :mod:`~jwkit.jose.jws`
(compact serialization) and :mod:`~jwkit.jose.jwt` (claims).
"""

from __future__ import annotations

from . import algorithms, jws, jwt
from .jwk import JWK, JWKSet
from .jwt import Claims, ClaimsPolicy

__all__ = ["JWK", "Claims", "ClaimsPolicy", "JWKSet", "algorithms", "jws", "jwt"]
