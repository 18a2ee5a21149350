"""``benchmarks/scale.py``'s reading of its rounds (no timing here): the per-round ratios of
the spread rate to the 1-project server's, their median and how far it can be trusted; and
the pinning of a measured server to its CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.benchmarks import load_script


@pytest.fixture(scope="module")
def scale() -> ModuleType:
    return load_script("scale")


def rounds(ratios: list[float]) -> list[dict[str, int]]:
    return [{"base": 10_000, "one": 10_000, "all": round(10_000 * r)} for r in ratios]


def test_few_rounds_give_the_median_and_range_only(scale: ModuleType) -> None:
    assert scale.paired(None) == ""
    assert scale.paired(rounds([0.9])) == ""
    assert scale.paired(rounds([0.8, 1.0, 0.9])) == "; rounds 0.90x median, 0.80-1.00"
    # rounds without the 1-project server (its own run) count for nothing
    assert scale.paired([{"one": 5, "all": 4}, {"one": 5, "all": 4}]) == ""


def test_nine_rounds_on_add_the_medians_interval(scale: ModuleType) -> None:
    same = scale.paired(rounds([0.93] * 9))
    assert same == "; rounds 0.93x median, 0.93-0.93 (median's 95 % interval 0.93-0.93)"
    spread = [0.63, 0.78, 0.84, 0.88, 0.9, 0.91, 0.93, 0.95, 0.97, 1.02, 1.28]
    text = scale.paired(rounds(spread))
    assert text.startswith("; rounds 0.91x median, 0.63-1.28 (median's 95 % interval ")
    low, high = (float(x) for x in text.rsplit(" ", 1)[1].rstrip(")").split("-"))
    assert 0.78 <= low < 0.91 < high <= 1.02  # around the median, never the extremes
    assert scale.paired(rounds(spread)) == text  # seeded: the same rounds, the same words


def test_a_server_is_pinned_with_every_thread(scale: ModuleType) -> None:
    cpu = sorted(os.sched_getaffinity(0))[0]
    # a process with two threads besides its main one, started before it is pinned
    code = (
        "import sys, threading, time\n"
        "for _ in range(2): threading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n"
        "print('ready', flush=True); time.sleep(30)\n"
    )
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
            scale.PIN.server = ["taskset", "-c", str(cpu)]
            scale.pin(proc.pid)
            tasks = [int(t.name) for t in Path(f"/proc/{proc.pid}/task").iterdir()]
            assert len(tasks) == 3
            assert all(os.sched_getaffinity(t) == {cpu} for t in tasks)
        finally:
            scale.PIN.server = []
            proc.kill()


def test_nothing_is_pinned_when_pinning_is_off(scale: ModuleType) -> None:
    proc = subprocess.Popen(["sleep", "30"])
    try:
        before = os.sched_getaffinity(proc.pid)
        scale.pin(proc.pid)  # PIN.server empty
        assert os.sched_getaffinity(proc.pid) == before
    finally:
        proc.kill()
        proc.wait()
