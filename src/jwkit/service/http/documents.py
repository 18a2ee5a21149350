"""Every public answer, built once: status, header fields and body, as bytes.

The public answers are written by three writers: the Starlette routes
(:mod:`.public`), the raw ASGI wrapper in front of the app
(:class:`~jwkit.service.http.public.PublicFastPath`) and the HTTP parser itself
(:mod:`.wire`). None of them composes a header or a content type of its own: each asks this
module for an :class:`Answer` and serialises it — as a Starlette response
(:func:`~jwkit.service.http.public.answer_response`), as ASGI messages, or after uvicorn's
status line and default headers on the wire. ``tests/service/test_wire.py`` and
``tests/service/test_fast_path_off.py`` hold the writers together byte for byte.

A new public document gets a builder here returning an :class:`Answer` (a cached document
with an ETag is :func:`published` with its content type, as :func:`status_list` does), a
route that writes it with :func:`~jwkit.service.http.public.answer_response`, and, only if
it is hot, a branch in :mod:`.wire` that serialises the same builder's answer (see
``_prebuilt`` there).

Header names are lowercase, in the order they are sent; ``content-length`` is there whenever
the answer has a body to describe (``HEAD`` sends a ``GET``'s fields and no body).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

from jwkit.service.domain.keys import SYNC_MARGIN
from jwkit.service.published import JSON, JWKS, STATUS_LIST, Document, representation
from jwkit.service.state import QUIET_AGE

if TYPE_CHECKING:
    from jwkit.service.state import ProjectView
    from jwkit.service.statuslists import ListDoc

__all__ = [
    "CONTENT_TYPES",
    "JSON",
    "JWKS",
    "STATUS_LIST",
    "Answer",
    "Headers",
    "Lifetime",
    "cache_control",
    "document",
    "document_cache_control",
    "document_lifetime",
    "etag_matches",
    "internal_error",
    "no_status_list",
    "not_found",
    "published",
    "quiet_cache_control",
    "status_list",
    "status_list_lifetime",
    "token",
    "token_fields",
]

Headers = tuple[tuple[bytes, bytes], ...]

#: The content type of each project document, by name.
CONTENT_TYPES = {"jwks": JWKS, "discovery": JSON}

_NO_STORE: Headers = ((b"cache-control", b"no-store"), (b"pragma", b"no-cache"))
_CHALLENGE: Headers = ((b"www-authenticate", b'Basic realm="jwkit"'),)
_NOT_FOUND = b'{"error":"not_found","message":"no such project"}'
_NO_LIST = b'{"error":"not_found","message":"no such status list"}'
_INTERNAL = b'{"error":"internal_error","message":"an unexpected error occurred"}'
_UNAVAILABLE = b'{"error":"temporarily_unavailable","message":"try again shortly"}'


class Lifetime(NamedTuple):
    """How long a cache may use a published answer (RFC 9111 §5.2.2.1, RFC 5861): fresh for
    ``max_age`` seconds, then stale for up to ``stale_while_revalidate`` seconds while it
    refetches, or ``stale_if_error`` seconds while the origin fails. A zero stale window is
    left out of the header."""

    max_age: int
    stale_while_revalidate: int = 0
    stale_if_error: int = 0

    def header(self) -> bytes:
        value = b"public, max-age=%d" % self.max_age
        if self.stale_while_revalidate > 0:
            value += b", stale-while-revalidate=%d" % self.stale_while_revalidate
        if self.stale_if_error > 0:
            value += b", stale-if-error=%d" % self.stale_if_error
        return value


def document_lifetime(view: ProjectView, now: int, sync_interval: float) -> Lifetime:
    """The cache lifetime of ``view``'s JWKS and discovery document at ``now``.

    A cached key set breaks a token only if it lacks the key that signed it. A key absent from
    this replica's snapshot was committed after ``confirmed`` (when the database last vouched
    for the snapshot), and graceful rotation lets it sign only ``1 + SYNC_MARGIN +
    jwks_max_age`` seconds after its publication (:mod:`jwkit.service.domain.keys`); a next
    key published at once supersedes the previous one, so no older publication helps. Every
    copy of this answer must therefore be dead by ``horizon = confirmed + SYNC_MARGIN +
    jwks_max_age - 1`` (``now`` is truncated): the ``max-age`` already ends by then
    (:meth:`~jwkit.service.state.ProjectView.cache_max_age`), and the stale windows take only
    what is left, ``horizon - now - max_age``, never more than ``jwks_max_age``.

    ``confirmed`` is taken as at least one sync interval and one second old even when it is
    younger (an earlier horizon is the safe side; the second covers truncation), so the
    windows do not move with every sync: the writers and replicas send the same header while
    the replica keeps up. Without a confirmation, or with
    ``jwks_max_age`` 0 (a key may sign as soon as it is published), nothing is left: no stale
    window. docs/service.md ("Putting a CDN in front") says the same for operators."""
    max_age = view.cache_max_age(now)
    confirmed = view.freshness.confirmed_at if view.freshness is not None else None
    if confirmed is None or view.jwks_max_age <= 0:
        return Lifetime(max_age)
    confirmed = min(confirmed, now - math.ceil(sync_interval) - 1)
    horizon = confirmed + SYNC_MARGIN + view.jwks_max_age - 1
    stale = max(0, min(horizon - now - max_age, view.jwks_max_age))
    return Lifetime(max_age, stale, stale)


def status_list_lifetime(doc: ListDoc, now: int) -> Lifetime:
    """The cache lifetime of a signed status list at ``now``: fresh for its ``ttl`` (never
    past ``exp``, :meth:`~jwkit.service.statuslists.ListDoc.max_age`); no
    ``stale-while-revalidate``, which would delay every revocation by its length; and while
    the origin fails, stale for at most one more ``ttl`` and never past ``exp`` (a verifier
    refuses an expired list, draft-ietf-oauth-status-list §13.3): an outage then delays a
    revocation by one ``ttl`` at most, and nobody gets a list that is no longer valid."""
    max_age = doc.max_age(now)
    return Lifetime(max_age, 0, max(0, min(doc.ttl, doc.exp - now - max_age)))


class Answer(NamedTuple):
    """One HTTP answer: what every writer sends after uvicorn's default header fields."""

    status: int
    headers: Headers
    body: bytes


def _length(body: bytes) -> tuple[bytes, bytes]:
    return (b"content-length", b"%d" % len(body))


def etag_matches(header: str, etag: str) -> bool:
    """Weak comparison, as If-None-Match requires (RFC 9110 §13.1.2)."""
    if header.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(part.strip().removeprefix("W/") == bare for part in header.split(","))


def published(
    body: bytes,
    etag: str,
    content_type: bytes,
    life: Lifetime,
    if_none_match: str | None = None,
) -> Answer:
    """A published document anyone may cache: ``200`` with ``Cache-Control`` from ``life``
    and its :func:`~jwkit.service.published.representation` fields (strong ETag, CORS for
    every origin, length, type), or ``304`` without a body when ``if_none_match`` matches
    (RFC 9110 §13.1.2, §15.4.5)."""
    control = (b"cache-control", cache_control(life))
    if if_none_match is not None and etag_matches(if_none_match, etag):
        etag_field, origin, _, _ = representation(etag, content_type, 0)
        return Answer(304, (control, etag_field, origin), b"")
    return Answer(200, (control, *representation(etag, content_type, len(body))), body)


#: ``Lifetime`` -> its ``Cache-Control`` value; most projects share a handful of lifetimes.
_CACHE_CONTROL: dict[Lifetime, bytes] = {}


def cache_control(life: Lifetime) -> bytes:
    """``life.header()``, kept for the lifetimes in use (a bounded cache)."""
    control = _CACHE_CONTROL.get(life)
    if control is None:
        if len(_CACHE_CONTROL) >= 1024:
            _CACHE_CONTROL.clear()
        control = _CACHE_CONTROL[life] = life.header()
    return control


def document_cache_control(view: ProjectView, now: int, sync_interval: float) -> bytes:
    """``cache_control(document_lifetime(view, now, sync_interval))`` computed without the
    intermediate tuples: the wire path's twin of that plain form, for the one field of a JWKS
    or discovery answer that depends on the time. ``tests/service/test_documents.py`` holds
    the two equal over every kind of schedule, confirmation and interval."""
    freshness = view.freshness
    confirmed = None if freshness is None else freshness.confirmed_at
    return _cache_control(view.jwks_max_age, view.next_change, confirmed, now, sync_interval)


def quiet_cache_control(confirmed: int | None, now: int, sync_interval: float) -> bytes:
    """:func:`document_cache_control` of every view in the quiet index at ``now``
    (:meth:`~jwkit.service.state.ProjectViews.quiet_until`: ``jwks_max_age`` is
    :data:`~jwkit.service.state.QUIET_AGE` and no key change comes sooner) when the replica's
    snapshot was last confirmed at ``confirmed``: one value per second for all of them.
    ``tests/service/test_documents.py`` holds it equal to each quiet view's."""
    return _cache_control(QUIET_AGE, None, confirmed, now, sync_interval)


def _cache_control(
    jwks_max_age: int, next_change: int | None, confirmed: int | None, now: int, sync: float
) -> bytes:
    max_age = jwks_max_age
    if next_change is not None and next_change - now < max_age:
        max_age = next_change - now
    stale = 0
    if confirmed is not None:
        vouched = confirmed + SYNC_MARGIN + jwks_max_age - now - 1
        if vouched < max_age:
            max_age = vouched
    if max_age < 0:
        max_age = 0
    if confirmed is not None and jwks_max_age > 0:
        latest = now - math.ceil(sync) - 1
        if latest < confirmed:
            confirmed = latest
        stale = confirmed + SYNC_MARGIN + jwks_max_age - 1 - now - max_age
        if stale > jwks_max_age:
            stale = jwks_max_age
        elif stale < 0:
            stale = 0
    control = _CONTROL_BY_AGE.get((max_age, stale))
    if control is None:
        if len(_CONTROL_BY_AGE) >= 1024:
            _CONTROL_BY_AGE.clear()
        control = _CONTROL_BY_AGE[max_age, stale] = Lifetime(max_age, stale, stale).header()
    return control


#: ``(max-age, stale windows)`` -> the ``Cache-Control`` value of a project document.
_CONTROL_BY_AGE: dict[tuple[int, int], bytes] = {}


def document(name: str, doc: Document, life: Lifetime, if_none_match: str | None = None) -> Answer:
    """A project's JWKS (``name`` ``"jwks"``) or discovery document (:func:`published`),
    ``life`` from :func:`document_lifetime`."""
    return published(doc.body, doc.etag, CONTENT_TYPES[name], life, if_none_match)


def status_list(body: bytes, etag: str, life: Lifetime, if_none_match: str | None = None) -> Answer:
    """A signed Status List Token (:func:`published`), ``life`` from
    :func:`status_list_lifetime`."""
    return published(body, etag, STATUS_LIST, life, if_none_match)


def no_status_list() -> Answer:
    """The answer for a status list that does not exist."""
    return Answer(404, (_length(_NO_LIST), (b"content-type", JSON)), _NO_LIST)


def not_found() -> Answer:
    """The answer for a document or token endpoint of a project that does not exist."""
    return Answer(404, (_length(_NOT_FOUND), (b"content-type", JSON)), _NOT_FOUND)


_TOKEN_FIELDS: Headers = (*_NO_STORE, (b"content-type", JSON))
_TOKEN_401_FIELDS: Headers = (*_NO_STORE, *_CHALLENGE, (b"content-type", JSON))


def token_fields(status: int) -> Headers:
    """A token endpoint answer's header fields but its ``content-length`` (which follows
    them): never cached (RFC 6749 §5.1), and a Basic challenge with ``401`` (§5.2
    ``invalid_client``). The same tuple for the same status, so a writer may keep it
    serialised."""
    return _TOKEN_401_FIELDS if status == 401 else _TOKEN_FIELDS


def token(status: int, body: bytes) -> Answer:
    """A token endpoint answer (RFC 6749 §5.1, §5.2)."""
    return Answer(status, (*token_fields(status), _length(body)), body)


def unavailable() -> Answer:
    """A project that exists but that this worker cannot load now (it has not cached it and
    the database is away): 503 and a retry hint, never "no such project"."""
    return Answer(
        503,
        (
            _length(_UNAVAILABLE),
            (b"content-type", JSON),
            (b"retry-after", b"1"),
            (b"cache-control", b"no-store"),
        ),
        _UNAVAILABLE,
    )


def internal_error() -> Answer:
    """A bug's answer: the same bytes whichever writer met it."""
    return Answer(500, (_length(_INTERNAL), (b"content-type", JSON)), _INTERNAL)
