"""``documents.published_fields`` is :func:`documents.published`'s answer serialised, and the
wire path's cache of prebuilt answers follows uvicorn's default headers and its size bound.

The wire path joins a head with ``published_fields`` whenever it has no prebuilt answer for a
document (requests spread over many projects); the other writers serialise the
:class:`~jwkit.service.http.documents.Answer`. These tests hold the two forms together for
every kind of lifetime, ETag, content type and length."""

from __future__ import annotations

import itertools

import pytest

from jwkit.service.http import documents, wire
from jwkit.service.http.documents import Lifetime

LIFETIMES = [
    Lifetime(0),
    Lifetime(300),
    Lifetime(300, 120, 120),
    Lifetime(7, 0, 3),
    Lifetime(86_400, 86_400, 86_400),
]
ETAGS = ['"0123456789abcdef0123456789abcdef"', 'W/"weak"', '"x"']
TYPES = [documents.JWKS, documents.JSON, documents.STATUS_LIST]


def _serialised(answer: documents.Answer) -> bytes:
    return b"".join(name + b": " + value + b"\r\n" for name, value in answer.headers)


@pytest.mark.parametrize(
    ("life", "etag", "content_type"), list(itertools.product(LIFETIMES, ETAGS, TYPES))
)
def test_published_fields_are_the_answer_serialised(
    life: Lifetime, etag: str, content_type: bytes
) -> None:
    for body in (b"", b"{}", b"x" * 1500):
        answer = documents.published(body, etag, content_type, life)
        assert answer.status == 200
        joined = documents.published_fields(etag, content_type, life, len(body))
        assert joined == _serialised(answer)
        assert joined == _serialised(answer)  # again, from the cache-control cache


def test_the_cache_control_cache_stays_bounded() -> None:
    for n in range(3000):
        life = Lifetime(n, n % 7, n % 5)
        assert documents.published_fields('"e"', documents.JSON, life, 2) == _serialised(
            documents.published(b"{}", '"e"', documents.JSON, life)
        )
    assert len(documents._CACHE_CONTROL) <= 1024


def _head(defaults: list[tuple[bytes, bytes]], etag: str, life: Lifetime, body: bytes) -> bytes:
    from uvicorn.protocols.http.httptools_impl import STATUS_LINE

    answer = documents.published(body, etag, documents.JWKS, life)
    lines = b"".join(n + b": " + v + b"\r\n" for n, v in defaults)
    return STATUS_LINE[200] + lines + _serialised(answer) + b"\r\n" + body


def test_prebuilt_answers_follow_the_default_headers_and_stay_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(wire, "_MAX_PREBUILT", 10)
    monkeypatch.setattr(wire, "_PREBUILT", {})
    monkeypatch.setattr(wire, "_PREBUILT_FOR", [None])
    life = Lifetime(300, 60, 60)
    second = [(b"date", b"Sun, 06 Dec 2026 23:00:00 GMT"), (b"server", b"uvicorn")]
    for n in range(25):  # more documents than the bound: every answer is still right
        got = wire._cached_response((f"p{n}", "jwks"), second, '"e"', life, documents.JWKS, b"[]")
        assert got.response == _head(second, '"e"', life, b"[]")
    assert len(wire._PREBUILT) == 10  # the first ten of this second
    first = wire._cached_response(("p0", "jwks"), second, '"e"', life, documents.JWKS, b"[]")
    assert (
        wire._cached_response(("p0", "jwks"), second, '"e"', life, documents.JWKS, b"[]") is first
    )
    # a changed ETag or lifetime replaces the entry in place
    other = wire._cached_response(("p0", "jwks"), second, '"f"', life, documents.JWKS, b"[]")
    assert other is not first and other.response == _head(second, '"f"', life, b"[]")
    assert len(wire._PREBUILT) == 10
    # the next second (uvicorn's new default headers list): every entry was stale
    later = [(b"date", b"Sun, 06 Dec 2026 23:00:01 GMT"), (b"server", b"uvicorn")]
    got = wire._cached_response(("p20", "jwks"), later, '"e"', life, documents.JWKS, b"[]")
    assert got.response == _head(later, '"e"', life, b"[]")
    assert list(wire._PREBUILT) == [("p20", "jwks")]
