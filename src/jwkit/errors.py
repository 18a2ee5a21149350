"""Every error jwkit raises on purpose, in one tree.

::

    JWKitError                      code
    ├── JWKError                    invalid_key          a key that cannot be imported or used
    ├── KeySourceError              jwks_unavailable     no usable keys could be obtained
    ├── InvalidToken                invalid_token        the token must be rejected
    │   ├── MalformedToken          malformed
    │   ├── TokenTooLarge           token_too_large
    │   ├── UnsupportedAlgorithm    unsupported_algorithm
    │   ├── AlgorithmNotAllowed     algorithm_not_allowed
    │   ├── KeyNotFound             key_not_found
    │   ├── InvalidSignature        invalid_signature
    │   ├── InvalidType             invalid_type
    │   ├── TokenRevoked            revoked              its status list says INVALID
    │   ├── TokenSuspended          suspended            its status list says SUSPENDED
    │   ├── StatusUnavailable       status_unavailable   its status cannot be checked
    │   ├── DPoPRequired            dpop_required        a DPoP-bound token sent as a bearer token
    │   ├── InvalidDPoPProof        invalid_dpop_proof   the DPoP proof is refused (RFC 9449 §4.3)
    │   │   ├── DPoPProofReplayed   dpop_replayed        its ``jti`` was seen before
    │   │   ├── DPoPKeyMismatch     dpop_key_mismatch    token ``cnf.jkt`` is not the proof's key
    │   │   └── UseDPoPNonce        use_dpop_nonce       a (fresh) server nonce is required
    │   └── ClaimError              invalid_claim
    │       ├── ExpiredToken        expired
    │       ├── NotYetValid         not_yet_valid
    │       ├── InvalidIssuer       invalid_issuer
    │       ├── InvalidAudience     invalid_audience
    │       └── MissingClaim        missing_claim
    └── InsufficientScope           insufficient_scope   a valid token that lacks a required scope

Every class has a stable, machine-readable ``code`` (part of the public contract: log it,
branch on it, send it as an RFC 6750 ``error_description``). Messages are for people.
A signature failure never says why it failed: that would help a forger.

Programming mistakes (a wrong argument type, an empty allow-list) raise ``TypeError`` or
``ValueError`` instead, so they are never mistaken for a bad token.
"""

from __future__ import annotations

__all__ = [
    "AlgorithmNotAllowed",
    "ClaimError",
    "DPoPKeyMismatch",
    "DPoPProofReplayed",
    "DPoPRequired",
    "ExpiredToken",
    "InsufficientScope",
    "InvalidAudience",
    "InvalidDPoPProof",
    "InvalidIssuer",
    "InvalidSignature",
    "InvalidToken",
    "InvalidType",
    "JWKError",
    "JWKitError",
    "KeyNotFound",
    "KeySourceError",
    "MalformedToken",
    "MissingClaim",
    "NotYetValid",
    "StatusUnavailable",
    "TokenRevoked",
    "TokenSuspended",
    "TokenTooLarge",
    "UnsupportedAlgorithm",
    "UseDPoPNonce",
]


class JWKitError(Exception):
    """The root of every error jwkit raises on purpose."""

    code: str = "error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.__class__.__doc__ or self.code)

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.code


class JWKError(JWKitError):
    """The key is malformed, unsupported, too weak or not allowed for this use."""

    code = "invalid_key"

    def __init__(self, message: str | None = None, *, kid: str | None = None) -> None:
        super().__init__(message)
        self.kid = kid


class KeySourceError(JWKitError):
    """No usable keys could be obtained from the key source."""

    code = "jwks_unavailable"

    def __init__(self, message: str | None = None, *, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class InvalidToken(JWKitError):
    """The token is not acceptable."""

    code = "invalid_token"


class MalformedToken(InvalidToken):
    """The token is not a well-formed compact JWS."""

    code = "malformed"


class TokenTooLarge(MalformedToken):
    """The token is larger than the configured limit."""

    code = "token_too_large"


class UnsupportedAlgorithm(InvalidToken):
    """The token's algorithm is unknown or never acceptable (such as ``none``)."""

    code = "unsupported_algorithm"


class AlgorithmNotAllowed(InvalidToken):
    """The token's algorithm is not in the allow-list or does not fit the key."""

    code = "algorithm_not_allowed"


class KeyNotFound(InvalidToken):
    """No key fits the token."""

    code = "key_not_found"

    def __init__(self, message: str | None = None, *, kid: str | None = None) -> None:
        super().__init__(message)
        self.kid = kid


class InvalidSignature(InvalidToken):
    """The signature is not valid."""

    code = "invalid_signature"


class InvalidType(InvalidToken):
    """The token's ``typ`` header is not the expected one."""

    code = "invalid_type"


class TokenRevoked(InvalidToken):
    """The token has been revoked: its status list entry is INVALID (or another status
    than VALID or SUSPENDED)."""

    code = "revoked"


class TokenSuspended(InvalidToken):
    """The token is suspended: its status list entry is SUSPENDED."""

    code = "suspended"


class StatusUnavailable(InvalidToken):
    """The token's status could not be checked: its status list could not be fetched or
    verified, and no good copy recent enough is cached (the verifier fails closed)."""

    code = "status_unavailable"

    def __init__(self, message: str | None = None, *, uri: str | None = None) -> None:
        super().__init__(message)
        self.uri = uri


class DPoPRequired(InvalidToken):
    """The access token is bound to a DPoP key (it has ``cnf.jkt``) or the resource accepts
    DPoP only, and it was presented as a plain bearer token (RFC 9449 §7.2)."""

    code = "dpop_required"


class InvalidDPoPProof(InvalidToken):
    """The DPoP proof is missing, malformed or does not fit the request (RFC 9449 §4.3).

    Integrations answer it with ``WWW-Authenticate: DPoP error="invalid_dpop_proof"``.
    """

    code = "invalid_dpop_proof"


class DPoPProofReplayed(InvalidDPoPProof):
    """The DPoP proof's ``jti`` was already used within its validity window (RFC 9449 §11.1)."""

    code = "dpop_replayed"


class DPoPKeyMismatch(InvalidDPoPProof):
    """The access token's ``cnf.jkt`` is not the RFC 7638 thumbprint of the proof's key, or
    the proof's ``ath`` is not the hash of the access token (RFC 9449 §4.3, §6.1)."""

    code = "dpop_key_mismatch"


class UseDPoPNonce(InvalidDPoPProof):
    """The server requires a nonce it issued in the proof, and the proof has none or an old
    one (RFC 9449 §8, §9). ``nonce`` is the one to send back in a ``DPoP-Nonce`` header."""

    code = "use_dpop_nonce"

    def __init__(self, message: str | None = None, *, nonce: str = "") -> None:
        super().__init__(message)
        self.nonce = nonce


class ClaimError(InvalidToken):
    """A claim has an invalid value."""

    code = "invalid_claim"

    def __init__(self, message: str | None = None, *, claim: str | None = None) -> None:
        super().__init__(message)
        self.claim = claim


class ExpiredToken(ClaimError):
    """The token has expired."""

    code = "expired"


class NotYetValid(ClaimError):
    """The token is not valid yet."""

    code = "not_yet_valid"


class InvalidIssuer(ClaimError):
    """The token's issuer is not the expected one."""

    code = "invalid_issuer"


class InvalidAudience(ClaimError):
    """The token is not meant for this audience."""

    code = "invalid_audience"


class MissingClaim(ClaimError):
    """A required claim is missing."""

    code = "missing_claim"


class InsufficientScope(JWKitError):
    """The token is valid but lacks a required scope."""

    code = "insufficient_scope"

    def __init__(self, message: str | None = None, *, required: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.required = required
