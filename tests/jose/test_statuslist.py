"""The status list byte array against the draft's own worked examples (§4.1)."""

from __future__ import annotations

import zlib

import pytest

from jwkit.errors import MalformedToken
from jwkit.jose.b64 import b64url_encode
from jwkit.jose.statuslist import StatusList

# draft-ietf-oauth-status-list §4.1, the 1-bit and 2-bit examples (see tests/vectors/README.md).
ONE_BIT = [1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1]
TWO_BIT = [1, 2, 0, 3, 0, 1, 0, 1, 1, 2, 3, 3]


@pytest.mark.parametrize(
    ("bits", "values", "raw", "compressed"),
    [
        (1, ONE_BIT, "b9a3", "78dadbb918000217015d"),
        (2, TWO_BIT, "c944f9", "78da3be9f2130003df0207"),
    ],
)
def test_draft_examples(bits, values, raw, compressed):
    lst = StatusList(len(values), bits)
    for index, value in enumerate(values):
        lst[index] = value
    assert lst.to_bytes().hex() == raw
    assert lst.encode() == {"bits": bits, "lst": b64url_encode(bytes.fromhex(compressed))}
    decoded = StatusList.decode({"bits": bits, "lst": b64url_encode(bytes.fromhex(compressed))})
    assert [decoded[i] for i in range(len(values))] == values


def test_decompression_bomb_is_refused():
    bomb = b64url_encode(zlib.compress(b"\0" * (2 << 20), 9))
    with pytest.raises(MalformedToken, match="inflates"):
        StatusList.decode({"bits": 1, "lst": bomb}, max_bytes=1 << 20)


@pytest.mark.parametrize(
    "obj",
    [
        [],
        {"bits": 3, "lst": "eNrbuRgAAhcBXQ"},
        {"bits": True, "lst": "eNrbuRgAAhcBXQ"},
        {"bits": 1, "lst": ""},
        {"bits": 1, "lst": "eNrbuRgAAhcBXQ=="},
        {"bits": 1, "lst": b64url_encode(b"not zlib")},
        {"bits": 1, "lst": b64url_encode(zlib.compress(b"\xb9\xa3") + b"x")},
        {"bits": 1, "lst": b64url_encode(zlib.compress(b"\xb9\xa3")[:-2])},
    ],
)
def test_malformed_lists_are_typed_errors(obj):
    with pytest.raises(MalformedToken):
        StatusList.decode(obj)


def test_index_and_value_bounds():
    lst = StatusList(8, 2)
    assert len(lst) == 8
    with pytest.raises(IndexError):
        lst[8]
    with pytest.raises(IndexError):
        lst[-1]
    with pytest.raises(ValueError):
        lst[0] = 4
    lst[7] = 3
    assert lst[7] == 3 and lst[6] == 0


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_narrowed_keeps_every_status_in_fewer_bits(bits):
    lst = StatusList(4096, bits)
    for index in (0, 7, 8, 1000, 4095):
        lst[index] = 1
    narrow = lst.narrowed()
    assert narrow.bits == 1 and len(narrow) == len(lst)
    assert [narrow[i] for i in range(len(lst))] == [lst[i] for i in range(len(lst))]
    lst[9] = 2  # SUSPENDED needs two bits
    wider = lst.narrowed()
    assert wider.bits == 2 and [wider[i] for i in range(len(lst))] == [
        lst[i] for i in range(len(lst))
    ]
    assert StatusList(16, 1).narrowed().bits == 1
