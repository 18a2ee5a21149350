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

import binascii
import json
import re
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
from .algorithms import ALGORITHMS, Checker
from .b64 import _PAD, _UNUSED_BITS, _VALUE, TO_STANDARD, b64url_encode, decode_translated
from .jwk import JWK, JWKSet

__all__ = [
    "DEFAULT_MAX_SIZE",
    "ParsedJWS",
    "VerifiedJWS",
    "check_algorithms",
    "check_header",
    "checker_for",
    "encode_header",
    "loads_object",
    "parse",
    "parse_object",
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


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise MalformedToken("duplicate member name in JSON")
    return obj


def _no_constant(name: str) -> Any:
    raise MalformedToken(f"{name} is not valid JSON")


_decoder = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
# The same grammar without the duplicate check: the C scanner builds dicts itself, and
# :func:`_surely_unique` decides afterwards whether a duplicate could have been merged away.
_scan_once = json.JSONDecoder(parse_constant=_no_constant).scan_once  # type: ignore[attr-defined]


def _surely_unique(text: str, obj: dict[str, Any]) -> bool:
    """Whether ``text``, which the plain scanner parsed into ``obj``, cannot have repeated a
    member name. ``False`` means "perhaps": the caller then uses the checking decoder.

    The members of the outer object are separated by commas; every other comma is inside a
    string, an array or an inner object. If the commas, less those that separate the
    elements of the outer object's arrays, are fewer than the names ``obj`` kept, then there
    is no other comma (so no inner object has two members), and the outer object had no more
    members than ``obj`` has names: no name was merged away. (A comma in a string, or in an
    array inside an array, only makes the test more cautious.)
    """
    commas = text.count(",")
    if commas < len(obj):
        return True
    if "[" not in text:
        return False
    for value in obj.values():
        if type(value) is list and value:
            commas -= len(value) - 1
    return commas < len(obj)


def loads_object(text: str | bytes, what: str = "JSON") -> dict[str, Any]:
    """Parse strict JSON that must be an object: UTF-8, no duplicate member names, no NaN.

    Raises :class:`MalformedToken` for anything else (never ``ValueError`` or recursion).
    """
    if type(text) is bytes:
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedToken(f"{what} is not UTF-8") from None
        if "\\u" in text:
            # An escape may stand for a lone surrogate: the checking decoder and its test.
            return _loads_checked(text, what)
        # Fast path: the C scanner directly (json.loads minus two regex calls and a Python
        # hook per object) when the text cannot hide a duplicate name (see _surely_unique).
        # An inner object almost always holds a comma, which fails that test: such texts
        # (a "{" after the first character) go straight to the checking decoder.
        if text.find("{", 1) < 0:
            try:
                obj, end = _scan_once(text, 0)
            except (StopIteration, ValueError, RecursionError):
                obj = end = None
            if (
                type(obj) is dict
                and end == len(text)
                and (text.count(",") < len(obj) or _surely_unique(text, obj))
            ):
                return obj
        # Anything else (nested objects, whitespace around it, trailing data, not an
        # object, an error) takes the checking decoder below, which also words the error.
    elif isinstance(text, bytes | bytearray):
        return loads_object(bytes(text), what)
    elif not isinstance(text, str):
        raise MalformedToken(f"{what} is not text")
    return _loads_checked(str(text), what)


def _loads_checked(text: str, what: str) -> dict[str, Any]:
    """:func:`loads_object`'s general path: the checking decoder, then lone surrogates."""
    try:
        obj = _decoder.decode(text)
    except MalformedToken:
        raise
    except (ValueError, RecursionError):
        raise MalformedToken(f"{what} is not valid JSON") from None
    if not isinstance(obj, dict):
        raise MalformedToken(f"{what} is not a JSON object")
    if _SURROGATE_ESCAPE(text) is not None and _has_lone_surrogate(obj):
        raise MalformedToken(f"{what} holds a lone surrogate (not Unicode text)")
    return obj


# A \uD800-\uDFFF escape (perhaps preceded by an escaped backslash, which only makes the
# search more cautious): only such an escape can put a surrogate into a decoded string,
# since UTF-8 itself cannot encode one.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]").search


def _has_lone_surrogate(obj: Any) -> bool:
    """Whether any name or string in ``obj`` holds an unpaired surrogate: such a string has
    no UTF-8 form, so it could not be logged, stored or sent on (RFC 7493 §2.1, RFC 8259
    §8.2). A pair (an escaped emoji, say) was joined into one character by the decoder."""
    stack = [obj]
    while stack:
        value = stack.pop()
        if type(value) is str:
            if not value.isascii():
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    return True
        elif type(value) is dict:
            stack.extend(value)
            stack.extend(value.values())
        elif type(value) is list:
            stack.extend(value)
    return False


# Decoded headers by their (translated) segment: one issuer's tokens share a handful of
# distinct headers, so the common case skips base64 and JSON work entirely. A plain dict
# (emptied when full) rather than an LRU: a lookup is the whole cost of a hit.
_HEADERS: dict[bytes, Mapping[str, Any]] = {}
_HEADERS_MAX = 512


def _decode_header(segment: bytes) -> Mapping[str, Any]:
    """Decode and check a header segment, and remember it (errors are not remembered).

    ``segment`` is already translated (b64.TO_STANDARD), which is one-to-one on every segment
    that can decode, so equal keys mean equal headers. The result is read-only.
    """
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
    frozen = MappingProxyType(header)
    if len(_HEADERS) >= _HEADERS_MAX:
        _HEADERS.clear()
    _HEADERS[segment] = frozen
    return frozen


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
    header = _HEADERS.get(header_b64)
    if header is None:
        header = _decode_header(header_b64)
    # tuple.__new__ directly: the NamedTuple's own __new__ is a Python-level function.
    return _new_parsed(
        ParsedJWS,
        (
            header,
            decode_translated(payload_b64, "payload"),
            decode_translated(signature_b64, "signature"),
            raw[: len(header_b64) + 1 + len(payload_b64)],
        ),
    )


_new_parsed = tuple.__new__
_a2b = binascii.a2b_base64


def parse_object(
    token: str | bytes, max_size: int = DEFAULT_MAX_SIZE
) -> tuple[ParsedJWS, dict[str, Any]]:
    """:func:`parse`, then the payload through :func:`loads_object`: a compact JWS whose
    payload is a JSON object (a JWT, RFC 7519 §7.2), in one step. Verifies nothing.

    This is the verify hot path, so its common case is written out here: a ``str`` token, a
    header seen before, a payload without inner objects whose commas prove that no member
    name repeats (see :func:`_surely_unique`). Anything else, and any doubt at all, goes through
    :func:`parse` and :func:`loads_object`, which decide and word every refusal (a property
    test holds the two ways to the same answers).
    """
    if type(token) is str and len(token) <= max_size and token.isascii():
        raw = token.encode("ascii")
        parts = raw.translate(TO_STANDARD).split(b".")
        if len(parts) == 3:
            header_b64, payload_b64, signature_b64 = parts
            header = _HEADERS.get(header_b64)
            payload_rem = len(payload_b64) & 3
            signature_rem = len(signature_b64) & 3
            # decode_translated() on both segments; a remainder of 1 is never valid.
            if header is not None and payload_rem != 1 and signature_rem != 1:
                try:
                    payload = _a2b(payload_b64 + _PAD[payload_rem], strict_mode=True)  # type: ignore[operator]
                    signature = _a2b(signature_b64 + _PAD[signature_rem], strict_mode=True)  # type: ignore[operator]
                    text = payload.decode("utf-8")
                    # Nested objects and escapes (which may hide a lone surrogate) take
                    # the general path.
                    claims, end = (
                        _scan_once(text, 0)
                        if text.find("{", 1) < 0 and "\\u" not in text
                        else (None, None)
                    )
                except (
                    binascii.Error,
                    UnicodeDecodeError,
                    StopIteration,  # no JSON value at all
                    ValueError,
                    RecursionError,  # deeply nested arrays
                    MalformedToken,  # NaN and friends: the general path words it in turn
                ):
                    claims = end = None
                if (
                    type(claims) is dict
                    and end == len(text)
                    and not (payload_rem and _VALUE[payload_b64[-1]] & _UNUSED_BITS[payload_rem])
                    and not (
                        signature_rem and _VALUE[signature_b64[-1]] & _UNUSED_BITS[signature_rem]
                    )
                    and (text.count(",") < len(claims) or _surely_unique(text, claims))
                ):
                    signing_input = raw[: len(header_b64) + 1 + len(payload_b64)]
                    parsed = _new_parsed(ParsedJWS, (header, payload, signature, signing_input))
                    return parsed, claims
    parsed = parse(token, max_size=max_size)
    return parsed, loads_object(parsed[1], "payload")


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
    kid = parsed[0].get("kid")
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


def checker_for(key: JWK, alg: str) -> Checker:
    """``alg`` bound to ``key``; :class:`AlgorithmNotAllowed` when the key may not verify it."""
    check = key._checkers.get(alg) or key._checker(alg)
    if check is None:
        raise AlgorithmNotAllowed(f"the key does not allow {alg}")
    return check


def verify_signature(parsed: ParsedJWS, key: JWK) -> None:
    """Check the signature with ``key``, which must itself allow the token's ``alg``."""
    header, _, signature, signing_input = parsed
    if not checker_for(key, header["alg"])(signing_input, signature):
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
    signature = ALGORITHMS[header["alg"]].sign(key, signing_input.encode("ascii"))
    return signing_input + "." + b64url_encode(signature)
