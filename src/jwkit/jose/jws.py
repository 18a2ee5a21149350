"""JWS Compact Serialization: parse, sign and verify (RFC 7515 §3.1, §5, §7.1).

Verification is split into steps the verifier SDK reuses:

1. :func:`parse` — strict, size-limited parsing; nothing is trusted yet.
2. :func:`check_header` — ``alg`` known, not ``none``, in the caller's allow-list; no
   ``crit`` extension we do not understand; no unencoded payload (``b64: false``).
3. :func:`select_key` — the key named by ``kid``, or the single key that fits ``alg``.
4. :func:`verify_signature` — the key must allow ``alg`` (the algorithm is bound to the key,
   never chosen by the token alone), then the signature is checked.

Header members ``jwk``, ``jku``, ``x5u`` and ``x5c`` are never used to find or fetch a key.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from ..errors import (
    AlgorithmNotAllowed,
    InvalidSignature,
    JWKError,
    KeyNotFound,
    MalformedToken,
    TokenTooLarge,
    UnsupportedAlgorithm,
)
from ._json import loads_object
from .algorithms import ALGORITHMS
from .b64 import TO_STANDARD, b64url_encode, decode_translated
from .jwk import JWK, JWKSet

__all__ = [
    "DEFAULT_MAX_SIZE",
    "ParsedJWS",
    "VerifiedJWS",
    "check_algorithms",
    "check_header",
    "encode_header",
    "parse",
    "protected_header",
    "select_key",
    "sign",
    "verify",
    "verify_signature",
]

#: Tokens longer than this many characters are refused before any decoding (16 KiB).
DEFAULT_MAX_SIZE = 16 * 1024

# RFC 7515 §4.1: names a producer must not list in "crit" (they are always understood).
_REGISTERED = frozenset(
    {"alg", "jku", "jwk", "kid", "x5u", "x5c", "x5t", "x5t#S256", "typ", "cty", "crit"}
)

# The JSON type of every registered header parameter (RFC 7515 §4.1.1-§4.1.11; "b64" is
# RFC 7797 §3). A member of another type, ``null`` included, makes the header malformed:
# ``"kid": null`` is not the same as no ``kid``.
_HEADER_TYPES: dict[str, tuple[type, str]] = {
    "alg": (str, "a string"),
    "jku": (str, "a string"),
    "jwk": (dict, "an object"),
    "kid": (str, "a string"),
    "x5u": (str, "a string"),
    "x5c": (list, "an array of strings"),
    "x5t": (str, "a string"),
    "x5t#S256": (str, "a string"),
    "typ": (str, "a string"),
    "cty": (str, "a string"),
    "crit": (list, "an array of strings"),
    "b64": (bool, "a boolean"),
}


def _decode_header(segment: bytes) -> Mapping[str, Any]:
    """Decode and check a header segment (already passed through :data:`b64.TO_STANDARD`);
    the result is read-only."""
    if not segment:
        raise MalformedToken("header segment is empty")
    header = loads_object(decode_translated(segment, "header"), "header")
    if type(header.get("alg")) is not str:
        raise MalformedToken('header has no "alg" string')
    for name, (kind, words) in _HEADER_TYPES.items():  # in order: the same error every run
        if name not in header:
            continue
        value = header[name]
        if type(value) is not kind or (
            type(value) is list and not all(type(item) is str for item in value)
        ):
            raise MalformedToken(f'header "{name}" is not {words}')
    return MappingProxyType(header)


class ParsedJWS(NamedTuple):
    """A compact JWS split and decoded, but NOT verified: nothing here is trusted yet."""

    header: Mapping[str, Any]
    payload: bytes
    signature: bytes
    signing_input: bytes

    @property
    def alg(self) -> str:
        alg: str = self.header["alg"]
        return alg

    @property
    def kid(self) -> str | None:
        kid: str | None = self.header.get("kid")
        return kid


class VerifiedJWS(NamedTuple):
    """A JWS whose signature was verified with :attr:`key`."""

    header: Mapping[str, Any]
    payload: bytes
    key: JWK


def parse(token: str | bytes, *, max_size: int = DEFAULT_MAX_SIZE) -> ParsedJWS:
    """Split and decode a compact JWS strictly (RFC 7515 §7.1); verify nothing.

    Exactly three segments of strict base64url, a header that is a JSON object with an
    ``alg`` string, and at most ``max_size`` characters in all.
    """
    # One pass over the whole token: encode (str) or copy (bytes), translate to the standard
    # base64 alphabet, split. The signing input is a slice of the untranslated bytes.
    if type(token) is str:
        if len(token) > max_size:
            raise TokenTooLarge(f"token is larger than {max_size} characters")
        try:
            raw = token.encode("ascii")
        except UnicodeEncodeError:
            raise MalformedToken("token is not ASCII") from None
    elif isinstance(token, bytes | bytearray):
        if len(token) > max_size:
            raise TokenTooLarge(f"token is larger than {max_size} characters")
        raw = bytes(token)
        if not raw.isascii():
            raise MalformedToken("token is not ASCII")
    elif isinstance(token, str):
        return parse(str(token), max_size=max_size)
    else:
        raise TypeError(f"token must be str or bytes, not {type(token).__name__}")
    parts = raw.translate(TO_STANDARD).split(b".")
    if len(parts) != 3:
        raise MalformedToken("a compact JWS has exactly three segments")
    header_b64, payload_b64, signature_b64 = parts
    return ParsedJWS(
        _decode_header(header_b64),
        decode_translated(payload_b64, "payload"),
        decode_translated(signature_b64, "signature"),
        raw[: len(header_b64) + 1 + len(payload_b64)],
    )


def check_header(parsed: ParsedJWS, algorithms: Collection[str]) -> None:
    """Refuse an unknown, ``none`` or not-allowed ``alg``, unknown ``crit`` and ``b64``."""
    header = parsed.header
    alg = header["alg"]
    if alg not in ALGORITHMS:
        # Covers "none", "None", "NONE", ... and every name we do not implement.
        raise UnsupportedAlgorithm(f"algorithm {alg[:32]!r} is not supported")
    if alg not in algorithms:
        raise AlgorithmNotAllowed(f"algorithm {alg} is not allowed")
    if "crit" in header:
        crit = header["crit"]
        if not isinstance(crit, list) or not crit or not all(isinstance(c, str) for c in crit):
            raise MalformedToken('"crit" must be a non-empty array of names')
        if any(c in _REGISTERED for c in crit) or len(set(crit)) != len(crit):
            raise MalformedToken('"crit" lists registered or repeated names')
        # RFC 7515 §4.1.11: a recipient that does not understand a listed extension MUST
        # reject the JWS. jwkit implements none (notably not RFC 7797 "b64").
        raise MalformedToken(f"unsupported critical header parameter {crit[0][:32]!r}")
    if "b64" in header and header["b64"] is not True:
        raise MalformedToken("unencoded payloads (b64: false) are not supported")


def check_algorithms(algorithms: Collection[str]) -> None:
    """Catch the classic misuse: ``algorithms="RS256"`` (a string) or an empty list."""
    if isinstance(algorithms, str | bytes):
        raise TypeError('algorithms must be a collection of names, e.g. ["ES256"]')
    if not algorithms:
        raise ValueError("algorithms must not be empty")


def select_key(parsed: ParsedJWS, key: JWK | JWKSet) -> JWK:
    """Pick the key for this token: by ``kid``, else the one key that fits ``alg``."""
    kid = parsed.kid
    if isinstance(key, JWK):
        if kid is not None and key.kid is not None and kid != key.kid:
            raise KeyNotFound("no key with this kid", kid=kid)
        return key
    if not isinstance(key, JWKSet):
        raise TypeError(f"key must be a JWK or JWKSet, not {type(key).__name__}")
    if key._problem is not None:
        key.check_verifiable()  # raises
    if kid is not None:
        found = key._by_kid.get(kid)
        if found is None:
            raise KeyNotFound("no key with this kid", kid=kid)
        return found
    candidates = key.find(alg=parsed.alg)
    if len(candidates) != 1:
        raise KeyNotFound(
            "token has no kid and "
            + ("no key fits its algorithm" if not candidates else "several keys fit it")
        )
    return candidates[0]


def verify_signature(parsed: ParsedJWS, key: JWK) -> None:
    """Check the signature with ``key``, which must itself allow the token's ``alg``."""
    check = key._checker(parsed.alg)
    if check is None:
        raise AlgorithmNotAllowed(f"the key does not allow {parsed.alg}")
    if not check(parsed.signing_input, parsed.signature):
        raise InvalidSignature("signature verification failed")


def verify(
    token: str | bytes,
    key: JWK | JWKSet,
    *,
    algorithms: Collection[str],
    max_size: int = DEFAULT_MAX_SIZE,
) -> VerifiedJWS:
    """Verify a compact JWS and return its header, payload and the key that verified it."""
    check_algorithms(algorithms)
    parsed = parse(token, max_size=max_size)
    check_header(parsed, algorithms)
    chosen = select_key(parsed, key)
    verify_signature(parsed, chosen)
    return VerifiedJWS(parsed.header, parsed.payload, chosen)


def protected_header(
    key: JWK, headers: Mapping[str, Any] | None = None, *, held_elsewhere: bool = False
) -> dict[str, Any]:
    """The protected header :func:`sign` uses: the key's ``alg`` and ``kid``, then
    ``headers`` (a ``None`` value removes a member). Raises :class:`JWKError` unless the key
    can sign with the resulting ``alg`` (``held_elsewhere``: ``key`` is the public half of a
    key that signs elsewhere, e.g. in an HSM, and must allow that ``alg``)."""
    if not isinstance(key, JWK):
        raise TypeError("key must be a JWK")
    header: dict[str, Any] = {"alg": key.default_alg}
    if key.kid is not None:
        header["kid"] = key.kid
    if headers:
        for name, value in headers.items():
            if value is None:
                header.pop(name, None)
            else:
                header[name] = value
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALGORITHMS:
        raise JWKError(f"cannot sign with algorithm {alg!r}", kid=key.kid)
    if held_elsewhere:
        usable = not key.is_symmetric and key.can_verify(alg)
    else:
        usable = key.can_sign(alg)
    if not usable:
        raise JWKError(f"this key cannot sign with {alg}", kid=key.kid)
    return header


def encode_header(header: Mapping[str, Any]) -> str:
    """A protected header as its compact-serialisation segment (compact JSON, base64url)."""
    return b64url_encode(json.dumps(header, separators=(",", ":")).encode("utf-8"))


def sign(payload: bytes, key: JWK, *, headers: Mapping[str, Any] | None = None) -> str:
    """Sign ``payload`` into a compact JWS (RFC 7515 §5.1).

    The protected header gets the key's ``alg`` and ``kid`` unless ``headers`` overrides
    them (a ``None`` value removes a member).
    """
    if not isinstance(payload, bytes | bytearray):
        raise TypeError("payload must be bytes")
    header = protected_header(key, headers)
    signing_input = encode_header(header) + "." + b64url_encode(bytes(payload))
    signature = key._sign(header["alg"], signing_input.encode("ascii"))
    return signing_input + "." + b64url_encode(signature)
