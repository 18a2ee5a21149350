"""The heap in huge pages (``service/hugepages.py``): which regions, the kernel's answer, and a
real ``jwkit serve`` whose heap ends up there (or not, when told so)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest

from jwkit.service.hugepages import HUGE, REGROW, HeapPages, heap_regions, unavailable
from tests.support.serve import wait_for

from .conftest import AUTH

needs_collapse = pytest.mark.skipif(
    unavailable() is not None, reason=f"huge pages cannot be collapsed here: {unavailable()}"
)


def _anon_huge(pid: int | str = "self") -> int:
    """``AnonHugePages`` of a process, in bytes."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("AnonHugePages:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no AnonHugePages line")


def test_only_private_anonymous_writable_regions_aligned_to_huge_pages() -> None:
    maps = textwrap.dedent("""\
        55d0a0000000-55d0a0a00000 rw-p 00000000 00:00 0                  [heap]
        7f0000100000-7f0000700000 rw-p 00000000 00:00 0
        7f0000800000-7f0000900000 rw-p 00000000 00:00 0
        7f0001000000-7f0001400000 rw-s 00000000 00:05 1234               /dev/zero (deleted)
        7f0002000000-7f0002400000 r--p 00000000 08:01 42                 /usr/lib/libc.so.6
        7f0003000000-7f0003400000 rw-p 00001000 08:01 42                 /usr/lib/libc.so.6
        7f0004000000-7f0004400000 rw-p 00000000 00:00 0                  [stack]
        7f0005000000-7f0005400000 r--p 00000000 00:00 0
        7f0005fff000-7f0006000000 ---p 00000000 00:00 0
        7f0006000000-7f0006800000 rw-p 00000000 00:00 0
        7f0006800000-7f0006a00000 rw-p 00000000 00:00 0
        7f0007000000-7f0007400000 rw-p 00000000 00:00 0
        7f0007400000-7f0008000000 ---p 00000000 00:00 0
        7f0008000000-7f0008600000 rw-p 00000000 00:00 0
        7f0008600000-7f000c000000 ---p 00000000 00:00 0
        """)
    assert heap_regions(maps) == [
        (0x55D0A0000000, 0xA00000),  # the brk heap, aligned already
        (0x7F0000200000, 0x400000),  # 1 MiB in, 6 MiB long: the 4 MiB of whole huge pages
        # 1 MiB anonymous (too small), shared, read-only, file-backed and the stack: left alone;
        # a thread's stack (after its guard page) too, but not the region after that stack,
        (0x7F0006800000, 0x200000),
        # nor a malloc arena (its reserved, inaccessible part comes after it), nor the next
        # arena right after that reserve (megabytes: no guard)
        (0x7F0007000000, 0x400000),
        (0x7F0008000000, 0x600000),
    ]
    assert all(start % HUGE == 0 and length % HUGE == 0 for start, length in heap_regions(maps))


@needs_collapse
def test_collapse_moves_a_built_heap_into_huge_pages() -> None:
    """In a fresh interpreter: 200,000 small objects (what views are made of), then
    :func:`collapse_heap`; the kernel reports most of that memory in huge pages."""
    script = textwrap.dedent("""\
        import json, sys
        from pathlib import Path
        from jwkit.service.hugepages import collapse_heap
        def huge():
            for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
                if line.startswith("AnonHugePages:"):
                    return int(line.split()[1]) * 1024
        heap = [{"id": "proj_%08d" % n, "doc": b"%08d" % n * 50} for n in range(200_000)]
        before = huge()
        done = collapse_heap()
        print(json.dumps([before, huge(), done.asked, done.regions]))
        """)
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    before, after, asked, regions = json.loads(out.stdout)
    assert regions >= 1 and asked >= 64 << 20
    assert after - before >= 64 << 20, (before, after)  # the objects weigh ~110 MiB


@needs_collapse
def test_collapsing_again_waits_for_the_heap_to_grow() -> None:
    pages = HeapPages(enabled=True)
    assert pages.reason is None
    assert not pages.due()  # never before the first collapse
    assert pages.collapse() is not None
    assert not pages.due()  # nothing grew
    grown = bytearray(REGROW + (8 << 20))
    grown[::4096] = b"x" * len(grown[::4096])  # every page touched: resident
    assert pages.due()
    again = pages.collapse()
    assert again is not None and again.asked >= REGROW
    assert not pages.due()
    del grown


def test_turned_off_it_never_collapses() -> None:
    pages = HeapPages(enabled=False)
    assert pages.reason == "JWKIT_HUGE_PAGES=false"
    assert pages.collapse() is None
    grown = bytearray(REGROW + (8 << 20))
    grown[::4096] = b"x" * len(grown[::4096])
    assert not pages.due()
    del grown


def _collapses(url: str) -> float:
    text = httpx.get(url + "/metrics", headers=AUTH, timeout=10).text
    found = re.search(r"^jwkit_heap_collapses_total (\S+)$", text, re.M)
    assert found, text
    return float(found.group(1))


@needs_collapse
@pytest.mark.timeout(120)
def test_a_server_moves_its_heap_into_huge_pages_once_warm(spawn: Any, tmp_path: Path) -> None:
    """Two servers started together, one told not to: once the first has collapsed its heap
    after its warm-up (its metric says so), its heap is in huge pages and the other's is not
    (with huge pages given only where asked, as on most distributions)."""
    off = spawn(tmp_path / "off", JWKIT_HUGE_PAGES="false")
    on = spawn(tmp_path / "on")
    assert on.proc is not None and off.proc is not None
    assert wait_for(lambda: _collapses(on.url) >= 1, 60), on.log()
    assert _anon_huge(on.proc.pid) >= 8 << 20
    assert wait_for(lambda: httpx.get(off.url + "/readyz", timeout=5).status_code == 200, 60)
    assert _collapses(off.url) == 0
    if "[madvise]" in Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text():
        assert _anon_huge(off.proc.pid) == 0
