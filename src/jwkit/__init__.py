"""jwkit: JSON Web Keys end to end.

The verification SDK (:class:`Verifier`), the JOSE core (:class:`JWK`, :class:`JWKSet`,
:mod:`jwkit.jws`, :mod:`jwkit.jwt`) and one error tree (:mod:`jwkit.errors`).
"""

from __future__ import annotations

from ._version import __version__
from .errors import (
    AlgorithmNotAllowed,
    ClaimError,
    DPoPKeyMismatch,
    DPoPProofReplayed,
    DPoPRequired,
    ExpiredToken,
    InsufficientScope,
    InvalidAudience,
    InvalidDPoPProof,
    InvalidIssuer,
    InvalidSignature,
    InvalidToken,
    InvalidType,
    JWKError,
    JWKitError,
    KeyNotFound,
    KeySourceError,
    MalformedToken,
    MissingClaim,
    NotYetValid,
    StatusUnavailable,
    TokenRevoked,
    TokenSuspended,
    TokenTooLarge,
    UnsupportedAlgorithm,
    UseDPoPNonce,
)
from .jose import jws, jwt
from .jose.jwk import JWK, JWKSet
from .jose.jwt import Claims, ClaimsPolicy
from .verify import DPoPVerifier, MultiVerifier, Verifier, providers

__all__ = [
    "JWK",
    "AlgorithmNotAllowed",
    "ClaimError",
    "Claims",
    "ClaimsPolicy",
    "DPoPKeyMismatch",
    "DPoPProofReplayed",
    "DPoPRequired",
    "DPoPVerifier",
    "ExpiredToken",
    "InsufficientScope",
    "InvalidAudience",
    "InvalidDPoPProof",
    "InvalidIssuer",
    "InvalidSignature",
    "InvalidToken",
    "InvalidType",
    "JWKError",
    "JWKSet",
    "JWKitError",
    "KeyNotFound",
    "KeySourceError",
    "MalformedToken",
    "MissingClaim",
    "MultiVerifier",
    "NotYetValid",
    "StatusUnavailable",
    "TokenRevoked",
    "TokenSuspended",
    "TokenTooLarge",
    "UnsupportedAlgorithm",
    "UseDPoPNonce",
    "Verifier",
    "__version__",
    "jws",
    "jwt",
    "providers",
]
