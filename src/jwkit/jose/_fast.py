"""The verify hot path's shortcuts, each beside the plain function it must agree with.

Private: :class:`~jwkit.Verifier`, :func:`jwkit.jose.jwt.decode` and the status-list
checker use these. :func:`parse_cached` is :func:`jwkit.jose.jws.parse` with a header
cache the caller owns (a verifier, a key); :func:`checker_for` is the refusal of
:func:`jwkit.jose.jws.verify_signature` with the checker handed back. Their parity tests and
what each buys, measured, are in ``docs/architecture.md`` ("Fast paths in the JOSE core").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

from ..errors import AlgorithmNotAllowed
from ._json import loads_object
from .algorithms import Checker
from .b64 import TO_STANDARD, decode_translated
from .jwk import JWK
from .jws import DEFAULT_MAX_SIZE, ParsedJWS, parse

__all__ = [
    "HEADER_CACHE_SIZE",
    "HeaderCache",
    "checker_for",
    "new_header_cache",
    "parse_cached",
    "parse_object",
]

#: Decoded, checked, read-only headers by their (translated) segment. Owned by one verifier
#: (never a module global): its tokens come from a handful of issuers, so a few distinct
#: headers repeat, and a repeated one skips base64 and JSON work entirely. The verifier also
#: recognises a header it has routed before by identity, which only a cache can give it.
HeaderCache: TypeAlias = dict[bytes, Mapping[str, Any]]

#: The most headers one :data:`HeaderCache` holds; when full it is emptied (a plain dict
#: rather than an LRU: a lookup is the whole cost of a hit).
HEADER_CACHE_SIZE = 512


def new_header_cache() -> HeaderCache:
    """An empty :data:`HeaderCache`, for one verifier to own."""
    return {}


def parse_object(
    token: str | bytes,
    max_size: int = DEFAULT_MAX_SIZE,
    headers: HeaderCache | None = None,
) -> tuple[ParsedJWS, dict[str, Any]]:
    """:func:`parse_cached`, then the payload through :func:`loads_object`: a compact JWS
    whose payload is a JSON object (a JWT, RFC 7519 §7.2), in one step. Verifies nothing."""
    parsed = parse_cached(token, max_size, headers)
    return parsed, loads_object(parsed.payload, "payload")


def parse_cached(
    token: str | bytes, max_size: int = DEFAULT_MAX_SIZE, headers: HeaderCache | None = None
) -> ParsedJWS:
    """:func:`~jwkit.jose.jws.parse`, remembering headers in ``headers`` (owned by the caller).

    A ``str`` token whose header segment was seen before skips the header's base64 and JSON
    and gets the very same header object back; everything else, and every refusal, goes
    through :func:`~jwkit.jose.jws.parse`. Both ways decode the payload and signature alike
    and in the same order, so they raise the same errors.
    """
    if headers is not None and type(token) is str and len(token) <= max_size and token.isascii():
        raw = token.encode("ascii")
        parts = raw.translate(TO_STANDARD).split(b".")
        if len(parts) == 3:
            header_b64, payload_b64, signature_b64 = parts
            header = headers.get(header_b64)
            if header is not None:
                return ParsedJWS(
                    header,
                    decode_translated(payload_b64, "payload"),
                    decode_translated(signature_b64, "signature"),
                    raw[: len(header_b64) + 1 + len(payload_b64)],
                )
    parsed = parse(token, max_size=max_size)
    if headers is not None:
        # The signing input starts with the header segment; translated, it is the key.
        segment = parsed.signing_input.split(b".", 1)[0].translate(TO_STANDARD)
        if len(headers) >= HEADER_CACHE_SIZE:
            headers.clear()
        headers[segment] = parsed.header
    return parsed


def checker_for(key: JWK, alg: str) -> Checker:
    """``alg`` bound to ``key`` (made once per key, then kept by it), to call with
    ``(signing_input, signature)``; :class:`AlgorithmNotAllowed` when the key may not verify
    ``alg``, as :func:`~jwkit.jose.jws.verify_signature` refuses it."""
    check = key._checker(alg)
    if check is None:
        raise AlgorithmNotAllowed(f"the key does not allow {alg}")
    return check
