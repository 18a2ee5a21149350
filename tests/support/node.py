"""One ``npm install`` at a time into the shared ``.cache/node`` prefix.

Under pytest-xdist several workers may find a Node package missing at once; two ``npm install``
runs into one prefix can leave it half-written. Hold :func:`npm_lock` (an exclusive ``flock`` on a
file in the prefix) around the check *and* the install, so the second worker sees the first
one's result instead of installing again.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def npm_lock(prefix: Path) -> Iterator[None]:
    prefix.mkdir(parents=True, exist_ok=True)
    with open(prefix / ".install.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
