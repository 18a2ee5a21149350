"""The query parameters and the ``Link`` header of the admin API's paged lists (the keyset
pages themselves are :mod:`jwkit.service.domain.paging`'s)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request, Response

from jwkit.service.domain.paging import MAX_CURSOR

__all__ = ["Cursor", "PageSize", "Search", "paged"]

#: ``cursor``: exactly what ``next_cursor`` of the previous page was (opaque).
Cursor = Annotated[str | None, Query(min_length=1, max_length=MAX_CURSOR)]
#: ``q``: an id, or the start of a name (case ignored); empty means no search.
Search = Annotated[str | None, Query(max_length=100)]
#: ``limit``: rows in a page.
PageSize = Annotated[int, Query(ge=1, le=1000)]


def paged(request: Request, response: Response, next_cursor: str | None) -> str | None:
    """``next_cursor``, with ``Link: <…?cursor=…>; rel="next"`` (RFC 8288) added to
    ``response`` when there is a next page."""
    if next_cursor is not None:
        url = request.url.include_query_params(cursor=next_cursor)
        response.headers["link"] = f'<{url.path}?{url.query}>; rel="next"'
    return next_cursor
