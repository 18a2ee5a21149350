"""A published document as every writer sends it: its body and its representation fields.

A JWKS, a discovery document or a status list is sent with the same header fields whoever
writes it (:mod:`jwkit.service.http.documents` builds the answers of the ASGI routes from
:func:`representation`, the wire path writes the bytes): ``cache-control`` first, which alone
depends on the time (:func:`jwkit.service.http.documents.document_lifetime`), then its strong
ETag, CORS for every origin, its length and its content type. A :class:`Document` is those
fields serialised, the end of the head and the body in one bytes object, so an answer spread
over 100,000 projects is a join of the answer's first lines with it, not a rebuild
(``docs/architecture.md``, "The three flows").
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any, final

__all__ = [
    "ALLOW_ORIGIN",
    "JSON",
    "JWKS",
    "STATUS_LIST",
    "Document",
    "etag_of",
    "representation",
    "serialised",
]

#: ``access-control-allow-origin`` of every published document: anyone may read it.
ALLOW_ORIGIN = b"*"
#: Content types (RFC 7517 §8.5 for a JWK Set).
JWKS = b"application/jwk-set+json"
JSON = b"application/json"
#: A Status List Token (draft-ietf-oauth-status-list §5.1, §14.7).
STATUS_LIST = b"application/statuslist+jwt"


def etag_of(body: bytes) -> str:
    """A strong ETag (RFC 9110 §8.8.3) for ``body``: 128 bits of its SHA-256, quoted."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def representation(etag: str, content_type: bytes, length: int) -> tuple[tuple[bytes, bytes], ...]:
    """The header fields of a published document that do not depend on the time, in the
    order they are sent (after ``cache-control``)."""
    return (
        (b"etag", etag.encode()),
        (b"access-control-allow-origin", ALLOW_ORIGIN),
        (b"content-length", b"%d" % length),
        (b"content-type", content_type),
    )


def serialised(fields: Iterable[tuple[bytes, bytes]]) -> bytes:
    """Header fields as a writer of raw bytes sends them: ``name: value`` lines, each ending
    with CRLF."""
    return b"".join(name + b": " + value + b"\r\n" for name, value in fields)


@final
class Document(bytes):
    """A rendered response body as the wire path sends it after ``cache-control``: its
    :func:`representation` fields serialised (``name: value`` lines, each ending with CRLF),
    the blank line that ends the head, then the body. One bytes object per document, read by
    a spread request in one hop: a replica holds two documents for each of 100,000 projects,
    and what a request touches of them is what it waits for (``docs/benchmarks.md``). The
    ETag, the fields and the body are read back from it."""

    __slots__ = ()

    def __new__(cls, body: bytes, content_type: bytes, etag: str | None = None) -> Document:
        fields = serialised(representation(etag or etag_of(body), content_type, len(body)))
        return super().__new__(cls, fields + b"\r\n" + body)

    @classmethod
    def render(cls, data: Any, content_type: bytes) -> Document:
        """``data`` as compact JSON with sorted keys (the same bytes on every replica)."""
        return cls(json.dumps(data, separators=(",", ":"), sort_keys=True).encode(), content_type)

    @property
    def fields(self) -> bytes:
        """The representation fields serialised (without the blank line)."""
        return self[: self.index(b"\r\n\r\n") + 2]  # a slice is plain bytes

    @property
    def body(self) -> bytes:
        return self[self.index(b"\r\n\r\n") + 4 :]

    @property
    def etag(self) -> str:
        return self[6 : self.index(b"\r\n")].decode()

    @property
    def content_type(self) -> bytes:
        fields = self.fields
        return fields[fields.rindex(b"content-type: ") + 14 : -2]

    def __repr__(self) -> str:
        return f"Document({len(self.body)} bytes, etag={self.etag})"
