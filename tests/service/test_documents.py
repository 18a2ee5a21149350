"""The wire path's pieces of a published answer are the :class:`~documents.Answer` the other
writers serialise.

The wire path joins a document's serialised representation fields
(:class:`~jwkit.service.published.Document`), a ``cache-control`` value computed by
``documents.document_cache_control`` (the twin of ``document_lifetime``) and the body; the
ASGI writers serialise ``documents.published``'s answer. These tests hold the forms together
for every kind of lifetime, ETag, content type, length, key schedule and confirmation; the
parity tests of ``test_wire.py`` compare the bytes of real answers on a real server."""

from __future__ import annotations

import itertools

import pytest
from uvicorn.protocols.http.httptools_impl import STATUS_LINE

from jwkit.service.http import documents, wire
from jwkit.service.http.documents import Lifetime
from jwkit.service.published import Document, etag_of, representation
from jwkit.service.state import QUIET_AGE, Freshness, ProjectView, ProjectViews

LIFETIMES = [
    Lifetime(0),
    Lifetime(300),
    Lifetime(300, 120, 120),
    Lifetime(7, 0, 3),
    Lifetime(86_400, 86_400, 86_400),
]
ETAGS = ['"0123456789abcdef0123456789abcdef"', 'W/"weak"', '"x"']
TYPES = [documents.JWKS, documents.JSON, documents.STATUS_LIST]
BODIES = [b"", b"{}", b"x" * 1500]
DEFAULTS = [(b"date", b"Sun, 06 Dec 2026 23:00:00 GMT"), (b"server", b"uvicorn")]


def _serialised(headers: documents.Headers) -> bytes:
    return b"".join(name + b": " + value + b"\r\n" for name, value in headers)


def _written(answer: documents.Answer, keep_alive: bool = True) -> bytes:
    """What uvicorn's ASGI path writes for ``answer`` (the parity tests' reference)."""
    close = b"" if keep_alive else b"connection: close\r\n"
    return (
        STATUS_LINE[answer.status]
        + _serialised(tuple(DEFAULTS))
        + _serialised(answer.headers)
        + close
        + b"\r\n"
        + answer.body
    )


@pytest.mark.parametrize(
    ("life", "etag", "content_type"), list(itertools.product(LIFETIMES, ETAGS, TYPES))
)
def test_the_wire_answer_is_the_published_answer_serialised(
    life: Lifetime, etag: str, content_type: bytes
) -> None:
    for body, keep_alive in itertools.product(BODIES, (True, False)):
        answer = documents.published(body, etag, content_type, life)
        assert answer.status == 200
        fields = _serialised(representation(etag, content_type, len(body)))
        control = documents.cache_control(life)
        assert control == life.header()
        got = wire._published(DEFAULTS, control, fields + b"\r\n" + body, keep_alive)
        assert got == _written(answer, keep_alive)


@pytest.mark.parametrize("content_type", TYPES)
@pytest.mark.parametrize("body", BODIES)
def test_a_document_holds_its_representation_fields_serialised(
    content_type: bytes, body: bytes
) -> None:
    doc = Document(body, content_type)
    assert doc.etag == etag_of(body) and len(doc.etag) == 34
    assert doc.content_type == content_type
    assert doc.fields == _serialised(representation(doc.etag, content_type, len(body)))
    life = Lifetime(60, 5, 5)
    answer = documents.published(doc.body, doc.etag, content_type, life)
    assert wire._published(DEFAULTS, life.header(), doc, True) == _written(answer)
    assert Document(body, content_type) == doc and hash(Document(body, content_type)) == hash(doc)
    assert doc != Document(body + b" ", content_type)
    assert Document.render({"b": 1, "a": [1, 2]}, content_type).body == b'{"a":[1,2],"b":1}'


def test_a_not_modified_answer_keeps_the_validators() -> None:
    answer = documents.published(b"{}", '"e"', documents.JSON, Lifetime(60), '"e"')
    assert answer == documents.Answer(
        304,
        (
            (b"cache-control", b"public, max-age=60"),
            (b"etag", b'"e"'),
            (b"access-control-allow-origin", b"*"),
        ),
        b"",
    )


NOW = 1_800_000_000


def _view(
    jwks_max_age: int, next_change: int | None, freshness: Freshness | None, pid: str = "p"
) -> ProjectView:
    doc = Document(b"{}", documents.JSON)
    return ProjectView(
        id=pid,
        issuer="http://x/p/p",
        audience="a",
        token_ttl=60,
        max_token_ttl=60,
        jwks_max_age=jwks_max_age,
        jwks=doc,
        discovery=doc,
        next_change=next_change,
        signer_key_id=None,
        freshness=freshness,
    )


@pytest.mark.parametrize("jwks_max_age", [0, 1, 5, 60, 300, 86_400])
def test_the_wire_cache_control_is_the_document_lifetimes(jwks_max_age: int) -> None:
    """``document_cache_control`` (the wire path's) equals ``document_lifetime``'s header for
    every kind of next key change (none, past, now, soon, far), confirmation (none, old,
    recent, this second, ahead of the clock) and sync interval."""
    changes = [None, NOW - 10, NOW, NOW + 1, NOW + 7, NOW + 299, NOW + 10**6]
    confirmations = [None, NOW - 10**5, NOW - 400, NOW - 61, NOW - 3, NOW - 1, NOW, NOW + 2]
    intervals = [0.05, 0.2, 1.0, 1.5, 30.0]
    seen = set()
    for change, confirmed, interval in itertools.product(changes, confirmations, intervals):
        for freshness in (
            (Freshness(confirmed), None) if confirmed is None else (Freshness(confirmed),)
        ):
            view = _view(jwks_max_age, change, freshness)
            plain = documents.document_lifetime(view, NOW, interval)
            fast = documents.document_cache_control(view, NOW, interval)
            assert fast == plain.header(), (change, confirmed, interval)
            seen.add(plain)
    if jwks_max_age >= 5:  # the grid reaches every branch: stale windows, clamps, zeros
        assert any(life.stale_while_revalidate for life in seen)
        assert any(life.max_age == 0 for life in seen)
        assert any(life.max_age == jwks_max_age for life in seen)


def test_the_cache_control_caches_stay_bounded() -> None:
    for n in range(3000):
        life = Lifetime(n, n % 7, n % 7)
        assert documents.cache_control(life) == life.header()
        view = _view(n, NOW + n, Freshness(NOW - 1))
        expected = documents.document_lifetime(view, NOW, 0.2).header()
        assert documents.document_cache_control(view, NOW, 0.2) == expected
    assert len(documents._CACHE_CONTROL) <= 1024
    assert len(documents._CONTROL_BY_AGE) <= 1024


def test_the_quiet_cache_control_is_every_quiet_views() -> None:
    """A view is in the quiet index exactly when its ``cache-control`` is the one value the
    wire path answers quiet projects with (``quiet_cache_control``), over every kind of next
    key change, ``jwks_max_age``, confirmation and sync interval."""
    changes = [None, NOW - 10, NOW, NOW + 1, NOW + QUIET_AGE - 1, NOW + QUIET_AGE,
               NOW + QUIET_AGE + 1, NOW + 10**6]  # fmt: skip
    ages = [0, 60, QUIET_AGE, QUIET_AGE + 1, 86_400]
    confirmations = [None, NOW - 10**5, NOW - 400, NOW - 3, NOW - 1, NOW, NOW + 2]
    intervals = [0.2, 1.0, 30.0]
    quiet = 0
    for confirmed, interval in itertools.product(confirmations, intervals):
        freshness = Freshness(confirmed)
        views = ProjectViews(lambda pid: None, 10_000, lambda: NOW, freshness)
        grid = list(itertools.product(changes, ages, (freshness, Freshness(confirmed))))
        built = [_view(age, change, fresh, f"p{n}") for n, (change, age, fresh) in enumerate(grid)]
        views.ids = {v.id for v in built}
        views.fill(built)
        shared = documents.quiet_cache_control(confirmed, NOW, interval)
        for view, (change, age, fresh) in zip(built, grid, strict=True):
            expected = (
                age == QUIET_AGE
                and fresh is freshness
                and (change is None or change - NOW >= QUIET_AGE)
            )
            assert (view.id in views.quiet_jwks) is expected, (change, age)
            assert (view.id in views.quiet_discovery) is expected
            if expected:
                quiet += 1
                assert views.quiet_jwks[view.id] is view.jwks
                assert documents.document_cache_control(view, NOW, interval) == shared, (
                    change, confirmed, interval,
                )  # fmt: skip
    assert quiet == 4 * len(confirmations) * len(intervals)  # None, +age, +age+1, far
