"""Huge pages for a replica's heap: fewer TLB misses for requests spread over many projects.

A replica that holds 100,000 projects keeps some 400-900 MB of small Python objects, and a
JWKS or discovery request for a project drawn at random reads five of them (the id index, its
entry, the id, the view, the document), each most likely on a page no recent request touched.
With 4 KiB pages every one of those reads also misses the TLB and walks the page tables; with
2 MiB pages the whole heap is a few hundred TLB entries. Linux gives anonymous memory huge
pages only where asked (``/sys/kernel/mm/transparent_hugepage/enabled`` is ``madvise`` on
most distributions), and CPython's allocator never asks, so :func:`collapse_heap` does, once
the heap is built: ``madvise(MADV_HUGEPAGE)`` on each private anonymous region (later faults
there get huge pages) and ``madvise(MADV_COLLAPSE)`` (Linux 6.1+) to move what is already
there into huge pages now. Nothing is copied by Python and no object moves; only the
kernel's page tables change, so the process computes exactly what it did before
(``docs/benchmarks.md``, "the heap in huge pages", measures what it saves).

:class:`HeapPages` decides when: after the start-up warm-up, and again whenever the resident
set has grown by :data:`REGROW` since (keys opened as projects first sign, projects created).
``JWKIT_HUGE_PAGES=false`` turns it off; where the platform cannot (not Linux, an older
kernel, huge pages disabled) it does nothing and says why once in the log.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["GUARD", "HUGE", "REGROW", "Collapsed", "HeapPages", "collapse_heap", "heap_regions"]

log = logging.getLogger("jwkit.service")

#: The size of a huge page on x86-64 and arm64 (with 4 KiB base pages).
HUGE = 2 << 20
#: The largest inaccessible region taken for a thread stack's guard (glibc's is a page).
GUARD = 64 << 10
#: Resident growth (bytes) after which :meth:`HeapPages.due` says to collapse again.
REGROW = 64 << 20
MADV_HUGEPAGE = 14
MADV_COLLAPSE = 25
_THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")


@dataclass(frozen=True, slots=True)
class Collapsed:
    """What one :func:`collapse_heap` did: the bytes it asked to collapse, in how many
    regions, how many of those the kernel refused in part (pages in use by I/O, or no huge
    page free: they stay in small pages), and how long it took."""

    asked: int
    regions: int
    refused: int
    seconds: float


def heap_regions(maps: str) -> list[tuple[int, int]]:
    """The 2 MiB-aligned spans, each at least :data:`HUGE` long, of the private, anonymous,
    readable and writable regions listed in ``maps`` (the text of ``/proc/self/maps``):
    where CPython's allocator and ``malloc`` keep objects. File mappings, the main stack and
    threads' stacks (a region right after an inaccessible guard of at most :data:`GUARD`)
    are left alone: a stack touches a few pages of its megabytes, and a huge page would make
    them all resident. (``malloc``'s thread arenas are followed by an inaccessible reserve
    of megabytes, which the next arena may follow: that is no guard.)"""
    spans = []
    guard_end = -1  # where the last inaccessible region of guard size ended
    for line in maps.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        low, high = (int(part, 16) for part in fields[0].split("-"))
        after_guard = low == guard_end
        guard_end = high if fields[1] == "---p" and high - low <= GUARD else -1
        name = fields[5] if len(fields) > 5 else ""
        if fields[1] != "rw-p" or (name and name != "[heap]") or after_guard:
            continue
        start, end = (low + HUGE - 1) & ~(HUGE - 1), high & ~(HUGE - 1)
        if end - start >= HUGE:
            spans.append((start, end - start))
    return spans


def unavailable() -> str | None:
    """Why :func:`collapse_heap` cannot work here, or ``None``."""
    if not sys.platform.startswith("linux"):
        return "huge pages are collapsed on Linux only"
    release = os.uname().release.split(".")
    try:
        if (int(release[0]), int(release[1].split("-")[0])) < (6, 1):
            return "MADV_COLLAPSE needs Linux 6.1 or later"
    except (IndexError, ValueError):
        return f"unknown kernel release {os.uname().release!r}"
    try:
        if "[never]" in _THP.read_text():
            return "transparent huge pages are disabled (enabled: never)"
    except OSError:
        return "this kernel has no transparent huge pages"
    return None


def collapse_heap() -> Collapsed:
    """Advise and collapse every heap region into huge pages (see the module's text). Runs
    for about 2.5 ms per MB not yet collapsed, without the GIL (ctypes releases it), so call
    it off the event loop. Raises :class:`OSError` where :func:`unavailable` says so."""
    why = unavailable()
    if why is not None:
        raise OSError(why)
    libc = ctypes.CDLL(None, use_errno=True)
    madvise = libc.madvise
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    t0 = time.perf_counter()
    asked = refused = 0
    spans = heap_regions(Path("/proc/self/maps").read_text())
    for start, length in spans:
        madvise(start, length, MADV_HUGEPAGE)
        if madvise(start, length, MADV_COLLAPSE) != 0:
            refused += 1  # EAGAIN/ENOMEM: part of it stays in small pages
        asked += length
    return Collapsed(asked, len(spans), refused, time.perf_counter() - t0)


def resident_bytes() -> int:
    """This process's resident set (``/proc/self/statm``), 0 where there is none."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class HeapPages:
    """When to collapse: once the heap is built (:meth:`collapse`), then whenever the
    resident set has grown by :data:`REGROW` since the last time (:meth:`due`, checked after
    each sync). One collapse at a time: the app's background task runs each aside, off the
    event loop, and checks :meth:`due` only once the previous one is over."""

    def __init__(self, enabled: bool) -> None:
        self.reason = None if enabled else "JWKIT_HUGE_PAGES=false"
        if self.reason is None:
            self.reason = unavailable()
            if self.reason is not None:
                log.info("heap left in small pages: %s", self.reason)
        self.last: Collapsed | None = None
        self._resident = 0

    def collapse(self) -> Collapsed | None:
        if self.reason is not None:
            return None
        self.last = collapse_heap()
        self._resident = resident_bytes()
        log.debug("heap collapsed into huge pages: %s", self.last)
        return self.last

    def due(self) -> bool:
        """Whether the resident set has grown by :data:`REGROW` since the last collapse
        (never before the first one)."""
        return (
            self.reason is None
            and self.last is not None
            and resident_bytes() - self._resident >= REGROW
        )
