"""``GET {issuer}/events``: Server-Sent Events telling verifiers a status list or the key set
changed, so they refetch at once instead of waiting for a cache to expire.

Events are hints only: each names a URL (``{"uri": ...}`` or ``{"jwks_uri": ...}``) and the
listener fetches and verifies the signed document; a forged or replayed event can make a
verifier fetch, never accept or refuse a token. They are sent when this replica rebuilds a
snapshot: at once for a change made here, within milliseconds for one committed on another
replica (PostgreSQL ``NOTIFY`` wakes the sync), within ``sync_interval`` otherwise.

The stream opens with ``retry: 1000`` and a comment, then sends ``: ping`` every
``events_heartbeat`` seconds. At most ``events_max_listeners`` streams are open per process;
one more is answered ``503`` with ``Retry-After``. A listener that disconnects is dropped at
once; one that does not read is given at most :data:`QUEUE` pending events (further events
are dropped for it: they are hints, and the next one it reads makes it refetch anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
import weakref
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from jwkit.service.http.public import project_view
from jwkit.service.runtime import Service

__all__ = ["QUEUE", "EventHub", "close_all", "events"]

QUEUE = 64
_JSON = "application/json"
_HUBS: weakref.WeakSet[EventHub] = weakref.WeakSet()
_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"access-control-allow-origin", b"*"),
    (b"x-accel-buffering", b"no"),
]


def close_all() -> None:
    """End every open stream of this process (the server is shutting down: uvicorn waits for
    open connections to finish, and a stream never would). Called on the event loop."""
    for hub in list(_HUBS):
        hub.close()


class EventHub:
    """Fans change notifications out to the open streams of one process."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.loop: asyncio.AbstractEventLoop | None = None
        self.streams: dict[str, set[asyncio.Queue[bytes]]] = {}
        self.open = 0
        self._ids = itertools.count(1)
        self.closing = asyncio.Event()
        _HUBS.add(self)
        service.state.status.listeners.append(self._status_changed)
        service.state.key_listeners.append(self._keys_changed)

    def _status_changed(self, project_id: str, uri: str) -> None:
        self._post(project_id, "status", {"uri": uri})

    def _keys_changed(self, project_id: str) -> None:
        view = self.service.state.projects.get(project_id)
        if view is not None:
            self._post(project_id, "keys", {"jwks_uri": f"{view.issuer}/.well-known/jwks.json"})

    def _post(self, project_id: str, name: str, data: dict[str, str]) -> None:
        """Thread-safe: called from the sync thread or a request's worker thread."""
        loop = self.loop
        if loop is None or loop.is_closed() or project_id not in self.streams:
            return
        event_id = f"{time.time_ns() // 1_000_000}-{next(self._ids)}"
        chunk = (
            f"id: {event_id}\nevent: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
        ).encode()
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._deliver, project_id, chunk)

    def _deliver(self, project_id: str, chunk: bytes) -> None:
        for queue in list(self.streams.get(project_id, ())):
            if queue.qsize() < QUEUE:
                queue.put_nowait(chunk)

    def close(self) -> None:
        self.closing.set()

    def subscribe(self, project_id: str) -> asyncio.Queue[bytes] | None:
        """A queue for a new stream, or ``None`` when the process has as many as allowed (or is
        shutting down)."""
        if self.closing.is_set() or self.open >= self.service.settings.events_max_listeners:
            return None
        self.loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.streams.setdefault(project_id, set()).add(queue)
        self.open += 1
        return queue

    def unsubscribe(self, project_id: str, queue: asyncio.Queue[bytes]) -> None:
        streams = self.streams.get(project_id)
        if streams is not None and queue in streams:
            streams.discard(queue)
            self.open -= 1
            if not streams:
                del self.streams[project_id]


async def _disconnected(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


class _Stream(Response):
    def __init__(self, hub: EventHub, project_id: str) -> None:
        super().__init__()
        self.hub = hub
        self.project_id = project_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hub = self.hub
        if scope.get("method") == "HEAD":
            # The headers a GET would get, and the end: a HEAD has no body to stream, and a
            # stream left open would hold the connection and a listener's place for ever.
            await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        queue = hub.subscribe(self.project_id)
        if queue is None:
            body = b'{"error":"too_many_listeners","message":"try again shortly"}'
            await Response(body, 503, headers={"Retry-After": "5"}, media_type=_JSON)(
                scope, receive, send
            )
            return
        heartbeat = hub.service.settings.events_heartbeat
        watcher = asyncio.ensure_future(_disconnected(receive))
        closing = asyncio.ensure_future(hub.closing.wait())
        getter: asyncio.Future[bytes] | None = None
        started = False
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": _HEADERS,
                }
            )
            started = True
            await send(
                {
                    "type": "http.response.body",
                    "body": b"retry: 1000\n: jwkit events\n\n",
                    "more_body": True,
                }
            )
            while True:
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait(
                    {getter, watcher, closing},
                    timeout=heartbeat,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if watcher in done or closing in done:
                    break
                if getter in done:
                    chunk = getter.result()
                else:
                    chunk = b": ping\n\n"
                getter.cancel()
                getter = None
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except OSError:
            pass  # the client went away mid-write
        finally:
            hub.unsubscribe(self.project_id, queue)
            if started:  # end the response: the client reconnects
                with contextlib.suppress(OSError):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
            for task in (watcher, closing, getter):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task


async def events(request: Request) -> Response:
    app_state: Any = request.app.state
    service: Service = app_state.service
    project_id = request.path_params["project"]
    # the project's view is built (and cached) now: key changes are announced for the
    # projects this worker holds
    if await project_view(service, project_id) is None:
        return Response(b'{"error":"not_found","message":"no such project"}', 404, media_type=_JSON)
    hub: EventHub | None = getattr(app_state, "events", None)
    if hub is None:
        hub = app_state.events = EventHub(service)
    return _Stream(hub, project_id)
