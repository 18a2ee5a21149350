"""Change notifications between replicas over PostgreSQL ``LISTEN``/``NOTIFY``.

Every change bumps the ``service_state.version`` row; on PostgreSQL the same transaction also
sends ``NOTIFY jwkit_state`` (delivered on commit). Each replica keeps one connection listening
on that channel and wakes its background sync at once, so a key published or revoked on one
replica is served by all of them within milliseconds. The once-a-second poll of the version row
stays as the safety net (and is all SQLite needs: one process file, shared by its workers).
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

__all__ = ["CHANNEL", "listen", "notify_change"]

CHANNEL = "jwkit_state"
#: A frozen server must not hold the listener in ``connect`` forever (seconds).
_CONNECT_TIMEOUT = 5
#: Longest pause between reconnection attempts; the version poll covers the gap meanwhile.
_MAX_DELAY = 5.0
log = logging.getLogger("jwkit.service")


def notify_change(session: Session) -> None:
    """Queue a change notification in the caller's transaction (PostgreSQL only)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})


async def listen(database_url: str, wake: asyncio.Event) -> None:
    """Set ``wake`` on every notification until cancelled; reconnect with backoff.

    ``wake`` is also set after each (re)connection, to catch up on anything sent while the
    listener was away. A frozen server only delays notifications: nothing waits on them.
    """
    import psycopg

    conninfo = (
        make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    delay = 0.5
    while True:
        try:
            conn = await psycopg.AsyncConnection.connect(
                conninfo, autocommit=True, connect_timeout=_CONNECT_TIMEOUT
            )
            async with conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                delay = 0.5
                wake.set()
                async for _ in conn.notifies():
                    wake.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database went away: the poll still runs meanwhile
            log.warning(
                "change listener disconnected (%s); retrying in %.1fs", type(exc).__name__, delay
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_DELAY)
