"""Strict base64url without padding (RFC 7515 §2, RFC 4648 §5).

JOSE allows exactly one spelling of any byte string: the URL-safe alphabet, no ``=`` padding,
no whitespace and no stray bits in the last character. Accepting anything looser would let
two different token strings carry the same signature, so every decoder here is strict.
"""

from __future__ import annotations

import base64
import binascii

from ..errors import MalformedToken

# TO_STANDARD and decode_translated are for jws's one-pass split (not public API).
__all__ = ["b64url_decode", "b64url_encode", "b64url_uint", "uint_b64url"]

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
#: Maps the URL-safe alphabet onto the standard one, and the standard alphabet's own
#: ``+/=`` onto ``!`` (invalid), so that ``binascii``'s strict mode refuses them. Bytes
#: outside the alphabet are left alone (and refused by strict mode); ``.`` survives, so a
#: whole compact token can be translated once and split afterwards.
TO_STANDARD = bytes.maketrans(b"-_+/=", b"+/!!!")
# The 6-bit value of each (translated) alphabet byte, to check the unused low bits of the
# last character; indexed by byte value.
_VALUE = bytearray(256)
for _i, _c in enumerate(_ALPHABET.replace("-", "+").replace("_", "/").encode("ascii")):
    _VALUE[_c] = _i
del _i, _c
_PAD = (b"", None, b"==", b"=")  # by len % 4; a remainder of 1 is never valid
_UNUSED_BITS = (0, 0, 0x0F, 0x03)  # 2 leftover chars carry 4 unused bits, 3 carry 2


def b64url_encode(data: bytes) -> str:
    """Encode bytes as base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def decode_translated(segment: bytes, what: str) -> bytes:
    """Decode one base64url segment already passed through :data:`TO_STANDARD`.

    The strict core of :func:`b64url_decode`; :func:`jwkit.jose.jws.parse` translates a
    whole token at once and decodes its segments with this.
    """
    rem = len(segment) & 3
    pad = _PAD[rem]
    if pad is None:
        raise MalformedToken(f"{what} has an impossible base64url length")
    try:
        # Strict mode refuses whatever the translation made invalid (the standard alphabet,
        # padding) and whitespace, in one C call.
        decoded = binascii.a2b_base64(segment + pad, strict_mode=True)
    except binascii.Error:
        raise MalformedToken(f"{what} is not base64url") from None
    if rem and _VALUE[segment[-1]] & _UNUSED_BITS[rem]:
        raise MalformedToken(f"{what} is not canonical base64url")
    return decoded


def b64url_decode(text: str | bytes, what: str = "value") -> bytes:
    """Decode strict base64url; raise :class:`MalformedToken` on any other spelling.

    Rejects padding, whitespace, characters outside the URL-safe alphabet, impossible lengths
    (``len % 4 == 1``) and non-canonical encodings whose unused trailing bits are not zero.
    """
    if isinstance(text, str):
        try:
            raw = text.encode("ascii")
        except UnicodeEncodeError:
            raise MalformedToken(f"{what} is not base64url") from None
    elif isinstance(text, bytes | bytearray):
        raw = bytes(text)
    else:
        raise MalformedToken(f"{what} is not a string")
    return decode_translated(raw.translate(TO_STANDARD), what)


def uint_b64url(value: int, length: int | None = None) -> str:
    """Encode a non-negative integer big-endian (RFC 7518 §2 "Base64urlUInt").

    With ``length`` the output is left-padded to exactly that many octets (EC coordinates,
    RFC 7518 §6.2.1.2); without it, the minimal number of octets is used (at least one).
    """
    if length is None:
        length = max(1, (value.bit_length() + 7) // 8)
    return b64url_encode(value.to_bytes(length, "big"))


def b64url_uint(text: str, what: str = "value") -> int:
    """Decode a Base64urlUInt member of a JWK."""
    raw = b64url_decode(text, what)
    if not raw:
        raise MalformedToken(f"{what} is empty")
    return int.from_bytes(raw, "big")
