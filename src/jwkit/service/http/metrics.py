"""Prometheus metrics (prometheus-client): counters shared by every app in the process.

With one process (``jwkit serve``, the tests) the counters live in its default registry. With
several workers (``jwkit serve --workers N``) the CLI points ``PROMETHEUS_MULTIPROC_DIR`` at a
private directory before uvicorn spawns them: prometheus-client then keeps each worker's
counters in a file there (it decides once, when it is first imported), and ``/metrics``, in
whichever worker answers, adds up every worker's files.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from starlette.requests import Request
from starlette.responses import Response

__all__ = [
    "DOCUMENTS",
    "ERRORS",
    "FLUSH_INTERVAL",
    "MULTIPROCESS",
    "TOKENS",
    "TRANSITIONS",
    "WIRE",
    "Tally",
    "flush_tallies",
    "metrics_endpoint",
    "publishing_tallies",
]

#: Whether this process's counters are files that every worker's ``/metrics`` adds up: the
#: same test prometheus-client makes when it is imported.
MULTIPROCESS = "PROMETHEUS_MULTIPROC_DIR" in os.environ
#: How often (seconds) a worker publishes its tallies in multiprocess mode.
FLUSH_INTERVAL = 1.0

TOKENS = Counter("jwkit_tokens_issued", "Access tokens issued.", ["grant"])
DOCUMENTS = Counter(
    "jwkit_document_requests", "JWKS and discovery requests.", ["document", "status"]
)
TRANSITIONS = Counter("jwkit_key_transitions", "Key lifecycle transitions.", ["action"])
ERRORS = Counter("jwkit_errors", "Error responses by kind.", ["kind"])
HEAP_COLLAPSES = Counter(
    "jwkit_heap_collapses",
    "Times this process moved its heap into huge pages (JWKIT_HUGE_PAGES).",
)
WIRE_COUNTER = Counter(
    "jwkit_wire_responses",
    "JWKS, discovery and token answers written straight from the HTTP parser (also counted "
    "in document_requests and tokens_issued).",
)

_TALLIES: list[Tally] = []


class Tally:
    """A count kept as a plain int on the hot path and added to its counter when flushed.

    ``Counter.inc`` takes a lock and makes checks: about 1 µs, as much as the rest of a JWKS
    answer on the wire path. The hot paths that use a tally (``tally.n += 1``) run on the event
    loop thread, and so does every flush: :func:`metrics_endpoint` flushes first, and in
    multiprocess mode :func:`publishing_tallies` flushes every ``FLUSH_INTERVAL`` seconds and
    at shutdown. No count is lost, and a scrape sees every request its own process answered
    before it (and those of the other workers up to their last flush).
    """

    __slots__ = ("_child", "n")

    def __init__(self, child: Counter) -> None:
        self._child = child
        self.n = 0
        _TALLIES.append(self)

    def flush(self) -> None:
        n, self.n = self.n, 0
        if n:
            self._child.inc(n)


def flush_tallies() -> None:
    for tally in _TALLIES:
        tally.flush()


WIRE = Tally(WIRE_COUNTER)


@contextlib.asynccontextmanager
async def publishing_tallies(interval: float = FLUSH_INTERVAL) -> AsyncIterator[None]:
    """For the app's lifespan: in multiprocess mode, flush this worker's tallies every
    ``interval`` seconds and once more at shutdown, since a scrape is answered by any worker
    and flushes only its own. A single process needs none of it: its scrapes flush."""
    if not MULTIPROCESS:
        yield
        return

    async def publish() -> None:
        while True:
            await asyncio.sleep(interval)
            flush_tallies()

    task = asyncio.create_task(publish())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        flush_tallies()
        # Drops this worker's ``live*`` gauge files (none today). uvicorn has no hook to do it
        # for a worker that dies; counter files stay, as they must: those counts happened.
        mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


async def metrics_endpoint(request: Request) -> Response:
    flush_tallies()
    if not MULTIPROCESS:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
    registry = CollectorRegistry()  # per scrape, as prometheus-client's multiprocess docs say
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
