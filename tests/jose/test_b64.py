"""Strict base64url: exactly one spelling of every byte string (RFC 7515 §2)."""

from __future__ import annotations

import base64

import pytest

from jwkit.errors import MalformedToken
from jwkit.jose.b64 import b64url_decode, b64url_encode, b64url_uint, uint_b64url


@pytest.mark.parametrize(
    "data", [b"", b"f", b"fo", b"foo", b"foob", b"\xff\xfe\xfd", bytes(range(256))]
)
def test_round_trip(data: bytes) -> None:
    text = b64url_encode(data)
    assert "=" not in text
    assert b64url_decode(text) == data
    assert b64url_decode(text.encode()) == data


@pytest.mark.parametrize(
    "text",
    [
        "Zg==",  # padding
        "Zg=",
        "Z g",  # whitespace
        "Zg\n",
        "+/8",  # standard alphabet
        "a/8",
        "Z",  # impossible length
        "Zm9vY",
        "Zh",  # non-canonical: low 4 bits of the last char set (canonical is "Zg")
        "Zm9",  # non-canonical spelling of "fo" (canonical is "Zm8")
        "Zm8",  # canonical
        "Zm9vYmF",  # non-canonical 3-char tail
        "é",
        "\x00",
    ],
)
def test_strict_rejections(text: str) -> None:
    canonical = {"Zm8"}
    if text in canonical:
        assert b64url_encode(b64url_decode(text)) == text
        return
    with pytest.raises(MalformedToken):
        b64url_decode(text)


def test_every_non_canonical_tail_is_rejected() -> None:
    # For 1 and 2 byte tails, exactly one final character is canonical per value.
    for data in (b"\x00", b"\x01\x02"):
        good = b64url_encode(data)
        for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_":
            candidate = good[:-1] + c
            lenient = base64.urlsafe_b64decode(candidate + "=" * (-len(candidate) % 4))
            if candidate == b64url_encode(lenient):
                assert b64url_decode(candidate) == lenient
            else:
                with pytest.raises(MalformedToken):
                    b64url_decode(candidate)


def test_non_ascii_bytes() -> None:
    with pytest.raises(MalformedToken):
        b64url_decode(b"\xff\xfe")


def test_uint_encoding() -> None:
    assert uint_b64url(65537) == "AQAB"
    assert b64url_uint("AQAB") == 65537
    assert uint_b64url(0) == "AA"
    assert uint_b64url(1, 32) == b64url_encode(b"\x00" * 31 + b"\x01")
    with pytest.raises(MalformedToken):
        b64url_uint("")
