"""The verify hot path's shortcuts, each beside the plain function it must agree with.

Private: :class:`~jwkit.Verifier` and the status-list checker import these; users call
:func:`jwkit.jose.jws.parse`, :func:`jwkit.jose.jwt.parse_claims` and
:func:`jwkit.jose.jws.verify_signature`, which decide and word every refusal.

=====================  ========================================  ==================================
shortcut               plain twin                                parity test (tests/jose/)
=====================  ========================================  ==================================
:func:`parse_object`   :func:`~jwkit.jose.jws.parse`, then       ``test_properties.py::
                       :func:`~jwkit.jose._json.loads_object`    test_parse_object_agrees_with_
                                                                 parse_then_loads_object``
:func:`checker_for`    :func:`~jwkit.jose.jws.verify_signature`  ``test_security.py::
                                                                 test_checker_for_agrees_with_
                                                                 verify_signature``
=====================  ========================================  ==================================

``docs/architecture.md`` lists what each one buys, measured.
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
from .jwt import Claims

__all__ = [
    "HEADER_CACHE_SIZE",
    "HeaderCache",
    "adopt_claims",
    "checker_for",
    "new_header_cache",
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
    """:func:`~jwkit.jose.jws.parse`, then the payload through :func:`loads_object`: a compact
    JWS whose payload is a JSON object (a JWT, RFC 7519 §7.2), in one step. Verifies nothing.

    With ``headers`` (owned by the caller), a ``str`` token whose header segment was seen
    before skips the header's base64 and JSON and gets the very same header object back;
    everything else, and every refusal, goes through :func:`~jwkit.jose.jws.parse`. Both
    ways decode the payload and signature alike and in the same order, so they raise the
    same errors.
    """
    if headers is not None and type(token) is str and len(token) <= max_size and token.isascii():
        raw = token.encode("ascii")
        parts = raw.translate(TO_STANDARD).split(b".")
        if len(parts) == 3:
            header_b64, payload_b64, signature_b64 = parts
            header = headers.get(header_b64)
            if header is not None:
                parsed = ParsedJWS(
                    header,
                    decode_translated(payload_b64, "payload"),
                    decode_translated(signature_b64, "signature"),
                    raw[: len(header_b64) + 1 + len(payload_b64)],
                )
                return parsed, loads_object(parsed.payload, "payload")
    parsed = parse(token, max_size=max_size)
    if headers is not None:
        # The signing input starts with the header segment; translated, it is the key.
        segment = parsed.signing_input.split(b".", 1)[0].translate(TO_STANDARD)
        if len(headers) >= HEADER_CACHE_SIZE:
            headers.clear()
        headers[segment] = parsed.header
    return parsed, loads_object(parsed.payload, "payload")


def checker_for(key: JWK, alg: str) -> Checker:
    """``alg`` bound to ``key`` (made once per key, then kept by it), to call with
    ``(signing_input, signature)``; :class:`AlgorithmNotAllowed` when the key may not verify
    ``alg``, as :func:`~jwkit.jose.jws.verify_signature` refuses it."""
    check = key._checker(alg)
    if check is None:
        raise AlgorithmNotAllowed(f"the key does not allow {alg}")
    return check


_new_claims = object.__new__


def adopt_claims(claims: dict[str, Any], header: Mapping[str, Any]) -> Claims:
    """``Claims(claims, header)`` without the copy, for a dict nothing else holds (the one
    the payload was just parsed into)."""
    result: Claims = _new_claims(Claims)
    result._data = claims
    result._header = header
    return result
