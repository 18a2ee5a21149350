"""Token Status List: the compressed bit array (draft-ietf-oauth-status-list §4).

A status list gives every Referenced Token an index and keeps ``bits`` bits of status for
each (1, 2, 4 or 8). Entries are packed from the least significant bit of each byte
(§4.1 step 3), the bytes are DEFLATE-compressed in the ZLIB format (step 4) and carried as
``{"bits": ..., "lst": "<base64url>"}`` (§4.2). Status values are §7.1's:
:data:`VALID`, :data:`INVALID`, :data:`SUSPENDED`.

Pure data: no I/O, no clock. The issuer (``jwkit.service``) encodes lists with it and the
verifier (``jwkit.verify``) decodes them; both go through :class:`StatusList`.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

from ..errors import MalformedToken
from .b64 import b64url_decode, b64url_encode

__all__ = [
    "DEFAULT_MAX_BYTES",
    "INVALID",
    "SUSPENDED",
    "VALID",
    "StatusList",
]

#: §7.1 status types.
VALID = 0x00
INVALID = 0x01
SUSPENDED = 0x02

#: The largest uncompressed byte array :meth:`StatusList.decode` accepts unless told
#: otherwise: 16 MiB, 134 million one-bit entries. A list is compressed, so a few KiB of
#: ``lst`` could otherwise inflate to gigabytes (a decompression bomb, §11.1).
DEFAULT_MAX_BYTES = 16 * 1024 * 1024

_ALLOWED_BITS = (1, 2, 4, 8)


class StatusList:
    """A mutable status list of ``size`` entries of ``bits`` bits each, all VALID at first.

    ``lst[i]`` reads entry *i*; ``lst[i] = INVALID`` sets it. An index outside the list
    raises :class:`IndexError`; a value that does not fit in ``bits`` raises
    :class:`ValueError`. The byte array is sized up to whole bytes, so ``len()`` may exceed
    the ``size`` asked for by up to ``8 // bits - 1`` entries.
    """

    __slots__ = ("_bits", "_data", "_mask", "_per_byte")

    def __init__(self, size: int, bits: int = 1) -> None:
        if bits not in _ALLOWED_BITS:
            raise ValueError(f"bits must be 1, 2, 4 or 8, not {bits!r}")
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError("size must be a positive integer")
        per_byte = 8 // bits
        self._bits = bits
        self._per_byte = per_byte
        self._mask = (1 << bits) - 1
        self._data = bytearray(-(-size // per_byte))

    @classmethod
    def from_bytes(cls, data: bytes, bits: int = 1) -> StatusList:
        """A list over an uncompressed byte array (§4.1 step 2), as given."""
        if not data:
            raise ValueError("a status list holds at least one byte")
        lst = cls(1, bits)
        lst._data = bytearray(data)
        return lst

    @classmethod
    def decode(cls, obj: object, *, max_bytes: int = DEFAULT_MAX_BYTES) -> StatusList:
        """Decode the JSON ``status_list`` object of §4.2.

        Raises :class:`~jwkit.errors.MalformedToken` when ``bits`` is not 1, 2, 4 or 8,
        ``lst`` is not strict base64url, the ZLIB stream is invalid, has trailing bytes or
        inflates to more than ``max_bytes``.
        """
        if not isinstance(obj, Mapping):
            raise MalformedToken("status_list must be a JSON object")
        bits = obj.get("bits")
        if isinstance(bits, bool) or bits not in _ALLOWED_BITS:
            raise MalformedToken("status_list bits must be 1, 2, 4 or 8")
        encoded = obj.get("lst")
        if not isinstance(encoded, str) or not encoded:
            raise MalformedToken("status_list lst must be a non-empty string")
        compressed = b64url_decode(encoded, "status_list lst")
        inflater = zlib.decompressobj()
        try:
            data = inflater.decompress(compressed, max_bytes + 1)
        except zlib.error:
            raise MalformedToken("status_list lst is not a ZLIB stream") from None
        if len(data) > max_bytes or inflater.unconsumed_tail:
            raise MalformedToken(f"status_list inflates to more than {max_bytes} bytes")
        if not inflater.eof or inflater.unused_data:
            raise MalformedToken("status_list lst is not one complete ZLIB stream")
        if not data:
            raise MalformedToken("status_list lst is empty")
        return cls.from_bytes(data, int(bits))

    @property
    def bits(self) -> int:
        """Bits per entry: 1, 2, 4 or 8."""
        return self._bits

    def __len__(self) -> int:
        return len(self._data) * self._per_byte

    def __getitem__(self, index: int) -> int:
        byte, slot = self._locate(index)
        return (self._data[byte] >> (slot * self._bits)) & self._mask

    def __setitem__(self, index: int, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= self._mask:
            raise ValueError(f"a {self._bits}-bit status is 0..{self._mask}, not {value!r}")
        byte, slot = self._locate(index)
        shift = slot * self._bits
        self._data[byte] = (self._data[byte] & ~(self._mask << shift) & 0xFF) | (value << shift)

    def _locate(self, index: int) -> tuple[int, int]:
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError("a status list index is an int")
        if not 0 <= index < len(self._data) * self._per_byte:
            raise IndexError("status list index out of range")
        return divmod(index, self._per_byte)

    def narrowed(self) -> StatusList:
        """This list in the fewest bits that hold every value it has: a 2-bit list that holds
        only VALID and INVALID becomes a 1-bit list of as many entries, and compresses to
        about half (§4.1 lets the issuer choose ``bits``; §13.3 on list size). ``self`` when
        no narrower width fits."""
        for bits in (narrower for narrower in _ALLOWED_BITS if narrower < self._bits):
            # The bits of every entry above the narrower width, in each byte.
            unit = ((1 << self._bits) - 1) ^ ((1 << bits) - 1)
            high = 0
            for slot in range(self._per_byte):
                high |= unit << (slot * self._bits)
            if not any(byte & high for byte in self._data):
                break
        else:
            return self
        narrow = StatusList(len(self), bits)
        per_byte, width, mask = self._per_byte, self._bits, self._mask
        for index, byte in enumerate(self._data):
            if byte:
                for slot in range(per_byte):
                    value = (byte >> (slot * width)) & mask
                    if value:
                        narrow[index * per_byte + slot] = value
        return narrow

    def to_bytes(self) -> bytes:
        """The uncompressed byte array (§4.1 step 3)."""
        return bytes(self._data)

    def encode(self) -> dict[str, Any]:
        """The JSON ``status_list`` object (§4.2), compressed at the highest level (§4.1)."""
        return {"bits": self._bits, "lst": b64url_encode(zlib.compress(self._data, 9))}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StatusList):
            return NotImplemented
        return self._bits == other._bits and self._data == other._data

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"StatusList(entries={len(self)}, bits={self._bits})"
