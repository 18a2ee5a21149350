"""Strict JSON objects: UTF-8, no duplicate member names, no NaN, no lone surrogates.

JOSE headers, JWT claims (RFC 7519 §7.2) and JWKs are JSON objects, and a name that appears
twice, a bare ``NaN`` or a string no UTF-8 can carry must be refused, not silently resolved
(RFC 7515 §4, RFC 7493 §2). :func:`loads_object` is the one parser for all of them.

It has one shortcut, :func:`scan_object`, and its plain twin, :func:`loads_checked` (the
checking decoder); ``test_loads_object_agrees_with_the_checking_decoder`` in
``tests/jose/test_properties.py`` holds them to the same answers.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import MalformedToken

__all__ = ["loads_checked", "loads_object", "scan_object"]


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise MalformedToken("duplicate member name in JSON")
    return obj


def _no_constant(name: str) -> Any:
    raise MalformedToken(f"{name} is not valid JSON")


_decoder = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
# The same grammar without the duplicate check: the C scanner builds dicts itself, and
# :func:`surely_unique` decides afterwards whether a duplicate could have been merged away.
_scan = json.JSONDecoder(parse_constant=_no_constant).scan_once  # type: ignore[attr-defined]


def surely_unique(text: str, obj: dict[str, Any]) -> bool:
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
    if type(text) is not bytes:
        if isinstance(text, bytes | bytearray):
            text = bytes(text)
        elif isinstance(text, str):
            return loads_checked(str(text), what)
        else:
            raise MalformedToken(f"{what} is not text")
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedToken(f"{what} is not UTF-8") from None
    obj = scan_object(decoded)
    return obj if obj is not None else loads_checked(decoded, what)


def scan_object(text: str) -> dict[str, Any] | None:
    """The shortcut of :func:`loads_object`: ``text`` as an object through the C scanner
    alone (``json.loads`` minus two regex calls and a Python hook per object), or ``None``
    whenever the answer is in any doubt, and :func:`loads_checked` must decide and word it.

    In doubt: an escape (it may stand for a lone surrogate), an inner object (it almost
    always holds a comma, which fails :func:`surely_unique`), whitespace around the object,
    trailing data, anything but an object, any error.
    """
    if "\\u" in text or text.find("{", 1) >= 0:
        return None
    try:
        obj, end = _scan(text, 0)
    except (StopIteration, ValueError, RecursionError):
        return None
    if type(obj) is dict and end == len(text) and surely_unique(text, obj):
        return obj
    return None


def loads_checked(text: str, what: str) -> dict[str, Any]:
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
